"""Session lifecycle under faults: the SessionManager against a fake systemd that fails, hangs and vanishes.

Each test builds managers with `world.make(**settings)` (ManagerSettings fields) on the fake systemd
user manager, running tests/fakes/fake_xpra.py as Xpra (through a symlink named `xpra`, so a
re-adopted session's Xpra is recognised). Outages that outlast a process (the bus dropped and
served again, the manager respawned) come from tests/fakes/faults.py. `world.assert_clean()` checks
that nothing is left: no unit of ours, no process of the session root, no directory, no session.
Nothing sleeps to synchronise: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import asyncio.base_subprocess
import contextlib
import gc
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import dbus.exceptions
import psutil
import pytest
import pytest_asyncio
from fakes.dbus_world import FAKE_XPRA, FAKE_XPRA_ENV, FakeSystemd
from fakes.faults import drop_bus, respawn_manager, revive, start_scope
from fakes.polling import eventually

import ffsystemd.manager
from ffsystemd.commands import XpraSettings
from ffsystemd.errors import LaunchError, SessionLimitReached, SystemdUnavailable
from ffsystemd.manager import ManagerSettings, SessionManager
from ffsystemd.systemd import SystemdClient
from ffsystemd.units import UNIT_PREFIX, ScopeLimits, unit_name

pytestmark = pytest.mark.asyncio

T = TypeVar("T")
LIVE = ("starting", "running", "stopping")


# --- helpers -------------------------------------------------------------------------------------------


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


def fixed_session_id(monkeypatch: pytest.MonkeyPatch, sid: str) -> None:
    """The next launches get session id `sid`."""
    monkeypatch.setattr(ffsystemd.manager, "new_session_id", lambda: sid)


class World:
    """Managers on the fake systemd, a short session root, and what the test started itself."""

    def __init__(self, fake: FakeSystemd) -> None:
        self.fake = fake
        self.root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
        self.bin = Path(tempfile.mkdtemp(prefix="ffs-bin-", dir="/tmp"))
        self.xpra_link = self.bin / "xpra"
        self.xpra_link.symlink_to(FAKE_XPRA)
        self.managers: list[SessionManager] = []
        self.children: list[asyncio.subprocess.Process] = []

    def xpra(self, *wrapper: str) -> XpraSettings:
        """The fake Xpra, called `xpra` (as a re-adopting manager expects), optionally behind a wrapper."""
        return XpraSettings(
            xpra_command=(*wrapper, sys.executable, str(self.xpra_link)),
            firefox_command=("/bin/true",),
            pass_environment=FAKE_XPRA_ENV,
        )

    def make(
        self, environ: dict[str, str] | None = None, call_timeout: float = 5.0, **overrides: Any
    ) -> SessionManager:
        settings = ManagerSettings(
            session_root=self.root,
            slice_name="app-ffsystemd.slice",
            limits=ScopeLimits(memory_max=2**30, tasks_max=256, stop_timeout_usec=2_000_000),
            **{
                "xpra": self.xpra(),
                "max_sessions": 3,
                "ready_timeout": 5.0,
                "culling_interval": 0.2,  # the housekeeping loop (reconnects) ticks every 0.2 s
                **overrides,
            },
        )
        manager = SessionManager(
            settings,
            SystemdClient(self.fake.address, call_timeout=call_timeout),
            url_for=lambda sid: f"/firefox-launcher/session/{sid}/",
            environ=dict(os.environ, **(environ or {})),
        )
        self.managers.append(manager)
        return manager

    def retire(self, manager: SessionManager) -> None:
        """A manager shut down keeping its sessions: they are handed over, not left behind."""
        self.managers.remove(manager)

    async def sleeper(self) -> asyncio.subprocess.Process:
        """A process of the test's own (its own process group), ended by PID at teardown."""
        proc = await asyncio.create_subprocess_exec("sleep", "300", start_new_session=True)
        self.children.append(proc)
        return proc

    def units(self) -> list[str] | None:
        """Our units loaded in the fake (None when no fake manager answers)."""
        try:
            return [u for u in self.fake.loaded_units() if u.startswith(UNIT_PREFIX)]
        except (dbus.exceptions.DBusException, RuntimeError):
            return None

    def dirs(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())

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


async def close_dropped_transports() -> None:
    """Close the subprocess transports of this loop that nobody will close, while the loop still runs.

    A launch torn down in an outage drops its gated child without closing it (a reported bug). Left to
    the garbage collector, its transport would be finalized after this test's loop closed, raising
    "Event loop is closed" at an arbitrary point of a later test.
    """
    loop = asyncio.get_running_loop()
    gc.collect()
    dropped = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.base_subprocess.BaseSubprocessTransport)
        and obj._loop is loop
        and not obj.is_closing()
    ]
    for transport in dropped:
        transport.close()  # closes the gate's stdin and kills the child if it still runs
    await eventually(
        lambda: all(t.get_returncode() is not None for t in dropped), what="dropped children to exit"
    )


@pytest_asyncio.fixture
async def world(fake_systemd: FakeSystemd, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Managers on the fake systemd; at the end, stops what is left and fails if anything was."""
    w = World(fake_systemd)
    yield w
    problems = []
    for manager in w.managers:
        if manager.session_ids():
            problems.append(f"sessions left: {manager.session_ids()}")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(manager.cleanup(manager.session_ids(), force=True), 15)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(manager.shutdown(stop_sessions=False), 15)
    if w.units():
        problems.append(f"units left: {w.units()}")
    for proc in w.processes():  # started for this test's session root only
        problems.append(f"process {proc.pid} left: {' '.join(proc.info['cmdline'])}")
        with contextlib.suppress(psutil.Error):
            proc.kill()
    for child in w.children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    await close_dropped_transports()
    if w.dirs():
        problems.append(f"directories left: {w.dirs()}")
    shutil.rmtree(w.root, ignore_errors=True)
    shutil.rmtree(w.bin, ignore_errors=True)
    # An expected failure (a reported bug) may leave things behind; anything else must not.
    if problems and request.node.get_closest_marker("xfail") is None:
        pytest.fail(f"left behind: {problems}")


def end_gate_leftovers(world: World) -> None:
    """End, by PID, session processes still waiting at the gate after a launch failed in an outage.

    Known bug (see test_a_launch_failed_by_an_outage_ends_its_gated_child): the teardown of such a
    launch does not abort its gated child. Ended here so that the tests of everything else stay green.
    """
    for proc in world.processes():
        if at_the_gate(proc.pid):
            with contextlib.suppress(psutil.Error):
                proc.kill()


async def hung_launch(world: World, manager: SessionManager) -> tuple[asyncio.Future[Any], str, list[int]]:
    """Start a launch whose start job hangs; return (the launch, its unit, the PIDs in the unit).

    Returns once the client waits for the start job (it has taken StartTransientUnit's reply): a
    fault injected then hits the job wait, not the race of test_bus_lost_right_after_the_start_reply_*.
    """
    world.fake.hang_start_jobs()
    launch = asyncio.ensure_future(manager.launch())
    (unit,) = await eventually(lambda: world.units(), what="the hanging scope to be created")
    pids = world.fake.unit_pids(unit)
    assert pids and all(alive(pid) for pid in pids)
    await eventually(lambda: manager.systemd._job_waiters, what="the client to wait for the start job")
    return launch, unit, pids


# --- 1. the start job fails ------------------------------------------------------------------------------
async def test_failed_start_job_fails_at_unit_start_and_leaves_nothing(world: World) -> None:
    manager = world.make()
    world.fake.set_start_result("failed", times=1)
    failure, _ = await raises_within(LaunchError, manager.launch())
    assert isinstance(failure, LaunchError)
    assert failure.step == "unit-start"
    assert "'failed'" in failure.message
    assert world.fake.call_count("StartTransientUnit") == 1
    await world.assert_clean(manager)
    # The next launch works (the fault was for one job only), and is cleaned up fully.
    session = await manager.launch()
    assert session["state"] == "running"
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


# --- 2. the start job never finishes -------------------------------------------------------------------
async def test_hanging_start_job_times_out_stops_the_unit_and_leaves_nothing(world: World) -> None:
    manager = world.make(job_timeout=1.0)
    launch, unit, pids = await hung_launch(world, manager)
    assert world.fake.unit_state(unit) == ("activating", "success")
    failure, elapsed = await raises_within(LaunchError, launch)
    assert isinstance(failure, LaunchError)
    assert failure.step == "unit-start"
    assert "did not finish within 1 s" in failure.message
    assert elapsed < 8, f"the launch took {elapsed:.1f} s with job_timeout=1"
    assert world.fake.call_count("StopUnit") >= 1
    await eventually(lambda: all(reaped(pid) for pid in pids), what="the gated child to be reaped")
    await world.assert_clean(manager)


# --- 3. the bus goes away during a launch, then comes back -------------------------------------------------
async def test_bus_lost_during_a_launch_fails_it_at_once_and_a_later_launch_works(world: World) -> None:
    manager = world.make(job_timeout=20.0)
    launch, _, pids = await hung_launch(world, manager)
    drop_bus(world.fake)
    _, elapsed = await raises_within(SystemdUnavailable, launch)
    assert elapsed < 5, f"the launch waited {elapsed:.1f} s (job_timeout is 20 s)"
    assert manager.session_ids() == [] and world.dirs() == []
    assert not manager.systemd.connected
    assert all(at_the_gate(pid) or not alive(pid) for pid in pids), "Xpra ran though its unit never started"
    end_gate_leftovers(world)

    # The bus comes back (a fresh manager, no units): the client reconnects by itself.
    revive(world.fake)
    await eventually(lambda: manager.systemd.connected, 20, what="the client to reconnect")
    session = await manager.launch()
    assert session["state"] == "running"
    assert world.units() == [session["unit"]]
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


async def test_manager_lost_during_a_launch_fails_it_at_once(world: World) -> None:
    manager = world.make(job_timeout=20.0)
    launch, _, _ = await hung_launch(world, manager)
    world.fake.kill_manager()  # the bus stays; nobody owns org.freedesktop.systemd1 any more
    _, elapsed = await raises_within(SystemdUnavailable, launch, limit=5)  # else: TimeoutError
    assert elapsed < 5
    assert world.dirs() == [] and manager.session_ids() == []


async def test_manager_respawned_on_the_same_bus_serves_the_next_launch(world: World) -> None:
    manager = world.make()
    await manager.start()
    world.fake.kill_manager()
    await raises_within(SystemdUnavailable, manager.launch())
    end_gate_leftovers(world)
    respawn_manager(world.fake)  # the client's bus connection never dropped: the next call reaches it
    session = await manager.launch()
    assert session["state"] == "running" and world.units() == [session["unit"]]
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


async def test_bus_lost_right_after_the_start_reply_fails_the_launch_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = world.make(job_timeout=20.0)
    client = manager.systemd
    wait_job = client._wait_job

    async def bus_dropped_first(job_path: str, unit: str, timeout: float) -> str:
        # The reply has arrived; the bus drops and the client notices before the job wait begins.
        drop_bus(world.fake)
        await eventually(lambda: not client.connected, what="the client to notice the drop")
        return await wait_job(job_path, unit, timeout)

    monkeypatch.setattr(client, "_wait_job", bus_dropped_first)
    world.fake.hang_start_jobs()
    _, elapsed = await raises_within(SystemdUnavailable, manager.launch(), limit=5)  # else: TimeoutError
    assert elapsed < 5
    assert world.dirs() == [] and manager.session_ids() == []


# --- 4. requests while the manager is gone --------------------------------------------------------------
async def test_requests_while_the_manager_is_gone_fail_fast(world: World) -> None:
    manager = world.make(stats_interval=0.0)
    session = await manager.launch()
    world.fake.kill_manager()

    _, elapsed = await raises_within(SystemdUnavailable, manager.launch())
    assert elapsed < 2, f"launch took {elapsed:.1f} s to fail"
    assert manager.session_ids() == [session["id"]] and world.dirs() == [f"session-{session['id']}"]
    end_gate_leftovers(world)
    listed, elapsed = await timed(manager.list_status())
    assert elapsed < 2, f"list_status took {elapsed:.1f} s"
    assert [s["id"] for s in listed] == [session["id"]]
    assert listed[0]["state"] == "running"
    status, elapsed = await timed(manager.status(session["id"]))
    assert elapsed < 2 and status["state"] == "running"
    ok, why = await manager.can_launch()
    assert not ok and "no systemd user manager" in why

    # systemd comes back with the session's unit (a real manager keeps its units).
    respawn_manager(world.fake)
    start_scope(world.fake, session["unit"], session["main_pid"])
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


async def test_cleanup_while_the_manager_is_gone_fails_fast_and_can_be_retried(world: World) -> None:
    manager = world.make()
    session = await manager.launch()
    world.fake.kill_manager()
    _, elapsed = await raises_within(SystemdUnavailable, manager.cleanup([session["id"]]))
    assert elapsed < 2, f"cleanup took {elapsed:.1f} s to fail"
    assert manager.session_ids() == [session["id"]]
    # systemd comes back, with the session's unit if its Xpra still runs (the failed cleanup may
    # have ended it by PID): the retried cleanup completes promptly.
    respawn_manager(world.fake)
    if alive(session["main_pid"]):
        start_scope(world.fake, session["unit"], session["main_pid"])
    stopped, elapsed = await timed(manager.cleanup([session["id"]]))
    assert stopped == ([session["id"]], {})
    assert elapsed < 10, f"the retried cleanup took {elapsed:.1f} s"
    await world.assert_clean(manager)


@pytest.mark.parametrize("outage", ["manager-gone", "bus-lost-mid-launch"])
async def test_a_launch_failed_by_an_outage_ends_its_gated_child(world: World, outage: str) -> None:
    manager = world.make(job_timeout=20.0)
    if outage == "manager-gone":
        await manager.start()
        world.fake.kill_manager()
        await raises_within(SystemdUnavailable, manager.launch())
    else:
        launch, _, _ = await hung_launch(world, manager)
        drop_bus(world.fake)
        await raises_within(SystemdUnavailable, launch)
    assert world.dirs() == [] and manager.session_ids() == []
    await eventually(lambda: not world.processes(), 5, what="the gated child to end")


async def test_a_cleanup_failed_by_an_outage_leaves_a_true_state(world: World) -> None:
    manager = world.make(stats_interval=0.0)
    session = await manager.launch()
    world.fake.kill_manager()
    await raises_within(SystemdUnavailable, manager.cleanup([session["id"]]))

    async def consistent() -> bool:
        status = await manager.status(session["id"])
        return (status["state"] == "running") == alive(session["main_pid"])

    await eventually(consistent, 5, what="the session's state to match its Xpra")
    if not alive(session["main_pid"]):
        assert manager.active_count() == 0 and manager.socket_path(session["id"]) is None
    respawn_manager(world.fake)  # systemd is back: the retried cleanup finishes the job
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})


async def test_xpra_exiting_during_an_outage_ends_the_session(world: World) -> None:
    manager = world.make(stats_interval=0.0, job_timeout=2.0)  # bounds the wait of a cleanup of a stuck end
    session = await manager.launch()
    world.fake.kill_manager()
    os.kill(session["main_pid"], signal.SIGTERM)  # our own child; the fake Xpra exits 0
    await eventually(lambda: reaped(session["main_pid"]), 5, what="Xpra to exit")
    status = await eventually(lambda: ended(manager, session["id"]), 5, what="the session to end")
    assert status["state"] == "stopped" and status["main_pid"] is None
    assert world.dirs() == [] and manager.active_count() == 0
    respawn_manager(world.fake)
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})


# --- 5. re-sync after the bus comes back ---------------------------------------------------------------
async def test_resync_after_an_outage_ends_vanished_sessions_and_keeps_running_ones(world: World) -> None:
    manager = world.make(stats_interval=0.0)
    vanished = await manager.launch()
    kept = await manager.launch()
    drop_bus(world.fake)
    await eventually(lambda: not manager.systemd.connected, what="the client to notice the drop")
    listed, elapsed = await timed(manager.list_status())
    assert elapsed < 2 and [s["state"] for s in listed] == ["running", "running"]
    _, elapsed = await raises_within(SystemdUnavailable, manager.launch())
    assert elapsed < 2, f"launch took {elapsed:.1f} s to fail without a bus"
    assert len(manager.session_ids()) == 2 and len(world.dirs()) == 2 and len(world.processes()) == 2

    # The bus comes back; systemd kept `kept`'s unit and lost `vanished`'s.
    revive(world.fake, prepare=lambda: start_scope(world.fake, kept["unit"], kept["main_pid"]))
    await eventually(lambda: manager.systemd.connected, 20, what="the client to reconnect")
    status = await eventually(lambda: ended(manager, vanished["id"]), what="the vanished session to end")
    assert status["state"] in ("failed", "stopped")
    assert status["message"] == "the session's unit vanished"
    assert status["main_pid"] is None
    await eventually(lambda: reaped(vanished["main_pid"]), 5, what="its Xpra to be ended")
    assert not (world.root / f"session-{vanished['id']}").exists()

    status = await manager.status(kept["id"])
    assert status["state"] == "running" and status["main_pid"] == kept["main_pid"]
    assert status["adopted"] is False
    assert alive(kept["main_pid"]) and manager.socket_path(kept["id"]) is not None
    assert manager.active_count() == 1

    stopped, errors = await manager.cleanup([vanished["id"], kept["id"]])
    assert (sorted(stopped), errors) == (sorted([vanished["id"], kept["id"]]), {})
    await world.assert_clean(manager)


# --- 6. a unit vanishes while its session runs -----------------------------------------------------------
async def test_vanished_unit_ends_the_session(world: World) -> None:
    manager = world.make(stats_interval=0.1)
    session = await manager.launch()
    assert world.fake.vanish_unit(session["unit"])
    status = await eventually(lambda: ended(manager, session["id"]), what="the session to end")
    assert status["state"] == "failed"
    assert status["message"] == "the session's unit vanished"
    assert manager.socket_path(session["id"]) is None
    await eventually(lambda: reaped(session["main_pid"]), 5, what="its Xpra to be ended")
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


# --- 7. the unit name is taken ------------------------------------------------------------------------------
async def test_duplicate_unit_name_fails_and_leaves_the_other_unit_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = "0123456789ab"
    foreign = unit_name(sid)
    sleeper = await world.sleeper()
    start_scope(world.fake, foreign, sleeper.pid)
    fixed_session_id(monkeypatch, sid)
    manager = world.make()
    failure, _ = await raises_within(LaunchError, manager.launch())
    assert isinstance(failure, LaunchError)
    assert failure.step == "unit-start" and "UnitExists" in failure.message
    assert manager.session_ids() == [] and world.dirs() == []
    await eventually(lambda: not world.processes(), 5, what="the gated child to end")
    assert world.fake.call_counts().get("StopUnit", 0) == 0
    assert world.fake.call_counts().get("KillUnit", 0) == 0
    assert world.fake.unit_state(foreign) == ("active", "success")
    assert sleeper.returncode is None and alive(sleeper.pid)
    sleeper.kill()
    await sleeper.wait()
    world.fake.wait_unit_gone(foreign)


# --- 8. GetAll answers slowly ------------------------------------------------------------------------------
async def test_slow_getall_never_hangs_status_and_launch(world: World) -> None:
    manager = world.make(call_timeout=1.0, stats_interval=0.0)
    session = await manager.launch()
    assert session["memory_max"] == 2**30
    world.fake.set_getall_delay(4.0)

    listed, elapsed = await timed(manager.list_status())
    assert elapsed < 3, f"list_status took {elapsed:.1f} s with call_timeout=1"
    assert listed[0]["state"] == "running" and listed[0]["memory_max"] == 2**30  # stale, still there
    status, elapsed = await timed(manager.status(session["id"]))
    assert elapsed < 3, f"status took {elapsed:.1f} s with call_timeout=1"
    assert status["state"] == "running" and status["main_pid"] == session["main_pid"]

    # A launch still succeeds; its figures could not be read in time (call_timeout).
    second, elapsed = await timed(manager.launch())
    assert elapsed < 8, f"the launch took {elapsed:.1f} s"
    assert second["state"] == "running" and second["memory_max"] is None
    assert world.units() == sorted([session["unit"], second["unit"]])

    world.fake.set_getall_delay(0)
    status = await manager.status(second["id"])
    assert status["memory_max"] == 2**30  # the next refresh catches up
    stopped, errors = await manager.cleanup([session["id"], second["id"]])
    assert (sorted(stopped), errors) == (sorted([session["id"], second["id"]]), {})
    await world.assert_clean(manager)


# --- 9. re-adoption by a restarted launcher -----------------------------------------------------------------
async def test_restarted_launcher_adopts_cleans_and_ignores_what_it_should(world: World) -> None:
    first = world.make()
    running = await first.launch("https://example.org/")
    await first.shutdown(stop_sessions=False)
    world.retire(first)

    # A unit of ours that failed (kept: CollectMode=inactive) and still has its directory.
    failed_sid = "aaaaaaaaaaaa"
    failed_unit = unit_name(failed_sid)
    doomed = await world.sleeper()
    start_scope(world.fake, failed_unit, doomed.pid, collect_mode="inactive")
    (world.root / f"session-{failed_sid}").mkdir(mode=0o700)
    world.fake.fail_unit(failed_unit, "oom-kill", kill=True)
    assert world.fake.unit_state(failed_unit) == ("failed", "oom-kill")
    # A directory without a unit.
    (world.root / "session-bbbbbbbbbbbb" / "profile").mkdir(mode=0o700, parents=True)
    # A unit with our prefix but no directory here: another launcher's.
    other = await world.sleeper()
    other_unit = unit_name("cccccccccccc")
    start_scope(world.fake, other_unit, other.pid)

    second = world.make()
    await second.start()
    assert second.session_ids() == [running["id"]]
    status = await second.status(running["id"])
    assert status["state"] == "running" and status["adopted"] is True
    assert status["main_pid"] == running["main_pid"]
    assert status["start_url"] == "https://example.org/" and status["created"] == running["created"]
    assert second.socket_path(running["id"]) is not None

    assert world.fake.unit_state(failed_unit) is None
    assert world.fake.call_count("ResetFailedUnit") >= 1
    assert world.dirs() == [f"session-{running['id']}"]
    assert world.fake.unit_state(other_unit) == ("active", "success") and alive(other.pid)

    assert await second.cleanup([running["id"]]) == ([running["id"]], {})
    await eventually(lambda: not alive(running["main_pid"]), what="the adopted Xpra to end")
    await world.assert_clean(second, allowed_units=(other_unit,))
    other.kill()
    await other.wait()
    world.fake.wait_unit_gone(other_unit)


async def test_restarted_launcher_stops_a_unit_of_ours_that_is_still_activating(world: World) -> None:
    sid = "dddddddddddd"
    sleeper = await world.sleeper()
    world.fake.hang_start_jobs()
    start_scope(world.fake, unit_name(sid), sleeper.pid, wait_active=False)
    await eventually(lambda: world.fake.unit_state(unit_name(sid)) == ("activating", "success"))
    (world.root / f"session-{sid}").mkdir(mode=0o700)
    world.fake.hang_start_jobs(False)
    manager = world.make()
    await manager.start()
    assert manager.session_ids() == []
    assert world.fake.unit_state(unit_name(sid)) is None
    assert world.fake.call_count("StopUnit") == 1
    await eventually(lambda: sleeper.returncode is not None, what="the unit's process to be ended")
    await world.assert_clean(manager)


# --- 10. max_sessions under concurrency ---------------------------------------------------------------------
async def test_max_sessions_holds_for_concurrent_launches(world: World) -> None:
    manager = world.make(max_sessions=3)
    results = await asyncio.gather(*(manager.launch() for _ in range(10)), return_exceptions=True)
    sessions = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, SessionLimitReached)]
    assert len(sessions) == 3 and len(refused) == 7, results
    assert world.fake.call_count("StartTransientUnit") == 3
    assert sorted(world.units() or []) == sorted(s["unit"] for s in sessions)
    assert len({s["id"] for s in sessions}) == 3
    stopped, errors = await manager.cleanup([s["id"] for s in sessions])
    assert (sorted(stopped), errors) == (sorted(s["id"] for s in sessions), {})
    await world.assert_clean(manager)


# --- 11. cleanup while the same session starts --------------------------------------------------------------
async def test_cleanup_during_the_launch_cancels_it(world: World) -> None:
    manager = world.make(environ={"FAKE_XPRA_NEVER_READY": "1"}, ready_timeout=20.0)
    launch = asyncio.ensure_future(manager.launch())
    (unit,) = await eventually(lambda: world.units(), what="the scope to start")
    (sid,) = manager.session_ids()
    await eventually(lambda: world.fake.unit_state(unit) == ("active", "success"))
    pids = world.fake.unit_pids(unit)
    assert (await manager.status(sid))["state"] == "starting"
    result, elapsed = await timed(manager.cleanup([sid]))
    assert result == ([sid], {})
    assert elapsed < 10
    failure, _ = await raises_within(LaunchError, launch, limit=5)
    assert isinstance(failure, LaunchError) and failure.step == "cancelled"
    assert all(reaped(pid) for pid in pids)
    await world.assert_clean(manager)


# --- 12. idle culling -----------------------------------------------------------------------------------
async def test_idle_sessions_are_culled_but_connected_ones_are_not(world: World) -> None:
    manager = world.make(idle_timeout=0.5, culling_interval=3600)  # only the explicit cull_idle() culls
    idle = await manager.launch()
    busy = await manager.launch()
    manager.connection_opened(busy["id"])
    manager.record_activity(idle["id"])  # its idle period starts now
    idle_from = time.monotonic()
    assert await manager.cull_idle() == []  # not idle long enough yet
    await eventually(lambda: time.monotonic() - idle_from > 0.6, what="idle_timeout to pass")

    culled, elapsed = await timed(manager.cull_idle())
    assert culled == [idle["id"]]
    assert elapsed < 10
    status = await manager.status(idle["id"])
    assert (status["state"], status["result"]) == ("stopped", "idle-timeout")
    assert "idle_timeout" in status["message"]
    assert world.fake.unit_state(idle["unit"]) is None
    assert not (world.root / f"session-{idle['id']}").exists()
    await eventually(lambda: reaped(idle["main_pid"]), 5, what="the idle Xpra to end")

    status = await manager.status(busy["id"])
    assert status["state"] == "running" and status["connections"] == 1
    manager.connection_closed(busy["id"])
    assert await manager.cull_idle() == []  # closing counts as activity
    assert await manager.cleanup([idle["id"], busy["id"]]) == ([idle["id"], busy["id"]], {})
    await world.assert_clean(manager)


# --- 13. shutdown ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shutdown_timeout", [20.0, 0.5], ids=["in-time", "forced"])
async def test_shutdown_ends_every_session_even_one_ignoring_sigterm(
    world: World, shutdown_timeout: float
) -> None:
    flag = world.bin / "ignore-sigterm"
    stubborn_when_flagged = (
        "/bin/sh",
        "-c",
        '[ -e "$FFS_FLAG" ] && export FAKE_XPRA_IGNORE_SIGTERM=1; exec "$0" "$@"',
    )
    manager = world.make(
        environ={"FFS_FLAG": str(flag)},
        xpra=world.xpra(*stubborn_when_flagged),
        shutdown_timeout=shutdown_timeout,
    )
    polite = await manager.launch()
    flag.touch()
    stubborn = await manager.launch()
    flag.unlink()
    # The flag file is read by the shell, before Xpra: check that the second one does ignore SIGTERM.
    log = world.root / f"session-{stubborn['id']}" / "runtime" / "xpra.log"
    assert "ignoring SIGTERM" in log.read_text()

    _, elapsed = await timed(manager.shutdown(stop_sessions=True))
    assert elapsed < 12, f"shutdown took {elapsed:.1f} s"
    assert not manager.systemd.connected
    for session in (polite, stubborn):
        assert reaped(session["main_pid"]), session
    world.retire(manager)
    await world.assert_clean(manager)
