"""Which Jupyter server a session belongs to: the server id, and where it is written down.

Several Jupyter servers of one Unix user share one systemd user manager and one home
directory (two JupyterLabs on a workstation, JupyterHub's named servers). Each session
belongs to the server that started it, named by its **server id**, and a server lists,
proxies, culls, cleans up and re-adopts only sessions carrying its own id (see
`ffsystemd.ownership`). This module is pure: it computes ids and formats, no I/O.

The server id
    A short token matching `SERVER_ID_PATTERN` (lowercase letters, digits, `.`, `_`, `-`;
    at most 32 characters; it starts with a letter or digit). It is stable across restarts
    of *the same* server, chosen in this order:

    1. `c.FirefoxLauncher.server_id`, when set (validated with `check_server_id`).
    2. Under JupyterHub (`JUPYTERHUB_USER` is set and `JUPYTERHUB_SERVICE_PREFIX` equals the
       server's base_url, so a `jupyter lab` started in a hub terminal does not pass for the
       hub's server): `<user>[.<server name>]-<digest>`, from `JUPYTERHUB_USER` and
       `JUPYTERHUB_SERVER_NAME` (empty for the default server), e.g. `alice-3f2a9c1d`,
       `alice.work-81bd22ea`.
    3. Otherwise, from the server's own configuration: `<root_dir name>-<digest>` of its
       `root_dir` and `base_url`, e.g. `notebooks-1a2b3c4d`. A second live server with the
       same root_dir and base_url takes the next free *slot*, `notebooks-1a2b3c4d-2`, ...:
       which slots are taken is decided by the liveness locks (`ffsystemd.liveness`), so a
       restarted server gets the first free slot, normally its own again. (The port is not
       part of the id: `--port=0` and port retries change it between restarts.)

    The readable part is the source squeezed into the id's alphabet and shortened; the
    digest (8 hex digits of SHA-256 over the exact source) keeps ids of different sources
    apart after that squeezing.

Where the id is visible
    - The unit's Description: `Firefox session <session id> (ffsystemd server <server id>)`
      (`unit_description`, parsed by `server_id_from_description`). The unit *name* stays
      `app-ffsystemd-firefox-<session id>.scope` (public contract).
    - The session directory's `session.json` (see `ffsystemd.ownership.session_metadata`).
    - The liveness lock `~/.firefox-launcher/servers/<server id>.lock`.

Default session root
    `~/.firefox-launcher/<server id>` (`default_session_root`), or
    `~/.firefox-launcher/<8-hex digest of the id>` when the full name would make the session
    socket paths longer than a unix socket address allows. The legacy shared default
    `~/.firefox-launcher/sessions` is no longer used; `sessions` and `servers` are
    reserved and refused as explicit ids.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .session_dirs import MAX_SOCKET_PATH, SOCKET_SUFFIX_LENGTH

SERVER_ID_PATTERN = r"[a-z0-9][a-z0-9._-]{0,31}"
_SERVER_ID_RE = re.compile(rf"\A{SERVER_ID_PATTERN}\Z")
MAX_SERVER_ID = 32
DIGEST_LENGTH = 8
RESERVED_IDS = frozenset({"sessions", "servers"})
STATE_DIR_NAME = ".firefox-launcher"
MAX_SLOTS = 20
_DESCRIPTION_RE = re.compile(rf"\(ffsystemd server ({SERVER_ID_PATTERN})\)\Z")


@dataclass(frozen=True)
class ServerIdentity:
    """Who this server is: its id (or slot base), how it was chosen, and the hub names if any.

    `source` is `config` (the server_id trait), `jupyterhub` or `derived`. Only a derived id
    takes slots: `candidates()` lists the ids to try, in order.
    """

    server_id: str
    source: str
    hub_user: str | None = None
    hub_server_name: str | None = None

    def candidates(self) -> list[str]:
        """Ids this server may use, in order: the id itself, then (derived only) its slots."""
        if self.source != "derived":
            return [self.server_id]
        return [self.server_id] + [f"{self.server_id}-{n}" for n in range(2, MAX_SLOTS + 1)]


def is_valid_server_id(value: object) -> bool:
    """True for a string usable as a server id (pattern, length, not reserved)."""
    return isinstance(value, str) and _SERVER_ID_RE.match(value) is not None and value not in RESERVED_IDS


def check_server_id(value: str) -> str:
    """Return value if it is a valid server id; raise ValueError saying what is wrong otherwise."""
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved (a directory name under ~/{STATE_DIR_NAME})")
    if not is_valid_server_id(value):
        raise ValueError(
            f"must be 1 to {MAX_SERVER_ID} characters of a-z, 0-9, '.', '_', '-', starting with a letter"
            " or digit"
        )
    return value


def _squeeze(text: str, length: int) -> str:
    """Text reduced to the id alphabet: lowercase, runs of other characters as one '-'."""
    slug = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")
    return slug[:length].rstrip("-._")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:DIGEST_LENGTH]


def hub_server_id(user: str, server_name: str = "") -> str:
    """The id of JupyterHub user `user`'s server `server_name` ('' = the default server)."""
    readable = _squeeze(user, 12) or "user"
    if server_name:
        readable += "." + (_squeeze(server_name, 10) or "server")
    return f"{readable}-{_digest('jupyterhub', user, server_name)}"


def derived_server_id(root_dir: str, base_url: str) -> str:
    """The id derived from a server's root_dir (made absolute and normalized) and base_url."""
    root = os.path.normpath(os.path.abspath(os.path.expanduser(root_dir or ".")))
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    readable = _squeeze(PurePosixPath(root).name, 16) or "root"
    return f"{readable}-{_digest('local', root, base)}"


def under_jupyterhub(environ: Mapping[str, str], base_url: str) -> bool:
    """True when this server is the hub's single-user server (not a server started inside one)."""
    if not environ.get("JUPYTERHUB_USER"):
        return False
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    return prefix.strip("/") == base_url.strip("/")


def server_identity(
    *, configured: str, environ: Mapping[str, str], root_dir: str, base_url: str
) -> ServerIdentity:
    """Choose this server's identity: the configured id, else JupyterHub's names, else derived.

    `configured` must already be valid (or empty). Pure: reads only its arguments.
    """
    if configured:
        return ServerIdentity(check_server_id(configured), "config")
    if under_jupyterhub(environ, base_url):
        user = environ["JUPYTERHUB_USER"]
        name = environ.get("JUPYTERHUB_SERVER_NAME", "")
        return ServerIdentity(hub_server_id(user, name), "jupyterhub", user, name)
    return ServerIdentity(derived_server_id(root_dir, base_url), "derived")


def unit_description(session_id: str, server_id: str) -> str:
    """The Description of a session's scope: names the session and its server."""
    return f"Firefox session {session_id} (ffsystemd server {server_id})"


def server_id_from_description(description: str) -> str | None:
    """The server id written into a unit's Description by unit_description(), else None."""
    match = _DESCRIPTION_RE.search(description or "")
    return match.group(1) if match else None


def state_dir(home: Path | None = None) -> Path:
    """`~/.firefox-launcher`: default session roots and the liveness locks live here."""
    return (Path.home() if home is None else Path(home)) / STATE_DIR_NAME


def default_session_root(
    server_id: str, home: Path | None = None, max_root_bytes: int = MAX_SOCKET_PATH - SOCKET_SUFFIX_LENGTH
) -> Path:
    """`~/.firefox-launcher/<server id>`, or `<digest of the id>` there when that is too long.

    `max_root_bytes` is the longest root whose session sockets still fit in a unix socket
    address (see `ffsystemd.session_dirs.check_root_length`).
    """
    base = state_dir(home)
    full = base / server_id
    if len(os.fsencode(full)) <= max_root_bytes:
        return full
    return base / _digest("root", server_id)
