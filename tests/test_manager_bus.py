"""The session manager end to end on the dbusmock systemd: outages of the bus and of the manager.

The state machine itself is tested on the in-memory systemd (test_manager.py,
test_manager_faults.py); these tests keep the few faults whose truth lies in the D-Bus client:
the bus dropped and served again, the manager killed and respawned on the same bus, a JobRemoved
that beats its reply, the bus lost between a reply and its job wait, a slow GetAll. Outages that
outlast a process come from tests/fakes/faults.py; the world is tests/fakes/manager_world.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes.faults import drop_bus, respawn_manager, revive
from fakes.manager_world import World, alive, at_the_gate, ended, raises_within, reaped, timed
from fakes.polling import eventually

from ffsystemd.errors import SystemdUnavailable
from ffsystemd.manager import SessionManager

pytestmark = pytest.mark.asyncio


@pytest.fixture
def world(bus_world: World) -> World:
    return bus_world


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


async def test_job_removed_before_the_reply_is_not_lost(world: World) -> None:
    manager = world.make(job_timeout=5.0)
    world.fake.job_removed_before_reply()
    session = await world.launch(manager)
    assert session["state"] == "running"
    assert (await manager.cleanup([session["id"]]))[1] == {}
    await world.assert_clean(manager)


async def test_bus_lost_during_a_launch_fails_it_at_once_and_a_later_launch_works(world: World) -> None:
    manager = world.make(job_timeout=20.0)
    launch, _, pids = await hung_launch(world, manager)
    drop_bus(world.fake)
    _, elapsed = await raises_within(SystemdUnavailable, launch)
    assert elapsed < 5, f"the launch waited {elapsed:.1f} s (job_timeout is 20 s)"
    assert manager.session_ids() == [] and world.dirs() == []
    assert not manager.systemd.connected
    assert all(at_the_gate(pid) or not alive(pid) for pid in pids), "Xpra ran though its unit never started"
    await eventually(lambda: not world.processes(), 5, what="the gated child to end")

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
    await eventually(lambda: not world.processes(), 5, what="the gated child to end")
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
    revive(world.fake, prepare=lambda: world.fake.start_scope(kept["unit"], kept["main_pid"]))
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
