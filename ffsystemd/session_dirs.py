"""Session directories under the session root: created 0700, removed only inside the root."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .ids import is_valid_session_id

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
SOCKET_SUFFIX_LENGTH = len("/session-0123456789ab/sockets/xpra.sock")
SUBDIRS = ("profile", "cache", "temp", "runtime", "sockets", "xdg")
DIR_PREFIX = "session-"


@dataclass(frozen=True)
class SessionPaths:
    """Where one session keeps its files: `<root>/session-<id>/...`."""

    root: Path
    session_id: str

    @property
    def base(self) -> Path:
        return self.root / f"{DIR_PREFIX}{self.session_id}"

    @property
    def profile(self) -> Path:
        return self.base / "profile"

    @property
    def cache(self) -> Path:
        return self.base / "cache"

    @property
    def temp(self) -> Path:
        return self.base / "temp"

    @property
    def runtime(self) -> Path:
        return self.base / "runtime"

    @property
    def sockets(self) -> Path:
        return self.base / "sockets"

    @property
    def xdg_config(self) -> Path:
        return self.base / "xdg"

    @property
    def socket(self) -> Path:
        return self.sockets / "xpra.sock"

    @property
    def xpra_log(self) -> Path:
        return self.runtime / "xpra.log"


def session_paths(root: Path, session_id: str) -> SessionPaths:
    """Return the paths of a session; raises ValueError for an invalid id."""
    if not is_valid_session_id(session_id):
        raise ValueError(f"invalid session id {session_id!r}")
    return SessionPaths(Path(root), session_id)


def check_root_length(root: Path) -> None:
    """Raise ValueError when a session socket under root would not fit in a unix socket address."""
    longest = len(os.fsencode(Path(root).expanduser().absolute())) + SOCKET_SUFFIX_LENGTH
    if longest > MAX_SOCKET_PATH:
        raise ValueError(
            f"too long for unix socket paths: the session sockets would be {longest} bytes long"
            f" (at most {MAX_SOCKET_PATH}); choose a root of at most"
            f" {MAX_SOCKET_PATH - SOCKET_SUFFIX_LENGTH} bytes"
        )


def ensure_root(root: Path) -> Path:
    """Create the session root (mode 0700) if needed and return its resolved path."""
    root = Path(root).expanduser()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    return root.resolve()


def create_session_dirs(paths: SessionPaths) -> None:
    """Create the session directory and its subdirectories, all mode 0700.

    Fails (FileExistsError) if the session directory already exists, so two
    launches can never share one.
    """
    paths.base.mkdir(mode=0o700)
    for name in SUBDIRS:
        (paths.base / name).mkdir(mode=0o700)
    (paths.xdg_config / "xpra").mkdir(mode=0o700)


def remove_session_dir(paths: SessionPaths) -> bool:
    """Remove the session directory; returns False if there was nothing to remove.

    Refuses (ValueError) anything that is not a direct `session-<id>` child of
    the root, and never follows a symlink out of the root.
    """
    root = Path(paths.root).resolve()
    target = paths.base
    if target.parent.resolve() != root or not is_valid_session_id(paths.session_id):
        raise ValueError(f"refusing to remove {target}: not a session directory of {root}")
    if target.is_symlink():
        target.unlink()
        return True
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


def list_session_dirs(root: Path) -> list[str]:
    """Return the session ids that have a directory under the root."""
    root = Path(root)
    if not root.is_dir():
        return []
    ids = []
    for entry in root.iterdir():
        name = entry.name
        if name.startswith(DIR_PREFIX) and is_valid_session_id(name[len(DIR_PREFIX) :]):
            ids.append(name[len(DIR_PREFIX) :])
    return sorted(ids)
