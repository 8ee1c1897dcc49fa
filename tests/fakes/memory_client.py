"""The client side of the in-memory systemd (tests/fakes/memory_systemd.py): SystemdPort and events.

`MemoryClient` is one connection to a `MemorySystemd`, implementing
`ffsystemd.systemd_api.SystemdPort` the way `SystemdClient` behaves on the real thing: calls go
through the manager (counted, faults injected), unit events reach the handlers only while
connected and (for UnitChanged) only for watched units, and a re-sync runs the connect callbacks.
"""

from __future__ import annotations

import asyncio
import fnmatch
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from fakes.memory_units import TICK, MemoryUnit, cmdline, led_groups, proc_stat
from ffsystemd.errors import JobFailed, NoSuchUnit, SystemdError, UnitExists
from ffsystemd.systemd_api import UnitChanged, UnitEvent, UnitInfo, UnitSnapshot
from ffsystemd.units import UnitProperty, unit_object_path

if TYPE_CHECKING:
    from fakes.memory_systemd import MemorySystemd


class MemoryClient:
    """One client connection to a MemorySystemd; implements SystemdPort."""

    def __init__(self, systemd: MemorySystemd) -> None:
        self.systemd = systemd
        self._connected = False
        self._handlers: list[Callable[[UnitEvent], None]] = []
        self._callbacks: list[Callable[[], Awaitable[None]]] = []
        self._watched: set[str] = set()
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def connected(self) -> bool:
        return self._connected and self.systemd.bus_up

    def add_event_handler(self, handler: Callable[[UnitEvent], None]) -> None:
        self._handlers.append(handler)

    def add_connect_callback(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._callbacks.append(callback)

    def deliver(self, event: UnitEvent) -> None:
        if not self.connected or (isinstance(event, UnitChanged) and event.unit not in self._watched):
            return
        for handler in list(self._handlers):
            handler(event)

    def resync_soon(self) -> None:
        task = asyncio.ensure_future(self._run_callbacks())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_callbacks(self) -> None:
        for callback in list(self._callbacks):
            await callback()

    async def connect(self) -> None:
        if self.connected:
            return
        self.systemd.enter("connect")
        self._connected = True
        self.systemd.ensure_ticker()  # units loaded before the loop ran
        await self._run_callbacks()

    def disconnect(self) -> None:
        """The bus went away under this connection (MemorySystemd.drop_bus)."""
        self._connected = False

    async def close(self) -> None:
        self._connected = False
        for task in list(self._tasks):
            task.cancel()

    async def _enter(self, method: str) -> None:
        await self.connect()
        self.systemd.enter(method)

    async def version(self) -> str:
        await self._enter("version")
        return "252-memory"

    async def start_transient_unit(
        self, name: str, properties: Sequence[UnitProperty], job_timeout: float = 30.0
    ) -> None:
        await self._enter("start_transient_unit")
        systemd = self.systemd
        if name in systemd.units:
            raise UnitExists("org.freedesktop.systemd1.UnitExists", f"Unit {name} already exists.")
        props = {p.name: p.value for p in properties}
        pids = [int(p) for p in props.pop("PIDs", [])]
        if not pids or any(proc_stat(p) is None for p in pids):
            raise SystemdError("org.freedesktop.DBus.Error.UnixProcessIdUnknown", f"no process {pids}")
        unit = MemoryUnit(name, pids, led_groups(pids), props)
        systemd.add_unit(unit)
        if systemd.hang_starts:
            await systemd.job(name, job_timeout)
        result = systemd.next_start_result()
        if result != "done":
            unit.result = "resources"
            systemd.set_state(unit, "failed", "failed")
            systemd.collect(unit)
            raise JobFailed(name, result)
        systemd.set_state(unit, "active", "running")

    async def stop_unit(self, name: str, job_timeout: float = 30.0) -> bool:
        await self._enter("stop_unit")
        systemd = self.systemd
        unit = systemd.units.get(name)
        if unit is None:
            return False
        systemd.set_state(unit, "deactivating", "stop-sigterm")
        systemd.signal(unit, signal.SIGTERM)
        systemd.signal(unit, signal.SIGCONT)
        grace = min(unit.properties.get("TimeoutStopUSec", 5_000_000) / 1e6, systemd.stop_timeout_cap)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while unit.has_processes() and loop.time() < deadline:
            await asyncio.sleep(TICK / 2)
        if unit.has_processes():
            systemd.signal(unit, signal.SIGKILL)
            while unit.has_processes():
                await asyncio.sleep(TICK / 2)
        if unit.active_state != "failed":
            systemd.set_state(unit, "inactive", "dead")
        if unit.active_state == "inactive" or unit.properties.get("CollectMode") == "inactive-or-failed":
            systemd.collect(unit)
        return True

    async def kill_unit(self, name: str, signal: int, who: str = "all") -> None:
        await self._enter("kill_unit")
        unit = self.systemd.units.get(name)
        if unit is None:
            raise NoSuchUnit("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        self.systemd.signal(unit, signal)

    async def reset_failed_unit(self, name: str) -> None:
        await self._enter("reset_failed_unit")
        unit = self.systemd.units.get(name)
        if unit is None:
            raise NoSuchUnit("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        if unit.active_state == "failed":
            unit.result = "success"
            self.systemd.collect(unit)

    async def unit_snapshot(self, name: str) -> UnitSnapshot:
        await self._enter("unit_snapshot")
        unit = self.systemd.units.get(name)
        return (
            unit.snapshot()
            if unit is not None
            else UnitSnapshot(load_state="not-found", active_state="inactive")
        )

    async def unit_result(self, name: str) -> str | None:
        await self._enter("unit_result")
        unit = self.systemd.units.get(name)
        return None if unit is None else unit.result

    async def watch_unit(self, name: str) -> None:
        self._watched.add(name)

    async def unwatch_unit(self, name: str) -> None:
        self._watched.discard(name)

    async def unit_processes(self, name: str) -> list[tuple[int, str]]:
        await self._enter("unit_processes")
        unit = self.systemd.units.get(name)
        if unit is None:
            raise NoSuchUnit("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        return [(pid, cmdline(pid)) for pid in unit.processes()]

    async def list_units_by_patterns(
        self, patterns: Sequence[str], states: Sequence[str] = ()
    ) -> list[UnitInfo]:
        await self._enter("list_units_by_patterns")
        return [
            UnitInfo(u.name, "", "loaded", u.active_state, u.sub_state, unit_object_path(u.name))
            for u in self.systemd.units.values()
            if any(fnmatch.fnmatchcase(u.name, p) for p in patterns)
            and (not states or u.active_state in states)
        ]
