"""An in-memory systemd user manager for the session manager's tests: no bus, no daemon.

    systemd = MemorySystemd()            # one "user manager", shared by every client
    manager = SessionManager(settings, systemd.client(), url_for=...)
    systemd.fail_next("stop_unit", StopFailedLikeError, times=1)
    systemd.kill_manager(); systemd.respawn()

`MemoryClient` implements `ffsystemd.systemd_api.SystemdPort` the way `SystemdClient` behaves on
the real thing, for transient scopes: a unit holds real PIDs (and the process groups they lead)
and lives while one of them does, then goes inactive and is collected (UnitChanged, UnitRemoved);
StopUnit sends SIGTERM, SIGKILL after TimeoutStopUSec (capped at `stop_timeout_cap`); a failed
unit is collected only with CollectMode=inactive-or-failed or by ResetFailedUnit. Faults are
methods (`fail_next`, `hang_start_jobs`, `set_start_result`, `fail_unit`, `vanish_unit`,
`kill_manager`/`respawn`, `drop_bus`/`revive`). Processes are only ever signalled by PID or by
the process group a unit's PID leads, never the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ffsystemd.errors import (
    JobFailed,
    NoSuchUnit,
    SystemdError,
    SystemdTimeout,
    SystemdUnavailable,
    UnitExists,
)
from ffsystemd.systemd_api import UnitChanged, UnitEvent, UnitInfo, UnitRemoved, UnitSnapshot
from ffsystemd.units import UnitProperty, unit_object_path

TICK = 0.02


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a live process; None for a gone one (zombies are gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X", "x") else (fields[0], int(fields[2]))


def _group_members(pgids: set[int]) -> set[int]:
    found: set[int] = set()
    if not pgids:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[1] in pgids:
            found.add(int(entry))
    return found


def _cmdline(pid: int) -> str:
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
        return sorted({p for p in self.pids if _stat(p) is not None} | _group_members(self.pgids))


@dataclass
class _Fault:
    error: Callable[[], BaseException]
    times: int  # <= 0: every call


@dataclass
class MemorySystemd:
    """The fake user manager: units, faults and inspection; `client()` gives a SystemdPort."""

    stop_timeout_cap: float = 3.0
    units: dict[str, MemoryUnit] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    manager_up: bool = True
    bus_up: bool = True
    hang_starts: bool = False
    start_results: list[str] = field(default_factory=list)  # results of the next start jobs
    _faults: dict[str, _Fault] = field(default_factory=dict)
    _clients: list[MemoryClient] = field(default_factory=list)
    _jobs: set[asyncio.Future[str]] = field(default_factory=set)
    _ticker: asyncio.Task[None] | None = None
    _protected: set[int] = field(default_factory=lambda: {os.getpid(), os.getpgrp()})

    def client(self) -> MemoryClient:
        """A new connection to this manager (one per SessionManager)."""
        client = MemoryClient(self)
        self._clients.append(client)
        return client

    # --- faults -------------------------------------------------------------------------
    def fail_next(self, method: str, error: Callable[[], BaseException], times: int = 1) -> None:
        """The next `times` calls of `method` (a SystemdPort method name; 0 = all) raise error()."""
        self._faults[method] = _Fault(error, times)

    def fail_with_systemd_error(
        self, method: str, name: str, message: str = "injected", times: int = 1
    ) -> None:
        """The next calls of `method` answer the D-Bus error `name` (as SystemdError)."""
        self.fail_next(method, lambda: SystemdError(name, message), times)

    def hang_start_jobs(self, hang: bool = True) -> None:
        """Start jobs never finish while set (the unit stays activating)."""
        self.hang_starts = hang

    def set_start_result(self, result: str, times: int = 1) -> None:
        """The next `times` start jobs finish with `result` (failed, timeout, ...)."""
        self.start_results.extend([result] * times)

    def kill_manager(self) -> None:
        """The manager leaves the bus: calls fail with SystemdUnavailable, job waits fail now."""
        self.manager_up = False
        self._fail_jobs("the systemd user manager went away")

    def respawn(self, keep_units: bool = False) -> None:
        """A manager is back on the bus (a fresh one forgets its units); clients re-sync."""
        self.manager_up = True
        if not keep_units:
            self.units.clear()
        for client in self._clients:
            if client.connected:
                client.resync_soon()

    def drop_bus(self) -> None:
        """The bus goes away: every client is disconnected and cannot connect until revive()."""
        self.bus_up = False
        self.kill_manager()
        for client in self._clients:
            client._connected = False

    def revive(self, keep_units: bool = False) -> None:
        """The bus and a manager are back; clients reconnect on their next connect()."""
        self.bus_up = True
        self.respawn(keep_units)

    def vanish_unit(self, name: str) -> bool:
        """Forget a unit silently (no signal); False if it was not loaded."""
        return self.units.pop(name, None) is not None

    def fail_unit(self, name: str, result: str = "oom-kill", kill: bool = True) -> None:
        """The unit fails with `result` (its processes SIGKILLed first when kill), as after an OOM kill."""
        unit = self.units[name]
        if kill:
            self._signal(unit, signal.SIGKILL)
        unit.result = result
        self._set_state(unit, "failed", "failed")
        if unit.properties.get("CollectMode", "inactive") == "inactive-or-failed":
            self._collect(unit)

    def start_scope(
        self, name: str, pid: int, collect_mode: str = "inactive-or-failed", active_state: str = "active"
    ) -> None:
        """A unit holding pid, started by someone else (another launcher, or before a restart)."""
        props = {"CollectMode": collect_mode, "TimeoutStopUSec": 2_000_000}
        pgids = {pid} if (_stat(pid) or ("", 0))[1] == pid else set()
        sub = "running" if active_state == "active" else "start"
        self.units[name] = MemoryUnit(name, [pid], pgids, props, active_state, sub)
        self._ensure_ticker()

    # --- inspection ---------------------------------------------------------------------
    def loaded_units(self) -> list[str]:
        return sorted(self.units)

    def unit_state(self, name: str) -> tuple[str, str] | None:
        unit = self.units.get(name)
        return None if unit is None else (unit.active_state, unit.result)

    def unit_pids(self, name: str) -> list[int]:
        return list(self.units[name].pids)

    def call_count(self, method: str) -> int:
        return self.calls[method]

    def waiting_jobs(self) -> int:
        """How many job waits hang (a hanging start)."""
        return len(self._jobs)

    # --- the manager's behaviour --------------------------------------------------------
    def enter(self, method: str) -> None:
        """Count a call; raise the injected fault, or SystemdUnavailable when nobody answers."""
        self.calls[method] += 1
        if not self.bus_up:
            raise SystemdUnavailable("not connected to the user bus (memory fake)")
        if not self.manager_up:
            raise SystemdUnavailable("no systemd user manager (memory fake)")
        fault = self._faults.get(method)
        if fault is not None:
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    del self._faults[method]
            raise fault.error()

    def emit(self, event: UnitEvent) -> None:
        for client in self._clients:
            client.deliver(event)

    def _set_state(self, unit: MemoryUnit, active: str, sub: str) -> None:
        unit.active_state, unit.sub_state = active, sub
        self.emit(UnitChanged(unit.name, {"active_state": active, "sub_state": sub, "result": unit.result}))

    def _collect(self, unit: MemoryUnit) -> None:
        if self.units.get(unit.name) is unit:
            del self.units[unit.name]
            self.emit(UnitRemoved(unit.name))

    def _signal(self, unit: MemoryUnit, signum: int) -> None:
        for pid in unit.processes():
            if pid > 1 and pid not in self._protected:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
        for pgid in unit.pgids - self._protected:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)

    def _fail_jobs(self, reason: str) -> None:
        for job in list(self._jobs):
            if not job.done():
                job.set_exception(SystemdUnavailable(reason))
        self._jobs.clear()

    async def job(self, unit: str, timeout: float) -> str:
        """Wait for a job that only a fault can end (hanging start)."""
        job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs.add(job)
        try:
            return await asyncio.wait_for(job, timeout)
        except asyncio.TimeoutError:
            raise SystemdTimeout(f"the job for {unit} did not finish within {timeout:g} s") from None
        finally:
            self._jobs.discard(job)

    def _ensure_ticker(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: the next call starts it
            if self._ticker is None or self._ticker.done():
                self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        """A unit whose processes are all gone goes inactive and is collected (as systemd does)."""
        while self.units:
            for unit in list(self.units.values()):
                if unit.active_state in ("active", "activating") and not unit.processes():
                    self._set_state(unit, "inactive", "dead")
                    self._collect(unit)
            await asyncio.sleep(TICK)

    def close(self) -> None:
        """End the ticker (tests call this at teardown)."""
        if self._ticker is not None:
            self._ticker.cancel()


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
        self.systemd._ensure_ticker()
        await self._run_callbacks()

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
        if not pids or any(_stat(p) is None for p in pids):
            raise SystemdError("org.freedesktop.DBus.Error.UnixProcessIdUnknown", f"no process {pids}")
        pgids = {p for p in pids if (_stat(p) or ("", 0))[1] == p}
        unit = MemoryUnit(name, pids, pgids, props)
        systemd.units[name] = unit
        systemd._ensure_ticker()
        if systemd.hang_starts:
            await systemd.job(name, job_timeout)
        result = systemd.start_results.pop(0) if systemd.start_results else "done"
        if result != "done":
            unit.result = "resources"
            systemd._set_state(unit, "failed", "failed")
            systemd._collect(unit)
            raise JobFailed(name, result)
        systemd._set_state(unit, "active", "running")

    async def stop_unit(self, name: str, job_timeout: float = 30.0) -> bool:
        await self._enter("stop_unit")
        systemd = self.systemd
        unit = systemd.units.get(name)
        if unit is None:
            return False
        systemd._set_state(unit, "deactivating", "stop-sigterm")
        systemd._signal(unit, signal.SIGTERM)
        systemd._signal(unit, signal.SIGCONT)
        grace = min(unit.properties.get("TimeoutStopUSec", 5_000_000) / 1e6, systemd.stop_timeout_cap)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while unit.processes() and loop.time() < deadline:
            await asyncio.sleep(TICK / 2)
        if unit.processes():
            systemd._signal(unit, signal.SIGKILL)
            while unit.processes():
                await asyncio.sleep(TICK / 2)
        if unit.active_state != "failed":
            systemd._set_state(unit, "inactive", "dead")
        if unit.active_state == "inactive" or unit.properties.get("CollectMode") == "inactive-or-failed":
            systemd._collect(unit)
        return True

    async def kill_unit(self, name: str, signal: int, who: str = "all") -> None:
        await self._enter("kill_unit")
        unit = self.systemd.units.get(name)
        if unit is None:
            raise NoSuchUnit("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        self.systemd._signal(unit, signal)

    async def reset_failed_unit(self, name: str) -> None:
        await self._enter("reset_failed_unit")
        unit = self.systemd.units.get(name)
        if unit is None:
            raise NoSuchUnit("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        if unit.active_state == "failed":
            unit.result = "success"
            self.systemd._collect(unit)

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
        return [(pid, _cmdline(pid)) for pid in unit.processes()]

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
