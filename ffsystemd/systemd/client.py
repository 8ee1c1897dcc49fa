"""The systemd user manager's methods the package uses, each a small documented coroutine.

`SystemdClient` implements `ffsystemd.systemd_api.SystemdPort` over `BusConnection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbus_fast import Variant

from ..errors import JobFailed, NoSuchUnit
from ..systemd_api import UnitInfo, UnitSnapshot
from ..units import UnitProperty, unit_object_path
from .bus import MANAGER_IFACE, MANAGER_PATH, PROPS_IFACE, SCOPE_IFACE, SYSTEMD, UNIT_IFACE, BusConnection
from .properties import snapshot_fields


class SystemdClient(BusConnection):
    """Connection to one systemd user manager and the calls the session layers make on it."""

    async def version(self) -> str:
        """Return the manager's Version property (proves a user manager answers)."""
        return str(await self.manager_property("Version"))

    async def manager_property(self, name: str) -> Any:
        """Return one property of the Manager object, unwrapped."""
        await self.connect()
        (value,) = await self._call(SYSTEMD, MANAGER_PATH, PROPS_IFACE, "Get", "ss", [MANAGER_IFACE, name])
        return value.value if isinstance(value, Variant) else value

    async def start_transient_unit(
        self,
        name: str,
        properties: Sequence[UnitProperty],
        job_timeout: float = 30.0,
    ) -> None:
        """Start a transient unit (mode `fail`) and wait until its start job has finished.

        Raises UnitExists for a duplicate name, JobFailed when the job's result is
        not `done`, SystemdTimeout when it does not finish within job_timeout.
        """
        props = [(p.name, Variant(p.signature, p.value)) for p in properties]
        (job_path,) = await self.manager_call(
            "StartTransientUnit", "ssa(sv)a(sa(sv))", [name, "fail", props, []]
        )
        result = await self._wait_job(job_path, name, job_timeout)
        if result != "done":
            raise JobFailed(name, result)

    async def stop_unit(self, name: str, job_timeout: float = 30.0) -> bool:
        """Stop a unit and wait for the stop job; False if the unit was not loaded."""

        try:
            (job_path,) = await self.manager_call("StopUnit", "ss", [name, "replace"])
        except NoSuchUnit:
            return False
        result = await self._wait_job(job_path, name, job_timeout)
        if result not in ("done", "canceled"):
            raise JobFailed(name, result)
        return True

    async def kill_unit(self, name: str, signal: int, who: str = "all") -> None:
        """Send a signal to the unit's processes (`who`: all, main or control)."""
        await self.manager_call("KillUnit", "ssi", [name, who, signal])

    async def reset_failed_unit(self, name: str) -> None:
        """Reset a unit's failed state so a failed transient unit is collected."""
        await self.manager_call("ResetFailedUnit", "s", [name])

    async def get_unit(self, name: str) -> str:
        """Return the object path of a loaded unit; raises NoSuchUnit."""
        (path,) = await self.manager_call("GetUnit", "s", [name])
        return str(path)

    async def get_all(self, path: str, interface: str) -> dict[str, Any]:
        """Return all properties of one interface of an object, unwrapped."""
        await self.connect()
        (props,) = await self._call(SYSTEMD, path, PROPS_IFACE, "GetAll", "s", [interface])
        return {key: (v.value if isinstance(v, Variant) else v) for key, v in props.items()}

    async def unit_properties(self, name: str, interface: str = SCOPE_IFACE) -> dict[str, Any]:
        """Return the Unit and `interface` properties of a loaded unit; raises NoSuchUnit."""
        path = await self.get_unit(name)
        props = await self.get_all(path, UNIT_IFACE)
        props.update(await self.get_all(path, interface))
        return props

    async def unit_snapshot(self, name: str) -> UnitSnapshot:
        """The unit's and scope's properties we use (load_state not-found for an unknown unit)."""
        path = unit_object_path(name)
        props = await self.get_all(path, UNIT_IFACE)
        props.update(await self.get_all(path, SCOPE_IFACE))
        return UnitSnapshot(**snapshot_fields(props))

    async def unit_result(self, name: str) -> str | None:
        """The scope's Result alone (one call); None when empty."""
        props = await self.get_all(unit_object_path(name), SCOPE_IFACE)
        return str(props.get("Result") or "") or None

    async def control_group(self) -> str:
        """The manager's own cgroup (where its units' cgroups live)."""
        return str(await self.manager_property("ControlGroup"))

    async def unit_processes(self, name: str) -> list[tuple[int, str]]:
        """Return (pid, command line) of every process in a unit's cgroup."""
        (rows,) = await self.manager_call("GetUnitProcesses", "s", [name])
        return [(int(row[1]), str(row[2])) for row in rows]

    async def list_units_by_patterns(
        self, patterns: Sequence[str], states: Sequence[str] = ()
    ) -> list[UnitInfo]:
        """Return the loaded units whose names match the glob patterns."""
        (rows,) = await self.manager_call("ListUnitsByPatterns", "asas", [list(states), list(patterns)])
        return [UnitInfo(r[0], r[1], r[2], r[3], r[4], r[6]) for r in rows]
