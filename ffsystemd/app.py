"""The `ffsystemd` Jupyter server extension: configuration, handlers and lifecycle."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, Union, validate

from . import metrics
from .admin_args import firefox_arg_refusal, managed_xpra_options, pref_refusal, xpra_arg_refusal
from .capability import CapabilityStore
from .commands import XpraSettings, check_env_pattern, content_process_prefs
from .downloads import open_downloads_dir, upload_prefs
from .identity import ServerIdentity, check_server_id, default_session_root, server_identity, state_dir
from .limits import UINT64_MAX, parse_cpu_quota, parse_memory_max, parse_screen_size, parse_tasks_max
from .liveness import ServerIdInUse, ServerLock, claim
from .manager import ManagerSettings, SessionManager
from .orphans import Orphans
from .session_dirs import check_root_length, ensure_root
from .signals import stop_on_sigint
from .systemd import SystemdClient
from .units import ScopeLimits, is_valid_slice_name
from .urls import check_start_url

FIREFOX_CANDIDATES = ("firefox", "firefox-esr")
FORBIDDEN_XPRA_ARGS = tuple(f"--{name}" for name in sorted(managed_xpra_options()))
"""The options ffsystemd gives `xpra start` itself (refused in extra_xpra_args, see ffsystemd.admin_args)."""


def find_firefox() -> list[str]:
    """Return the default Firefox command: the first of firefox, firefox-esr on PATH."""
    for name in FIREFOX_CANDIDATES:
        path = shutil.which(name)
        if path:
            return [path]
    return []


def forbidden_xpra_arg(arg: str) -> str | None:
    """Why an extra Xpra argument is refused (None if allowed); see ffsystemd.admin_args."""
    return xpra_arg_refusal(arg)


def _bad(trait: str, value: Any, why: str) -> TraitError:
    return TraitError(f"c.FirefoxLauncher.{trait} = {value!r} is invalid: {why}")


class FirefoxLauncher(ExtensionApp):
    """Firefox in a JupyterLab tab: each session an Xpra + Firefox in a transient systemd user scope."""

    name = "ffsystemd"
    load_other_extensions = True

    memory_max = Unicode(
        "2G",
        config=True,
        help="Memory limit of each session (MemoryMax= of its scope): bytes, or a size with"
        " K/M/G/T suffix (base 1024) such as 512M or 2G, or 'infinity'.",
    )
    tasks_max = Union(
        [Int(), Unicode()],
        default_value=1024,
        config=True,
        help="Maximum number of tasks (processes and threads) of each session (TasksMax=), or 'infinity'.",
    )
    cpu_quota = Unicode(
        "",
        config=True,
        help="CPU quota of each session (CPUQuota=) as a percentage of one CPU, e.g. '150%'"
        " for one and a half CPUs; empty for no quota.",
    )
    max_sessions = Int(
        4,
        config=True,
        help="How many sessions may be starting or running at once for this server; a launch"
        " beyond that is answered 429.",
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
    firefox_command = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Command that starts Firefox (without the profile and URL arguments, which"
        " ffsystemd adds). Default: the first of 'firefox', 'firefox-esr' found on PATH.",
    )
    xpra_command = List(Unicode(), default_value=["xpra"], config=True, help="Command that runs Xpra.")
    extra_xpra_args = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Extra arguments appended to 'xpra start', each as --option=value. Refused: every"
        " option ffsystemd gives Xpra itself (--bind, --xvfb, --start-child, --html, --daemon,"
        " --systemd-run, --socket-dirs, --exit-with-children, --mdns, ...), their --no- forms"
        " and abbreviations, and whole families that open listeners, run commands or change"
        " authentication (--bind*, --tcp*, --ws*, --ssl*, --ssh*, --socket-*, --auth and"
        " *-auth, --start*, --exec-wrapper, --env, --source*, --password-file, --encryption*,"
        " --uid/--gid, ...); short options and separate values or positional arguments too.",
    )
    extra_firefox_args = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Extra arguments for Firefox, before the URL. Remote control and debugging"
        " (--remote-debugging-port, --marionette, --start-debugger-server, --remote-allow-*,"
        " --jsdebugger, -d/-g debuggers, --headless, ...) and the profile/instance options"
        " ffsystemd sets (--profile, -P, --new-instance, --no-remote) are refused, in any"
        " spelling Firefox accepts (-opt, --opt, any case).",
    )
    firefox_prefs = Dict(
        default_value={},
        config=True,
        help="Extra Firefox preferences written to each session profile's user.js"
        " (name -> bool, int or string); they override ffsystemd's quiet first-run defaults."
        " Refused: remote debugging (devtools.debugger.remote-*, devtools.debugger.prompt-connection,"
        " devtools.chrome.enabled), Marionette (marionette.*), the remote agent (remote.*) and"
        " where files go (browser.cache.disk.parent_directory, browser.download.dir, ...).",
    )
    pass_environment = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Names of the Jupyter server's environment variables that also reach Xpra, Xvfb"
        " and Firefox (a name ending in '*' is a prefix, e.g. 'MOZ_*'). Only an allow-list"
        " passes by default: PATH, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TZDIR,"
        " LOCPATH, FONTCONFIG_FILE, FONTCONFIG_PATH, XDG_DATA_DIRS and the proxy variables"
        " (http_proxy, https_proxy, ftp_proxy, all_proxy, no_proxy, in both cases); everything"
        " else (tokens, cloud keys, JUPYTER_*, JPY_*, DBUS_SESSION_BUS_ADDRESS, ...) is dropped."
        " The variables ffsystemd sets itself (HOME, XDG_CONFIG_HOME, XDG_RUNTIME_DIR, XDG_CACHE_HOME,"
        " XDG_CONFIG_DIRS, TMPDIR, XAUTHORITY, ...) always win: a session has its own HOME.",
    )
    start_url = Unicode(
        "about:blank",
        config=True,
        help="Page a new session opens when the launch request names none (http(s) URL or about: page).",
    )
    screen_size = Unicode(
        "1920x1080",
        config=True,
        help="Size WIDTHxHEIGHT of each session's virtual screen (the largest the Firefox view can be).",
    )
    firefox_content_processes = Int(
        2,
        config=True,
        help="Most shared web content processes each session's Firefox runs (Firefox's own default"
        " is 8; each costs memory, ~15-20 MiB PSS idle and more with pages in it). Site isolation"
        " stays on: a site still gets a process of its own. Firefox also keeps just one spare"
        " process started ahead of need (instead of 3), and no hidden new-tab page. Raise it for"
        " sessions that keep many tabs open; firefox_prefs can override each of these prefs"
        " (dom.ipc.processCount, dom.ipc.processPrelaunch.fission.number, browser.newtab.preload).",
    )
    ready_timeout = Float(
        30.0,
        config=True,
        help="Seconds a launch waits for Xpra to serve its HTML5 client before it fails and cleans up.",
    )
    downloads_dir = Unicode(
        "Downloads",
        config=True,
        help="Where Firefox saves downloads (without asking), so that the JupyterLab file browser"
        " shows them: a path relative to the server's root_dir (default 'Downloads', i.e."
        " <root_dir>/Downloads), or an absolute path. Created mode 0700 if missing. Checked at"
        " start-up: it must be a real directory (not a symlink) owned by the server's user, not"
        " writable by other users, under directories only root or that user control, and a"
        " relative path must stay inside root_dir. Downloads there outlive their session. ''"
        " keeps each session's downloads in its own directory (<session>/downloads), removed"
        " with the session unless keep_profile. A page's file-upload dialog opens in root_dir.",
    )
    keep_profile = Bool(
        False,
        config=True,
        help="Keep a session's directory (its Firefox profile, home and downloads) after cleanup"
        " instead of deleting it. The dead X server's cookie, the sockets and the runtime and"
        " temporary files are removed either way.",
    )
    slice = Unicode(
        "app-ffsystemd.slice",
        config=True,
        help="systemd slice the session scopes are placed in; 'ffsystemd install-units' installs"
        " app-ffsystemd.slice with aggregate limits for all sessions together.",
    )
    stop_timeout = Float(
        5.0,
        config=True,
        help="Seconds systemd waits after SIGTERM before it SIGKILLs what is left of a"
        " stopping session (TimeoutStopUSec=).",
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
    max_age = Float(
        0.0,
        config=True,
        help="Stop a session this many seconds after it started, whatever it is doing"
        " (RuntimeMaxUSec= of its scope); 0 for no limit.",
    )
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

    # --- the session proxy (ffsystemd.handlers.client) ---------------------------
    max_connections_per_session = Int(
        8,
        config=True,
        help="Most websocket connections one session's Xpra may have open at once through the"
        " proxy (each tab or reload of a session's page opens one); more are answered 429.",
    )
    websocket_idle_timeout = Float(
        300.0,
        config=True,
        help="Close a proxied websocket that carried no byte either way for this many seconds"
        " (Xpra's client pings every few seconds while its page is open); 0 for never.",
    )
    capability_lifetime = Float(
        900.0,
        config=True,
        help="Seconds a session page's capability (the random key in its URL that authorizes"
        " the Xpra client's requests and websocket) stays valid without any use; it also ends"
        " with its session, and every new opening of the session page gets a new one.",
    )

    @validate("max_connections_per_session")
    def _check_max_connections(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= 1000:
            raise _bad("max_connections_per_session", proposal["value"], "must be between 1 and 1000")
        return proposal["value"]

    @validate("websocket_idle_timeout")
    def _check_websocket_idle_timeout(self, proposal: Any) -> float:
        if not 0 <= proposal["value"] <= 86400:
            raise _bad(
                "websocket_idle_timeout", proposal["value"], "must be 0 (never) or up to 86400 seconds"
            )
        return proposal["value"]

    @validate("capability_lifetime")
    def _check_capability_lifetime(self, proposal: Any) -> float:
        if not 10 <= proposal["value"] <= 7 * 86400:
            raise _bad("capability_lifetime", proposal["value"], "must be between 10 seconds and a week")
        return proposal["value"]

    # --- validation: a bad value stops the extension, naming the trait ---------
    @validate("memory_max")
    def _check_memory_max(self, proposal: Any) -> str:
        try:
            parse_memory_max(proposal["value"])
        except ValueError as exc:
            raise _bad("memory_max", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("tasks_max")
    def _check_tasks_max(self, proposal: Any) -> Any:
        try:
            parse_tasks_max(proposal["value"])
        except ValueError as exc:
            raise _bad("tasks_max", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("cpu_quota")
    def _check_cpu_quota(self, proposal: Any) -> str:
        try:
            parse_cpu_quota(proposal["value"])
        except ValueError as exc:
            raise _bad("cpu_quota", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("max_sessions")
    def _check_max_sessions(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= 1000:
            raise _bad("max_sessions", proposal["value"], "must be between 1 and 1000")
        return proposal["value"]

    @validate("firefox_content_processes")
    def _check_content_processes(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= 64:
            raise _bad("firefox_content_processes", proposal["value"], "must be between 1 and 64")
        return proposal["value"]

    @validate("screen_size")
    def _check_screen_size(self, proposal: Any) -> str:
        try:
            parse_screen_size(proposal["value"])
        except ValueError as exc:
            raise _bad("screen_size", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("idle_timeout", "max_age")
    def _check_optional_durations(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0 <= value <= 365 * 86400:
            raise _bad(proposal["trait"].name, value, "must be 0 (off) or a number of seconds up to a year")
        return value

    @validate("culling_interval", "stats_interval")
    def _check_intervals(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0.05 <= value <= 86400:
            raise _bad(proposal["trait"].name, value, "must be between 0.05 and 86400 seconds")
        return value

    @validate("ready_timeout", "stop_timeout", "dbus_timeout")
    def _check_timeouts(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0 < value <= 3600:
            raise _bad(proposal["trait"].name, value, "must be more than 0 and at most 3600 seconds")
        return value

    @validate("start_url")
    def _check_start_url(self, proposal: Any) -> str:
        try:
            return check_start_url(proposal["value"])
        except ValueError as exc:
            raise _bad("start_url", proposal["value"], str(exc)) from None

    @validate("server_id")
    def _check_server_id(self, proposal: Any) -> str:
        if proposal["value"]:
            try:
                check_server_id(proposal["value"])
            except ValueError as exc:
                raise _bad("server_id", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("session_root")
    def _check_session_root(self, proposal: Any) -> str:
        if not proposal["value"]:
            return ""  # the per-server default (checked once the server id is known)
        try:
            check_root_length(Path(proposal["value"]))
        except ValueError as exc:
            raise _bad("session_root", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("slice")
    def _check_slice(self, proposal: Any) -> str:
        if not is_valid_slice_name(proposal["value"]):
            raise _bad("slice", proposal["value"], "must be a slice unit name ending in .slice")
        return proposal["value"]

    @validate("extra_xpra_args")
    def _check_extra_xpra_args(self, proposal: Any) -> list[str]:
        for arg in proposal["value"]:
            reason = forbidden_xpra_arg(arg)
            if reason:
                raise _bad("extra_xpra_args", proposal["value"], reason)
        return proposal["value"]

    @validate("pass_environment")
    def _check_pass_environment(self, proposal: Any) -> list[str]:
        for name in proposal["value"]:
            try:
                check_env_pattern(name)
            except ValueError as exc:
                raise _bad("pass_environment", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("extra_firefox_args")
    def _check_extra_firefox_args(self, proposal: Any) -> list[str]:
        for arg in proposal["value"]:
            reason = firefox_arg_refusal(arg)
            if reason:
                raise _bad("extra_firefox_args", proposal["value"], reason)
        return proposal["value"]

    @validate("xpra_command", "firefox_command")
    def _check_command(self, proposal: Any) -> list[str]:
        value = proposal["value"]
        name = proposal["trait"].name
        if name == "xpra_command" and not value:
            raise _bad(name, value, "must name the xpra program")
        if value and shutil.which(value[0]) is None:
            raise _bad(name, value, f"{value[0]!r} is not an executable on PATH")
        return value

    @validate("firefox_prefs")
    def _check_prefs(self, proposal: Any) -> dict[str, Any]:
        for key, val in proposal["value"].items():
            if not isinstance(key, str) or not isinstance(val, (bool, int, str)):
                raise _bad("firefox_prefs", proposal["value"], f"{key!r}: values must be bool, int or str")
            reason = pref_refusal(key)
            if reason:
                raise _bad("firefox_prefs", proposal["value"], reason)
        return proposal["value"]

    # --- building the runtime objects -----------------------------------------
    def resolved_firefox_command(self) -> list[str]:
        """The Firefox command to run: firefox_command, or the one found on PATH."""
        return list(self.firefox_command) or find_firefox()

    def resolve_identity(self, environ: dict[str, str] | None = None) -> ServerIdentity:
        """This server's identity: the server_id trait, else JupyterHub's names, else derived.

        See ffsystemd.identity; a derived id may still move to a free slot in claim_identity().
        """
        serverapp = self.serverapp
        return server_identity(
            configured=self.server_id,
            environ=os.environ if environ is None else environ,
            root_dir=str(getattr(serverapp, "root_dir", "") or os.getcwd()),
            base_url=str(getattr(serverapp, "base_url", "") or "/"),
        )

    def resolved_session_root(self, server_id: str) -> Path:
        """session_root, or the per-server default ~/.firefox-launcher/<server id>."""
        if self.session_root:
            return Path(self.session_root).expanduser()
        root = default_session_root(server_id)
        try:
            check_root_length(root)
        except ValueError as exc:
            raise _bad("session_root", "", f"the default {root} is {exc}; set a shorter one") from None
        return root

    def checked_session_root(self, root: Path) -> Path:
        """Create the session root, or accept it only if it is safely ours; return its real path.

        Stops the extension (naming session_root, the path and the owner found) when the
        root or a directory above it is a symlink or directory another user controls
        (ffsystemd.safe_dirs), or when its real path is too long for the session sockets.
        """
        try:
            real = ensure_root(root)
            check_root_length(real)
        except (OSError, ValueError) as exc:
            why = str(exc) if isinstance(exc, ValueError) else f"cannot create it: {exc.strerror or exc}"
            raise _bad("session_root", str(root), why) from None
        return real

    def claim_identity(self, identity: ServerIdentity) -> ServerLock:
        """Take this server's liveness lock (ffsystemd.liveness); a held fixed id stops the extension."""
        try:
            return claim(state_dir(), identity, {"pid": os.getpid()})
        except ServerIdInUse as exc:
            trait = "server_id" if identity.source == "config" else "server_id (from JupyterHub)"
            raise _bad(trait, identity.server_id, f"{exc}; give each server its own id") from None

    def server_info(self) -> dict[str, Any]:
        """Who this server is, for the health report: server id, how it was chosen, hub names."""
        identity: ServerIdentity | None = getattr(self, "server_identity", None)
        lock: ServerLock | None = getattr(self, "server_lock", None)
        return {
            "server_id": lock.server_id if lock is not None else None,
            "source": identity.source if identity is not None else None,
            "hub_user": identity.hub_user if identity is not None else None,
            "hub_server_name": identity.hub_server_name if identity is not None else None,
            "session_root": str(getattr(self, "session_root_path", "") or ""),
        }

    def server_root_dir(self) -> str:
        """ServerApp.root_dir (what the JupyterLab file browser shows), or the working directory."""
        return str(getattr(self.serverapp, "root_dir", "") or os.getcwd())

    def checked_downloads_dir(self) -> Path | None:
        """Create or accept downloads_dir (ffsystemd.downloads); stop the extension naming it if unsafe."""
        try:
            return open_downloads_dir(self.downloads_dir, self.server_root_dir())
        except ValueError as exc:
            raise _bad("downloads_dir", self.downloads_dir, str(exc)) from None

    def manager_settings(
        self, session_root: Path | None = None, downloads_dir: Path | None = None, server_id: str = ""
    ) -> ManagerSettings:
        """Turn the (validated) traits into the session manager's settings.

        downloads_dir is the checked directory (checked_downloads_dir), None for the session's own.
        server_id and session_root are this server's (claimed) id and root; by default the id
        resolve_identity() gives (without claiming it) and its root.
        """
        server_id = server_id or self.resolve_identity().server_id
        if session_root is None:
            session_root = self.resolved_session_root(server_id)
        firefox = self.resolved_firefox_command()
        if not firefox:
            raise _bad("firefox_command", [], "neither firefox nor firefox-esr is on PATH; set it")
        return ManagerSettings(
            session_root=session_root,
            server_id=server_id,
            slice_name=self.slice,
            limits=ScopeLimits(
                memory_max=parse_memory_max(self.memory_max),
                tasks_max=parse_tasks_max(self.tasks_max),
                cpu_quota_per_sec_usec=parse_cpu_quota(self.cpu_quota),
                stop_timeout_usec=int(self.stop_timeout * 1_000_000),
                runtime_max_usec=int(self.max_age * 1_000_000) if self.max_age else UINT64_MAX,
            ),
            xpra=XpraSettings(
                xpra_command=tuple(self.xpra_command),
                firefox_command=tuple(firefox),
                extra_xpra_args=tuple(self.extra_xpra_args),
                extra_firefox_args=tuple(self.extra_firefox_args),
                screen_size=parse_screen_size(self.screen_size),
                extra_prefs={
                    **content_process_prefs(self.firefox_content_processes),
                    **upload_prefs(self.server_root_dir()),
                    **self.firefox_prefs,
                },
                pass_environment=tuple(self.pass_environment),
            ),
            start_url=self.start_url,
            max_sessions=self.max_sessions,
            ready_timeout=self.ready_timeout,
            keep_profile=self.keep_profile,
            job_timeout=max(30.0, self.stop_timeout + 10),
            idle_timeout=self.idle_timeout,
            culling_interval=self.culling_interval,
            stats_interval=self.stats_interval,
            shutdown_timeout=self.stop_timeout + 15,
            downloads_dir=downloads_dir,
        )

    def reapply_server_config(self) -> None:
        """Apply the server's FirefoxLauncher config again, so a bad value stops the extension.

        jupyter_server only logs a config error while it links the extension, then loads the
        extension anyway; and traitlets has rolled back every FirefoxLauncher value of that
        config by then, so the extension would run on defaults (another session_root, other
        limits). Applying the config again here raises the same TraitError, and a failing
        load is one jupyter_server does not serve: the routes stay absent.
        """
        if self.serverapp is not None:
            self.update_config(self.serverapp.config)

    def initialize_settings(self) -> None:
        """Claim this server's id, create the session manager (validating the whole configuration)."""
        self.reapply_server_config()
        base_url = self.serverapp.base_url if self.serverapp is not None else "/"
        identity = self.resolve_identity()
        lock = self.claim_identity(identity)
        try:
            root = self.checked_session_root(self.resolved_session_root(lock.server_id))
            settings = self.manager_settings(
                session_root=root, downloads_dir=self.checked_downloads_dir(), server_id=lock.server_id
            )
        except BaseException:
            lock.release()
            raise
        lock.write_record(
            {
                "pid": os.getpid(),
                "started": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                "session_root": str(root),
                "base_url": base_url,
                "root_dir": str(getattr(self.serverapp, "root_dir", "") or ""),
                "hub_user": identity.hub_user,
                "hub_server_name": identity.hub_server_name,
            }
        )
        self.server_identity, self.server_lock, self.session_root_path = identity, lock, root
        self.log.info("ffsystemd: server id %s (%s), sessions in %s", lock.server_id, identity.source, root)
        self.session_manager = SessionManager(
            settings,
            SystemdClient(self.bus_address or None, call_timeout=self.dbus_timeout),
            url_for=lambda sid: url_path_join(base_url, "firefox-launcher", "session", sid) + "/",
        )
        self.orphans = Orphans(
            self.session_manager.systemd, state_dir(), lock.server_id, root, settings.job_timeout
        )
        self.settings["ffsystemd_manager"] = self.session_manager
        self.settings["ffsystemd_orphans"] = self.orphans
        self.settings["ffsystemd_capabilities"] = CapabilityStore(idle_lifetime=self.capability_lifetime)
        self.settings["ffsystemd_max_connections"] = self.max_connections_per_session
        self.settings["ffsystemd_websocket_idle_timeout"] = self.websocket_idle_timeout
        self.settings["ffsystemd_app"] = self
        metrics.install(self.session_manager)

    def initialize_handlers(self) -> None:
        """Register the REST routes (see ffsystemd.handlers)."""
        from .handlers import default_handlers

        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the event loop runs: re-adopt running sessions, start culling and reconnects.

        Also makes SIGINT a clean stop (ffsystemd.signals): JupyterHub stops servers with it.
        """
        manager = getattr(self, "session_manager", None)
        if manager is None:  # the configuration stopped the extension
            return
        self._restore_sigint = stop_on_sigint(lambda: serverapp.stop(from_signal=True))
        await manager.start()

    async def stop_extension(self) -> None:
        """On server stop: stop every session unless on_shutdown is 'keep'."""
        manager = getattr(self, "session_manager", None)
        if manager is not None:
            action = "stopping" if self.on_shutdown == "stop" else "keeping"
            self.log.info("ffsystemd: %s sessions on shutdown", action)
            await manager.shutdown(stop_sessions=self.on_shutdown == "stop")
        restore = getattr(self, "_restore_sigint", None)
        if restore is not None:
            restore()
        lock: ServerLock | None = getattr(self, "server_lock", None)
        if lock is not None:
            lock.release()  # from now on what this server kept is orphaned until it restarts
