"""The unit store of the in-memory systemd (tests/fakes/memory_systemd.py): scopes and their processes.

A `MemoryUnit` holds real PIDs (and the process groups they lead, read from /proc) and lives
while one of them does. `UnitStore` keeps the loaded units and moves them between states as
systemd does: a unit whose processes are all gone goes inactive and is collected (a ticker every
`TICK` seconds), a signal reaches only the unit's processes and groups, never the test's own.
Every state change is handed to `emit` (event delivery is the client's, memory_client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from ffsystemd.systemd_api import UnitChanged, UnitEvent, UnitRemoved, UnitSnapshot

TICK = 0.02


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a live process; None for a gone one (zombies are gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X", "x") else (fields[0], int(fields[2]))


def led_groups(pids: list[int]) -> set[int]:
    """The process groups among pids' that a pid of them leads."""
    return {p for p in pids if (proc_stat(p) or ("", 0))[1] == p}


def _group_members(pgids: set[int]) -> set[int]:
    found: set[int] = set()
    if not pgids:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := proc_stat(int(entry))) is not None and stat[1] in pgids:
            found.add(int(entry))
    return found


def _group_exists(pgid: int) -> bool:
    """A process group with any member, zombies included (signal 0 sends nothing)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmdline(pid: int) -> str:
    """The command line of pid, '' if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class MemoryUnit:
    """One transient scope of the fake manager."""

    name: str
    pids: list[int]
    pgids: set[int]
    properties: dict[str, Any]
    active_state: str = "activating"
    sub_state: str = "start"
    result: str = "success"

    def snapshot(self) -> UnitSnapshot:
        """The typed properties the client hands out (figures only while the unit is live)."""

        def limit(key: str) -> int | None:
            value = self.properties.get(key)
            return None if value is None or value >= 2**64 - 1 else int(value)

        live = self.active_state in ("active", "deactivating")
        return UnitSnapshot(
            load_state="loaded",
            active_state=self.active_state,
            sub_state=self.sub_state,
            result=self.result,
            memory_current=(50 << 20) if live else None,
            memory_max=limit("MemoryMax"),
            tasks_current=len(self.processes()) if live else None,
            tasks_max=limit("TasksMax"),
            cpu_quota_per_sec_usec=limit("CPUQuotaPerSecUSec"),
            cpu_usage_nsec=1_000_000,
        )

    def processes(self) -> list[int]:
        """Live PIDs of the unit: its PIDs and the members of the process groups they lead."""
        return sorted({p for p in self.pids if proc_stat(p) is not None} | _group_members(self.pgids))

    def has_processes(self) -> bool:
        """Whether processes() is not empty, without scanning /proc while one of its PIDs lives
        (the ticker asks this of every unit every TICK) or when none of its groups exists."""
        if any(proc_stat(p) is not None for p in self.pids):
            return True
        return bool(_group_members({g for g in self.pgids if _group_exists(g)}))


@dataclass
class UnitStore:
    """The loaded units, their state changes and collection; subclasses deliver the events."""

    units: dict[str, MemoryUnit] = field(default_factory=dict)
    _ticker: asyncio.Task[None] | None = None
    _protected: set[int] = field(default_factory=lambda: {os.getpid(), os.getpgrp()})

    def emit(self, event: UnitEvent) -> None:
        """Hand a unit event to whoever listens (the clients); nothing here."""

    def add_unit(self, unit: MemoryUnit) -> None:
        """Load unit and make sure the ticker collects it once its processes are gone."""
        self.units[unit.name] = unit
        self.ensure_ticker()

    def set_state(self, unit: MemoryUnit, active: str, sub: str) -> None:
        """Move unit to active/sub state and emit the change."""
        unit.active_state, unit.sub_state = active, sub
        self.emit(UnitChanged(unit.name, {"active_state": active, "sub_state": sub, "result": unit.result}))

    def collect(self, unit: MemoryUnit) -> None:
        """Unload unit (if it is still the loaded one of its name) and emit its removal."""
        if self.units.get(unit.name) is unit:
            del self.units[unit.name]
            self.emit(UnitRemoved(unit.name))

    def signal(self, unit: MemoryUnit, signum: int) -> None:
        """Send signum to unit's processes and the groups they lead (never the test's own)."""
        for pid in unit.processes():
            if pid > 1 and pid not in self._protected:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
        for pgid in unit.pgids - self._protected:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)

    def ensure_ticker(self) -> None:
        """Run the ticker that collects units whose processes are gone (once a loop runs)."""
        with contextlib.suppress(RuntimeError):  # no running loop: the next call starts it
            if self._ticker is None or self._ticker.done():
                self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        """A unit whose processes are all gone goes inactive and is collected (as systemd does)."""
        while self.units:
            for unit in list(self.units.values()):
                if unit.active_state in ("active", "activating") and not unit.has_processes():
                    self.set_state(unit, "inactive", "dead")
                    self.collect(unit)
            await asyncio.sleep(TICK)

    def close(self) -> None:
        """End the ticker (tests call this at teardown)."""
        if self._ticker is not None:
            self._ticker.cancel()

    # --- inspection ---------------------------------------------------------------------
    def loaded_units(self) -> list[str]:
        """Names of the loaded units, sorted."""
        return sorted(self.units)

    def unit_state(self, name: str) -> tuple[str, str] | None:
        """(active state, result) of a loaded unit, None if it is not loaded."""
        unit = self.units.get(name)
        return None if unit is None else (unit.active_state, unit.result)

    def unit_pids(self, name: str) -> list[int]:
        """The PIDs a loaded unit was started with."""
        return list(self.units[name].pids)
