"""The Xpra logs of failed launches, kept for inspection under `<session_root>/failed/` (bounded).

A failed launch removes its session directory (nothing is left behind), but the admin needs
the log to see why: its last MAX_LOG_BYTES are copied to `failed/session-<id>.log` (mode
0600) first, and only the newest MAX_LOGS such files are kept. `ffsystemd logs ID` and
`ffsystemd status ID` read them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .ids import is_valid_session_id

FAILED_DIR = "failed"
MAX_LOGS = 10
MAX_LOG_BYTES = 64 * 1024
_PREFIX, _SUFFIX = "session-", ".log"


def failed_log_path(root: Path, session_id: str) -> Path:
    """Where the kept log of a failed launch lives; ValueError for an invalid id."""
    if not is_valid_session_id(session_id):
        raise ValueError(f"invalid session id {session_id!r}")
    return Path(root) / FAILED_DIR / f"{_PREFIX}{session_id}{_SUFFIX}"


def keep_failed_log(
    root: Path, session_id: str, log_path: Path, *, max_logs: int = MAX_LOGS, max_bytes: int = MAX_LOG_BYTES
) -> Path | None:
    """Copy the tail (at most max_bytes) of a failed launch's log; prune to the newest max_logs.

    Returns the kept file, or None when there was no log or it could not be kept (never raises
    OSError: keeping a log must not change how a launch fails).
    """
    try:
        with open(log_path, "rb") as source:
            source.seek(0, os.SEEK_END)
            size = source.tell()
            source.seek(max(0, size - max_bytes))
            data = source.read(max_bytes)
        target = failed_log_path(root, session_id)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError:
        return None
    prune_failed_logs(root, max_logs)
    return target


def failed_logs(root: Path) -> list[tuple[str, Path]]:
    """(session id, path) of every kept failed-launch log, newest first."""
    directory = Path(root) / FAILED_DIR
    found = []
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            name = entry.name
            sid = name[len(_PREFIX) : -len(_SUFFIX)]
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and is_valid_session_id(sid):
                with contextlib.suppress(OSError):
                    found.append((entry.lstat().st_mtime, sid, entry))
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [(sid, path) for _mtime, sid, path in found]


def prune_failed_logs(root: Path, max_logs: int = MAX_LOGS) -> list[str]:
    """Delete all but the newest max_logs kept logs; return the ids whose logs were deleted."""
    removed = []
    for sid, path in failed_logs(root)[max_logs:]:
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(sid)
    return removed
