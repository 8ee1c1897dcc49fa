"""The warm pool: sessions started ahead of any request, so that a launch can claim one at once.

It owns which sessions are pooled (`Session.pooled`): it keeps `pool_size` of them, refills in
the background (one start at a time, backing off while starts fail), re-creates one that
crashed or ended, replaces one older than `pool_max_age`, and stops all of them at shutdown.

A pooled session is a complete session of its own, made in advance: its own id, directory,
profile, cache, scope and limits, started like any launch but *warm* (ffsystemd.warm): Firefox
runs on about:blank and waits for its page. Until it is claimed it is in the registry but not
in the user's session list, does not count toward `max_sessions`, and is never culled as idle.
`claim(url)` takes the oldest ready one, makes it an ordinary session (listed, counted, its
`created` and idle clock start now, its metadata rewritten) and hands it the URL; when none is
ready, or the URL could not be handed over, the launch takes the cold path.

Driven by the manager: `fill()` after start-up, `tick()` from its housekeeping, `on_event`
as an observer of its session events, `shutdown()` first when it shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from .context import ManagerContext
from .ending import Stopper
from .errors import FFSystemdError
from .events import PoolClaimed, PoolOutcome, SessionEnded, SessionEvent
from .launch import Launcher
from .session import Owner, Session, SessionState, write_metadata
from .session_dirs import SessionPaths
from .warm import BLANK_URL, OpenFailed, is_ready, send_url, url_taken

log = logging.getLogger("ffsystemd.pool")

MAX_BACKOFF = 60.0
REFILL_DELAY = 3.0
"""Seconds a refill waits after a claim, so the claimed session's page loads first (2 cores)."""
Sender = Callable[[SessionPaths, str, tuple[int, int] | None], None]
Taken = Callable[[SessionPaths], Awaitable[None]]


class WarmPool:
    """The pooled sessions of one manager (see the module docstring)."""

    def __init__(
        self,
        ctx: ManagerContext,
        launcher: Launcher,
        stopper: Stopper,
        new_session: Callable[[str], Session],
        send: Sender = send_url,
        taken: Taken = url_taken,
        ready: Callable[[SessionPaths], bool] = is_ready,
    ) -> None:
        self.ctx = ctx
        self.launcher = launcher
        self.stopper = stopper
        self.new_session = new_session  # registers a STARTING session (owner LAUNCH) for this URL
        self.send, self.taken = send, taken  # hand a URL over, then wait until Firefox took it
        self.ready = ready
        self._filler: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0
        self._not_before = 0.0  # monotonic: no refill before (backing off after failures)
        self._retiring: set[str] = set()  # pooled sessions being stopped (too old, broken, ended)
        self.refill_delay = REFILL_DELAY

    # --- queries ------------------------------------------------------------------
    @property
    def size(self) -> int:
        return 0 if self._closing else self.ctx.settings.pool_size

    def members(self) -> list[Session]:
        """The pooled (unclaimed) sessions the pool keeps, oldest first, in any state (not those
        it is stopping)."""
        return sorted(
            (s for s in self.ctx.sessions.values() if s.pooled and s.id not in self._retiring),
            key=lambda s: s.created,
        )

    def ready_members(self) -> list[Session]:
        """Pooled sessions that can be claimed now: running, nobody ending them, Firefox waiting."""
        return [
            s
            for s in self.members()
            if s.state is SessionState.RUNNING and s.owner is Owner.NONE and self.ready(s.paths)
        ]

    def counts(self) -> dict[str, int]:
        """Pooled sessions by readiness: `ready` (claimable now) and `starting` (all others)."""
        members, ready = self.members(), len(self.ready_members())
        return {"ready": ready, "starting": len(members) - ready}

    # --- claim --------------------------------------------------------------------
    async def claim(
        self, url: str, wait: bool = True, screen: tuple[int, int] | None = None
    ) -> Session | None:
        """Make the oldest ready pooled session the caller's, opened on url (its X screen first
        set to `screen`, ffsystemd.screen); None: take the cold path.

        A session whose Firefox does not take the URL is stopped (nothing of it is left). With
        `wait=False` it returns once the URL is written to the session's claim FIFO, and the
        hand-over is confirmed in the background (its client connects meanwhile); should
        Firefox's remote client then fail, the session stays the user's, on its blank page
        (logged, counted as `failed`).
        """
        started = time.monotonic()
        candidates = self.ready_members()
        if not candidates:
            self._claimed(None, "miss", started)
            self.fill()
            return None
        session = candidates[0]
        # In one step, before any await: from here it is an ordinary session (listed, counted).
        session.pooled = False
        session.start_url = url
        session.screen = screen
        session.created = datetime.now(timezone.utc)
        session.last_activity = None
        self._not_before = max(self._not_before, time.monotonic() + self.refill_delay)
        self.fill()
        try:
            write_metadata(session, self.ctx.settings.server_id)
            self.send(session.paths, url, screen)
            if not wait:
                self.ctx.spawn(self._confirm(session, started))
                return session
            await self.taken(session.paths)
        except (OpenFailed, OSError) as exc:
            log.warning(
                "pool session %s did not take its page (%s): stopping it, cold launch", session.id, exc
            )
            session.pooled = True  # hidden again while it is stopped
            self._retire(session)
            self._claimed(session.id, "failed", started)
            return None
        self._claimed(session.id, "hit", started)
        return session

    async def _confirm(self, session: Session, started: float) -> None:
        try:
            await self.taken(session.paths)
        except OpenFailed as exc:
            log.warning("claimed session %s did not open its page (%s): it stays blank", session.id, exc)
            self._claimed(session.id, "failed", started)
            return
        self._claimed(session.id, "hit", started)

    def _claimed(self, session_id: str | None, outcome: PoolOutcome, started: float) -> None:
        self.ctx.observers.emit(PoolClaimed(session_id, outcome, time.monotonic() - started))

    # --- refill, replacement ------------------------------------------------------
    def fill(self) -> None:
        """Start refilling in the background unless already refilling or full."""
        if self.size <= 0 or len(self.members()) >= self.size:
            return
        if self._filler is None or self._filler.done():
            self._filler = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while not self._closing and len(self.members()) < self.size:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            session = self.new_session(BLANK_URL)
            started = time.monotonic()
            try:
                await self.launcher.launch(session)
            except FFSystemdError as exc:
                self._failed(f"pool session {session.id} did not start: {exc}")
                continue
            log.info(
                "pool session %s started (%.2f s); pool %s",
                session.id,
                time.monotonic() - started,
                self.counts(),
            )

    def _failed(self, message: str) -> None:
        self._failures += 1
        backoff = min(MAX_BACKOFF, 2.0**self._failures)
        self._not_before = time.monotonic() + backoff
        log.warning("%s; next pool start in %.0f s", message, backoff)

    def on_event(self, event: SessionEvent) -> None:
        """A manager observer: a pooled session that ended is forgotten and replaced."""
        if isinstance(event, SessionEnded):
            session = self.ctx.sessions.get(event.session_id)
            if session is not None and session.pooled:
                if not self._closing:
                    self._failed(f"pool session {session.id} ended ({event.message})")
                self._retire(session)

    def tick(self) -> None:
        """From the manager's housekeeping: replace pooled sessions past pool_max_age; refill."""
        if self._closing:
            return
        max_age = self.ctx.settings.pool_max_age
        now = datetime.now(timezone.utc)
        for session in self.members():
            if not session.active:  # ended, and its record was not dropped (a failed stop)
                self._retire(session)
                continue
            if (
                session.state is SessionState.RUNNING
                and session.owner is Owner.NONE
                and self.ready(session.paths)
            ):
                self._failures = 0  # a start that got this far is not failing
            if max_age > 0 and session.endable and (now - session.created).total_seconds() >= max_age:
                log.info(
                    "pool session %s is older than pool_max_age (%g s): replacing it", session.id, max_age
                )
                self._retire(session)
        self.fill()

    def _retire(self, session: Session) -> None:
        """Give a pooled session up (ended, too old, broken): stop it, drop its record, refill."""
        if session.id not in self._retiring:
            self._retiring.add(session.id)
            self.ctx.spawn(self._forget(session))

    async def _forget(self, session: Session) -> None:
        try:
            await self.stopper.cleanup(session, force=False, keep=False)
        except FFSystemdError as exc:
            log.warning("pool session %s: cleanup failed: %s", session.id, exc)
        finally:
            self._retiring.discard(session.id)
        if session.id in self.ctx.sessions:  # not stopped (e.g. an outage): try again next tick
            self.ctx.sessions[session.id].pooled = True
        self.fill()

    # --- shutdown -------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop refilling and stop every pooled session (the manager bounds it in time)."""
        self._closing = True
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(BaseException):
                await self._filler
        members = [s for s in self.ctx.sessions.values() if s.pooled]
        if members:
            log.info("stopping %d pool session(s)", len(members))
        await asyncio.gather(
            *(self.stopper.cleanup(s, force=False, keep=False) for s in members), return_exceptions=True
        )
