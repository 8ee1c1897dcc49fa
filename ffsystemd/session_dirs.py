"""Session directories under the session root: created 0700, removed only inside the root.

Everything a session's processes write lives in its directory: `home/` is the session's
HOME (and XDG config/data/state homes), `cache/`, `temp/`, `runtime/` (XDG_RUNTIME_DIR and
the X cookie), `sockets/`, `profile/`, `downloads/` and `xdg/` (Xpra's config).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .ids import is_valid_session_id

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
SOCKET_SUFFIX_LENGTH = len("/session-0123456789ab/sockets/xpra.sock")
SUBDIRS = ("profile", "cache", "temp", "runtime", "sockets", "xdg", "home", "downloads")
# What cleanup removes even when the profile is kept: the credentials and leftovers of an
# X server and Xpra that are gone (cookie, sockets, runtime files) and temporary files.
EPHEMERAL_SUBDIRS = ("runtime", "sockets", "temp")
KEPT_RUNTIME_FILES = ("xpra.log",)
DIR_PREFIX = "session-"


@dataclass(frozen=True)
class SessionPaths:
    """Where one session keeps its files: `<root>/session-<id>/...`."""

    root: Path
    session_id: str
    downloads_dir: Path | None = None
    """Where downloads go when an admin configured a place outside the session (else None)."""

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
    def home(self) -> Path:
        """The session's HOME: whatever a program writes to `~` stays in the session."""
        return self.base / "home"

    @property
    def downloads(self) -> Path:
        """Where Firefox saves downloads: `<session>/downloads` unless downloads_dir is set."""
        return self.downloads_dir if self.downloads_dir is not None else self.base / "downloads"

    @property
    def xauthority(self) -> Path:
        """The session's own X cookie file (0600), given to Xpra and Xvfb as XAUTHORITY."""
        return self.runtime / "Xauthority"

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
    """Create the session directory and its subdirectories (mode 0700) and an empty X cookie (0600).

    Fails (FileExistsError) if the session directory already exists, so two
    launches can never share one. The cookie file must exist before Xpra starts:
    Xpra only honours XAUTHORITY when the file exists, and otherwise falls back to
    the user's `~/.Xauthority` (from the password database, not HOME).
    """
    paths.base.mkdir(mode=0o700)
    for name in SUBDIRS:
        (paths.base / name).mkdir(mode=0o700)
    (paths.xdg_config / "xpra").mkdir(mode=0o700)
    os.close(os.open(paths.xauthority, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


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


def remove_session_credentials(paths: SessionPaths) -> None:
    """Remove what must not outlive a session's X server: cookie, sockets, runtime and temp files.

    What keep_profile keeps (profile, home, cache, downloads, Xpra's log) stays. Does
    nothing when the session directory is gone; refuses anything outside the root.
    """
    root = Path(paths.root).resolve()
    base = paths.base
    if base.parent.resolve() != root or not is_valid_session_id(paths.session_id):
        raise ValueError(f"refusing to clean {base}: not a session directory of {root}")
    if base.is_symlink() or not base.is_dir():
        return
    for name in EPHEMERAL_SUBDIRS:
        sub = base / name
        if sub.is_symlink() or not sub.is_dir():
            with contextlib.suppress(FileNotFoundError):
                sub.unlink()
            continue
        for entry in sub.iterdir():
            if name == "runtime" and entry.name in KEPT_RUNTIME_FILES and not entry.is_symlink():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def discard_session_dir(paths: SessionPaths, keep_profile: bool) -> bool:
    """Cleanup of an ended session's directory: all of it, or with keep_profile all but the profile.

    Either way no credential of the dead X server (cookie, sockets) is left. Returns
    False if there was nothing to remove.
    """
    if keep_profile:
        remove_session_credentials(paths)
        return paths.base.exists()
    return remove_session_dir(paths)


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
