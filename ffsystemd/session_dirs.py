"""Session directories under the session root: created 0700, removed only inside the root.

Everything a session's processes write lives in its directory: `home/` is the session's
HOME (and XDG config/data/state homes), `cache/`, `temp/`, `runtime/` (XDG_RUNTIME_DIR and
the X cookie), `sockets/`, `profile/`, `downloads/` and `xdg/` (Xpra's config).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ids import is_valid_session_id
from .safe_dirs import OPEN_DIR, UnsafeDirectory, open_child_dir, open_private_dir, private_dir

log = logging.getLogger(__name__)

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


def session_paths(root: Path, session_id: str, downloads_dir: Path | None = None) -> SessionPaths:
    """Return the paths of a session (downloads in downloads_dir if given); ValueError for an invalid id."""
    if not is_valid_session_id(session_id):
        raise ValueError(f"invalid session id {session_id!r}")
    return SessionPaths(Path(root), session_id, downloads_dir)


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
    """Create the session root (mode 0700) if needed, or accept it only if it is safely ours.

    Returns its real path. Raises UnsafeDirectory (a ValueError naming the path and the
    owner found) when the root is a symlink, is not ours, is writable by other users, or
    sits under a directory another user controls (see ffsystemd.safe_dirs).
    """
    fd, real = open_private_dir(Path(root), create=True)
    os.close(fd)
    return Path(real)


def _session_dir_name(paths: SessionPaths, action: str) -> str:
    """The session directory's name in the root; ValueError unless paths.base is exactly that."""
    name = f"{DIR_PREFIX}{paths.session_id}"
    if not is_valid_session_id(paths.session_id) or paths.base != Path(paths.root) / name:
        raise ValueError(f"refusing to {action} {paths.base}: not a session directory of {paths.root}")
    return name


def create_session_dirs(paths: SessionPaths) -> None:
    """Create the session directory and its subdirectories (mode 0700) and an empty X cookie (0600).

    Everything is made relative to descriptors of directories just created inside the
    (checked) root, never through a path that could have been swapped. Fails
    (FileExistsError) if the session directory already exists, so two launches can never
    share one. The cookie file must exist before Xpra starts: Xpra only honours XAUTHORITY
    when the file exists, and otherwise falls back to the user's `~/.Xauthority` (from the
    password database, not HOME).
    """
    name = _session_dir_name(paths, "create")
    with private_dir(paths.root) as root_fd:
        os.mkdir(name, 0o700, dir_fd=root_fd)
        base_fd = os.open(name, OPEN_DIR, dir_fd=root_fd)
    try:
        for sub in SUBDIRS:
            os.mkdir(sub, 0o700, dir_fd=base_fd)
        xdg_fd = os.open("xdg", OPEN_DIR, dir_fd=base_fd)
        try:
            os.mkdir("xpra", 0o700, dir_fd=xdg_fd)
        finally:
            os.close(xdg_fd)
        runtime_fd = os.open("runtime", OPEN_DIR, dir_fd=base_fd)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(paths.xauthority.name, flags, 0o600, dir_fd=runtime_fd))
        finally:
            os.close(runtime_fd)
    finally:
        os.close(base_fd)


def _remove_entry(parent_fd: int, name: str) -> bool:
    """Remove one entry of a directory: a real directory with all it holds, anything else unlinked.

    Never follows a symlink (shutil.rmtree with dir_fd checks each directory it descends
    into against what it listed). Returns False if there was no such entry.
    """
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent_fd)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent_fd)
    return True


def remove_session_dir(paths: SessionPaths) -> bool:
    """Remove the session directory; returns False if there was nothing to remove.

    Refuses (ValueError) anything that is not a direct `session-<id>` child of the root,
    and works relative to the root's descriptor: a session directory swapped for a
    symlink is unlinked, never followed, and nothing outside the root is touched.
    """
    name = _session_dir_name(paths, "remove")
    try:
        with private_dir(paths.root) as root_fd:
            return _remove_entry(root_fd, name)
    except FileNotFoundError:
        return False


def remove_session_credentials(paths: SessionPaths) -> None:
    """Remove what must not outlive a session's X server: cookie, sockets, runtime and temp files.

    What keep_profile keeps (profile, home, cache, downloads, Xpra's log) stays. Does
    nothing when the session directory is gone (or is not a real directory); refuses
    anything outside the root; follows no symlink.
    """
    name = _session_dir_name(paths, "clean")
    try:
        with private_dir(paths.root) as root_fd:
            base_fd = open_child_dir(root_fd, name)
    except FileNotFoundError:
        return
    if base_fd is None:
        return
    try:
        for sub in EPHEMERAL_SUBDIRS:
            sub_fd = open_child_dir(base_fd, sub)
            if sub_fd is None:
                _remove_entry(base_fd, sub)  # a symlink or file in its place
                continue
            try:
                for entry in os.listdir(sub_fd):
                    if sub == "runtime" and entry in KEPT_RUNTIME_FILES:
                        st = os.stat(entry, dir_fd=sub_fd, follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode):
                            continue
                    _remove_entry(sub_fd, entry)
            finally:
                os.close(sub_fd)
    finally:
        os.close(base_fd)


def discard_session_dir(paths: SessionPaths, keep_profile: bool) -> bool:
    """Cleanup of an ended session's directory: all of it, or with keep_profile all but the profile.

    Either way no credential of the dead X server (cookie, sockets) is left. Returns
    False if there was nothing to remove.
    """
    if keep_profile:
        remove_session_credentials(paths)
        return paths.base.exists()
    return remove_session_dir(paths)


MAX_SESSION_FILE_BYTES = 65536
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def _session_dir_fd(paths: SessionPaths, action: str) -> Iterator[int | None]:
    """The descriptor of the session's own real directory under the checked root (None: none)."""
    name = _session_dir_name(paths, action)
    try:
        with private_dir(paths.root) as root_fd:
            base_fd = open_child_dir(root_fd, name)
    except FileNotFoundError:
        base_fd = None
    if base_fd is not None and os.fstat(base_fd).st_uid != os.geteuid():
        os.close(base_fd)
        base_fd = None
    try:
        yield base_fd
    finally:
        if base_fd is not None:
            os.close(base_fd)


def read_session_file(paths: SessionPaths, name: str) -> bytes | None:
    """The bytes of a regular file of ours directly in the session directory (at most 64 KiB).

    None when the directory or the file is missing, or the file is a symlink, not a regular
    file, not ours or too large; never follows a symlink, never blocks on a FIFO.
    """
    with _session_dir_fd(paths, "read") as base_fd:
        if base_fd is None:
            return None
        try:
            fd = os.open(name, _READ_FILE, dir_fd=base_fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return None
            data = os.read(fd, MAX_SESSION_FILE_BYTES + 1)
        finally:
            os.close(fd)
    return None if len(data) > MAX_SESSION_FILE_BYTES else data


def replace_session_file(paths: SessionPaths, name: str, data: bytes) -> bool:
    """Atomically replace (or create) a file directly in the session directory (mode 0600).

    Written to a fresh `.<name>.tmp` (whatever had that name is unlinked first, so nothing
    planted there is followed or written through) and renamed over `name`, all relative to the
    session directory's descriptor: readers see the old or the new content, never a part.
    Returns False (writing nothing) when the session directory is gone or not ours.
    """
    temp = f".{name}.tmp"
    with _session_dir_fd(paths, "write into") as base_fd:
        if base_fd is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            _remove_entry(base_fd, temp)
        fd = os.open(temp, _NEW_FILE, 0o600, dir_fd=base_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=base_fd, dst_dir_fd=base_fd)
    return True


def list_session_dirs(root: Path) -> list[str]:
    """Return the session ids that have a real directory of ours (not a symlink) under the root.

    A missing root has none; a root that is not safely ours is not looked into (warned).
    """
    try:
        with private_dir(root) as root_fd:
            names = os.listdir(root_fd)
            ids = []
            for name in names:
                sid = name[len(DIR_PREFIX) :]
                if not name.startswith(DIR_PREFIX) or not is_valid_session_id(sid):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
                        ids.append(sid)
    except FileNotFoundError:
        return []
    except UnsafeDirectory as exc:
        log.warning("ffsystemd: not looking into session root %s: %s", root, exc)
        return []
    return sorted(ids)
