"""The connection to the user manager's bus: (re)connecting, matches, signals, calls, job waits.

`BusConnection` owns the dbus-fast `MessageBus`: every call goes through `_call` (with a
timeout, D-Bus errors typed), every signal through `_on_message` (JobRemoved results kept by
job path, PropertiesChanged and UnitRemoved passed on as typed events). `SystemdClient`
(client.py) adds the manager's methods on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from ..errors import FFSystemdError, SystemdTimeout, SystemdUnavailable, systemd_error
from ..systemd_api import UnitChanged, UnitEvent, UnitRemoved
from ..units import unit_object_path
from .properties import snapshot_fields

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


class BusConnection:
    """Connection to one systemd user manager; reconnects (with back-off) after the bus drops."""

    def __init__(self, bus_address: str | None = None, call_timeout: float = 10.0) -> None:
        self.bus_address = bus_address or user_bus_address()
        self.call_timeout = call_timeout
        self._bus: MessageBus | None = None
        self._connect_lock = asyncio.Lock()
        self._job_waiters: dict[str, asyncio.Future[str]] = {}
        self._finished_jobs: OrderedDict[str, str] = OrderedDict()
        self._event_handlers: list[Callable[[UnitEvent], None]] = []
        self._connect_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._disconnect_watch: asyncio.Future[None] | None = None
        self._watched: dict[str, str] = {}  # object path -> unit name
        self._retry_at = 0.0
        self._backoff = RECONNECT_BACKOFF_START
        self._last_error = ""
        self._resubscribe_task: asyncio.Future[None] | None = None

    # --- connection -------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while the bus connection is up."""
        return self._bus is not None and self._bus.connected

    def add_event_handler(self, handler: Callable[[UnitEvent], None]) -> None:
        """Call handler(event) for PropertiesChanged of watched units and for every UnitRemoved."""
        self._event_handlers.append(handler)

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
            rules += [_properties_changed_rule(path) for path in sorted(self._watched)]
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

    async def watch_unit(self, name: str) -> None:
        """Receive UnitChanged events of one unit (the match survives reconnections)."""
        path = unit_object_path(name)
        self._watched[path] = name
        if self.connected:
            await self._call(
                DBUS, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [_properties_changed_rule(path)]
            )

    async def unwatch_unit(self, name: str) -> None:
        """Stop receiving UnitChanged events of a unit."""
        path = unit_object_path(name)
        if self._watched.pop(path, None) is None:
            return
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
        event = self._event_of(msg)
        for handler in list(self._event_handlers) if event is not None else ():
            try:
                handler(event)
            except Exception:
                log.exception("systemd event handler failed")

    def _event_of(self, msg: Message) -> UnitEvent | None:
        """The typed event of a signal we pass on (PropertiesChanged of a watched unit, UnitRemoved)."""
        if msg.member == "PropertiesChanged" and msg.interface == PROPS_IFACE and msg.body:
            unit = self._watched.get(msg.path or "")
            if unit is None:
                return None
            props = {k: getattr(v, "value", v) for k, v in msg.body[1].items()}
            return UnitChanged(unit, snapshot_fields(props))
        if msg.member == "UnitRemoved" and msg.interface == MANAGER_IFACE and msg.body:
            return UnitRemoved(str(msg.body[0]))
        return None

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

    async def probe_bus(self) -> str | None:
        """None when a bus answers at bus_address (on a connection of its own), else why not."""
        try:
            bus = await asyncio.wait_for(
                MessageBus(bus_address=self.bus_address).connect(), self.call_timeout
            )
        except Exception as exc:  # connection refused, no such file, auth failure, timeout
            return f"cannot connect to the user bus at {self.bus_address}: {exc or type(exc).__name__}"
        bus.disconnect()
        return None
