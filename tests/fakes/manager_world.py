"""The world of the session manager's tests: managers, a systemd, a session root, and checks.

    async def test_x(memory_world: World) -> None:        # the in-memory systemd (fast)
    async def test_y(bus_world: World) -> None:           # the python-dbusmock systemd on a private bus
        manager = world.make(max_sessions=1)              # ManagerSettings fields as keywords
        session = await world.launch(manager)
        ...
        await world.assert_clean(manager)

Managers run tests/fakes/fake_xpra.py as Xpra, through a symlink named `xpra` (so a re-adopting
manager recognises it), with a short session root under /tmp. At teardown (`finish()`) every
session left is stopped, and the test fails if anything was left behind: a unit of ours, a
process started for the session root, a directory, a session.
"""

from __future__ import annotations

import asyncio
import asyncio.base_subprocess
import contextlib
import os
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import dbus.exceptions
import psutil
import pytest

import ffsystemd.context
import ffsystemd.idle
from fakes.dbus_world import FAKE_XPRA, FAKE_XPRA_ENV, FakeSystemd
from fakes.memory_systemd import MemorySystemd
from fakes.polling import eventually
from ffsystemd.commands import XpraSettings
from ffsystemd.failed_logs import FAILED_DIR
from ffsystemd.manager import ManagerSettings, SessionManager
from ffsystemd.systemd import SystemdClient
from ffsystemd.units import UNIT_PREFIX, ScopeLimits

UNIT_COLLECT_GRACE = 3.0  # seconds

T = TypeVar("T")
LIVE = ("starting", "running", "stopping")


async def timed(awaitable: Awaitable[T], limit: float = 30.0) -> tuple[T, float]:
    """(result, seconds taken); a hang fails the test after `limit` seconds instead of blocking it."""
    started = time.monotonic()
    result = await asyncio.wait_for(awaitable, limit)
    return result, time.monotonic() - started


async def raises_within(
    exc_type: type[BaseException], awaitable: Awaitable[Any], limit: float = 30.0
) -> tuple[BaseException, float]:
    """The exception awaitable raised (must be exc_type) and how long that took."""
    started = time.monotonic()
    with pytest.raises(exc_type) as failure:
        await asyncio.wait_for(awaitable, limit)
    return failure.value, time.monotonic() - started


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def reaped(pid: int) -> bool:
    """Our child `pid` exited and was waited for (no zombie of ours is left)."""
    try:
        return psutil.Process(pid).ppid() != os.getpid()  # a reused PID is someone else's
    except psutil.NoSuchProcess:
        return True


def at_the_gate(pid: int) -> bool:
    """A live session process still held at the gate (it never ran Xpra)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "ffsystemd-gate" in proc.cmdline()
    except psutil.Error:
        return False


async def ended(manager: SessionManager, session_id: str) -> dict[str, Any] | None:
    """The session's status once it is no longer starting, running or stopping."""
    status = await manager.status(session_id)
    return status if status["state"] not in LIVE else None


def advance_wall_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The manager's wall clock (idle culling, activity, session times) runs `seconds` ahead from now."""

    class Later(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(ffsystemd.idle, "datetime", Later)


def fixed_session_id(monkeypatch: pytest.MonkeyPatch, sid: str) -> None:
    """The next launches get session id `sid`."""
    monkeypatch.setattr(ffsystemd.context, "new_session_id", lambda: sid)


class World:
    """Managers on one systemd (in-memory or dbusmock), a short session root, what the test started."""

    def __init__(self, systemd: MemorySystemd | FakeSystemd) -> None:
        self.systemd = systemd
        self.root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
        self.bin = Path(tempfile.mkdtemp(prefix="ffs-bin-", dir="/tmp"))
        self.xpra_link = self.bin / "xpra"
        self.xpra_link.symlink_to(FAKE_XPRA)
        self.managers: list[SessionManager] = []
        self.children: list[asyncio.subprocess.Process] = []

    @property
    def fake(self) -> FakeSystemd:
        """The dbusmock systemd (bus worlds only)."""
        assert isinstance(self.systemd, FakeSystemd), "a bus_world test"
        return self.systemd

    @property
    def memory(self) -> MemorySystemd:
        """The in-memory systemd (memory worlds only)."""
        assert isinstance(self.systemd, MemorySystemd), "a memory_world test"
        return self.systemd

    def xpra(self, *wrapper: str) -> XpraSettings:
        """The fake Xpra, called `xpra` (as a re-adopting manager expects), optionally behind a wrapper."""
        return XpraSettings(
            xpra_command=(*wrapper, sys.executable, str(self.xpra_link)),
            firefox_command=("/bin/true",),
            pass_environment=FAKE_XPRA_ENV,
        )

    def make(
        self,
        environ: dict[str, str] | None = None,
        call_timeout: float = 5.0,
        stop_timeout: float = 2.0,
        **overrides: Any,
    ) -> SessionManager:
        """A SessionManager on this world's systemd; keywords are ManagerSettings fields.

        stop_timeout is the scopes' TimeoutStopUSec= in seconds (SIGKILL after SIGTERM). Our
        Xpra gets 0.3 s (reap_timeout) to exit once its unit stopped: only one that outlived
        its unit (vanished, or systemd unreachable) waits for it before its SIGKILL.
        """
        settings = ManagerSettings(
            session_root=self.root,
            slice_name="app-ffsystemd.slice",
            limits=ScopeLimits(
                memory_max=2**30, tasks_max=256, stop_timeout_usec=int(stop_timeout * 1_000_000)
            ),
            **{
                "xpra": self.xpra(),
                "max_sessions": 3,
                "ready_timeout": 5.0,
                "culling_interval": 0.2,  # the housekeeping loop (reconnects) ticks every 0.2 s
                "reap_timeout": 0.3,
                **overrides,
            },
        )
        if isinstance(self.systemd, MemorySystemd):
            client: Any = self.systemd.client()
        else:
            client = SystemdClient(self.systemd.address, call_timeout=call_timeout)
        manager = SessionManager(
            settings,
            client,
            url_for=lambda sid: f"/firefox-launcher/session/{sid}/",
            environ=dict(os.environ, **(environ or {})),
        )
        self.managers.append(manager)
        return manager

    async def launch(self, manager: SessionManager, url: str | None = None) -> dict[str, Any]:
        return await manager.launch(url)

    def retire(self, manager: SessionManager) -> None:
        """A manager shut down keeping its sessions: they are handed over, not left behind."""
        self.managers.remove(manager)

    async def sleeper(self) -> asyncio.subprocess.Process:
        """A process of the test's own (its own process group), ended by PID at teardown."""
        proc = await asyncio.create_subprocess_exec("sleep", "300", start_new_session=True)
        self.children.append(proc)
        return proc

    def start_scope(self, name: str, pid: int, collect_mode: str = "inactive-or-failed") -> None:
        """A unit holding pid that this world's systemd runs, started by someone else."""
        if isinstance(self.systemd, MemorySystemd):
            self.systemd.start_scope(name, pid, collect_mode)
        else:
            self.systemd.start_scope(name, pid, collect_mode=collect_mode)

    # --- outages, the same on either systemd ----------------------------------------------
    def kill_manager(self) -> None:
        """The user manager leaves the bus (the bus stays): calls fail, job waits fail now."""
        self.systemd.kill_manager()

    def drop_bus(self) -> None:
        """The bus goes away with the manager; clients are disconnected."""
        if isinstance(self.systemd, MemorySystemd):
            self.systemd.drop_bus()
        else:
            from fakes.faults import drop_bus

            drop_bus(self.systemd)

    def revive(self, keep: Sequence[tuple[str, int]] = ()) -> None:
        """The bus is back with a fresh manager, running only the units in keep ((unit, pid) pairs),
        as a systemd that kept those would; clients reconnect by themselves."""
        if isinstance(self.systemd, MemorySystemd):
            self.systemd.revive()
            for unit, pid in keep:
                self.systemd.start_scope(unit, pid)
        else:
            from fakes.faults import revive

            fake = self.systemd

            def kept_units() -> None:
                for unit, pid in keep:
                    fake.start_scope(unit, pid)

            revive(fake, prepare=kept_units)

    def job_waits(self, manager: SessionManager) -> int:
        """How many job waits of manager's hang (a hanging start job)."""
        if isinstance(self.systemd, MemorySystemd):
            return self.systemd.waiting_jobs()
        return len(manager.systemd._job_waiters)  # type: ignore[attr-defined]

    async def hung_launch(self, manager: SessionManager) -> tuple[asyncio.Future[Any], str, list[int]]:
        """Start a launch whose start job hangs; return (the launch, its unit, the PIDs in the unit).

        Returns once the client waits for the start job (it has taken StartTransientUnit's reply):
        a fault injected then hits the job wait.
        """
        self.systemd.hang_start_jobs()
        launch = asyncio.ensure_future(manager.launch())
        (unit,) = await eventually(lambda: self.units(), what="the hanging scope to be created")
        pids = self.systemd.unit_pids(unit)
        assert pids and all(alive(pid) for pid in pids)
        await eventually(lambda: self.job_waits(manager), what="the client to wait for the start job")
        return launch, unit, pids

    def units(self) -> list[str] | None:
        """Our units loaded in the systemd (None when no fake manager answers)."""
        try:
            return [u for u in self.systemd.loaded_units() if u.startswith(UNIT_PREFIX)]
        except (dbus.exceptions.DBusException, RuntimeError):
            return None

    def dirs(self) -> list[str]:
        """Entries of the session root, but the kept logs of failed launches (bounded, on purpose)."""
        return sorted(p.name for p in self.root.iterdir() if p.name != FAILED_DIR)

    def processes(self) -> list[psutil.Process]:
        """Live processes started for a session of this root (the gate shell or Xpra)."""
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            with contextlib.suppress(psutil.Error, TypeError):
                if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
                    str(self.root) in part for part in proc.info["cmdline"]
                ):
                    found.append(proc)
        return found

    async def assert_clean(self, *managers: SessionManager, allowed_units: tuple[str, ...] = ()) -> None:
        """No unit of ours (but allowed_units), no session process, no directory, no session."""
        await eventually(
            lambda: [u for u in self.units() or () if u not in allowed_units] == [],
            what=f"our units to be gone (left: {self.units()})",
        )
        await eventually(lambda: not self.processes(), what="the session processes to end")
        assert self.dirs() == []
        for manager in managers:
            assert manager.session_ids() == []

    async def finish(self) -> list[str]:
        """Stop what is left; return what was left behind (empty when the test cleaned up)."""
        problems = []
        for manager in self.managers:
            if manager.session_ids():
                problems.append(f"sessions left: {manager.session_ids()}")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(manager.cleanup(manager.session_ids(), force=True), 15)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(manager.shutdown(stop_sessions=False), 15)
        # A scope whose last process just ended is collected on the fake's next tick (as systemd
        # does); give it a moment on a loaded machine, so only a unit that stays is a leak.
        with contextlib.suppress(pytest.fail.Exception):
            await eventually(lambda: not self.units(), UNIT_COLLECT_GRACE, "units to be collected")
        if self.units():
            problems.append(f"units left: {self.units()}")
        for proc in self.processes():  # started for this test's session root only
            problems.append(f"process {proc.pid} left: {' '.join(proc.info['cmdline'])}")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for child in self.children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        await close_dropped_transports()
        if self.dirs():
            problems.append(f"directories left: {self.dirs()}")
        if isinstance(self.systemd, MemorySystemd):
            self.systemd.close()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.bin, ignore_errors=True)
        return problems


_TRANSPORTS: weakref.WeakSet[asyncio.base_subprocess.BaseSubprocessTransport] = weakref.WeakSet()
"""Every subprocess transport created in this test process (alive or garbage not yet collected)."""


def _register_transports() -> None:
    """Record each new subprocess transport in _TRANSPORTS (once per process)."""
    cls = asyncio.base_subprocess.BaseSubprocessTransport
    if getattr(cls.__init__, "_ffsystemd_registers", False):
        return
    original = cls.__init__

    def registering_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _TRANSPORTS.add(self)

    registering_init._ffsystemd_registers = True  # type: ignore[attr-defined]
    cls.__init__ = registering_init  # type: ignore[method-assign]


_register_transports()


async def close_dropped_transports() -> None:
    """Close the subprocess transports of this loop that nobody closed, while the loop still runs.

    Left to the garbage collector, such a transport would be finalized after the test's loop
    closed, raising "Event loop is closed" at an arbitrary point of a later test. (Leftover
    processes are reported by `finish()` before this runs, so this hides no leak.) The
    transports are known from _TRANSPORTS, which also holds the dropped ones the garbage
    collector has not reached yet, so no (slow) full collection is needed to find them.
    """
    loop = asyncio.get_running_loop()
    dropped = [t for t in list(_TRANSPORTS) if t._loop is loop and not t.is_closing()]
    for transport in dropped:
        transport.close()
    await eventually(
        lambda: all(t.get_returncode() is not None for t in dropped), what="dropped children to exit"
    )
