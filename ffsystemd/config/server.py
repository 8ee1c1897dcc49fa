"""Configuration of this server's sessions: its id and root, timeouts, culling, shutdown, the bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitlets import Enum, Float, HasTraits, Int, Unicode, validate

from ..identity import check_server_id
from ..session_dirs import check_root_length
from .checks import bad, in_range, interval, optional_duration, timeout


class ServerConfig(HasTraits):
    """Which sessions are this server's, how many, and when they are culled, stopped or kept."""

    max_sessions = Int(
        4,
        config=True,
        help="How many sessions may be starting or running at once for this server; a launch"
        " beyond that is answered 429.",
    )
    pool_size = Int(
        0,
        config=True,
        help="How many sessions to keep started ahead of any request (the warm pool), each with"
        " Firefox running on a blank page under the same limits as a launch: a launch claims one"
        " and Firefox opens the requested page in it at once (no Xpra or Firefox start to wait"
        " for), then the pool refills in the background. Each"
        " pooled session costs the memory of an idle session all the time: measured 430 MiB PSS"
        " (other sessions sharing its libraries) to ~600 MiB (alone) with a 1920x1080 screen_size"
        " (the default 3840x2160 adds ~26 MiB) and the default firefox_content_processes (README,"
        " Benchmarks)."
        " Pooled sessions are not listed to the user and count toward max_sessions only once"
        " claimed, so up to max_sessions + pool_size sessions can run. A claimed session is a"
        " session of its own (profile, cache, directories, scope) like a cold one. 0 (the"
        " default): every launch starts its own session.",
    )
    pool_max_age = Float(
        1800.0,
        config=True,
        help="Seconds an unclaimed pooled session may wait before it is replaced by a fresh one"
        " (pooled sessions are never culled as idle); 0 keeps them until claimed or shut down."
        " With max_age set, a claimed session's max_age counts from when it was pooled.",
    )
    server_id = Unicode(
        "",
        config=True,
        help="Name of this Jupyter server among the servers of this user (1 to 32 of a-z, 0-9,"
        " '.', '_', '-'). A server lists, proxies, culls, cleans up and re-adopts only the"
        " sessions carrying its own id, so two servers sharing one user manager never touch each"
        " other's Firefox. Default: under JupyterHub, from the hub's user and server name;"
        " otherwise derived from root_dir and base_url (a second live server with the same ones"
        " takes the next free slot, <id>-2, ...). Keep it stable across restarts, or kept"
        " sessions are not re-adopted.",
    )
    session_root = Unicode(
        "",
        config=True,
        help="Directory holding one session-<id>/ directory (profile, cache, temp, runtime,"
        " sockets; mode 0700) per session. Created (0700) if missing. It must be the server"
        " user's own, not a symlink and not writable by other users (group/other read bits"
        " are removed), and every directory above it must belong to root or that user and"
        " not be writable by others unless sticky (like /tmp); else the extension does not"
        " start. Default: ~/.firefox-launcher/<server id> (one per server).",
    )
    ready_timeout = Float(
        30.0,
        config=True,
        help="Seconds a launch waits for Xpra to serve its HTML5 client before it fails and cleans up.",
    )
    on_shutdown = Enum(
        ["stop", "keep"],
        default_value="stop",
        config=True,
        help="What happens to running sessions when the Jupyter server stops: 'stop' ends"
        " them (SIGKILL for what is left after stop_timeout + 15 s), 'keep' leaves their units"
        " running for the next server with the same server_id to re-adopt.",
    )
    idle_timeout = Float(
        3600.0,
        config=True,
        help="Stop a session after this many seconds with no open connection and no proxied"
        " traffic (its tab then says so); 0 turns idle culling off.",
    )
    culling_interval = Float(60.0, config=True, help="Seconds between two checks for idle sessions.")
    stats_interval = Float(
        2.0,
        config=True,
        help="Memory, task and CPU figures of running sessions are read from systemd at most"
        " once per this many seconds, shared by all status requests.",
    )
    bus_address = Unicode(
        "",
        config=True,
        help="D-Bus address of the systemd user manager. Default: $DBUS_SESSION_BUS_ADDRESS,"
        " else unix:path=$XDG_RUNTIME_DIR/bus.",
    )
    dbus_timeout = Float(
        10.0, config=True, help="Seconds any single D-Bus call to the user manager may take."
    )

    @validate("max_sessions")
    def _check_max_sessions(self, proposal: Any) -> int:
        return in_range("max_sessions", proposal["value"], 1, 1000, "must be between 1 and 1000")

    @validate("pool_size")
    def _check_pool_size(self, proposal: Any) -> int:
        return in_range("pool_size", proposal["value"], 0, 100, "must be between 0 and 100")

    @validate("pool_max_age")
    def _check_pool_max_age(self, proposal: Any) -> float:
        return optional_duration("pool_max_age", proposal["value"])

    @validate("server_id")
    def _check_server_id(self, proposal: Any) -> str:
        if proposal["value"]:
            try:
                check_server_id(proposal["value"])
            except ValueError as exc:
                raise bad("server_id", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("session_root")
    def _check_session_root(self, proposal: Any) -> str:
        if not proposal["value"]:
            return ""  # the per-server default (checked once the server id is known)
        try:
            check_root_length(Path(proposal["value"]))
        except ValueError as exc:
            raise bad("session_root", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("idle_timeout")
    def _check_idle_timeout(self, proposal: Any) -> float:
        return optional_duration("idle_timeout", proposal["value"])

    @validate("culling_interval", "stats_interval")
    def _check_intervals(self, proposal: Any) -> float:
        return interval(proposal["trait"].name, proposal["value"])

    @validate("ready_timeout", "dbus_timeout")
    def _check_timeouts(self, proposal: Any) -> float:
        return timeout(proposal["trait"].name, proposal["value"])
