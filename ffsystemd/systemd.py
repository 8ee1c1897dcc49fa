"""Thin asyncio client of the systemd user manager over D-Bus (dbus-fast).

All systemd I/O of the package lives here, as small documented coroutines.
Every call has a timeout; D-Bus errors become the typed exceptions of
`ffsystemd.errors`. Nothing here knows about sessions or HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from .errors import FFSystemdError, JobFailed, NoSuchUnit, SystemdTimeout, SystemdUnavailable, systemd_error

log = logging.getLogger(__name__)

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
SCOPE_IFACE = "org.freedesktop.systemd1.Scope"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"

_UNAVAILABLE_ERRORS = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.Disconnected",
}
_JOB_REMOVED_RULE = f"type='signal',sender='{SYSTEMD}',interface='{MANAGER_IFACE}',member='JobRemoved'"
_UNIT_REMOVED_RULE = f"type='signal',sender='{SYSTEMD}',interface='{MANAGER_IFACE}',member='UnitRemoved'"
_MANAGER_OWNER_RULE = (
    f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',arg0='{SYSTEMD}'"
)
RECONNECT_BACKOFF_START = 0.25
RECONNECT_BACKOFF_MAX = 10.0


def _properties_changed_rule(path: str) -> str:
    return (
        f"type='signal',sender='{SYSTEMD}',interface='{PROPS_IFACE}',member='PropertiesChanged',path='{path}'"
    )


def user_bus_address(environ: dict[str, str] | None = None) -> str:
    """Return the user bus address: DBUS_SESSION_BUS_ADDRESS, else unix:path=$XDG_RUNTIME_DIR/bus."""
    env = os.environ if environ is None else environ
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return env["DBUS_SESSION_BUS_ADDRESS"]
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix:path={runtime}/bus"


@dataclass(frozen=True)
class UnitInfo:
    """One row of ListUnitsByPatterns."""

    name: str
    description: str
    load_state: str
    active_state: str
    sub_state: str
    path: str


class SystemdClient:
    """Connection to one systemd user manager; reconnects (with back-off) after the bus drops."""

    def __init__(self, bus_address: str | None = None, call_timeout: float = 10.0) -> None:
        self.bus_address = bus_address or user_bus_address()
        self.call_timeout = call_timeout
        self._bus: MessageBus | None = None
        self._connect_lock = asyncio.Lock()
        self._job_waiters: dict[str, asyncio.Future[str]] = {}
        self._finished_jobs: OrderedDict[str, str] = OrderedDict()
        self._signal_handlers: list[Callable[[Message], None]] = []
        self._connect_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._disconnect_watch: asyncio.Future[None] | None = None
        self._watched_paths: set[str] = set()
        self._retry_at = 0.0
        self._backoff = RECONNECT_BACKOFF_START
        self._last_error = ""
        self._resubscribe_task: asyncio.Future[None] | None = None

    # --- connection -------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while the bus connection is up."""
        return self._bus is not None and self._bus.connected

    def add_signal_handler(self, handler: Callable[[Message], None]) -> None:
        """Call handler(message) for every signal received from systemd."""
        self._signal_handlers.append(handler)

    def add_connect_callback(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await callback() after every successful (re)connection, e.g. to re-sync state."""
        self._connect_callbacks.append(callback)

    def add_disconnect_callback(self, callback: Callable[[], None]) -> None:
        """Call callback() when an established connection drops."""
        self._disconnect_callbacks.append(callback)

    async def connect(self) -> None:
        """Connect, add our matches, Subscribe and run the connect callbacks; no-op when connected.

        Raises SystemdUnavailable when the bus or the manager cannot be reached. After a
        failure, attempts within a growing back-off (0.25 s doubling to 10 s) fail at once,
        so requests during an outage never wait on the bus.
        """
        if self.connected:
            return
        async with self._connect_lock:
            if self.connected:
                return
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                wait = self._retry_at - loop.time()
                raise SystemdUnavailable(f"{self._last_error} (next attempt in {wait:.1f} s)")
            try:
                await self._connect_once()
            except SystemdUnavailable as exc:
                self._last_error = str(exc)
                self._retry_at = loop.time() + self._backoff
                self._backoff = min(self._backoff * 2, RECONNECT_BACKOFF_MAX)
                raise
            self._retry_at = 0.0
            self._backoff = RECONNECT_BACKOFF_START
        for callback in list(self._connect_callbacks):
            try:
                await callback()
            except Exception:
                log.exception("systemd connect callback failed")

    async def _connect_once(self) -> None:
        try:
            bus = await asyncio.wait_for(
                MessageBus(bus_address=self.bus_address).connect(), self.call_timeout
            )
        except (OSError, asyncio.TimeoutError, ValueError) as exc:
            raise SystemdUnavailable(
                f"cannot connect to the user bus at {self.bus_address} ({exc or type(exc).__name__});"
                " is a systemd user session running (DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR)?"
            ) from exc
        except Exception as exc:  # auth failures and the like
            raise SystemdUnavailable(f"cannot connect to the user bus at {self.bus_address}: {exc}") from exc
        bus.add_message_handler(self._on_message)
        self._bus = bus
        try:
            rules = [_JOB_REMOVED_RULE, _UNIT_REMOVED_RULE, _MANAGER_OWNER_RULE]
            rules += [_properties_changed_rule(path) for path in sorted(self._watched_paths)]
            for rule in rules:
                await self._call(DBUS, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule])
            await self._call(SYSTEMD, MANAGER_PATH, MANAGER_IFACE, "Subscribe", "", [])
        except BaseException:
            self._bus = None
            bus.disconnect()
            raise
        self._disconnect_watch = asyncio.ensure_future(self._watch_disconnect(bus))

    async def _watch_disconnect(self, bus: MessageBus) -> None:
        """When the connection drops, forget it, fail pending job waits at once, tell listeners."""
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()
        if self._bus is not bus:
            return
        self._bus = None
        log.warning("lost the user bus at %s", self.bus_address)
        self._fail_job_waiters("the bus connection dropped")
        for callback in list(self._disconnect_callbacks):
            try:
                callback()
            except Exception:
                log.exception("systemd disconnect callback failed")

    async def close(self) -> None:
        """Disconnect from the bus (pending job waits fail with SystemdUnavailable)."""
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()
            with contextlib.suppress(Exception):  # best effort on close
                await asyncio.wait_for(bus.wait_for_disconnect(), 2)
        self._fail_job_waiters("the bus connection was closed")

    async def watch_unit(self, path: str) -> None:
        """Receive PropertiesChanged of one unit object (the match survives reconnections)."""
        self._watched_paths.add(path)
        if self.connected:
            await self._call(
                DBUS, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [_properties_changed_rule(path)]
            )

    async def unwatch_unit(self, path: str) -> None:
        """Stop receiving PropertiesChanged of a unit object."""
        if path not in self._watched_paths:
            return
        self._watched_paths.discard(path)
        if self.connected:
            with contextlib.suppress(FFSystemdError):
                rule = _properties_changed_rule(path)
                await self._call(DBUS, "/org/freedesktop/DBus", DBUS, "RemoveMatch", "s", [rule])

    # --- low level --------------------------------------------------------
    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.interface == DBUS and msg.body and msg.body[0] == SYSTEMD:
            self._manager_owner_changed(str(msg.body[2]))
            return
        if msg.interface == MANAGER_IFACE and msg.member == "JobRemoved":
            _job_id, job_path, _unit, result = msg.body
            waiter = self._job_waiters.pop(job_path, None)
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(result)
            else:
                # The signal beat StartTransientUnit's reply: keep it for the waiter.
                self._finished_jobs[job_path] = result
                while len(self._finished_jobs) > 512:
                    self._finished_jobs.popitem(last=False)
        for handler in list(self._signal_handlers):
            try:
                handler(msg)
            except Exception:
                log.exception("systemd signal handler failed")

    def _manager_owner_changed(self, new_owner: str) -> None:
        """The user manager left the bus (fail job waits now) or a new one took its name."""
        if not new_owner:
            log.warning("the systemd user manager left the bus at %s", self.bus_address)
            self._fail_job_waiters("the systemd user manager went away")
            return
        log.info("a systemd user manager is back on %s; re-subscribing", self.bus_address)
        task = asyncio.ensure_future(self._resubscribe())
        self._resubscribe_task = task

    async def _resubscribe(self) -> None:
        """A new manager instance knows nothing of us: Subscribe again and re-sync the listeners."""
        try:
            await self._call(SYSTEMD, MANAGER_PATH, MANAGER_IFACE, "Subscribe", "", [])
        except FFSystemdError as exc:
            log.warning("re-subscribing failed: %s", exc)
            return
        for callback in list(self._connect_callbacks):
            try:
                await callback()
            except Exception:
                log.exception("systemd connect callback failed")

    def _fail_job_waiters(self, reason: str) -> None:
        waiters, self._job_waiters = self._job_waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(SystemdUnavailable(reason))

    async def _call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str,
        body: Sequence[Any],
        timeout: float | None = None,
    ) -> list[Any]:
        bus = self._bus
        if bus is None or not bus.connected:
            raise SystemdUnavailable(f"not connected to the user bus at {self.bus_address}")
        message = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
        try:
            reply = await asyncio.wait_for(bus.call(message), timeout or self.call_timeout)
        except asyncio.TimeoutError as exc:
            raise SystemdTimeout(
                f"{interface}.{member} got no answer within {timeout or self.call_timeout:g} s"
            ) from exc
        except (EOFError, OSError, ConnectionError) as exc:
            self._fail_job_waiters("the bus connection dropped")
            raise SystemdUnavailable(f"lost the user bus at {self.bus_address}: {exc}") from exc
        if reply is None:
            raise SystemdUnavailable(f"no reply to {member}: the bus connection dropped")
        if reply.message_type == MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else ""
            if reply.error_name in _UNAVAILABLE_ERRORS:
                raise SystemdUnavailable(
                    f"no systemd user manager on {self.bus_address} ({reply.error_name}: {text})"
                )
            raise systemd_error(reply.error_name or "unknown", text)
        return list(reply.body)

    async def manager_call(
        self, member: str, signature: str, body: Sequence[Any], timeout: float | None = None
    ) -> list[Any]:
        """Call a method of org.freedesktop.systemd1.Manager (connecting first if needed)."""
        await self.connect()
        return await self._call(SYSTEMD, MANAGER_PATH, MANAGER_IFACE, member, signature, body, timeout)

    async def _wait_job(self, job_path: str, unit: str, timeout: float) -> str:
        if job_path in self._finished_jobs:
            result = self._finished_jobs.pop(job_path)
        else:
            waiter = self._job_waiters.get(job_path)
            if waiter is None:
                if not self.connected:  # the drop was already handled: nobody would fail this wait
                    raise SystemdUnavailable(f"lost the user bus while waiting for the job of {unit}")
                waiter = asyncio.get_running_loop().create_future()
                self._job_waiters[job_path] = waiter
            try:
                result = await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except asyncio.TimeoutError as exc:
                self._job_waiters.pop(job_path, None)
                raise SystemdTimeout(f"the job for {unit} did not finish within {timeout:g} s") from exc
        return result

    # --- manager API ------------------------------------------------------
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
        properties: list[tuple[str, Variant]],
        job_timeout: float = 30.0,
    ) -> None:
        """Start a transient unit (mode `fail`) and wait until its start job has finished.

        Raises UnitExists for a duplicate name, JobFailed when the job's result is
        not `done`, SystemdTimeout when it does not finish within job_timeout.
        """
        (job_path,) = await self.manager_call(
            "StartTransientUnit", "ssa(sv)a(sa(sv))", [name, "fail", properties, []]
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
