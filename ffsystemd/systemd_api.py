"""What the session layers may ask of systemd, in their own terms: a Protocol, snapshots, events.

`SystemdClient` (systemd.py, the only module that speaks D-Bus) implements `SystemdPort`; the
tests' in-memory fake (tests/fakes/memory_systemd.py) implements it too. Nothing here names a
D-Bus interface or property: values arrive unwrapped, with None for systemd's "not available"
(and "infinity" for limits), so the session layers never see UINT64_MAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .units import UnitProperty


@dataclass(frozen=True)
class UnitSnapshot:
    """The unit and scope properties the session layers use; None where unknown or not available."""

    load_state: str | None = None
    active_state: str | None = None
    sub_state: str | None = None
    result: str | None = None
    memory_current: int | None = None
    memory_max: int | None = None
    tasks_current: int | None = None
    tasks_max: int | None = None
    cpu_quota_per_sec_usec: int | None = None
    cpu_usage_nsec: int | None = None
    control_group: str | None = None

    @property
    def loaded(self) -> bool:
        """systemd knows this unit (it is neither not-found nor unreadable) and reports a state."""
        return self.load_state not in ("not-found", "error") and bool(self.active_state)

    def updated(self, changes: Mapping[str, Any]) -> UnitSnapshot:
        """A copy with some fields (named as in this class) replaced, e.g. from `UnitChanged`."""
        return dataclasses.replace(self, **changes)


SNAPSHOT_FIELDS = frozenset(f.name for f in dataclasses.fields(UnitSnapshot))


@dataclass(frozen=True)
class UnitInfo:
    """One row of ListUnitsByPatterns."""

    name: str
    description: str
    load_state: str
    active_state: str
    sub_state: str
    path: str


@dataclass(frozen=True)
class UnitChanged:
    """Some properties of a watched unit changed; `changes` is keyed by `UnitSnapshot` field names."""

    unit: str
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class UnitRemoved:
    """systemd unloaded a unit (any unit: the receiver picks its own)."""

    unit: str


UnitEvent = UnitChanged | UnitRemoved


class SystemdPort(Protocol):
    """The calls the session manager makes on the systemd user manager.

    Every call connects first if needed and raises the typed errors of `ffsystemd.errors`:
    SystemdUnavailable (no bus or no manager), SystemdTimeout, SystemdError and its subclasses.
    """

    @property
    def connected(self) -> bool:
        """True while connected to the user manager's bus."""
        ...

    async def connect(self) -> None:
        """Connect (no-op when connected) and run the connect callbacks; SystemdUnavailable otherwise."""
        ...

    async def close(self) -> None:
        """Disconnect; pending job waits fail."""
        ...

    def add_event_handler(self, handler: Callable[[UnitEvent], None]) -> None:
        """Call handler(event) for every change of a watched unit and every UnitRemoved."""
        ...

    def add_connect_callback(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await callback() after every (re)connection and when a new manager takes the bus name."""
        ...

    async def version(self) -> str:
        """The manager's version (proves that a user manager answers)."""
        ...

    async def start_transient_unit(
        self, name: str, properties: Sequence[UnitProperty], job_timeout: float = 30.0
    ) -> None:
        """Start a transient unit and wait for its start job (UnitExists, JobFailed, SystemdTimeout)."""
        ...

    async def stop_unit(self, name: str, job_timeout: float = 30.0) -> bool:
        """Stop a unit and wait for the job; False when it was not loaded."""
        ...

    async def kill_unit(self, name: str, signal: int, who: str = "all") -> None:
        """Send a signal to the unit's processes."""
        ...

    async def reset_failed_unit(self, name: str) -> None:
        """Reset a unit's failed state so it is collected."""
        ...

    async def unit_snapshot(self, name: str) -> UnitSnapshot:
        """The unit's current properties (load_state not-found when systemd does not know it)."""
        ...

    async def unit_result(self, name: str) -> str | None:
        """Only the unit's Result (one call), None when unknown."""
        ...

    async def watch_unit(self, name: str) -> None:
        """Receive UnitChanged events of this unit (kept across reconnections)."""
        ...

    async def unwatch_unit(self, name: str) -> None:
        """Stop receiving UnitChanged events of this unit."""
        ...

    async def unit_processes(self, name: str) -> list[tuple[int, str]]:
        """(pid, command line) of every process in the unit's cgroup."""
        ...

    async def list_units_by_patterns(
        self, patterns: Sequence[str], states: Sequence[str] = ()
    ) -> list[UnitInfo]:
        """The loaded units whose names match the glob patterns."""
        ...
