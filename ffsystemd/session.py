"""The session record: what the manager knows of one Firefox session, and its public JSON.

A session's lifecycle is two fields: `state` (what the user sees, `SessionState`) and `owner`
(which coroutine is ending it, `Owner`). Every path that ends a session must first win
`Session.claim()`; the loser leaves the session alone. See `SessionManager` for the table of
transitions.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from .ownership import METADATA_FILE, read_metadata, session_metadata
from .session_dirs import SessionPaths, replace_session_file
from .systemd_api import UnitSnapshot

if TYPE_CHECKING:
    from .process import GatedProcess


class SessionState(str, Enum):
    """What a session is doing, as the session JSON says it."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        """Starting, running or stopping: it counts against max_sessions."""
        return self in (SessionState.STARTING, SessionState.RUNNING, SessionState.STOPPING)


ACTIVE_STATE_TO_STATE = {
    "active": SessionState.RUNNING.value,
    "reloading": SessionState.RUNNING.value,
    "activating": SessionState.STARTING.value,
    "deactivating": SessionState.STOPPING.value,
    "inactive": SessionState.STOPPED.value,
    "failed": SessionState.FAILED.value,
}
"""The session state a unit's ActiveState reads as (for listings that have only the unit)."""


class Owner(str, Enum):
    """Which coroutine owns a session's ending; NONE while nobody is ending it.

    LAUNCH owns a session from its creation until it runs (and tears it down if the launch
    fails); CLEANUP is a cleanup request stopping it; END is the end of a session that stopped
    by itself (Xpra exited, the unit failed or vanished, idle culling). END is terminal: the
    record stays, final, until a cleanup removes it.
    """

    NONE = "none"
    LAUNCH = "launch"
    CLEANUP = "cleanup"
    END = "end"


@dataclass
class Session:
    """One Firefox session created (or re-adopted) by this launcher."""

    id: str
    unit: str
    paths: SessionPaths
    start_url: str
    created: datetime
    state: SessionState = SessionState.STARTING
    owner: Owner = Owner.NONE
    result: str | None = None
    message: str | None = None
    process: GatedProcess | None = None  # our child; None for a re-adopted session
    main_pid: int | None = None
    adopted: bool = False
    unit_started: bool = False  # the unit is ours to stop (its start was asked for and not refused)
    stop_failed: bool = False  # the last stop failed: a cleanup must stop the unit again
    ended_at: float | None = None  # monotonic time the record became final
    launch_task: asyncio.Task[None] | None = None
    watch_task: asyncio.Task[None] | None = None
    last_activity: datetime | None = None
    connections: int = 0
    unit_state: UnitSnapshot = field(default_factory=UnitSnapshot)  # the last one systemd told us
    unit_state_at: float = 0.0
    warm: bool = False  # started for the warm pool: Firefox takes its page later (ffsystemd.warm)
    pooled: bool = False  # in the warm pool, not yet claimed: hidden, not counted (ffsystemd.pool)
    step: str | None = None  # the launch step that failed (set only when it failed while starting)
    log_tail: list[str] | None = None  # the Xpra log's last lines then (bounded: record_tail)
    screen: tuple[int, int] | None = None  # the first screen size the launch asked for (ffsystemd.screen)
    keep_record: bool = False  # a launch nobody waits for: its teardown leaves the record listed

    @property
    def active(self) -> bool:
        """Starting, running or stopping: it counts against max_sessions."""
        return self.state.live

    def claim(self, owner: Owner) -> bool:
        """Make `owner` the one coroutine ending this session; False if another already owns it."""
        if self.owner is not Owner.NONE:
            return False
        self.owner = owner
        return True

    def take_over_launch(self) -> bool:
        """A cleanup takes a starting session from its launch (which then tears it down)."""
        if self.owner is not Owner.LAUNCH:
            return False
        self.owner = Owner.CLEANUP
        return True

    def release(self, owner: Owner) -> None:
        """`owner` is done (the launch succeeded, a cleanup failed): others may claim the session."""
        if self.owner is owner:
            self.owner = Owner.NONE

    @property
    def endable(self) -> bool:
        """Running and nobody is ending it: an end (crash, vanished unit, culling) may claim it."""
        return self.state is SessionState.RUNNING and self.owner is Owner.NONE

    @property
    def tracked(self) -> bool:
        """Live figures are worth reading: running, or being stopped by a cleanup."""
        if self.state is SessionState.RUNNING:
            return self.owner is Owner.NONE
        return self.state is SessionState.STOPPING and self.owner is Owner.CLEANUP

    @property
    def child_exited(self) -> bool:
        """Our own Xpra child has exited (False for a re-adopted session)."""
        return self.process is not None and self.process.exited


RECORD_TAIL_LINES = 20
RECORD_TAIL_CHARS = 4096
RECORD_LINE_CHARS = 400


def record_tail(lines: list[str]) -> list[str]:
    """The Xpra log lines a failed launch's record carries: the last RECORD_TAIL_LINES, each cut
    to RECORD_LINE_CHARS, together at most RECORD_TAIL_CHARS (every list poll carries them; the
    whole log, bounded too, is kept under `<session_root>/failed/`)."""
    kept: list[str] = []
    total = 0
    for line in reversed(lines[-RECORD_TAIL_LINES:]):
        if len(line) > RECORD_LINE_CHARS:
            line = line[: RECORD_LINE_CHARS - 1] + "…"
        total += len(line)
        if total > RECORD_TAIL_CHARS:
            break
        kept.append(line)
    return kept[::-1]


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, or None."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def session_json(session: Session, url: str, server_id: str = "") -> dict[str, Any]:
    """Render one session as the public session JSON (None where systemd reports "not available");
    `step` and `log_tail` are set only for a launch that failed while nobody waited for it."""
    unit = session.unit_state
    live = session.state in (SessionState.RUNNING, SessionState.STOPPING)
    return {
        "id": session.id,
        "unit": session.unit,
        "state": session.state.value,
        "sub_state": unit.sub_state,
        "result": session.result,
        "message": session.message,
        "main_pid": session.main_pid if live else None,
        "created": iso(session.created),
        "url": url,
        "start_url": session.start_url,
        **unit_figures(unit, live),
        "last_activity": iso(session.last_activity),
        "connections": session.connections,
        "adopted": session.adopted,
        "server_id": server_id or None,
        "step": session.step,
        "log_tail": None if session.log_tail is None else list(session.log_tail),
    }


def write_metadata(session: Session, server_id: str) -> None:
    """Record, before the unit starts, whose session this is and what a re-adopting server needs."""
    metadata = session_metadata(
        session_id=session.id,
        server_id=server_id or None,
        unit=session.unit,
        start_url=session.start_url,
        created=iso(session.created) or "",
        pooled=session.pooled,
    )
    if not replace_session_file(session.paths, METADATA_FILE, json.dumps(metadata).encode()):
        raise FileNotFoundError(f"session directory {session.paths.base} is gone")


def read_created_and_url(paths: SessionPaths, default_url: str) -> tuple[datetime, str]:
    """(created, start_url) from a session's metadata; the directory's mtime and default_url if unreadable."""
    try:
        metadata = read_metadata(paths.base) or {}
        created = datetime.fromisoformat(str(metadata["created"]).replace("Z", "+00:00"))
        return created, str(metadata.get("start_url") or default_url)
    except (OSError, ValueError, KeyError, TypeError):
        return datetime.fromtimestamp(paths.base.stat().st_mtime, timezone.utc), default_url


def unit_figures(unit: UnitSnapshot, live: bool) -> dict[str, Any]:
    """The limits and usage of a session's scope as its JSON gives them (the REST API and
    `ffsystemd list` alike): current figures only while it runs, cpu_quota in percent."""
    quota = unit.cpu_quota_per_sec_usec
    return {
        "memory_current": unit.memory_current if live else None,
        "memory_max": unit.memory_max,
        "tasks_current": unit.tasks_current if live else None,
        "tasks_max": unit.tasks_max,
        "cpu_quota": None if quota is None else round(quota / 10_000, 2),
        "cpu_usage_nsec": unit.cpu_usage_nsec,
    }
