"""One log line per session event, with the session id and its unit (logger `ffsystemd.sessions`).

Levels an admin can filter on: INFO for what is expected (a session ready, stopped on
request, closed by its user, culled when idle), WARNING for what needs a look (a failed
launch with its step, a crash, an OOM kill, a cleanup that could not stop its session).
Installed as a manager observer by the extension (see ffsystemd.events).
"""

from __future__ import annotations

import logging

from .events import PoolClaimed, SessionCleanedUp, SessionEnded, SessionEvent, SessionLaunched
from .units import unit_name

log = logging.getLogger("ffsystemd.sessions")

QUIET_RESULTS = frozenset({None, "success", "idle-timeout"})


def _unit(session_id: str) -> str:
    try:
        return unit_name(session_id)
    except ValueError:
        return "?"


def log_event(event: SessionEvent) -> None:
    """Log one session event (a manager observer: synchronous, never raises on odd values).

    A pool start (a pooled SessionLaunched) is logged by the pool itself (logger ffsystemd.pool).
    """
    if isinstance(event, PoolClaimed):
        if event.outcome == "hit":
            log.info(
                "session %s (%s) claimed from the pool, page opened after %.2f s",
                event.session_id,
                _unit(event.session_id or ""),
                event.seconds,
            )
        elif event.outcome == "failed":
            log.warning("pool session %s did not open its page: cold launch", event.session_id)
        else:
            log.info("no pool session ready: cold launch")
        return
    if isinstance(event, SessionLaunched) and event.pooled:
        return
    sid = event.session_id
    unit = _unit(sid)
    if isinstance(event, SessionLaunched):
        if event.outcome == "running":
            log.info("session %s (%s) ready after %.2f s", sid, unit, event.seconds)
        elif event.outcome == "cancelled":
            log.info("session %s (%s): launch cancelled by a cleanup after %.2f s", sid, unit, event.seconds)
        else:
            log.warning(
                "session %s (%s): launch failed at step %s after %.2f s",
                sid,
                unit,
                event.failed_step or "?",
                event.seconds,
            )
    elif isinstance(event, SessionEnded):
        level = logging.INFO if event.result in QUIET_RESULTS else logging.WARNING
        log.log(
            level,
            "session %s (%s) ended: %s, result %s: %s",
            sid,
            unit,
            event.state,
            event.result or "-",
            event.message,
        )
    elif isinstance(event, SessionCleanedUp):
        forced = " (forced)" if event.forced else ""
        if event.error is None:
            log.info("session %s (%s) cleaned up%s", sid, unit, forced)
        else:
            log.warning("session %s (%s): cleanup%s failed: %s", sid, unit, forced, event.error)
