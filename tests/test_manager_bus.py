"""The session manager end to end on the dbusmock systemd: outages of the bus and of the manager.

The state machine itself is tested on the in-memory systemd (test_manager.py,
test_manager_faults.py); these tests keep the few faults whose truth lies in the D-Bus client:
the bus dropped and served again, the manager killed and respawned on the same bus, a JobRemoved
that beats its reply, the bus lost between a reply and its job wait, a slow GetAll. The faults
true of both systemds (the manager lost mid-launch, the re-sync after an outage) run on each, in
test_manager_faults.py (the memory_or_bus_world fixture). Outages that
outlast a process come from tests/fakes/faults.py; the world is tests/fakes/manager_world.py.
"""

from __future__ import annotations

import pytest
from fakes.faults import drop_bus, respawn_manager, revive
from fakes.manager_world import World, alive, at_the_gate, raises_within, timed
from fakes.polling import eventually

from ffsystemd.errors import SystemdUnavailable

pytestmark = pytest.mark.asyncio


@pytest.fixture
def world(bus_world: World) -> World:
    return bus_world


async def test_job_removed_before_the_reply_is_not_lost(world: World) -> None:
    manager = world.make(job_timeout=5.0)
    world.fake.job_removed_before_reply()
    session = await world.launch(manager)
    assert session["state"] == "running"
    assert (await manager.cleanup([session["id"]]))[1] == {}
    await world.assert_clean(manager)


async def test_bus_lost_during_a_launch_fails_it_at_once_and_a_later_launch_works(world: World) -> None:
    manager = world.make(job_timeout=20.0)
    launch, _, pids = await world.hung_launch(manager)
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
