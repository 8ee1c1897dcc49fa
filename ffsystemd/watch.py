"""Live state: keep each session true to what systemd and its Xpra say, and end it when they end.

Three sources: systemd's events (`UnitChanged` of each session's unit, `UnitRemoved`), reads of
the unit's properties (`refresh`, for status and after a launch) and Xpra's process — our own
child (`watch_own_process`) or, after re-adoption, its pidfd (`watch_adopted_pid`). Each one that
sees a running session end describes it as an `Ending` and hands it to `Stopper.end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from .commands import firefox_exit_file
from .context import ManagerContext
from .ending import Stopper
from .errors import FFSystemdError, SystemdError, SystemdTimeout, SystemdUnavailable
from .outcome import Cause, Ending
from .session import Owner, Session, SessionState
from .systemd_api import UnitChanged, UnitEvent, UnitRemoved, UnitSnapshot
from .units import session_id_of

log = logging.getLogger(__name__)

_ENDED_ACTIVE_STATES = ("inactive", "failed", "deactivating")


def firefox_status(session: Session) -> str | None:
    """The exit status Firefox's wrapper recorded in the session, None when nothing was recorded."""
    try:
        return firefox_exit_file(session.paths).read_text()
    except OSError:
        return None


class Watcher:
    """Turns systemd events, property reads and Xpra's exit into session updates and endings."""

    def __init__(self, ctx: ManagerContext, stopper: Stopper) -> None:
        self.ctx = ctx
        self.stopper = stopper
        self._figures_task: asyncio.Future[None] | None = None
        self._figures_at = 0.0

    def _end_later(self, session: Session, ending: Ending, *, stop_unit: bool) -> None:
        self.ctx.spawn(self.stopper.end(session, ending, stop_unit=stop_unit))

    # --- systemd -------------------------------------------------------------------
    def on_event(self, event: UnitEvent) -> None:
        """A systemd event: update the session of that unit at once (or end it)."""
        if isinstance(event, UnitChanged):
            session = self.ctx.session_of_unit(event.unit)
            if session is None or not event.changes:
                return
            session.unit_state = session.unit_state.updated(event.changes)
            self.apply_unit_state(session)
        elif isinstance(event, UnitRemoved):
            sid = session_id_of(event.unit)
            session = self.ctx.sessions.get(sid) if sid else None
            if session is None or not session.endable:
                return
            if session.process is None:  # re-adopted; our own child's watcher handles the rest
                self._end_later(session, Ending(Cause.UNIT_REMOVED), stop_unit=False)

    def apply_unit_state(self, session: Session) -> None:
        """End a running session whose unit left the active state."""
        if not session.endable:
            return
        unit = session.unit_state
        if session.process is not None and unit.active_state in ("inactive", "failed"):
            return  # every process is gone, ours too: its watcher ends the session with its status
        if unit.active_state in _ENDED_ACTIVE_STATES:
            ending = Ending(Cause.UNIT_STOPPED, unit_result=unit.result, active_state=unit.active_state)
            self._end_later(session, ending, stop_unit=unit.active_state == "deactivating")

    async def refresh(self, session: Session) -> None:
        """Re-read the unit's properties; a running session whose unit is gone ends."""
        try:
            snapshot = await self.ctx.systemd.unit_snapshot(session.unit)
        except (SystemdUnavailable, SystemdTimeout) as exc:
            log.warning("cannot read the state of %s: %s", session.unit, exc)
            return
        except SystemdError:
            snapshot = UnitSnapshot(load_state="error")
        if not snapshot.loaded:
            if session.endable and not session.child_exited:
                self._end_later(session, Ending(Cause.UNIT_VANISHED), stop_unit=False)
            return
        session.unit_state, session.unit_state_at = snapshot, time.monotonic()
        self.apply_unit_state(session)

    def figures_stale(self) -> None:
        """The next refresh_all() reads systemd again (after a re-sync)."""
        self._figures_at = 0.0

    async def refresh_all(self) -> None:
        """Re-read the units of tracked sessions, at most once per stats_interval, shared by callers."""
        if self._figures_task is not None and not self._figures_task.done():
            await asyncio.shield(self._figures_task)
            return
        if time.monotonic() - self._figures_at < self.ctx.settings.stats_interval:
            return
        self._figures_task = asyncio.ensure_future(self._read_all())
        await asyncio.shield(self._figures_task)

    async def _read_all(self) -> None:
        self._figures_at = time.monotonic()
        tracked = [s for s in self.ctx.sessions.values() if s.tracked]
        if tracked and self.ctx.systemd.connected:
            await asyncio.gather(*(self.refresh(s) for s in tracked))

    # --- Xpra -----------------------------------------------------------------------
    async def watch_own_process(self, session: Session) -> None:
        """When our Xpra exits on its own, end the session (and stop the rest of its scope)."""
        assert session.process is not None
        code = await session.process.wait()
        if session.state is SessionState.STARTING or not session.claim(Owner.END):
            return  # the launch (failing) or a cleanup owns the unit
        # systemd's verdict (e.g. oom-kill) beats Xpra's exit status: read it before stopping.
        with contextlib.suppress(FFSystemdError):
            result = await self.ctx.systemd.unit_result(session.unit)
            if result not in (None, "success"):
                session.unit_state = session.unit_state.updated({"result": result})
        ending = Ending(
            Cause.XPRA_EXITED,
            unit_result=session.unit_state.result,
            xpra_exit=code,
            firefox_status=firefox_status(session),
        )
        await self.stopper.end(session, ending, stop_unit=True, claimed=True)

    def watch_adopted_pid(self, session: Session, pid: int) -> None:
        """Watch a re-adopted session's Xpra (not our child) through a pidfd."""
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            self._end_later(session, Ending(Cause.XPRA_GONE), stop_unit=True)
            return

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            if session.owner is Owner.NONE:
                ending = Ending(Cause.XPRA_EXITED, firefox_status=firefox_status(session))
                self._end_later(session, ending, stop_unit=True)

        loop.add_reader(fd, exited)
