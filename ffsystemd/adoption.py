"""Re-adoption and re-sync: after every (re)connection, make the registry match systemd's units.

Ours (ffsystemd.ownership) = our unit-name prefix, our server id in the unit's Description AND
a session directory of our server id under our session_root. Running units of
ours that the registry does not know are re-adopted (a restarted server); dead or failed ones
are stopped, reset and their directory removed; directories without a unit are removed;
sessions whose unit vanished during an outage end. Another server's unit or directory --
running, starting, dead or being filled by its launch -- is never touched. A running unit of
ours whose session was an unclaimed warm-pool one (`pooled` in its metadata) is stopped like a
dead one: the new server's pool starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

from .activity import read_last_activity
from .context import ManagerContext
from .ending import Stopper
from .errors import FFSystemdError
from .outcome import Cause, Ending
from .ownership import is_pooled_dir, owner_of_dir, owner_of_unit
from .session import Session, SessionState, read_created_and_url
from .session_dirs import discard_session_dir, list_session_dirs, session_paths
from .units import UNIT_GLOB, session_id_of, unit_name
from .watch import Watcher

log = logging.getLogger(__name__)


def is_xpra_server(cmdline: str) -> bool:
    """True for the command line of an `xpra start` server process."""
    words = cmdline.split()
    return any(w.endswith("xpra") and nxt == "start" for w, nxt in itertools.pairwise(words))


class Adopter:
    """Runs the re-sync after each connection (one at a time)."""

    def __init__(
        self, ctx: ManagerContext, watcher: Watcher, stopper: Stopper, on_synced: Callable[[], None]
    ) -> None:
        self.ctx = ctx
        self.watcher = watcher
        self.stopper = stopper
        self.on_synced = on_synced  # e.g. make the next status read fresh figures
        self._lock = asyncio.Lock()

    async def resync(self) -> None:
        """After (re)connecting: adopt our running units, end vanished sessions, clean the rest."""
        async with self._lock:
            sessions, settings = self.ctx.sessions, self.ctx.settings
            try:
                listed = [
                    (sid, info)
                    for info in await self.ctx.systemd.list_units_by_patterns([UNIT_GLOB])
                    if (sid := session_id_of(info.name)) is not None
                ]
            except FFSystemdError as exc:
                log.warning("ffsystemd: cannot list our units: %s", exc)
                return
            units = {sid: info for sid, info in listed if settings.owns(owner_of_unit(info.description))}
            anyones = {sid for sid, _info in listed}
            root = settings.session_root
            dirs = {
                sid
                for sid in list_session_dirs(root)
                if settings.owns(owner_of_dir(session_paths(root, sid).base))
            }
            for session in list(sessions.values()):
                if session.endable and session.id not in units:
                    self.ctx.spawn(self.stopper.end(session, Ending(Cause.UNIT_VANISHED), stop_unit=False))
            for sid, info in units.items():
                # Ours = our name prefix, our server id in its Description AND a directory of our
                # server id under our session_root; anything else is another server's: untouched.
                if sid in sessions or sid not in dirs:
                    continue
                if info.active_state == "active" and not is_pooled_dir(session_paths(root, sid).base):
                    await self.adopt(sid)
                else:
                    await self.stopper.discard_unit(sid, info.active_state)
            for sid in dirs - anyones - set(sessions):
                if not settings.keep_profile:
                    log.info("ffsystemd: removing session directory %s without a unit", sid)
                with contextlib.suppress(OSError, ValueError):
                    discard_session_dir(session_paths(settings.session_root, sid), settings.keep_profile)
            self.on_synced()

    async def adopt(self, sid: str) -> None:
        """Take over a running unit of ours: list it, watch its unit and its Xpra."""
        paths = session_paths(self.ctx.settings.session_root, sid)
        created, start_url = read_created_and_url(paths, self.ctx.settings.start_url)
        session = Session(
            id=sid,
            unit=unit_name(sid),
            paths=paths,
            start_url=start_url,
            created=created,
            state=SessionState.RUNNING,
            adopted=True,
            unit_started=True,
            last_activity=read_last_activity(paths),  # as the server before us recorded it
        )
        self.ctx.sessions[sid] = session
        await self.ctx.systemd.watch_unit(session.unit)
        try:
            processes = await self.ctx.systemd.unit_processes(session.unit)
        except FFSystemdError as exc:
            log.warning("ffsystemd: cannot list the processes of %s: %s", session.unit, exc)
            processes = None
        if processes is not None:
            xpra = [pid for pid, cmd in processes if is_xpra_server(cmd)]
            if not xpra:  # what is left (Xvfb, Firefox) cannot be reached: end it
                await self.stopper.end(session, Ending(Cause.XPRA_MISSING), stop_unit=True)
                return
            session.main_pid = min(xpra)
            self.watcher.watch_adopted_pid(session, session.main_pid)
        await self.watcher.refresh(session)
        log.info("ffsystemd: re-adopted running session %s (Xpra pid %s)", sid, session.main_pid)
