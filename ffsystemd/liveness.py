"""How one server knows whether another is still alive: a lock held for the server's lifetime.

Every running server holds an exclusive `flock` on `~/.firefox-launcher/servers/<server
id>.lock` from its start until its process ends (the kernel drops the lock when the process
dies, however it dies: SIGKILL included). The file's content is a JSON record of the holder,
for other servers and the `ffsystemd` CLI:

    {"server_id": ..., "pid": ..., "started": ISO 8601 UTC, "session_root": ...,
     "base_url": ..., "root_dir": ..., "hub_user": ..., "hub_server_name": ...}

- **Alive** = the lock is held. A server id whose lock is free (or whose file is missing)
  has no live server: its sessions are *orphaned*.
- Whoever cleans up an orphaned server's sessions first takes that server's lock (non
  blocking) and holds it during the cleanup, so the server cannot start again and re-adopt
  them half-way; a server starting meanwhile with a configured or JupyterHub id waits for
  the lock a few seconds (`claim`).
- The lock is opened close-on-exec, so the session processes a server starts never inherit
  it (a server's Xpra outliving it does not keep it "alive").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .identity import ServerIdentity, is_valid_server_id

LOCKS_DIR_NAME = "servers"
LOCK_SUFFIX = ".lock"
CLAIM_WAIT = 5.0


class ServerIdInUse(Exception):
    """A configured or JupyterHub server id is held by another live server."""

    def __init__(self, server_id: str, holder: Mapping[str, Any]) -> None:
        self.server_id = server_id
        self.holder = dict(holder)
        pid = self.holder.get("pid", "?")
        super().__init__(f"server id {server_id!r} is in use by another live Jupyter server (pid {pid})")


def locks_dir(state_dir: Path) -> Path:
    """`<state_dir>/servers`: one `<server id>.lock` per server that ever ran."""
    return Path(state_dir) / LOCKS_DIR_NAME


def lock_path(state_dir: Path, server_id: str) -> Path:
    """Path of a server id's lock file; ValueError for an invalid id."""
    if not is_valid_server_id(server_id):
        raise ValueError(f"invalid server id {server_id!r}")
    return locks_dir(state_dir) / f"{server_id}{LOCK_SUFFIX}"


def _open_lock(path: Path, create: bool) -> int | None:
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags |= os.O_CREAT
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        return None


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def read_record(path: Path) -> dict[str, Any]:
    """The JSON record in a lock file ({} when missing or unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ServerLock:
    """A held lock of one server id; released by release() or when the process ends."""

    def __init__(self, path: Path, fd: int, server_id: str) -> None:
        self.path = path
        self.server_id = server_id
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Replace the lock file's content with record (only the holder writes it)."""
        assert self._fd is not None
        data = json.dumps({"server_id": self.server_id, **record}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: it records who last ran."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def try_lock(state_dir: Path, server_id: str, *, create: bool = True) -> ServerLock | None:
    """Take a server id's lock now, or return None if a live server (or a cleaner) holds it."""
    path = lock_path(state_dir, server_id)
    fd = _open_lock(path, create)
    if fd is None:
        return None
    if not _try_flock(fd, fcntl.LOCK_EX):
        os.close(fd)
        return None
    return ServerLock(path, fd, server_id)


def is_alive(state_dir: Path, server_id: str) -> bool:
    """True when a live server holds server_id's lock (a missing lock file means not alive)."""
    path = lock_path(state_dir, server_id)
    fd = _open_lock(path, create=False)
    if fd is None:
        return False
    try:
        return not _try_flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)  # closing drops the shared lock we may have taken


def claim(
    state_dir: Path, identity: ServerIdentity, record: Mapping[str, Any], wait: float | None = None
) -> ServerLock:
    """Lock this server's id and write its record; returns the held lock.

    A derived identity takes the first free slot (`identity.candidates()`). A configured or
    JupyterHub id has exactly one candidate: if it stays held for `wait` seconds (default
    CLAIM_WAIT; a cleaner holds it only briefly), raises ServerIdInUse naming the holder.
    """
    for candidate in identity.candidates():
        lock = try_lock(state_dir, candidate)
        if lock is not None:
            lock.write_record(record)
            return lock
    if identity.source == "derived":
        raise ServerIdInUse(identity.server_id, {"pid": "several"})
    deadline = time.monotonic() + (CLAIM_WAIT if wait is None else wait)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        lock = try_lock(state_dir, identity.server_id)
        if lock is not None:
            lock.write_record(record)
            return lock
    raise ServerIdInUse(identity.server_id, read_record(lock_path(state_dir, identity.server_id)))


@dataclass(frozen=True)
class ServerRecord:
    """What the lock directory says about one server id: its last record and whether it lives."""

    server_id: str
    alive: bool
    record: dict[str, Any]

    @property
    def session_root(self) -> Path | None:
        root = self.record.get("session_root")
        return Path(root) if isinstance(root, str) and root else None


def known_servers(state_dir: Path) -> list[ServerRecord]:
    """Every server id with a lock file, alive or not, sorted by id."""
    directory = locks_dir(state_dir)
    if not directory.is_dir():
        return []
    records = []
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if not name.endswith(LOCK_SUFFIX) or not is_valid_server_id(name[: -len(LOCK_SUFFIX)]):
            continue
        server_id = name[: -len(LOCK_SUFFIX)]
        records.append(ServerRecord(server_id, is_alive(state_dir, server_id), read_record(entry)))
    return records


@contextlib.contextmanager
def holding_dead(state_dir: Path, server_id: str) -> Iterator[ServerLock | None]:
    """Hold a dead server's lock for a cleanup; yields None when that server is alive.

    The lock file is created if missing (a server whose file was removed is dead too); its
    record is left as it was.
    """
    lock = try_lock(state_dir, server_id)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
