"""The session manager: the only owner of session state.

It turns launch / status / cleanup into directory, process and unit operations
through the systemd client and the gated process; it knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .commands import XpraSettings, session_environment, user_js, xpra_argv, xpra_config_file
from .errors import (
    FFSystemdError,
    JobFailed,
    LaunchError,
    NoSuchUnit,
    SessionLimitReached,
    SystemdError,
    SystemdTimeout,
    SystemdUnavailable,
    UnknownSession,
)
from .ids import is_valid_session_id, new_session_id
from .limits import or_none
from .process import GatedProcess, log_tail
from .readiness import serves_html5_client
from .session_dirs import (
    SessionPaths,
    create_session_dirs,
    ensure_root,
    remove_session_dir,
    session_paths,
)
from .systemd import SystemdClient
from .units import ScopeLimits, scope_properties, unit_name

log = logging.getLogger(__name__)

ACTIVE_STATE_TO_STATE = {
    "active": "running",
    "reloading": "running",
    "activating": "starting",
    "deactivating": "stopping",
    "inactive": "stopped",
    "failed": "failed",
}
READY_POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class ManagerSettings:
    """Everything the manager needs from the validated configuration."""

    session_root: Path
    slice_name: str
    limits: ScopeLimits
    xpra: XpraSettings
    start_url: str = "about:blank"
    max_sessions: int = 4
    ready_timeout: float = 30.0
    keep_profile: bool = False
    job_timeout: float = 30.0


@dataclass
class Session:
    """One Firefox session created by this launcher."""

    id: str
    unit: str
    paths: SessionPaths
    start_url: str
    created: datetime
    state: str = "starting"
    process: GatedProcess | None = None
    unit_started: bool = False
    stopping_by_request: bool = False
    launch_task: asyncio.Task[None] | None = None
    reaper: asyncio.Task[None] | None = None
    last_activity: datetime | None = None
    connections: int = 0
    last_props: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Starting, or its Xpra still running: it counts against max_sessions."""
        if self.state == "starting":
            return True
        return self.process is not None and self.process.returncode is None


def _exit_result(returncode: int | None) -> str | None:
    if returncode is None:
        return None
    if returncode == 0:
        return "success"
    if returncode < 0:
        return "signal"
    return "exit-code"


def _exit_message(returncode: int | None) -> str | None:
    if returncode is None:
        return None
    if returncode == 0:
        return "Xpra exited normally (Firefox was closed)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"Xpra was killed by {name}"
    return f"Xpra exited with status {returncode}"


class SessionManager:
    """Creates, tracks and stops this user's Firefox sessions."""

    def __init__(
        self,
        settings: ManagerSettings,
        systemd: SystemdClient,
        url_for: Any,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.systemd = systemd
        self._url_for = url_for
        self._environ = dict(os.environ if environ is None else environ)
        self._sessions: dict[str, Session] = {}

    # --- queries ------------------------------------------------------------
    def session_ids(self) -> list[str]:
        """Ids of all sessions this launcher knows, oldest first."""
        return [s.id for s in sorted(self._sessions.values(), key=lambda s: s.created)]

    def active_count(self) -> int:
        """Sessions starting or running (what max_sessions limits)."""
        return sum(1 for s in self._sessions.values() if s.active)

    def get(self, session_id: str) -> Session:
        """Return a known session; raises UnknownSession for an unknown or malformed id."""
        if not is_valid_session_id(session_id) or session_id not in self._sessions:
            raise UnknownSession(f"no session {session_id!r}")
        return self._sessions[session_id]

    def socket_path(self, session_id: str) -> Path | None:
        """The Xpra socket of a running session (None when not running); for the proxy."""
        session = self._sessions.get(session_id) if is_valid_session_id(session_id) else None
        if session is None or not session.active or session.state != "running":
            return None
        return session.paths.socket

    def record_activity(self, session_id: str) -> None:
        """Note proxied traffic of a session (HTTP or websocket, either direction)."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_activity = datetime.now(timezone.utc)

    def connection_opened(self, session_id: str) -> None:
        """Count an open websocket connection to a session's Xpra."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.connections += 1
            session.last_activity = datetime.now(timezone.utc)

    def connection_closed(self, session_id: str) -> None:
        """Uncount a websocket connection that closed."""
        session = self._sessions.get(session_id)
        if session is not None and session.connections > 0:
            session.connections -= 1
            session.last_activity = datetime.now(timezone.utc)

    async def status(self, session_id: str) -> dict[str, Any]:
        """Return the session JSON with the unit's live state and limits from systemd."""
        session = self.get(session_id)
        await self._refresh(session)
        return self.to_json(session)

    async def list_status(self) -> list[dict[str, Any]]:
        """Return the session JSON of every known session."""
        sessions = [self._sessions[i] for i in self.session_ids()]
        await asyncio.gather(*(self._refresh(s) for s in sessions))
        return [self.to_json(s) for s in sessions]

    async def can_launch(self) -> tuple[bool, str]:
        """(True, "") when a launch can succeed now, else (False, why)."""
        if self.active_count() >= self.settings.max_sessions:
            return False, f"max_sessions ({self.settings.max_sessions}) sessions are running"
        try:
            await self.systemd.version()
        except FFSystemdError as exc:
            return False, str(exc)
        return True, ""

    async def _refresh(self, session: Session) -> None:
        if session.state in ("starting",) or not session.unit_started:
            return
        try:
            props = await self.systemd.unit_properties(session.unit)
        except NoSuchUnit:
            props = {}
        except (SystemdUnavailable, SystemdTimeout) as exc:
            log.warning("cannot read state of %s: %s", session.unit, exc)
            return
        session.last_props = props
        if props:
            session.state = ACTIVE_STATE_TO_STATE.get(props.get("ActiveState", ""), "failed")
            if session.state == "running" and session.process and session.process.returncode is not None:
                session.state = "stopping"
        elif session.state != "stopping":
            code = session.process.returncode if session.process else None
            session.state = "failed" if code not in (0, None) else "stopped"

    def to_json(self, session: Session) -> dict[str, Any]:
        """Render one session as the public session JSON."""
        props = session.last_props
        code = session.process.returncode if session.process else None
        running = session.process is not None and code is None and session.state != "starting"
        quota = props.get("CPUQuotaPerSecUSec")
        quota_percent = None if or_none(quota) is None else round(quota / 10_000, 2)
        result = props.get("Result") or _exit_result(code)
        if props and props.get("ActiveState") == "active":
            result = None
        return {
            "id": session.id,
            "unit": session.unit,
            "state": session.state,
            "sub_state": props.get("SubState") or None,
            "result": result,
            "message": None if running or session.state == "starting" else _exit_message(code),
            "main_pid": session.process.pid if running and session.process else None,
            "created": _iso(session.created),
            "url": self._url_for(session.id),
            "start_url": session.start_url,
            "memory_current": or_none(props.get("MemoryCurrent")),
            "memory_max": or_none(props.get("MemoryMax")),
            "tasks_current": or_none(props.get("TasksCurrent")),
            "tasks_max": or_none(props.get("TasksMax")),
            "cpu_quota": quota_percent,
            "cpu_usage_nsec": or_none(props.get("CPUUsageNSec")),
            "last_activity": _iso(session.last_activity),
            "connections": session.connections,
        }

    # --- launch ---------------------------------------------------------------
    async def launch(self, start_url: str | None = None) -> dict[str, Any]:
        """Start a session and return its JSON once Xpra answers HTTP on its socket.

        Raises SessionLimitReached, SystemdUnavailable or LaunchError; on any
        failure nothing is left behind (no unit, no process, no directory).
        """
        if self.active_count() >= self.settings.max_sessions:
            raise SessionLimitReached(
                f"{self.settings.max_sessions} sessions are already running (max_sessions); close one first"
            )
        session_id = new_session_id()
        while session_id in self._sessions:
            session_id = new_session_id()
        session = Session(
            id=session_id,
            unit=unit_name(session_id),
            paths=session_paths(self.settings.session_root, session_id),
            start_url=start_url or self.settings.start_url,
            created=datetime.now(timezone.utc),
        )
        # Reserved before the first await: concurrent launches see this slot taken.
        self._sessions[session_id] = session
        task = asyncio.ensure_future(self._launch(session))
        session.launch_task = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        await self._refresh(session)
        return self.to_json(session)

    async def _launch(self, session: Session) -> None:
        step = "systemd"
        try:
            await self.systemd.connect()
            step = "directories"
            ensure_root(self.settings.session_root)
            create_session_dirs(session.paths)
            (session.paths.profile / "user.js").write_text(
                user_js(session.start_url, self.settings.xpra.extra_prefs)
            )
            (session.paths.xdg_config / "xpra" / "xpra.conf").write_text(xpra_config_file())
            step = "spawn"
            session.process = await GatedProcess.spawn(
                xpra_argv(self.settings.xpra, session.paths, session.start_url),
                session_environment(self._environ, session.paths),
                cwd=session.paths.base,
                log_path=session.paths.xpra_log,
            )
            step = "unit-start"
            properties = scope_properties(
                pid=session.process.pid,
                description=f"Firefox session {session.id} (ffsystemd)",
                slice_name=self.settings.slice_name,
                limits=self.settings.limits,
            )
            session.unit_started = True  # from here on teardown must stop the unit
            await self.systemd.start_transient_unit(
                session.unit, properties, job_timeout=self.settings.job_timeout
            )
            step = "xpra-start"
            await session.process.release()
            session.reaper = asyncio.ensure_future(self._watch_main_process(session))
            step = "xpra-ready"
            await self._wait_ready(session)
            session.state = "running"
        except asyncio.CancelledError:
            await asyncio.shield(self._teardown_failed_launch(session))
            raise
        except SystemdUnavailable:
            await asyncio.shield(self._teardown_failed_launch(session))
            raise
        except LaunchError as exc:
            tail = log_tail(session.paths.xpra_log)
            await asyncio.shield(self._teardown_failed_launch(session))
            raise LaunchError(exc.step, exc.message, tail) from exc
        except (FFSystemdError, OSError, ValueError) as exc:
            tail = log_tail(session.paths.xpra_log)
            await asyncio.shield(self._teardown_failed_launch(session))
            raise LaunchError(step, _describe(exc), tail) from exc

    async def _watch_main_process(self, session: Session) -> None:
        """When Xpra exits on its own, stop what is left of the scope (Xvfb, Firefox)."""
        assert session.process is not None
        code = await session.process.wait()
        if session.stopping_by_request or session.state == "starting":
            return  # a cleanup or the failed launch's teardown owns the unit
        log.info("session %s: %s; stopping its unit", session.id, _exit_message(code))
        session.state = "stopping"
        try:
            await self._stop_everything(session, force=True)
        except LaunchError as exc:
            log.warning("session %s: could not stop %s: %s", session.id, session.unit, exc.message)
        session.state = "failed" if code != 0 else "stopped"

    async def _wait_ready(self, session: Session) -> None:
        assert session.process is not None
        deadline = time.monotonic() + self.settings.ready_timeout
        while True:
            if session.process.returncode is not None:
                raise LaunchError(
                    "xpra-ready", f"{_exit_message(session.process.returncode)} before it was ready"
                )
            if await serves_html5_client(session.paths.socket):
                return
            if time.monotonic() >= deadline:
                raise LaunchError(
                    "xpra-ready",
                    f"Xpra did not serve its HTML5 client within ready_timeout"
                    f" ({self.settings.ready_timeout:g} s)",
                )
            await asyncio.sleep(READY_POLL_INTERVAL)

    async def _teardown_failed_launch(self, session: Session) -> None:
        session.state = "stopping"
        try:
            await self._stop_everything(session, force=True)
        finally:
            with contextlib.suppress(OSError, ValueError):
                remove_session_dir(session.paths)
            self._sessions.pop(session.id, None)

    # --- stop -------------------------------------------------------------------
    async def _stop_everything(self, session: Session, force: bool) -> None:
        """Stop the unit (SIGKILL first when force), reset it if failed, reap our child."""
        errors: list[str] = []
        if session.unit_started:
            if force:
                with contextlib.suppress(NoSuchUnit, SystemdError):
                    await self.systemd.kill_unit(session.unit, signal.SIGKILL)
            try:
                await self.systemd.stop_unit(session.unit, job_timeout=self.settings.job_timeout)
            except NoSuchUnit:
                pass
            except (FFSystemdError, JobFailed) as exc:
                errors.append(_describe(exc))
            try:
                await self.systemd.reset_failed_unit(session.unit)
            except NoSuchUnit:
                pass
            except FFSystemdError as exc:
                errors.append(_describe(exc))
        if session.process is not None:
            if session.process.returncode is None and not session.unit_started:
                await session.process.abort()
            elif session.process.returncode is None:
                # The unit stop ended every process of the scope; reap our child.
                # If systemd could not be reached, end what we started by PID.
                await session.process.wait_or_kill(2.0 if not errors else 0.5)
        if errors:
            raise LaunchError("cleanup", "; ".join(errors))

    async def cleanup(
        self, session_ids: Iterable[str], *, force: bool = False, keep_profile: bool | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """Stop the given sessions and remove their directories (unless keep_profile).

        Only sessions of this launcher are touched; unknown ids are reported in errors.
        Returns (stopped ids, {id: error message}).
        """
        keep = self.settings.keep_profile if keep_profile is None else keep_profile
        ids = list(dict.fromkeys(session_ids))
        results = await asyncio.gather(*(self._cleanup_one(i, force, keep) for i in ids))
        stopped = [i for i, err in zip(ids, results, strict=True) if err is None]
        errors = {i: err for i, err in zip(ids, results, strict=True) if err is not None}
        return stopped, errors

    async def _cleanup_one(self, session_id: str, force: bool, keep: bool) -> str | None:
        try:
            session = self.get(session_id)
        except UnknownSession as exc:
            return str(exc)
        if session.launch_task is not None and not session.launch_task.done():
            session.launch_task.cancel()
            with contextlib.suppress(BaseException):
                await session.launch_task
            return None
        session.stopping_by_request = True
        session.state = "stopping"
        try:
            await self._stop_everything(session, force)
        except LaunchError as exc:
            session.state = "failed"
            return exc.message
        if not keep:
            try:
                remove_session_dir(session.paths)
            except (OSError, ValueError) as exc:
                return f"stopped, but the session directory was not removed: {exc}"
        self._sessions.pop(session.id, None)
        return None

    async def shutdown(self, stop_sessions: bool = True) -> None:
        """On server stop: stop every session (or leave them running), then close the bus."""
        if stop_sessions and self._sessions:
            await self.cleanup(list(self._sessions), force=False)
        await self.systemd.close()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemdError):
        return f"{exc.name}: {exc.message}"
    return str(exc) or type(exc).__name__
