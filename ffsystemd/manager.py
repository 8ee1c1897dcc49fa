"""The session manager: the only owner of session state.

It turns launch / status / cleanup into directory, process and unit operations
through the systemd client and the gated process, keeps the registry true to what
systemd runs (signals, re-adoption after a restart, re-sync after a bus outage) and
culls idle sessions. It knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dbus_fast import Message

from .cgroup import read_events
from .commands import (
    XpraSettings,
    firefox_end,
    firefox_exit_file,
    session_environment,
    user_js,
    xpra_argv,
    xpra_config_file,
    xulstore_json,
)
from .errors import (
    FFSystemdError,
    LaunchError,
    NoSuchUnit,
    SessionLimitReached,
    SystemdError,
    SystemdTimeout,
    SystemdUnavailable,
    UnitExists,
    UnknownSession,
)
from .identity import unit_description
from .ids import is_valid_session_id, new_session_id
from .limits import UINT64_MAX, or_none
from .ownership import owner_of_dir, owner_of_unit, read_metadata, session_metadata
from .process import GatedProcess, log_tail
from .readiness import serves_html5_client
from .session_dirs import (
    SessionPaths,
    create_session_dirs,
    discard_session_dir,
    ensure_root,
    list_session_dirs,
    remove_session_dir,
    session_paths,
)
from .systemd import MANAGER_IFACE, PROPS_IFACE, SCOPE_IFACE, UNIT_IFACE, SystemdClient
from .units import UNIT_GLOB, ScopeLimits, scope_properties, session_id_of, unit_name, unit_object_path

log = logging.getLogger(__name__)

ACTIVE_STATE_TO_STATE = {
    "active": "running",
    "reloading": "running",
    "activating": "starting",
    "deactivating": "stopping",
    "inactive": "stopped",
    "failed": "failed",
}
LIVE_STATES = ("starting", "running", "stopping")
READY_POLL_INTERVAL = 0.05
METADATA_FILE = "session.json"


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
    idle_timeout: float = 0.0
    culling_interval: float = 60.0
    stats_interval: float = 2.0
    shutdown_timeout: float = 20.0
    ended_retention: int = 20
    downloads_dir: Path | None = None  # checked at start-up (ffsystemd.downloads); None: in the session
    server_id: str = ""  # whose sessions these are (ffsystemd.identity); "" = unnamed (tests)


@dataclass
class Session:
    """One Firefox session created (or re-adopted) by this launcher."""

    id: str
    unit: str
    paths: SessionPaths
    start_url: str
    created: datetime
    state: str = "starting"
    result: str | None = None
    message: str | None = None
    process: GatedProcess | None = None  # our child; None for a re-adopted session
    main_pid: int | None = None
    adopted: bool = False
    unit_started: bool = False
    stopping_by_request: bool = False
    stop_failed: bool = False
    released: bool = False
    ending: bool = False
    ended_at: float | None = None
    launch_task: asyncio.Task[None] | None = None
    watch_task: asyncio.Task[None] | None = None
    last_activity: datetime | None = None
    connections: int = 0
    props: dict[str, Any] = field(default_factory=dict)
    props_at: float = 0.0

    @property
    def unit_path(self) -> str:
        return unit_object_path(self.unit)

    @property
    def active(self) -> bool:
        """Starting, running or stopping: it counts against max_sessions."""
        return self.state in LIVE_STATES


def _exit_result(returncode: int | None) -> str | None:
    if returncode is None:
        return None
    if returncode == 0:
        return "success"
    return "signal" if returncode < 0 else "exit-code"


def _exit_message(returncode: int | None) -> str:
    if returncode is None:
        return "Xpra exited"
    if returncode == 0:
        return "Xpra exited normally (Firefox was closed)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"Xpra was killed by {name}"
    return f"Xpra exited with status {returncode}"


_RESULT_MESSAGES = {
    "oom-kill": "the session ran out of memory (memory_max) and was killed",
    "timeout": "the session reached its maximum age (max_age) and was stopped",
    "signal": "a process of the session was killed by a signal",
    "exit-code": "a process of the session exited with an error",
    "idle-timeout": "the session was stopped after being idle for idle_timeout",
    "resources": "systemd could not set up the session's resources",
}


def _is_xpra_server(cmdline: str) -> bool:
    """True for the command line of an `xpra start` server process."""
    words = cmdline.split()
    return any(w.endswith("xpra") and nxt == "start" for w, nxt in itertools.pairwise(words))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemdError):
        return f"{exc.name}: {exc.message}"
    return str(exc) or type(exc).__name__


class SessionManager:
    """Creates, tracks, re-adopts, culls and stops this user's Firefox sessions."""

    def __init__(
        self,
        settings: ManagerSettings,
        systemd: SystemdClient,
        url_for: Callable[[str], str],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.systemd = systemd
        self._url_for = url_for
        self._environ = dict(os.environ if environ is None else environ)
        self._sessions: dict[str, Session] = {}
        self._started = False
        self._start_lock = asyncio.Lock()
        self._resync_lock = asyncio.Lock()
        self._stats_task: asyncio.Future[None] | None = None
        self._stats_at = 0.0
        self._housekeeping: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        systemd.add_signal_handler(self._on_signal)
        systemd.add_connect_callback(self._resync)

    # --- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Connect, re-adopt our running units, clean up dead ones; start culling and reconnects.

        Idempotent. If no user manager answers yet, re-adoption happens on (re)connection.
        """
        async with self._start_lock:
            if self._started:
                return
            self._started = True
            try:
                await self.systemd.connect()  # its connect callback runs _resync
            except SystemdUnavailable as exc:
                log.warning("ffsystemd: no systemd user manager yet: %s", exc)
            self._housekeeping = asyncio.ensure_future(self._housekeeping_loop())

    async def shutdown(self, stop_sessions: bool = True) -> None:
        """On server stop: stop every session (bounded in time) or leave them running; close the bus."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(BaseException):
                await self._housekeeping
        if stop_sessions:
            live = [s.id for s in self._sessions.values() if s.active]
            try:
                await asyncio.wait_for(self.cleanup(live), self.settings.shutdown_timeout)
            except (asyncio.TimeoutError, FFSystemdError):
                log.warning("ffsystemd: sessions did not stop in time; forcing")
                with contextlib.suppress(asyncio.TimeoutError, FFSystemdError):
                    await asyncio.wait_for(self.cleanup(live, force=True), 10)
        for task in list(self._background):
            task.cancel()
        await self.systemd.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _housekeeping_loop(self) -> None:
        """Reconnect after an outage (the client backs off) and cull idle sessions."""
        last_cull = time.monotonic()
        tick = max(0.1, min(1.0, self.settings.culling_interval))
        while True:
            await asyncio.sleep(tick)
            if not self.systemd.connected:
                with contextlib.suppress(SystemdUnavailable, SystemdTimeout):
                    await self.systemd.connect()
            if time.monotonic() - last_cull >= self.settings.culling_interval:
                last_cull = time.monotonic()
                await self.cull_idle()

    # --- queries ------------------------------------------------------------
    def session_ids(self) -> list[str]:
        """Ids of all sessions this launcher knows, oldest first."""
        return [s.id for s in sorted(self._sessions.values(), key=lambda s: s.created)]

    def active_count(self) -> int:
        """Sessions starting, running or stopping (what max_sessions limits)."""
        return sum(1 for s in self._sessions.values() if s.active)

    def get(self, session_id: str) -> Session:
        """Return a known session; raises UnknownSession for an unknown or malformed id."""
        if not is_valid_session_id(session_id) or session_id not in self._sessions:
            raise UnknownSession(f"no session {session_id!r}")
        return self._sessions[session_id]

    def socket_path(self, session_id: str) -> Path | None:
        """The Xpra socket of a running session (None otherwise); for the proxy."""
        session = self._sessions.get(session_id) if is_valid_session_id(session_id) else None
        if session is None or session.state != "running":
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
        """Return the session JSON; live figures are at most stats_interval old."""
        await self.start()
        session = self.get(session_id)
        await self._refresh_stats()
        return self.to_json(session)

    async def list_status(self) -> list[dict[str, Any]]:
        """Return the session JSON of every known session (one shared stats refresh)."""
        await self.start()
        await self._refresh_stats()
        return [self.to_json(self._sessions[i]) for i in self.session_ids() if i in self._sessions]

    async def can_launch(self) -> tuple[bool, str]:
        """(True, "") when a launch can succeed now, else (False, why)."""
        if self.active_count() >= self.settings.max_sessions:
            return False, f"max_sessions ({self.settings.max_sessions}) sessions are running"
        try:
            await self.systemd.version()
        except FFSystemdError as exc:
            return False, str(exc)
        return True, ""

    async def _refresh_stats(self) -> None:
        """Re-read the properties of running sessions, at most once per stats_interval, shared."""
        if self._stats_task is not None and not self._stats_task.done():
            await asyncio.shield(self._stats_task)
            return
        if time.monotonic() - self._stats_at < self.settings.stats_interval:
            return
        self._stats_task = asyncio.ensure_future(self._read_all_props())
        await asyncio.shield(self._stats_task)

    async def _read_all_props(self) -> None:
        self._stats_at = time.monotonic()
        running = [s for s in self._sessions.values() if s.state in ("running", "stopping") and not s.ending]
        if not running or not self.systemd.connected:
            return
        await asyncio.gather(*(self._read_props(s) for s in running))

    async def _read_props(self, session: Session) -> None:
        try:
            props = await self.systemd.get_all(session.unit_path, UNIT_IFACE)
            props.update(await self.systemd.get_all(session.unit_path, SCOPE_IFACE))
        except (SystemdUnavailable, SystemdTimeout) as exc:
            log.warning("cannot read the state of %s: %s", session.unit, exc)
            return
        except SystemdError as exc:
            props = {"LoadState": "error", "_error": exc.name}
        if props.get("LoadState") in ("not-found", "error") or not props.get("ActiveState"):
            own_child_exited = session.process is not None and session.process.returncode is not None
            if session.state == "running" and not session.stopping_by_request and not own_child_exited:
                message = "the session's unit vanished"
                self._spawn(self._end(session, "failed", None, message, stop_unit=False))
            return
        session.props, session.props_at = props, time.monotonic()
        self._apply_active_state(session, props)

    def to_json(self, session: Session) -> dict[str, Any]:
        """Render one session as the public session JSON."""
        props = session.props
        live = session.state in ("running", "stopping")
        quota = props.get("CPUQuotaPerSecUSec")
        quota_percent = None if or_none(quota) is None else round(quota / 10_000, 2)
        return {
            "id": session.id,
            "unit": session.unit,
            "state": session.state,
            "sub_state": props.get("SubState") or None,
            "result": session.result,
            "message": session.message,
            "main_pid": session.main_pid if live else None,
            "created": _iso(session.created),
            "url": self._url_for(session.id),
            "start_url": session.start_url,
            "memory_current": or_none(props.get("MemoryCurrent")) if live else None,
            "memory_max": or_none(props.get("MemoryMax")),
            "tasks_current": or_none(props.get("TasksCurrent")) if live else None,
            "tasks_max": or_none(props.get("TasksMax")),
            "cpu_quota": quota_percent,
            "cpu_usage_nsec": or_none(props.get("CPUUsageNSec")),
            "last_activity": _iso(session.last_activity),
            "connections": session.connections,
            "adopted": session.adopted,
            "server_id": self.settings.server_id or None,
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
            paths=session_paths(self.settings.session_root, session_id, self.settings.downloads_dir),
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
            if session.stopping_by_request and task.done():
                raise LaunchError(
                    "cancelled", "the session was stopped (cleanup) while it was starting"
                ) from None
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        return self.to_json(session)

    async def _launch(self, session: Session) -> None:
        step = "systemd"
        try:
            await self.start()
            await self.systemd.connect()
            step = "directories"
            ensure_root(self.settings.session_root)
            create_session_dirs(session.paths)
            (session.paths.profile / "xulstore.json").write_text(xulstore_json())
            (session.paths.profile / "user.js").write_text(
                user_js(session.start_url, self.settings.xpra.extra_prefs, session.paths.downloads)
            )
            (session.paths.xdg_config / "xpra" / "xpra.conf").write_text(xpra_config_file())
            metadata = session_metadata(
                session_id=session.id,
                server_id=self.settings.server_id or None,
                unit=session.unit,
                start_url=session.start_url,
                created=_iso(session.created) or "",
            )
            (session.paths.base / METADATA_FILE).write_text(json.dumps(metadata))
            step = "spawn"
            session.process = await GatedProcess.spawn(
                xpra_argv(self.settings.xpra, session.paths, session.start_url),
                session_environment(self._environ, session.paths, self.settings.xpra.pass_environment),
                cwd=session.paths.base,
                log_path=session.paths.xpra_log,
            )
            session.main_pid = session.process.pid
            step = "unit-start"
            properties = scope_properties(
                pid=session.process.pid,
                description=self._description(session.id),
                slice_name=self.settings.slice_name,
                limits=self.settings.limits,
            )
            await self.systemd.watch_unit(session.unit_path)
            session.unit_started = True  # from here on teardown must stop the unit
            try:
                await self.systemd.start_transient_unit(
                    session.unit, properties, job_timeout=self.settings.job_timeout
                )
            except UnitExists:
                session.unit_started = False  # that unit is someone else's: never touch it
                raise
            step = "xpra-start"
            await session.process.release()
            session.released = True
            session.watch_task = asyncio.ensure_future(self._watch_own_process(session))
            step = "xpra-ready"
            await self._wait_ready(session)
            await self._read_props(session)
            if session.state == "starting":
                session.state = "running"
        except asyncio.CancelledError:
            await asyncio.shield(self._teardown_failed_launch(session))
            raise
        except SystemdUnavailable:
            await asyncio.shield(self._teardown_failed_launch(session))
            raise
        except LaunchError as exc:
            tail = log_tail(session.paths.xpra_log)
            hit_task_limit = await self._hit_task_limit(session)
            await asyncio.shield(self._teardown_failed_launch(session))
            raise self._launch_failure(session, exc, tail, hit_task_limit) from exc
        except (FFSystemdError, OSError, ValueError) as exc:
            tail = log_tail(session.paths.xpra_log)
            await asyncio.shield(self._teardown_failed_launch(session))
            raise LaunchError(step, _describe(exc), tail) from exc

    async def _hit_task_limit(self, session: Session) -> bool:
        """True when the session's scope refused a fork or thread at tasks_max (pids.events)."""
        if not session.unit_started or self.settings.limits.tasks_max == UINT64_MAX:
            return False
        try:
            props = await self.systemd.get_all(session.unit_path, SCOPE_IFACE)
        except FFSystemdError:
            return False
        events = read_events(str(props.get("ControlGroup") or ""), "pids.events")
        return bool(events and events.get("max", 0) > 0)

    def _launch_failure(
        self, session: Session, exc: LaunchError, tail: list[str], hit_task_limit: bool
    ) -> LaunchError:
        """The launch error with systemd's verdict (e.g. oom-kill, from the unit's signals,
        which arrive before the stop completes) or the task limit as the reason."""
        result = session.props.get("Result")
        result = str(result) if result not in (None, "", "success") else None
        message = exc.message
        if result in _RESULT_MESSAGES:
            message = f"{message}: {_RESULT_MESSAGES[result]}"
        elif hit_task_limit:
            limit = self.settings.limits.tasks_max
            message = f"{message}: the session reached its task limit (tasks_max={limit})"
        return LaunchError(exc.step, message, tail, result=result)

    async def _wait_ready(self, session: Session) -> None:
        assert session.process is not None
        deadline = time.monotonic() + self.settings.ready_timeout
        while True:
            if session.stopping_by_request:
                # A cleanup cancelled this launch, but Python 3.11's wait_for can swallow a
                # cancellation that lands as its inner call completes (e.g. the start job).
                raise asyncio.CancelledError
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
        session.ending = True
        try:
            with contextlib.suppress(LaunchError):
                await self._stop_everything(session, force=True)
        finally:
            with contextlib.suppress(FFSystemdError):
                await self.systemd.unwatch_unit(session.unit_path)
            with contextlib.suppress(OSError, ValueError):
                remove_session_dir(session.paths)
            self._sessions.pop(session.id, None)

    # --- watching a session's end ---------------------------------------------
    async def _watch_own_process(self, session: Session) -> None:
        """When our Xpra exits on its own, end the session (and stop the rest of its scope)."""
        assert session.process is not None
        code = await session.process.wait()
        if session.stopping_by_request or session.state == "starting" or session.ending:
            return  # a cleanup or the failed launch's teardown owns the unit
        # systemd's verdict (e.g. oom-kill) beats Xpra's exit status: read it before stopping.
        with contextlib.suppress(FFSystemdError):
            props = await self.systemd.get_all(session.unit_path, SCOPE_IFACE)
            if props.get("Result") not in (None, "", "success"):
                session.props["Result"] = props["Result"]
        unit_result = session.props.get("Result")
        if unit_result not in (None, "success"):
            result, message = str(unit_result), _RESULT_MESSAGES.get(str(unit_result), _exit_message(code))
        elif code == 0 and (firefox := self._firefox_end(session)) is not None:
            result, message = firefox  # Xpra left because Firefox did: say how Firefox ended
        else:
            result, message = _exit_result(code) or "exit-code", _exit_message(code)
        state = "stopped" if result == "success" else "failed"
        await self._end(session, state, result, message, stop_unit=True)

    @staticmethod
    def _firefox_end(session: Session) -> tuple[str, str] | None:
        try:
            return firefox_end(firefox_exit_file(session.paths).read_text())
        except OSError:
            return None

    def _watch_adopted_pid(self, session: Session, pid: int) -> None:
        """Watch a re-adopted session's Xpra (not our child) through a pidfd."""
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            self._spawn(self._end(session, "failed", "exit-code", "Xpra is gone", stop_unit=True))
            return

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            if not (session.stopping_by_request or session.ending):
                result, message = self._firefox_end(session) or ("exit-code", "Xpra exited")
                state = "stopped" if result == "success" else "failed"
                self._spawn(self._end(session, state, result, message, stop_unit=True))

        loop.add_reader(fd, exited)

    def _on_signal(self, msg: Message) -> None:
        """PropertiesChanged of our units and UnitRemoved: keep the registry true at once."""
        if msg.member == "PropertiesChanged" and msg.interface == PROPS_IFACE:
            session = next((s for s in self._sessions.values() if s.unit_path == msg.path), None)
            if session is None or not msg.body:
                return
            changed = {k: getattr(v, "value", v) for k, v in msg.body[1].items()}
            session.props.update(changed)
            self._apply_active_state(session, session.props)
        elif msg.member == "UnitRemoved" and msg.interface == MANAGER_IFACE:
            sid = session_id_of(str(msg.body[0]))
            session = self._sessions.get(sid) if sid else None
            if session is None or session.state != "running" or session.stopping_by_request:
                return
            if session.process is None:  # re-adopted; our own child's watcher handles the rest
                message = "the session's unit was removed"
                self._spawn(self._end(session, "stopped", None, message, stop_unit=False))

    def _apply_active_state(self, session: Session, props: Mapping[str, Any]) -> None:
        if session.state != "running" or session.stopping_by_request or session.ending:
            return
        if session.process is not None and props.get("ActiveState") in ("inactive", "failed"):
            return  # every process is gone, ours too: its watcher ends the session with its status
        state = ACTIVE_STATE_TO_STATE.get(str(props.get("ActiveState", "")), "running")
        if state in ("stopped", "failed", "stopping"):
            result = props.get("Result") or None
            final = "failed" if state == "failed" or result not in (None, "success") else "stopped"
            message = _RESULT_MESSAGES.get(str(result), "the session's unit stopped")
            self._spawn(self._end(session, final, result, message, stop_unit=state == "stopping"))

    async def _end(
        self, session: Session, state: str, result: str | None, message: str, *, stop_unit: bool
    ) -> None:
        """A session ended without a cleanup request: stop what is left, clean up, keep the record."""
        if session.ending or session.stopping_by_request:
            return
        session.ending = True
        session.state = "stopping"
        log.info("session %s ended: %s", session.id, message)
        try:
            if stop_unit or session.props.get("ActiveState") == "failed":
                await self._stop_everything(session, force=True)
            elif session.process is not None and session.process.returncode is None:
                await session.process.wait_or_kill(2.0)
        except (LaunchError, SystemdUnavailable, SystemdTimeout) as exc:
            log.warning("session %s: could not stop %s: %s", session.id, session.unit, exc)
            session.stop_failed = True
        # systemd's own verdict may arrive with the stop (PropertiesChanged precedes the
        # stop's reply on the bus): an oom-kill or timeout beats what we guessed.
        unit_result = session.props.get("Result")
        if unit_result not in (None, "success") and unit_result != result:
            state, result = "failed", str(unit_result)
            message = _RESULT_MESSAGES.get(result, message)
        with contextlib.suppress(FFSystemdError):
            await self.systemd.unwatch_unit(session.unit_path)
        with contextlib.suppress(OSError, ValueError):
            discard_session_dir(session.paths, self.settings.keep_profile)
        session.state, session.result, session.message = state, result, message
        session.ended_at = time.monotonic()
        self._trim_ended()

    def _trim_ended(self) -> None:
        ended = sorted(
            (s for s in self._sessions.values() if not s.active and s.ended_at is not None),
            key=lambda s: s.ended_at or 0,
        )
        for session in ended[: max(0, len(ended) - self.settings.ended_retention)]:
            self._sessions.pop(session.id, None)

    # --- ownership (ffsystemd.ownership) --------------------------------------
    def _description(self, session_id: str) -> str:
        if self.settings.server_id:
            return unit_description(session_id, self.settings.server_id)
        return f"Firefox session {session_id} (ffsystemd)"

    def _owns(self, owner: str | None) -> bool:
        """An owner read from a unit or a directory is this server (None matches an unnamed one)."""
        return owner == (self.settings.server_id or None)

    # --- re-adoption and re-sync ---------------------------------------------
    async def _resync(self) -> None:
        """After (re)connecting: adopt our running units, end vanished sessions, clean the rest.

        Only units and directories of this server id are touched (ffsystemd.ownership): another
        server's unit or directory -- running, starting, dead or being filled by its launch -- is
        left alone, whatever state it is in.
        """
        async with self._resync_lock:
            try:
                listed = [
                    (sid, info)
                    for info in await self.systemd.list_units_by_patterns([UNIT_GLOB])
                    if (sid := session_id_of(info.name)) is not None
                ]
                units = {sid: info for sid, info in listed if self._owns(owner_of_unit(info.description))}
                anyones = {sid for sid, _info in listed}
            except FFSystemdError as exc:
                log.warning("ffsystemd: cannot list our units: %s", exc)
                return
            root = self.settings.session_root
            dirs = {
                sid
                for sid in list_session_dirs(root)
                if self._owns(owner_of_dir(session_paths(root, sid).base))
            }
            for session in list(self._sessions.values()):
                if session.state == "running" and session.id not in units and not session.stopping_by_request:
                    self._spawn(
                        self._end(session, "failed", None, "the session's unit vanished", stop_unit=False)
                    )
            for sid, info in units.items():
                # Ours = our name prefix, our server id in its Description AND a directory of our
                # server id under our session_root; anything else is another server's: untouched.
                if sid in self._sessions or sid not in dirs:
                    continue
                if info.active_state == "active":
                    await self._adopt(sid, info.path)
                else:
                    await self._discard_unit(sid, info.active_state)
            for sid in dirs - anyones - set(self._sessions):
                if not self.settings.keep_profile:
                    log.info("ffsystemd: removing session directory %s without a unit", sid)
                with contextlib.suppress(OSError, ValueError):
                    discard_session_dir(session_paths(root, sid), self.settings.keep_profile)
            self._stats_at = 0.0

    async def _adopt(self, sid: str, path: str) -> None:
        paths = session_paths(self.settings.session_root, sid)
        try:
            metadata = read_metadata(paths.base) or {}
            created = datetime.fromisoformat(str(metadata["created"]).replace("Z", "+00:00"))
            start_url = str(metadata.get("start_url") or self.settings.start_url)
        except (OSError, ValueError, KeyError, TypeError):
            created = datetime.fromtimestamp(paths.base.stat().st_mtime, timezone.utc)
            start_url = self.settings.start_url
        session = Session(
            id=sid,
            unit=unit_name(sid),
            paths=paths,
            start_url=start_url,
            created=created,
            state="running",
            adopted=True,
            unit_started=True,
        )
        self._sessions[sid] = session
        await self.systemd.watch_unit(session.unit_path)
        try:
            processes = await self.systemd.unit_processes(session.unit)
        except FFSystemdError as exc:
            log.warning("ffsystemd: cannot list the processes of %s: %s", session.unit, exc)
            processes = None
        if processes is not None:
            xpra = [pid for pid, cmd in processes if _is_xpra_server(cmd)]
            if not xpra:  # what is left (Xvfb, Firefox) cannot be reached: end it
                await self._end(session, "failed", None, "Xpra was no longer running", stop_unit=True)
                return
            session.main_pid = min(xpra)
            self._watch_adopted_pid(session, session.main_pid)
        await self._read_props(session)
        log.info("ffsystemd: re-adopted running session %s (Xpra pid %s)", sid, session.main_pid)

    async def _discard_unit(self, sid: str, active_state: str) -> None:
        """A unit of ours that is dead or failed: stop and reset it, drop its directory."""
        name = unit_name(sid)
        log.info("ffsystemd: cleaning up %s (%s)", name, active_state)
        with contextlib.suppress(FFSystemdError):
            if active_state != "failed":
                await self.systemd.stop_unit(name, job_timeout=self.settings.job_timeout)
        with contextlib.suppress(FFSystemdError):
            await self.systemd.reset_failed_unit(name)
        with contextlib.suppress(OSError, ValueError):
            discard_session_dir(session_paths(self.settings.session_root, sid), self.settings.keep_profile)

    # --- stop -------------------------------------------------------------------
    async def _stop_everything(self, session: Session, force: bool) -> None:
        """Stop the unit (SIGKILL the cgroup first when force), reset it if failed, reap our child."""
        errors: list[str] = []
        unavailable: SystemdUnavailable | None = None
        if session.unit_started:
            if force:
                try:
                    await self.systemd.kill_unit(session.unit, signal.SIGKILL)
                except (SystemdError, SystemdTimeout):
                    pass  # not loaded, or refused: the stop below still ends it
                except SystemdUnavailable as exc:
                    unavailable = exc
            for call in (
                lambda: self.systemd.stop_unit(session.unit, job_timeout=self.settings.job_timeout),
                lambda: self.systemd.reset_failed_unit(session.unit),
            ):
                if unavailable is not None:
                    break
                try:
                    await call()
                except NoSuchUnit:
                    pass
                except SystemdUnavailable as exc:
                    unavailable = exc
                    break
                except FFSystemdError as exc:
                    errors.append(_describe(exc))
        if session.process is not None and session.process.returncode is None:
            if not session.released:  # still at the gate: it never ran Xpra
                await session.process.abort()
            else:
                # The unit stop ended every process of the scope; reap our child. If systemd
                # could not be reached, end what we started by its PID.
                await session.process.wait_or_kill(2.0 if not (errors or unavailable) else 0.5)
        if unavailable is not None:
            raise unavailable
        if errors:
            raise LaunchError("cleanup", "; ".join(errors))

    async def cleanup(
        self, session_ids: Iterable[str], *, force: bool = False, keep_profile: bool | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """Stop the given sessions and remove their directories (unless keep_profile).

        Only sessions of this launcher are touched; unknown ids are reported in errors.
        Raises SystemdUnavailable when the user manager cannot be reached.
        Returns (stopped ids, {id: error message}).
        """
        keep = self.settings.keep_profile if keep_profile is None else keep_profile
        ids = list(dict.fromkeys(session_ids))
        results = await asyncio.gather(
            *(self._cleanup_one(i, force, keep) for i in ids), return_exceptions=True
        )
        for result in results:
            if isinstance(result, SystemdUnavailable):
                raise result
            if isinstance(result, BaseException):
                raise result
        stopped = [i for i, err in zip(ids, results, strict=True) if err is None]
        errors = {i: str(err) for i, err in zip(ids, results, strict=True) if err is not None}
        return stopped, errors

    async def _cleanup_one(self, session_id: str, force: bool, keep: bool) -> str | None:
        try:
            session = self.get(session_id)
        except UnknownSession as exc:
            return str(exc)
        if session.launch_task is not None and not session.launch_task.done():
            session.stopping_by_request = True
            session.launch_task.cancel()  # the launch tears down what it started
            with contextlib.suppress(BaseException):
                await session.launch_task
            return None
        if (session.active or session.stop_failed) and not session.ending:
            session.stopping_by_request = True
            session.state = "stopping"
            try:
                await self._stop_everything(session, force)
            except LaunchError as exc:
                session.state = "failed"
                session.stop_failed = True  # a retry must stop the unit again
                session.stopping_by_request = False
                return exc.message
            except SystemdUnavailable:
                session.stopping_by_request = False
                if session.process is not None and session.process.returncode is not None:
                    session.state, session.stop_failed = "failed", True  # our Xpra is gone already
                else:
                    session.state = "running"
                raise
            with contextlib.suppress(FFSystemdError):
                await self.systemd.unwatch_unit(session.unit_path)
        elif session.ending and session.ended_at is None:
            # An end is in progress (crash being cleaned up); wait for it briefly.
            deadline = time.monotonic() + self.settings.job_timeout
            while session.ended_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        try:
            discard_session_dir(session.paths, keep)
        except (OSError, ValueError) as exc:
            return f"stopped, but the session directory was not removed: {exc}"
        self._sessions.pop(session.id, None)
        return None

    # --- idle culling -----------------------------------------------------------
    async def cull_idle(self) -> list[str]:
        """Stop running sessions with no connection and no traffic for idle_timeout; return their ids."""
        timeout = self.settings.idle_timeout
        if timeout <= 0:
            return []
        now = datetime.now(timezone.utc)
        culled = []
        for session in list(self._sessions.values()):
            if session.state != "running" or session.connections > 0 or session.ending:
                continue
            idle_since = session.last_activity or session.created
            if (now - idle_since).total_seconds() >= timeout:
                culled.append(session.id)
                minutes = timeout / 60
                message = f"stopped after {minutes:g} minutes without use (idle_timeout)"
                await self._end(session, "stopped", "idle-timeout", message, stop_unit=True)
        return culled


__all__ = ["UINT64_MAX", "ManagerSettings", "Session", "SessionManager"]
