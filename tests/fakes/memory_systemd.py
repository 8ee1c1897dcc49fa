"""An in-memory systemd user manager for the session manager's tests: no bus, no daemon.

    systemd = MemorySystemd()            # one "user manager", shared by every client
    manager = SessionManager(settings, systemd.client(), url_for=...)
    systemd.fail_next("stop_unit", StopFailedLikeError, times=1)
    systemd.kill_manager(); systemd.respawn()

It behaves like the real thing for transient scopes, in three parts:
- memory_units.py, the unit store: a unit holds real PIDs (and the process groups they lead)
  and lives while one of them does, then goes inactive and is collected (UnitChanged,
  UnitRemoved); a failed unit is collected only with CollectMode=inactive-or-failed or by
  ResetFailedUnit. Processes are only ever signalled by PID or by the process group a unit's
  PID leads, never the test's own.
- memory_faults.py, fault injection: `fail_next`, `fail_with_systemd_error`, `hang_start_jobs`,
  `set_start_result`; here the manager's own faults: `fail_unit`, `vanish_unit`,
  `kill_manager`/`respawn`, `drop_bus`/`revive`.
- memory_client.py, event delivery and the `ffsystemd.systemd_api.SystemdPort` methods:
  `MemoryClient`; StopUnit sends SIGTERM, SIGKILL after TimeoutStopUSec (capped at
  `stop_timeout_cap`).
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass, field

from fakes.memory_client import MemoryClient
from fakes.memory_faults import FaultPlan
from fakes.memory_units import MemoryUnit, UnitStore, led_groups
from ffsystemd.errors import SystemdUnavailable
from ffsystemd.systemd_api import UnitEvent

__all__ = ["MemoryClient", "MemorySystemd", "MemoryUnit"]


@dataclass
class MemorySystemd(UnitStore, FaultPlan):
    """The fake user manager: units, faults and inspection; `client()` gives a SystemdPort."""

    stop_timeout_cap: float = 3.0
    calls: Counter[str] = field(default_factory=Counter)
    manager_up: bool = True
    bus_up: bool = True
    _clients: list[MemoryClient] = field(default_factory=list)

    def client(self) -> MemoryClient:
        """A new connection to this manager (one per SessionManager)."""
        client = MemoryClient(self)
        self._clients.append(client)
        return client

    def enter(self, method: str) -> None:
        """Count a call; raise the injected fault, or SystemdUnavailable when nobody answers."""
        self.calls[method] += 1
        if not self.bus_up:
            raise SystemdUnavailable("not connected to the user bus (memory fake)")
        if not self.manager_up:
            raise SystemdUnavailable("no systemd user manager (memory fake)")
        self.raise_injected(method)

    def emit(self, event: UnitEvent) -> None:
        """Deliver a unit event to every client (each filters by connection and watch)."""
        for client in self._clients:
            client.deliver(event)

    def call_count(self, method: str) -> int:
        """How many times a SystemdPort method was called (connect included)."""
        return self.calls[method]

    # --- the manager's own faults -------------------------------------------------------
    def kill_manager(self) -> None:
        """The manager leaves the bus: calls fail with SystemdUnavailable, job waits fail now."""
        self.manager_up = False
        self.fail_jobs("the systemd user manager went away")

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
            client.disconnect()

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
            self.signal(unit, signal.SIGKILL)
        unit.result = result
        self.set_state(unit, "failed", "failed")
        if unit.properties.get("CollectMode", "inactive") == "inactive-or-failed":
            self.collect(unit)

    def start_scope(
        self, name: str, pid: int, collect_mode: str = "inactive-or-failed", active_state: str = "active"
    ) -> None:
        """A unit holding pid, started by someone else (another launcher, or before a restart)."""
        props = {"CollectMode": collect_mode, "TimeoutStopUSec": 2_000_000}
        sub = "running" if active_state == "active" else "start"
        self.add_unit(MemoryUnit(name, [pid], led_groups([pid]), props, active_state, sub))
