"""A session's last activity, kept in its `session.json` where `ffsystemd list` can read it.

The server notes every proxied request and websocket frame in memory (`Session.last_activity`,
what the REST API shows and idle culling uses). `ActivityRecorder` copies that moment into the
session's `session.json` (key `last_activity`, ISO 8601 UTC) at most once per
`ManagerSettings.activity_interval` seconds per session: the first activity is written at
once, later ones at the end of the interval (one timer per session), so the file trails the
server by at most that interval (at shutdown the deferred writes are done at once). It
writes only while the session runs and nobody is ending it, through the safe helpers of
ffsystemd.session_dirs (no symlink followed, only our own directory, atomic replace); a write
that fails is logged at debug level and never disturbs the traffic that caused it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime
from typing import Any

from .context import ManagerContext
from .events import SessionCleanedUp, SessionEnded, SessionEvent, SessionLaunched
from .ownership import METADATA_FILE
from .session import Session, iso
from .session_dirs import SessionPaths, read_session_file, replace_session_file

log = logging.getLogger(__name__)


def read_session_metadata(paths: SessionPaths) -> dict[str, Any] | None:
    """A session's `session.json` as a dict, read safely (None: missing, unsafe or not an object)."""
    try:
        raw = read_session_file(paths, METADATA_FILE)
        data = None if raw is None else json.loads(raw)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_last_activity(paths: SessionPaths) -> datetime | None:
    """The `last_activity` recorded in a session's `session.json` (None when absent or unreadable)."""
    value = (read_session_metadata(paths) or {}).get("last_activity")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def save_last_activity(paths: SessionPaths, moment: datetime) -> bool:
    """Set `last_activity` in the session's `session.json`, keeping every other key.

    False (nothing written) when there is no readable `session.json` object of ours to update.
    """
    metadata = read_session_metadata(paths)
    if metadata is None:
        return False
    metadata["last_activity"] = iso(moment)
    return replace_session_file(paths, METADATA_FILE, json.dumps(metadata).encode())


class ActivityRecorder:
    """Writes sessions' last activity to their `session.json`, rate-limited per session.

    It observes the manager's events (`ctx.observers`) to forget a session once it ended.
    """

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx
        ctx.observers.add(self._on_event)
        self._saved: dict[str, float] = {}  # session id -> monotonic time of its last write
        self._timers: dict[str, tuple[asyncio.TimerHandle, Session]] = {}  # deferred writes

    def touched(self, session: Session) -> None:
        """The session's last_activity moved: write it now, or once the interval is over."""
        if session.id in self._timers:
            return
        interval = self.ctx.settings.activity_interval
        wait = self._saved.get(session.id, -interval) + interval - time.monotonic()
        if wait <= 0:
            self.save(session)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next touch writes it
            return
        self._timers[session.id] = (loop.call_later(wait, self._due, session), session)

    def _due(self, session: Session) -> None:
        self._timers.pop(session.id, None)
        self.save(session)

    def save(self, session: Session) -> None:
        """Write the session's last_activity now (if it runs, nobody ends it and it has one)."""
        self._saved[session.id] = time.monotonic()
        if not session.endable or session.last_activity is None:
            self.forget(session.id)
            return
        try:
            save_last_activity(session.paths, session.last_activity)
        except (OSError, ValueError) as exc:
            log.debug("ffsystemd: cannot record the last activity of session %s: %s", session.id, exc)

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, (SessionEnded, SessionCleanedUp)) or (
            isinstance(event, SessionLaunched) and event.outcome != "running"
        ):
            self.forget(event.session_id)

    def forget(self, session_id: str) -> None:
        """Drop a session's timer and bookkeeping (it ended or is gone)."""
        pending = self._timers.pop(session_id, None)
        if pending is not None:
            pending[0].cancel()
        self._saved.pop(session_id, None)

    def close(self) -> None:
        """At shutdown: do the deferred writes now (sessions kept running are re-adopted by the
        next server, which starts from what is written), then forget every session."""
        for session_id, (timer, session) in list(self._timers.items()):
            timer.cancel()
            self._timers.pop(session_id, None)
            self.save(session)
        self._timers.clear()
        self._saved.clear()
