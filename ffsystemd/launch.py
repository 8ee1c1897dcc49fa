"""The launch sequence of one session, and its teardown when any step fails.

Steps (each named in the LaunchError of a failure): `systemd` (connect), `directories` (the
session directory and the files Firefox and Xpra read), `spawn` (the child held at its gate),
`unit-start` (the transient scope holding the child), `xpra-start` (open the gate), `xpra-ready`
(Xpra serves its HTML5 client on the socket). Whatever fails, `Stopper.teardown_launch` leaves
nothing behind: no unit, no process, no directory, no record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from .cgroup import limit_reached, read_events
from .commands import session_environment, user_js, xpra_argv, xpra_config_file, xulstore_json
from .context import ManagerContext, ManagerSettings
from .ending import Stopper, describe
from .errors import FFSystemdError, LaunchCancelled, LaunchError, SystemdUnavailable, UnitExists
from .events import LaunchOutcome, SessionLaunched
from .failed_logs import keep_failed_log
from .identity import unit_description
from .limits import UINT64_MAX
from .outcome import RESULT_MESSAGES, exit_message
from .process import GatedProcess, log_tail
from .readiness import serves_html5_client
from .session import Owner, Session, SessionState, record_tail, write_metadata
from .session_dirs import SessionPaths, create_session_dirs, ensure_root
from .units import scope_properties
from .warm import WARM_PREFS, first_page, warm_child, write_warm_files
from .watch import Watcher

log = logging.getLogger(__name__)

READY_POLL_INTERVAL = 0.02
"""How often a launch asks the session's socket whether Xpra serves yet (s): a refused connect is
cheap, and the tab's held websocket is tunnelled the moment the answer comes."""


def write_session_files(
    paths: SessionPaths, start_url: str, settings: ManagerSettings, warm: bool = False
) -> None:
    """The files Firefox and Xpra read from the session directory (profile prefs, window, config);
    for a warm (pooled) session also its start script, bus configuration and claim FIFO."""
    prefs = {**WARM_PREFS, **settings.xpra.extra_prefs} if warm else settings.xpra.extra_prefs
    (paths.profile / "xulstore.json").write_text(xulstore_json())
    (paths.profile / "user.js").write_text(user_js(start_url, prefs, paths.downloads))
    (paths.xdg_config / "xpra" / "xpra.conf").write_text(xpra_config_file())
    if warm:
        write_warm_files(settings.xpra, paths, first_page(settings.start_url))


def description(session_id: str, server_id: str) -> str:
    """The Description of a session's scope: it names the server that owns it (ffsystemd.ownership)."""
    if server_id:
        return unit_description(session_id, server_id)
    return f"Firefox session {session_id} (ffsystemd)"


def _still_launching(session: Session) -> None:
    """Raise CancelledError when a cleanup took the session over.

    The cleanup also cancels the launch task, but a cancellation that lands while an inner
    `asyncio.wait_for` completes can be lost (Python 3.11); ownership is the sure signal.
    """
    if session.owner is not Owner.LAUNCH:
        raise asyncio.CancelledError


class Launcher:
    """Runs launches; the manager reserves the session's slot and owns the task."""

    def __init__(
        self,
        ctx: ManagerContext,
        watcher: Watcher,
        stopper: Stopper,
        environ: Mapping[str, str],
        before: Callable[[], Awaitable[None]],
    ) -> None:
        self.ctx = ctx
        self.watcher = watcher
        self.stopper = stopper
        self.environ = environ
        self.before = before  # the manager's start(): connect and re-adopt first

    async def launch(self, session: Session) -> None:
        """Run the launch of a reserved session as its own task (a cleanup may cancel it).

        Raises what `run` raises, LaunchCancelled instead of the cancellation when a cleanup took
        the session over; tells the observers how the launch ended.
        """
        started = time.monotonic()
        task = asyncio.ensure_future(self.run(session))
        session.launch_task = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if session.owner is Owner.CLEANUP and task.done():
                self._launched(session, started, "cancelled", "cancelled")
                raise LaunchCancelled() from None
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        except LaunchError as exc:
            self._launched(session, started, "failed", exc.step)
            raise
        except SystemdUnavailable:
            self._launched(session, started, "failed", "systemd")
            raise
        self._launched(session, started, "running", None)

    async def launch_in_background(self, session: Session) -> None:
        """A launch nobody waits for (the manager spawns it): its failure becomes the session's
        final record (state failed, why in its message, the failed `step` and the Xpra log's
        `log_tail`, as a waited-for launch's error answer has them), which a cleanup removes.
        The record stays listed all along (a list between the teardown and the final record
        would otherwise miss it, and a tab would take its session for gone)."""
        session.keep_record = True
        try:
            await self.launch(session)
        except LaunchCancelled:
            self._forget(session)  # a cleanup stopped it: nothing to report
            return
        except (LaunchError, SystemdUnavailable) as exc:
            # ffsystemd.sessions logs the failure once (the SessionLaunched event); details here
            log.debug("ffsystemd: launch of session %s failed: %s", session.id, exc)
            session.state = SessionState.FAILED
            session.owner = Owner.END  # final: nothing may end it again
            session.result = getattr(exc, "result", None)
            session.message = str(exc)
            session.step = exc.step if isinstance(exc, LaunchError) else "systemd"
            session.log_tail = record_tail(exc.log_tail if isinstance(exc, LaunchError) else [])
            session.ended_at = time.monotonic()
            self.ctx.sessions[session.id] = session
            self.stopper.trim_ended()
        except BaseException:
            self._forget(session)  # cancelled by shutdown: nobody lists it any more
            raise

    def _forget(self, session: Session) -> None:
        if self.ctx.sessions.get(session.id) is session:
            self.ctx.sessions.pop(session.id)

    def _launched(self, session: Session, started: float, outcome: LaunchOutcome, step: str | None) -> None:
        seconds = time.monotonic() - started
        self.ctx.observers.emit(SessionLaunched(session.id, seconds, outcome, step, pooled=session.pooled))

    async def run(self, session: Session) -> None:
        """Bring the session (STARTING, owned by LAUNCH) to RUNNING, or tear it down and raise.

        Raises SystemdUnavailable, LaunchError (with the step and the Xpra log's tail), or
        CancelledError when cancelled (a cleanup); in every case nothing is left behind.
        """
        settings, systemd = self.ctx.settings, self.ctx.systemd
        step = "systemd"
        try:
            await self.before()
            await systemd.connect()
            step = "directories"
            ensure_root(settings.session_root)
            create_session_dirs(session.paths)
            write_session_files(session.paths, session.start_url, settings, session.warm)
            write_metadata(session, settings.server_id)
            step = "spawn"
            session.process = await GatedProcess.spawn(
                xpra_argv(
                    settings.xpra,
                    session.paths,
                    session.start_url,
                    warm_child(session.paths) if session.warm else None,
                    session.screen,
                ),
                session_environment(self.environ, session.paths, settings.xpra.pass_environment),
                cwd=session.paths.base,
                log_path=session.paths.xpra_log,
            )
            session.main_pid = session.process.pid
            step = "unit-start"
            properties = scope_properties(
                pid=session.process.pid,
                description=description(session.id, settings.server_id),
                slice_name=settings.slice_name,
                limits=settings.limits,
            )
            await systemd.watch_unit(session.unit)
            session.unit_started = True  # from here on teardown must stop the unit
            try:
                await systemd.start_transient_unit(session.unit, properties, job_timeout=settings.job_timeout)
            except UnitExists:
                session.unit_started = False  # that unit is someone else's: never touch it
                raise
            step = "xpra-start"
            await session.process.release()
            session.watch_task = asyncio.ensure_future(self.watcher.watch_own_process(session))
            step = "xpra-ready"
            await self._wait_ready(session)
            await self.watcher.refresh(session)
            _still_launching(session)
            if session.state is SessionState.STARTING:
                session.state = SessionState.RUNNING
            session.release(Owner.LAUNCH)  # in the same step: from now on an end may claim it
        except (asyncio.CancelledError, SystemdUnavailable):
            await asyncio.shield(self.stopper.teardown_launch(session))
            raise
        except LaunchError as exc:
            tail = log_tail(session.paths.xpra_log)
            if not isinstance(exc, LaunchCancelled):  # kept (bounded) for `ffsystemd logs ID`
                keep_failed_log(self.ctx.settings.session_root, session.id, session.paths.xpra_log)
            reached = await self._limit_reached(session)
            await asyncio.shield(self.stopper.teardown_launch(session))
            raise self._failure(session, exc, tail, reached) from exc
        except (FFSystemdError, OSError, ValueError) as exc:
            tail = log_tail(session.paths.xpra_log)
            keep_failed_log(self.ctx.settings.session_root, session.id, session.paths.xpra_log)
            await asyncio.shield(self.stopper.teardown_launch(session))
            raise LaunchError(step, describe(exc), tail) from exc

    async def _limit_reached(self, session: Session) -> tuple[str | None, str | None]:
        """Which limit the failed launch's scope ran into (see `cgroup.limit_reached`)."""
        limits = self.ctx.settings.limits
        if not session.unit_started:
            return None, None
        try:
            snapshot = await self.ctx.systemd.unit_snapshot(session.unit)
        except FFSystemdError:
            return None, None
        group = snapshot.control_group or ""
        pids = read_events(group, "pids.events") if limits.tasks_max != UINT64_MAX else None
        memory = read_events(group, "memory.events") if limits.memory_max != UINT64_MAX else None
        return limit_reached(pids, memory, limits.tasks_max, limits.memory_max)

    def _failure(
        self, session: Session, exc: LaunchError, tail: list[str], reached: tuple[str | None, str | None]
    ) -> LaunchError:
        """The launch error with systemd's verdict (e.g. oom-kill, from the unit's signals,
        which arrive before the stop completes), else the kernel's OOM kill or the limit the
        scope reached, read from its cgroup's event counters."""
        result = session.unit_state.result
        result = result if result not in (None, "", "success") else None
        reached_result, reached_sentence = reached
        result = result or reached_result
        message = exc.message
        if result in RESULT_MESSAGES:
            message = f"{message}: {RESULT_MESSAGES[result]}"
        elif reached_sentence:
            message = f"{message}: {reached_sentence}"
        return LaunchError(exc.step, message, tail, result=result)

    async def _wait_ready(self, session: Session) -> None:
        assert session.process is not None
        timeout = self.ctx.settings.ready_timeout
        deadline = time.monotonic() + timeout
        while True:
            _still_launching(session)
            if session.process.returncode is not None:
                raise LaunchError(
                    "xpra-ready", f"{exit_message(session.process.returncode)} before it was ready"
                )
            if await serves_html5_client(session.paths.socket):
                return
            if time.monotonic() >= deadline:
                raise LaunchError(
                    "xpra-ready", f"Xpra did not serve its HTML5 client within ready_timeout ({timeout:g} s)"
                )
            await asyncio.sleep(READY_POLL_INTERVAL)
