"""Session lifecycle under faults, on the in-memory systemd: failing, hanging and vanishing systemd.

Each test builds managers with `world.make(**settings)` (ManagerSettings fields) on the in-memory
systemd of tests/fakes/memory_systemd.py, whose faults are its methods (`set_start_result`,
`hang_start_jobs`, `kill_manager`/`respawn`, `drop_bus`/`revive`, `vanish_unit`, `fail_unit`,
`fail_next`). `world.assert_clean()` checks that nothing is left: no unit of ours, no process of the
session root, no directory, no session. Nothing sleeps to synchronise: every wait polls a condition
with a deadline. The faults true of both systemds run twice (memory_or_bus_world: here, and end
to end through D-Bus on the dbusmock one); the faults only D-Bus has: test_manager_bus.py.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from fakes.manager_world import (
    World,
    advance_wall_clock,
    alive,
    at_the_gate,
    ended,
    fixed_session_id,
    raises_within,
    reaped,
    timed,
)
from fakes.polling import eventually

from ffsystemd.errors import LaunchError, SessionLimitReached, SystemdUnavailable
from ffsystemd.units import unit_name

pytestmark = pytest.mark.asyncio


@pytest.fixture
def world(memory_world: World) -> World:
    return memory_world


def gated(world: World) -> list[int]:
    """PIDs of session processes still held at the gate (a launch that never ran Xpra)."""
    return [p.pid for p in world.processes() if at_the_gate(p.pid)]


async def test_failed_start_job_fails_at_unit_start_and_leaves_nothing(world: World) -> None:
    manager = world.make()
    world.memory.set_start_result("failed", times=1)
    failure, _ = await raises_within(LaunchError, manager.launch())
    assert isinstance(failure, LaunchError)
    assert failure.step == "unit-start"
    assert "'failed'" in failure.message
    assert world.memory.call_count("start_transient_unit") == 1
    await world.assert_clean(manager)
    # The next launch works (the fault was for one job only), and is cleaned up fully.
    session = await manager.launch()
    assert session["state"] == "running"
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


async def test_hanging_start_job_times_out_stops_the_unit_and_leaves_nothing(world: World) -> None:
    manager = world.make(job_timeout=0.3)
    launch, unit, pids = await world.hung_launch(manager)
    assert world.memory.unit_state(unit) == ("activating", "success")
    failure, elapsed = await raises_within(LaunchError, launch)
    assert isinstance(failure, LaunchError)
    assert failure.step == "unit-start"
    assert "did not finish within 0.3 s" in failure.message
    assert elapsed < 8, f"the launch took {elapsed:.1f} s with job_timeout=0.3"
    assert world.memory.call_count("stop_unit") >= 1
    await eventually(lambda: all(reaped(pid) for pid in pids), what="the gated child to be reaped")
    await world.assert_clean(manager)


async def test_manager_lost_during_a_launch_fails_it_at_once(memory_or_bus_world: World) -> None:
    world = memory_or_bus_world
    manager = world.make(job_timeout=20.0)
    launch, _, _ = await world.hung_launch(manager)
    world.kill_manager()  # the bus stays; nobody owns org.freedesktop.systemd1 any more
    _, elapsed = await raises_within(SystemdUnavailable, launch, limit=5)  # else: TimeoutError
    assert elapsed < 5
    assert world.dirs() == [] and manager.session_ids() == []


async def test_requests_while_the_manager_is_gone_fail_fast(world: World) -> None:
    manager = world.make(stats_interval=0.0)
    session = await manager.launch()
    world.memory.kill_manager()

    _, elapsed = await raises_within(SystemdUnavailable, manager.launch())
    assert elapsed < 2, f"launch took {elapsed:.1f} s to fail"
    assert manager.session_ids() == [session["id"]] and world.dirs() == [f"session-{session['id']}"]
    await eventually(lambda: not gated(world), 5, what="the failed launch's gated child to end")
    listed, elapsed = await timed(manager.list_status())
    assert elapsed < 2, f"list_status took {elapsed:.1f} s"
    assert [s["id"] for s in listed] == [session["id"]]
    assert listed[0]["state"] == "running"
    status, elapsed = await timed(manager.status(session["id"]))
    assert elapsed < 2 and status["state"] == "running"
    ok, why = await manager.can_launch()
    assert not ok and "no systemd user manager" in why

    # systemd comes back with the session's unit (a real manager keeps its units).
    world.memory.respawn()
    world.start_scope(session["unit"], session["main_pid"])
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


async def test_cleanup_while_the_manager_is_gone_fails_fast_and_can_be_retried(world: World) -> None:
    manager = world.make()
    session = await manager.launch()
    world.memory.kill_manager()
    _, elapsed = await raises_within(SystemdUnavailable, manager.cleanup([session["id"]]))
    assert elapsed < 2, f"cleanup took {elapsed:.1f} s to fail"
    assert manager.session_ids() == [session["id"]]
    # systemd comes back, with the session's unit if its Xpra still runs (the failed cleanup may
    # have ended it by PID): the retried cleanup completes promptly.
    world.memory.respawn()
    if alive(session["main_pid"]):
        world.start_scope(session["unit"], session["main_pid"])
    stopped, elapsed = await timed(manager.cleanup([session["id"]]))
    assert stopped == ([session["id"]], {})
    assert elapsed < 10, f"the retried cleanup took {elapsed:.1f} s"
    await world.assert_clean(manager)


@pytest.mark.parametrize("outage", ["manager-gone", "bus-lost-mid-launch"])
async def test_a_launch_failed_by_an_outage_ends_its_gated_child(world: World, outage: str) -> None:
    manager = world.make(job_timeout=20.0)
    if outage == "manager-gone":
        await manager.start()
        world.memory.kill_manager()
        await raises_within(SystemdUnavailable, manager.launch())
    else:
        launch, _, _ = await world.hung_launch(manager)
        world.memory.drop_bus()
        await raises_within(SystemdUnavailable, launch)
    assert world.dirs() == [] and manager.session_ids() == []
    await eventually(lambda: not world.processes(), 5, what="the gated child to end")


async def test_a_cleanup_failed_by_an_outage_leaves_a_true_state(world: World) -> None:
    manager = world.make(stats_interval=0.0)
    session = await manager.launch()
    world.memory.kill_manager()
    await raises_within(SystemdUnavailable, manager.cleanup([session["id"]]))

    async def consistent() -> bool:
        status = await manager.status(session["id"])
        return (status["state"] == "running") == alive(session["main_pid"])

    await eventually(consistent, 5, what="the session's state to match its Xpra")
    if not alive(session["main_pid"]):
        assert manager.active_count() == 0 and manager.socket_path(session["id"]) is None
    world.memory.respawn()  # systemd is back: the retried cleanup finishes the job
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})


async def test_xpra_exiting_during_an_outage_ends_the_session(world: World) -> None:
    manager = world.make(stats_interval=0.0, job_timeout=2.0)  # bounds the wait of a cleanup of a stuck end
    session = await manager.launch()
    world.memory.kill_manager()
    os.kill(session["main_pid"], signal.SIGTERM)  # our own child; the fake Xpra exits 0
    await eventually(lambda: reaped(session["main_pid"]), 5, what="Xpra to exit")
    status = await eventually(lambda: ended(manager, session["id"]), 5, what="the session to end")
    assert status["state"] == "stopped" and status["main_pid"] is None
    assert world.dirs() == [] and manager.active_count() == 0
    world.memory.respawn()
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})


async def test_resync_after_an_outage_ends_vanished_sessions_and_keeps_running_ones(
    memory_or_bus_world: World,
) -> None:
    world = memory_or_bus_world
    manager = world.make(stats_interval=0.0)
    vanished = await manager.launch()
    kept = await manager.launch()
    world.drop_bus()
    await eventually(lambda: not manager.systemd.connected, what="the client to notice the drop")
    listed, elapsed = await timed(manager.list_status())
    assert elapsed < 2 and [s["state"] for s in listed] == ["running", "running"]
    _, elapsed = await raises_within(SystemdUnavailable, manager.launch())
    assert elapsed < 2, f"launch took {elapsed:.1f} s to fail without a bus"
    assert len(manager.session_ids()) == 2 and len(world.dirs()) == 2 and len(world.processes()) == 2

    # The bus comes back; systemd kept `kept`'s unit and lost `vanished`'s.
    world.revive(keep=[(kept["unit"], kept["main_pid"])])  # a fresh manager: it lost the other
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


async def test_vanished_unit_ends_the_session(world: World) -> None:
    manager = world.make(stats_interval=0.1)
    session = await manager.launch()
    assert world.memory.vanish_unit(session["unit"])
    status = await eventually(lambda: ended(manager, session["id"]), what="the session to end")
    assert status["state"] == "failed"
    assert status["message"] == "the session's unit vanished"
    assert manager.socket_path(session["id"]) is None
    await eventually(lambda: reaped(session["main_pid"]), 5, what="its Xpra to be ended")
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    await world.assert_clean(manager)


async def test_duplicate_unit_name_fails_and_leaves_the_other_unit_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = "0123456789ab"
    foreign = unit_name(sid)
    sleeper = await world.sleeper()
    world.start_scope(foreign, sleeper.pid)
    fixed_session_id(monkeypatch, sid)
    manager = world.make()
    failure, _ = await raises_within(LaunchError, manager.launch())
    assert isinstance(failure, LaunchError)
    assert failure.step == "unit-start" and "UnitExists" in failure.message
    assert manager.session_ids() == [] and world.dirs() == []
    await eventually(lambda: not world.processes(), 5, what="the gated child to end")
    assert world.memory.call_count("stop_unit") == 0
    assert world.memory.call_count("kill_unit") == 0
    assert world.memory.unit_state(foreign) == ("active", "success")
    assert sleeper.returncode is None and alive(sleeper.pid)
    sleeper.kill()
    await sleeper.wait()
    await eventually(lambda: world.memory.unit_state(foreign) is None, what="the foreign unit to go")


async def test_restarted_launcher_adopts_cleans_and_ignores_what_it_should(world: World) -> None:
    first = world.make()
    running = await first.launch("https://example.org/")
    await first.shutdown(stop_sessions=False)
    world.retire(first)

    # A unit of ours that failed (kept: CollectMode=inactive) and still has its directory.
    failed_sid = "aaaaaaaaaaaa"
    failed_unit = unit_name(failed_sid)
    doomed = await world.sleeper()
    world.start_scope(failed_unit, doomed.pid, collect_mode="inactive")
    (world.root / f"session-{failed_sid}").mkdir(mode=0o700)
    world.memory.fail_unit(failed_unit, "oom-kill", kill=True)
    assert world.memory.unit_state(failed_unit) == ("failed", "oom-kill")
    # A directory without a unit.
    (world.root / "session-bbbbbbbbbbbb" / "profile").mkdir(mode=0o700, parents=True)
    # A unit with our prefix but no directory here: another launcher's.
    other = await world.sleeper()
    other_unit = unit_name("cccccccccccc")
    world.start_scope(other_unit, other.pid)

    second = world.make()
    await second.start()
    assert second.session_ids() == [running["id"]]
    status = await second.status(running["id"])
    assert status["state"] == "running" and status["adopted"] is True
    assert status["main_pid"] == running["main_pid"]
    assert status["start_url"] == "https://example.org/" and status["created"] == running["created"]
    assert second.socket_path(running["id"]) is not None

    assert world.memory.unit_state(failed_unit) is None
    assert world.memory.call_count("reset_failed_unit") >= 1
    assert world.dirs() == [f"session-{running['id']}"]
    assert world.memory.unit_state(other_unit) == ("active", "success") and alive(other.pid)

    assert await second.cleanup([running["id"]]) == ([running["id"]], {})
    await eventually(lambda: not alive(running["main_pid"]), what="the adopted Xpra to end")
    await world.assert_clean(second, allowed_units=(other_unit,))
    other.kill()
    await other.wait()
    await eventually(lambda: world.memory.unit_state(other_unit) is None, what="the other unit to go")


async def test_restarted_launcher_stops_a_unit_of_ours_that_is_still_activating(world: World) -> None:
    sid = "dddddddddddd"
    sleeper = await world.sleeper()
    world.memory.start_scope(unit_name(sid), sleeper.pid, active_state="activating")
    assert world.memory.unit_state(unit_name(sid)) == ("activating", "success")
    (world.root / f"session-{sid}").mkdir(mode=0o700)
    manager = world.make()
    await manager.start()
    assert manager.session_ids() == []
    assert world.memory.unit_state(unit_name(sid)) is None
    assert world.memory.call_count("stop_unit") == 1
    await eventually(lambda: sleeper.returncode is not None, what="the unit's process to be ended")
    await world.assert_clean(manager)


async def test_max_sessions_holds_for_concurrent_launches(world: World) -> None:
    manager = world.make(max_sessions=3)
    results = await asyncio.gather(*(manager.launch() for _ in range(10)), return_exceptions=True)
    sessions = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, SessionLimitReached)]
    assert len(sessions) == 3 and len(refused) == 7, results
    assert world.memory.call_count("start_transient_unit") == 3
    assert sorted(world.units() or []) == sorted(s["unit"] for s in sessions)
    assert len({s["id"] for s in sessions}) == 3
    stopped, errors = await manager.cleanup([s["id"] for s in sessions])
    assert (sorted(stopped), errors) == (sorted(s["id"] for s in sessions), {})
    await world.assert_clean(manager)


async def test_cleanup_during_the_launch_cancels_it(world: World) -> None:
    manager = world.make(environ={"FAKE_XPRA_NEVER_READY": "1"}, ready_timeout=20.0)
    launch = asyncio.ensure_future(manager.launch())
    (unit,) = await eventually(lambda: world.units(), what="the scope to start")
    (sid,) = manager.session_ids()
    await eventually(lambda: world.memory.unit_state(unit) == ("active", "success"))
    pids = world.memory.unit_pids(unit)
    assert (await manager.status(sid))["state"] == "starting"
    result, elapsed = await timed(manager.cleanup([sid]))
    assert result == ([sid], {})
    assert elapsed < 10
    failure, _ = await raises_within(LaunchError, launch, limit=5)
    assert isinstance(failure, LaunchError) and failure.step == "cancelled"
    assert all(reaped(pid) for pid in pids)
    await world.assert_clean(manager)


async def test_idle_sessions_are_culled_but_connected_ones_are_not(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = world.make(idle_timeout=60, culling_interval=3600)  # only the explicit cull_idle() culls
    idle = await manager.launch()
    busy = await manager.launch()
    manager.connection_opened(busy["id"])
    manager.record_activity(idle["id"])  # its idle period starts now
    assert await manager.cull_idle() == []  # not idle long enough yet
    advance_wall_clock(monkeypatch, 61)  # idle_timeout passes

    culled, elapsed = await timed(manager.cull_idle())
    assert culled == [idle["id"]]
    assert elapsed < 10
    status = await manager.status(idle["id"])
    assert (status["state"], status["result"]) == ("stopped", "idle-timeout")
    assert "idle_timeout" in status["message"]
    assert world.memory.unit_state(idle["unit"]) is None
    assert not (world.root / f"session-{idle['id']}").exists()
    await eventually(lambda: reaped(idle["main_pid"]), 5, what="the idle Xpra to end")

    status = await manager.status(busy["id"])
    assert status["state"] == "running" and status["connections"] == 1
    manager.connection_closed(busy["id"])
    assert await manager.cull_idle() == []  # closing counts as activity
    assert await manager.cleanup([idle["id"], busy["id"]]) == ([idle["id"], busy["id"]], {})
    await world.assert_clean(manager)


@pytest.mark.parametrize(
    ("shutdown_timeout", "stop_timeout"),
    [(20.0, 0.3), (0.3, 2.0)],
    ids=["in-time", "forced"],  # forced: the stop of the stubborn one outlasts shutdown_timeout
)
async def test_shutdown_ends_every_session_even_one_ignoring_sigterm(
    world: World, shutdown_timeout: float, stop_timeout: float
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
        stop_timeout=stop_timeout,
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
