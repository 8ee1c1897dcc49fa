"""The session manager: the registry of this server's sessions and its public operations.

It owns the registry, `max_sessions`, the public launch / status / cleanup / can_launch, the
shared stats refresh, idle culling and shutdown; the work is done by its parts, which share a
`ManagerContext`: `launch.Launcher` (the launch sequence), `watch.Watcher` (live state from
systemd and Xpra), `ending.Stopper` (stopping units, final records), `idle.Usage` (connections,
activity, idle culling), `adoption.Adopter` (re-adoption and re-sync after a (re)connect),
`pool.WarmPool` (sessions started ahead, which a launch claims; they are not listed or counted
until then). It knows nothing about HTTP or D-Bus: systemd is reached through a `SystemdPort`
(systemd_api.py). Observers subscribe to `SessionEvent`s through `manager.observers.add(...)`
(events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .activity import ActivityRecorder
from .adoption import Adopter
from .context import ManagerContext, ManagerSettings
from .ending import Stopper, describe
from .errors import (
    FFSystemdError,
    SessionLimitReached,
    SystemdTimeout,
    SystemdUnavailable,
    UnknownSession,
)
from .events import LaunchRefused, LaunchRequested, Observers, RefusalReason
from .idle import Usage
from .ids import is_valid_session_id
from .launch import Launcher
from .limits import UINT64_MAX
from .pool import WarmPool
from .screen import screen_set_file
from .session import Session, SessionState, session_json
from .systemd_api import SystemdPort
from .watch import Watcher

log = logging.getLogger(__name__)


class SessionManager:
    """Creates, tracks, re-adopts, culls and stops this user's Firefox sessions.

    A session's lifecycle is its `state` and its `owner`, the one coroutine allowed to end it;
    every path that ends a session first wins `Session.claim()` (or, for a cleanup of a starting
    session, `take_over_launch()`), and a path that loses leaves the session alone:

    | state (owner)            | moved by                  | to                                   |
    |--------------------------|---------------------------|--------------------------------------|
    | starting (LAUNCH)        | the launch                | running (NONE); or gone (teardown)   |
    | starting (LAUNCH)        | cleanup: takes it over    | gone (the launch's teardown runs)    |
    | running (NONE)           | end: Xpra exited, unit    | stopping (END) → stopped / failed    |
    |                          | failed or vanished, idle  | (END, final: the record stays)       |
    | running (NONE)           | cleanup (claims CLEANUP)  | stopping (CLEANUP) → gone; refused:  |
    |                          |                           | failed (NONE, stop_failed), outage:  |
    |                          |                           | running or failed (NONE)             |
    | stopping (END)           | cleanup waits for the end | gone                                 |
    | stopped / failed         | cleanup                   | gone (stopped again if stop_failed)  |

    Public methods: `launch` (any time; 429 beyond max_sessions), `status`/`list_status`/`get`/
    `socket_path` (any time; unknown ids raise UnknownSession), `cleanup` (any state), `cull_idle`
    (running sessions only), `start` (idempotent) and `shutdown` (once, at the end).
    """

    def __init__(
        self,
        settings: ManagerSettings,
        systemd: SystemdPort,
        url_for: Callable[[str], str],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.ctx = ManagerContext(settings=settings, systemd=systemd)
        self.systemd = systemd
        self._url_for = url_for
        self._environ = dict(os.environ if environ is None else environ)
        self._sessions = self.ctx.sessions
        self._started = False
        self._start_lock = asyncio.Lock()
        self._housekeeping: asyncio.Task[None] | None = None
        self.stopper = Stopper(self.ctx)
        self.watcher = Watcher(self.ctx, self.stopper)
        self.adopter = Adopter(self.ctx, self.watcher, self.stopper, on_synced=self.watcher.figures_stale)
        self.launcher = Launcher(self.ctx, self.watcher, self.stopper, self._environ, before=self.start)
        self.pool = WarmPool(self.ctx, self.launcher, self.stopper, new_session=self.ctx.new_session)
        self.observers.add(self.pool.on_event)
        self.activity = ActivityRecorder(self.ctx)
        self.usage = Usage(self.ctx, self.stopper, self.activity)
        systemd.add_event_handler(self.watcher.on_event)
        systemd.add_connect_callback(self.adopter.resync)

    @property
    def settings(self) -> ManagerSettings:
        return self.ctx.settings

    @settings.setter
    def settings(self, value: ManagerSettings) -> None:
        self.ctx.settings = value

    @property
    def observers(self) -> Observers:
        """Subscribe here to session events (launched, ended, cleaned up): see events.py."""
        return self.ctx.observers

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
                await self.systemd.connect()  # its connect callback runs the re-sync
            except SystemdUnavailable as exc:
                log.warning("ffsystemd: no systemd user manager yet: %s", exc)
            self._housekeeping = asyncio.ensure_future(self._housekeeping_loop())
            self.pool.fill()

    async def shutdown(self, stop_sessions: bool = True) -> None:
        """On server stop: stop every session (bounded in time) or leave them running; close the bus.

        Pooled (unclaimed) sessions are stopped either way."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(BaseException):
                await self._housekeeping
        with contextlib.suppress(asyncio.TimeoutError, FFSystemdError):
            await asyncio.wait_for(self.pool.shutdown(), self.settings.shutdown_timeout)
        if stop_sessions:
            await self._stop_on_shutdown([s.id for s in self._sessions.values() if s.active])
        for task in list(self.ctx.background):
            task.cancel()
        self.activity.close()
        await self.systemd.close()

    async def _stop_on_shutdown(self, live: list[str]) -> None:
        """Stop the given sessions within shutdown_timeout; force (SIGKILL) the ones that did not
        stop in time or failed to stop, within 10 s more. Logs every session left running."""
        left = live
        try:
            _, errors = await asyncio.wait_for(self.cleanup(live), self.settings.shutdown_timeout)
            left = list(errors)
            for session_id, error in errors.items():
                log.warning("ffsystemd: session %s did not stop on shutdown: %s; forcing", session_id, error)
        except (asyncio.TimeoutError, FFSystemdError) as exc:
            log.warning("ffsystemd: sessions did not stop in time (%s); forcing", describe(exc))
        if not left:
            return
        try:
            _, errors = await asyncio.wait_for(self.cleanup(left, force=True), 10)
        except (asyncio.TimeoutError, FFSystemdError) as exc:
            errors = {session_id: describe(exc) for session_id in left}
        for session_id, error in errors.items():
            log.error("ffsystemd: session %s is left running after shutdown: %s", session_id, error)

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
            self.pool.tick()

    # --- queries ------------------------------------------------------------
    def session_ids(self) -> list[str]:
        """Ids of all sessions this launcher shows (not the unclaimed pooled ones), oldest first."""
        return [s.id for s in sorted(self._sessions.values(), key=lambda s: s.created) if not s.pooled]

    def active_count(self) -> int:
        """Sessions starting, running or stopping (what max_sessions limits; not pooled ones)."""
        return sum(1 for s in self._sessions.values() if s.active and not s.pooled)

    def get(self, session_id: str) -> Session:
        """Return a shown session; raises UnknownSession for an unknown, pooled or malformed id."""
        session = self._sessions.get(session_id) if is_valid_session_id(session_id) else None
        if session is None or session.pooled:
            raise UnknownSession(f"no session {session_id!r}")
        return session

    def socket_path(self, session_id: str) -> Path | None:
        """The Xpra socket of a running session (None otherwise); for the proxy."""
        session = self._sessions.get(session_id) if is_valid_session_id(session_id) else None
        if session is None or session.pooled or session.state is not SessionState.RUNNING:
            return None
        return session.paths.socket

    def screen_marker(self, session_id: str) -> Path | None:
        """Where a session that was asked for a first screen size says it is set (ffsystemd.screen);
        None when no size was asked for. For the proxy: the client's hello waits for it."""
        session = self._sessions.get(session_id) if is_valid_session_id(session_id) else None
        if session is None or session.screen is None:
            return None
        return screen_set_file(session.paths)

    def is_starting(self, session_id: str) -> bool:
        """True while a session's launch runs (its client page may load; its websocket waits).

        A pooled session is never starting to anyone (it is hidden until claimed)."""
        session = self._sessions.get(session_id) if is_valid_session_id(session_id) else None
        return session is not None and not session.pooled and session.state is SessionState.STARTING

    def record_activity(self, session_id: str) -> None:
        """Note proxied traffic of a session (HTTP or websocket, either direction)."""
        self.usage.record_activity(session_id)

    def connection_opened(self, session_id: str) -> None:
        """Count an open websocket connection to a session's Xpra."""
        self.usage.connection_opened(session_id)

    def connection_closed(self, session_id: str) -> None:
        """Uncount a websocket connection that closed."""
        self.usage.connection_closed(session_id)

    async def status(self, session_id: str) -> dict[str, Any]:
        """Return the session JSON; live figures are at most stats_interval old."""
        await self.start()
        session = self.get(session_id)
        await self.watcher.refresh_all()
        return self.to_json(session)

    async def list_status(self) -> list[dict[str, Any]]:
        """Return the session JSON of every known session (one shared stats refresh)."""
        await self.start()
        await self.watcher.refresh_all()
        return [self.to_json(self._sessions[i]) for i in self.session_ids() if i in self._sessions]

    def to_json(self, session: Session) -> dict[str, Any]:
        """Render one session as the public session JSON."""
        return session_json(session, self._url_for(session.id), self.settings.server_id)

    async def can_launch(self) -> tuple[bool, str]:
        """(True, "") when a launch can succeed now, else (False, why)."""
        if self.active_count() >= self.settings.max_sessions:
            return False, f"max_sessions ({self.settings.max_sessions}) sessions are running"
        try:
            await self.systemd.version()
        except FFSystemdError as exc:
            return False, str(exc)
        return True, ""

    # --- launch ---------------------------------------------------------------
    async def launch(
        self, start_url: str | None = None, *, wait: bool = True, screen: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """Claim a pooled session opened on start_url, or start one; return its JSON once Xpra
        answers HTTP on its socket. `screen` (ffsystemd.screen.check_screen) is the size the
        tab's client will ask for: the session's X screen has it before the client connects.

        Raises SessionLimitReached, SystemdUnavailable, LaunchCancelled (a cleanup stopped it
        meanwhile) or LaunchError; on any failure nothing is left behind (no unit, no process,
        no directory).

        With `wait=False` it returns the JSON of the session still starting (its id, url) at
        once and the launch goes on in the background: a failure then leaves only a final
        record (state `failed`, `message` saying the step and why) for the tab to read, which
        a cleanup removes like any ended session's; nothing else is left behind.
        """
        if self.active_count() >= self.settings.max_sessions:
            refusal = SessionLimitReached(
                f"{self.settings.max_sessions} sessions are already running (max_sessions); close one first"
            )
            self.refuse_launch("max-sessions", str(refusal))
            raise refusal
        url = start_url or self.settings.start_url
        claimed = await self.pool.claim(url, wait, screen) if self.settings.pool_size > 0 else None
        if claimed is not None:
            self.ctx.observers.emit(LaunchRequested(claimed.id, url))
            return self.to_json(claimed)
        session = self.ctx.new_session(url, warm=False)
        session.screen = screen
        self.ctx.observers.emit(LaunchRequested(session.id, url))
        if not wait:
            self.ctx.spawn(self.launcher.launch_in_background(session))
            return self.to_json(session)
        await self.launcher.launch(session)
        return self.to_json(session)

    def refuse_launch(self, reason: RefusalReason, message: str = "") -> None:
        """Tell the observers a launch request was refused before it became a session
        (max-sessions here; bad-request from the HTTP layer, which checks the body)."""
        self.ctx.observers.emit(LaunchRefused(reason, message))

    # --- cleanup ----------------------------------------------------------------
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
        return await self.stopper.cleanup(session, force=force, keep=keep)

    # --- idle culling -----------------------------------------------------------
    async def cull_idle(self) -> list[str]:
        """Stop running sessions with no connection and no traffic for idle_timeout; return their ids."""
        return await self.usage.cull()


__all__ = ["UINT64_MAX", "ManagerSettings", "Session", "SessionManager"]
