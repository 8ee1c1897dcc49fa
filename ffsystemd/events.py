"""Session events for observers (metrics, logs, an admin CLI): what happened, never how.

    def on_event(event: SessionEvent) -> None:
        match event:
            case LaunchRequested(session_id, start_url): ...
            case LaunchRefused(reason): ...       # no session: session_id is ""
            case SessionLaunched(session_id, seconds, outcome, failed_step): ...
            case SessionEnded(session_id, state, result, message): ...
            case SessionCleanedUp(session_id, forced, error): ...
            case PoolClaimed(session_id, outcome, seconds): ...   # the warm pool (ffsystemd.pool)

    manager.observers.add(on_event)          # returns a function that removes it again

Observers are called synchronously on the event loop, after the manager's own state is
updated; they must not block. An observer that raises is logged and does not disturb the
manager or the other observers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)


LaunchOutcome = Literal["running", "failed", "cancelled"]
RefusalReason = Literal["max-sessions", "bad-request"]


@dataclass(frozen=True)
class LaunchRequested:
    """A launch request was accepted: its session id is allocated and the launch begins.

    `start_url` is the page Firefox will open, whole: observers that log it must redact it
    (ffsystemd.event_log.url_for_log)."""

    session_id: str
    start_url: str


@dataclass(frozen=True)
class LaunchRefused:
    """A launch request was refused before any session existed: `reason` max-sessions (429,
    `message` says the limit) or bad-request (400: the body or its url is not acceptable)."""

    reason: RefusalReason
    message: str = ""
    session_id: str = ""  # no session was allocated


@dataclass(frozen=True)
class SessionLaunched:
    """A launch finished: `outcome` running (Xpra answers), failed (at `failed_step`) or cancelled
    (a cleanup stopped it while it started); `seconds` from the request to that outcome.
    `pooled`: a warm-pool session started ahead of any request (a refill, not a user's launch)."""

    session_id: str
    seconds: float
    outcome: LaunchOutcome
    failed_step: str | None = None
    pooled: bool = False


@dataclass(frozen=True)
class SessionEnded:
    """A session stopped by itself (Xpra or Firefox exited, OOM, max_age, idle culling, its unit
    vanished): its final `state` (stopped or failed), systemd's or our `result`, and the message."""

    session_id: str
    state: str
    result: str | None
    message: str


@dataclass(frozen=True)
class SessionCleanedUp:
    """A cleanup request for a session finished: `error` is None when it was stopped and removed."""

    session_id: str
    forced: bool
    error: str | None = None


PoolOutcome = Literal["hit", "miss", "failed"]


@dataclass(frozen=True)
class PoolClaimed:
    """A launch asked the warm pool for a session: `hit` (it got `session_id`, its page opened
    after `seconds`), `miss` (none was ready: the cold path) or `failed` (the ready one did not
    take its page: stopped, and the cold path)."""

    session_id: str | None
    outcome: PoolOutcome
    seconds: float = 0.0


SessionEvent = (
    LaunchRequested | LaunchRefused | SessionLaunched | SessionEnded | SessionCleanedUp | PoolClaimed
)
Observer = Callable[[SessionEvent], None]


class Observers:
    """The observers of one session manager."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def add(self, observer: Observer) -> Callable[[], None]:
        """Call observer(event) for every session event from now on; returns its remover."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def emit(self, event: SessionEvent) -> None:
        """Tell every observer (one that raises is logged and skipped)."""
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.exception("ffsystemd: a session observer failed on %r", event)
