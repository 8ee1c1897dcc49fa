"""Stopping a session and making its record final: the one place a session's unit is stopped.

`Stopper.stop_everything` stops a unit (SIGKILLing its cgroup first when forced), resets it and
reaps our child; `end` finishes a session that stopped by itself (the record stays, final, with
the verdict of `outcome.verdict`); `teardown_launch` undoes a failed launch (the record goes);
`cleanup` stops a session for a cleanup request and forgets it; `discard_unit` removes a dead
unit of ours found at re-sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time

from .context import ManagerContext
from .errors import FFSystemdError, NoSuchUnit, StopFailed, SystemdError, SystemdTimeout, SystemdUnavailable
from .events import SessionCleanedUp, SessionEnded
from .outcome import Ending, verdict
from .session import Owner, Session, SessionState
from .session_dirs import discard_session_dir, remove_session_dir, session_paths
from .units import unit_name

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """A short message for an error (systemd's error name first when it has one)."""
    if isinstance(exc, SystemdError):
        return f"{exc.name}: {exc.message}"
    return str(exc) or type(exc).__name__


class Stopper:
    """Stops units and ends sessions on behalf of the manager's parts."""

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    async def stop_everything(self, session: Session, force: bool) -> None:
        """Stop the unit (SIGKILL the cgroup first when force), reset it if failed, reap our child.

        Raises SystemdUnavailable when the user manager cannot be reached (our child is ended by
        its PID all the same) and StopFailed when systemd refused the stop.
        """
        systemd, errors = self.ctx.systemd, []
        unavailable: SystemdUnavailable | None = None
        if session.unit_started:
            if force:
                try:
                    await systemd.kill_unit(session.unit, signal.SIGKILL)
                except (SystemdError, SystemdTimeout):
                    pass  # not loaded, or refused: the stop below still ends it
                except SystemdUnavailable as exc:
                    unavailable = exc
            for call in (
                lambda: systemd.stop_unit(session.unit, job_timeout=self.ctx.settings.job_timeout),
                lambda: systemd.reset_failed_unit(session.unit),
            ):
                if unavailable is not None:
                    break
                try:
                    await call()
                except NoSuchUnit:
                    pass
                except SystemdUnavailable as exc:
                    unavailable = exc
                except FFSystemdError as exc:
                    errors.append(describe(exc))
        process = session.process
        if process is not None and process.returncode is None:
            if not process.released:  # still at the gate: it never ran Xpra
                await process.abort()
            else:
                # The unit stop ended every process of the scope; reap our child. If systemd
                # could not be reached, end what we started by its PID.
                reap = self.ctx.settings.reap_timeout
                await process.wait_or_kill(reap if not (errors or unavailable) else min(reap, 0.5))
        if unavailable is not None:
            raise unavailable
        if errors:
            raise StopFailed("; ".join(errors))

    async def end(self, session: Session, ending: Ending, *, stop_unit: bool, claimed: bool = False) -> None:
        """A session ended without a cleanup request: stop what is left, clean up, keep the record.

        Does nothing unless it wins the session (`claimed`: the caller already won it for END).
        """
        if not claimed and not session.claim(Owner.END):
            return
        session.state = SessionState.STOPPING
        try:
            if stop_unit or session.unit_state.active_state == "failed":
                await self.stop_everything(session, force=True)
            elif session.process is not None and session.process.returncode is None:
                await session.process.wait_or_kill(self.ctx.settings.reap_timeout)
        except (StopFailed, SystemdUnavailable, SystemdTimeout) as exc:
            log.warning("session %s: could not stop %s: %s", session.id, session.unit, exc)
            session.stop_failed = True
        # systemd's own verdict may arrive with the stop (PropertiesChanged precedes the
        # stop's reply on the bus): an oom-kill or timeout beats what we saw.
        latest = session.unit_state.result or ending.unit_result
        final = verdict(dataclasses.replace(ending, unit_result=latest))
        with contextlib.suppress(FFSystemdError):
            await self.ctx.systemd.unwatch_unit(session.unit)
        with contextlib.suppress(OSError, ValueError):
            discard_session_dir(session.paths, self.ctx.settings.keep_profile)
        session.state, session.result, session.message = final.state, final.result, final.message
        session.ended_at = time.monotonic()
        self.trim_ended()
        self.ctx.observers.emit(SessionEnded(session.id, final.state.value, final.result, final.message))

    async def cleanup(self, session: Session, *, force: bool, keep: bool) -> str | None:
        """Stop a session for a cleanup request and forget it; None when done, else why not.

        Raises SystemdUnavailable when the user manager cannot be reached (the record stays).
        """
        sessions = self.ctx.sessions
        try:
            error = await self._stop_for_cleanup(session, force)
            if error is None and session.id in sessions:
                try:
                    discard_session_dir(session.paths, keep)
                except (OSError, ValueError) as exc:
                    error = f"stopped, but the session directory was not removed: {exc}"
                if error is None:
                    sessions.pop(session.id, None)
        except BaseException as exc:  # an outage, or the cleanup itself was cancelled
            self.ctx.observers.emit(SessionCleanedUp(session.id, force, describe(exc)))
            raise
        finally:
            if session.id in sessions:
                session.release(Owner.CLEANUP)  # the record stays: a later cleanup may try again
        self.ctx.observers.emit(SessionCleanedUp(session.id, force, error))
        return error

    async def _stop_for_cleanup(self, session: Session, force: bool) -> str | None:
        """Stop what the session still runs, as its state and owner allow; an error message or None."""
        if session.take_over_launch():
            assert session.launch_task is not None
            session.launch_task.cancel()  # the launch tears down what it started
            with contextlib.suppress(BaseException):
                await session.launch_task
            return None
        if session.owner in (Owner.END, Owner.CLEANUP):
            # An end (or another cleanup) is in progress; wait for it briefly.
            other = session.owner
            deadline = time.monotonic() + self.ctx.settings.job_timeout
            while session.owner is other and session.ended_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if other is Owner.CLEANUP and session.owner is Owner.NONE and session.id in self.ctx.sessions:
                return await self._stop_for_cleanup(session, force)  # it failed: try again
            return None
        if not (session.active or session.stop_failed) or not session.claim(Owner.CLEANUP):
            return None
        session.state = SessionState.STOPPING
        try:
            await self.stop_everything(session, force)
        except StopFailed as exc:
            session.state, session.stop_failed = SessionState.FAILED, True  # a retry must stop again
            session.release(Owner.CLEANUP)
            return exc.message
        except SystemdUnavailable:
            session.release(Owner.CLEANUP)
            if session.child_exited:
                session.state, session.stop_failed = SessionState.FAILED, True  # our Xpra is gone already
            else:
                session.state = SessionState.RUNNING
            raise
        with contextlib.suppress(FFSystemdError):
            await self.ctx.systemd.unwatch_unit(session.unit)
        return None

    async def teardown_launch(self, session: Session) -> None:
        """Undo a launch that failed or was cancelled: stop and reset its unit, reap, forget it."""
        session.state = SessionState.STOPPING
        try:
            with contextlib.suppress(StopFailed):
                await self.stop_everything(session, force=True)
        finally:
            with contextlib.suppress(FFSystemdError):
                await self.ctx.systemd.unwatch_unit(session.unit)
            with contextlib.suppress(OSError, ValueError):
                remove_session_dir(session.paths)
            if not session.keep_record:  # else the background launch turns it into its final record
                self.ctx.sessions.pop(session.id, None)

    async def discard_unit(self, sid: str, active_state: str) -> None:
        """A unit of ours that is dead or failed: stop and reset it, drop its directory."""
        name = unit_name(sid)
        log.info("ffsystemd: cleaning up %s (%s)", name, active_state)
        with contextlib.suppress(FFSystemdError):
            if active_state != "failed":
                await self.ctx.systemd.stop_unit(name, job_timeout=self.ctx.settings.job_timeout)
        with contextlib.suppress(FFSystemdError):
            await self.ctx.systemd.reset_failed_unit(name)
        with contextlib.suppress(OSError, ValueError):
            discard_session_dir(
                session_paths(self.ctx.settings.session_root, sid), self.ctx.settings.keep_profile
            )

    def trim_ended(self) -> None:
        """Forget the oldest ended records beyond ended_retention."""
        ended = sorted(
            (s for s in self.ctx.sessions.values() if not s.active and s.ended_at is not None),
            key=lambda s: s.ended_at or 0,
        )
        for session in ended[: max(0, len(ended) - self.ctx.settings.ended_retention)]:
            self.ctx.sessions.pop(session.id, None)
