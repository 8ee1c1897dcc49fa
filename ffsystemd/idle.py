"""A session's use and idle culling: its open connections, its last activity, and the end of idle ones.

The session proxy reports every proxied request or websocket frame (`record_activity`) and each
websocket that opens or closes; `Usage` keeps `Session.connections` and `Session.last_activity`
(what the REST API shows; the moment also goes to `session.json` through
`activity.ActivityRecorder`, rate-limited). `cull` ends every running session with no open
connection and no activity for `idle_timeout` seconds (`Cause.IDLE`), pooled ones excepted.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .activity import ActivityRecorder
from .context import ManagerContext
from .ending import Stopper
from .outcome import Cause, Ending
from .session import Session


class Usage:
    """Connections and activity of the registry's sessions, and the culling of idle ones."""

    def __init__(self, ctx: ManagerContext, stopper: Stopper, activity: ActivityRecorder) -> None:
        self.ctx = ctx
        self.stopper = stopper
        self.activity = activity

    def record_activity(self, session_id: str) -> None:
        """Note proxied traffic of a session (HTTP or websocket, either direction)."""
        session = self.ctx.sessions.get(session_id)
        if session is not None:
            self._touch(session)

    def connection_opened(self, session_id: str) -> None:
        """Count an open websocket connection to a session's Xpra (activity too)."""
        session = self.ctx.sessions.get(session_id)
        if session is not None:
            session.connections += 1
            self._touch(session)

    def connection_closed(self, session_id: str) -> None:
        """Uncount a websocket connection that closed (closing counts as activity)."""
        session = self.ctx.sessions.get(session_id)
        if session is not None and session.connections > 0:
            session.connections -= 1
            self._touch(session)

    def _touch(self, session: Session) -> None:
        """Activity now: in memory at once, in its session.json for `ffsystemd list` (rate-limited)."""
        session.last_activity = datetime.now(timezone.utc)
        self.activity.touched(session)

    async def cull(self) -> list[str]:
        """End running sessions with no connection and no traffic for idle_timeout; their ids."""
        timeout = self.ctx.settings.idle_timeout
        if timeout <= 0:
            return []
        now = datetime.now(timezone.utc)
        culled = []
        for session in list(self.ctx.sessions.values()):
            if not session.endable or session.pooled or session.connections > 0:
                continue
            if (now - (session.last_activity or session.created)).total_seconds() >= timeout:
                culled.append(session.id)
                await self.stopper.end(session, Ending(Cause.IDLE, idle_timeout=timeout), stop_unit=True)
        return culled
