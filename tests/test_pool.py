"""The warm pool (ffsystemd.pool) on the in-memory systemd with the fake Xpra.

The fake Xpra does not run the warm start script, so each test stands in for it: `ready`
says a pooled session's Firefox waits for its page, `send` records the URL handed over (the
script and the FIFO are tested with real processes in test_warm.py). The world fails a test if
anything (unit, process, directory, session) is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from fakes.manager_world import World
from fakes.polling import eventually
from prometheus_client import REGISTRY

from ffsystemd import metrics
from ffsystemd.errors import SessionLimitReached, UnknownSession
from ffsystemd.events import PoolClaimed, SessionEvent
from ffsystemd.manager import SessionManager
from ffsystemd.ownership import METADATA_FILE
from ffsystemd.session_dirs import SessionPaths
from ffsystemd.warm import OpenFailed, claim_fifo, script_path

pytestmark = pytest.mark.asyncio


@pytest.fixture
def world(memory_world: World) -> World:
    return memory_world


class FakeWarm:
    """Stands in for the warm script: every pooled session is ready; records what it opened."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []
        self.screens: list[tuple[int, int] | None] = []
        self.fail = False

    def ready(self, paths: SessionPaths) -> bool:
        return paths.base.exists()

    def send(self, paths: SessionPaths, url: str, screen: tuple[int, int] | None = None) -> None:
        if self.fail:
            raise OpenFailed("nobody waits for it")
        self.opened.append((paths.session_id, url))
        self.screens.append(screen)

    async def taken(self, paths: SessionPaths) -> None:
        await asyncio.sleep(0)


def pooled(
    world: World, size: int = 1, **overrides: Any
) -> tuple[SessionManager, FakeWarm, list[SessionEvent]]:
    manager = world.make(pool_size=size, **overrides)
    fake = FakeWarm()
    manager.pool.ready, manager.pool.send, manager.pool.taken = fake.ready, fake.send, fake.taken
    manager.pool.refill_delay = 0.0
    events: list[SessionEvent] = []
    manager.observers.add(events.append)
    return manager, fake, events


def ready_ids(manager: SessionManager) -> list[str]:
    return [s.id for s in manager.pool.ready_members()]


async def full(manager: SessionManager, size: int = 1) -> list[str]:
    await manager.start()
    return await eventually(
        lambda: len(ready_ids(manager)) == size and ready_ids(manager), what=f"{size} ready pool sessions"
    )


async def test_pooled_sessions_are_started_warm_hidden_and_not_counted(world: World) -> None:
    manager, _fake, _events = pooled(world, size=2, max_sessions=1)
    ids = await full(manager, 2)
    for sid in ids:
        session = manager.ctx.sessions[sid]
        assert session.warm and session.pooled and session.start_url == "about:blank"
        assert script_path(session.paths).exists() and claim_fifo(session.paths).exists()
        assert json.loads((session.paths.base / METADATA_FILE).read_text())["pooled"] is True
        with pytest.raises(UnknownSession):
            manager.get(sid)
        assert manager.socket_path(sid) is None
    assert manager.session_ids() == [] and await manager.list_status() == []
    assert manager.active_count() == 0 and (await manager.can_launch())[0]
    assert sorted(world.units() or []) == sorted(manager.ctx.sessions[s].unit for s in ids)
    assert manager.pool.counts() == {"ready": 2, "starting": 0}
    manager.pool.ready = lambda paths: paths.session_id != ids[0]  # one of them not ready (yet, again)
    assert manager.pool.counts() == {"ready": 1, "starting": 1}
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_launch_claims_a_ready_session_opens_its_url_and_the_pool_refills(world: World) -> None:
    manager, fake, events = pooled(world)
    [pooled_id] = await full(manager)
    started_at = manager.ctx.sessions[pooled_id].created
    session = await manager.launch("https://example.org/page")
    assert session["id"] == pooled_id and session["state"] == "running"
    assert session["start_url"] == "https://example.org/page"
    assert fake.opened == [(pooled_id, "https://example.org/page")]
    assert manager.session_ids() == [pooled_id] and manager.active_count() == 1
    base = world.root / f"session-{pooled_id}"
    metadata = json.loads((base / METADATA_FILE).read_text())
    assert metadata["start_url"] == "https://example.org/page" and "pooled" not in metadata
    assert manager.get(pooled_id).created > started_at  # its idle clock starts at the claim
    [refill] = await full(manager)
    assert refill != pooled_id
    [claim] = [e for e in events if isinstance(e, PoolClaimed)]
    assert (claim.session_id, claim.outcome) == (pooled_id, "hit")
    await manager.cleanup([pooled_id])
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_an_empty_pool_launches_cold_without_error(world: World) -> None:
    manager, fake, events = pooled(world)
    manager.pool.ready = lambda paths: False  # Firefox never got to its blank page
    await manager.start()
    session = await manager.launch("https://example.org/")
    assert not manager.ctx.sessions[session["id"]].warm and fake.opened == []
    assert any(isinstance(e, PoolClaimed) and e.outcome == "miss" for e in events)
    await manager.cleanup([session["id"]])
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_a_pooled_session_that_does_not_take_its_page_is_stopped_and_the_launch_goes_cold(
    world: World,
) -> None:
    manager, fake, events = pooled(world)
    [broken] = await full(manager)
    fake.fail = True
    session = await manager.launch("https://example.org/")
    assert session["id"] != broken and not manager.ctx.sessions[session["id"]].warm
    await eventually(lambda: broken not in manager.ctx.sessions, what="the broken pooled session to go")
    assert broken not in manager.session_ids()
    assert any(isinstance(e, PoolClaimed) and e.outcome == "failed" for e in events)
    await manager.cleanup([session["id"]])
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_a_crashed_pooled_session_is_replaced(world: World) -> None:
    manager, _fake, _events = pooled(world)
    manager.pool._failures = -10  # no back-off wait in this test (a crash backs off 2^n s)
    [first] = await full(manager)
    os.kill(manager.ctx.sessions[first].main_pid or 0, signal.SIGKILL)
    [second] = await eventually(
        lambda: (ids := ready_ids(manager)) and ids != [first] and ids, what="a new pooled session"
    )
    assert first not in manager.ctx.sessions and not (world.root / f"session-{first}").exists()
    assert second != first
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_shutdown_stops_every_pooled_session_even_when_keeping_the_users(world: World) -> None:
    manager, _fake, _events = pooled(world, size=2)
    await full(manager, 2)
    kept = await manager.launch("https://example.org/")  # claims one; the pool refills
    await full(manager, 2)
    await manager.shutdown(stop_sessions=False)
    assert [s.id for s in manager.ctx.sessions.values() if s.pooled] == []
    assert world.units() == [kept["unit"]]  # only the user's session is left running
    world.retire(manager)
    successor = world.make()
    await successor.start()
    await eventually(lambda: successor.session_ids() == [kept["id"]], what="the kept session re-adopted")
    await successor.cleanup([kept["id"]])
    await world.assert_clean(successor)


async def test_max_sessions_counts_claimed_sessions_only(world: World) -> None:
    manager, _fake, _events = pooled(world, size=1, max_sessions=1)
    await full(manager)
    first = await manager.launch("https://example.org/")
    await full(manager)  # a pooled session waits again, but the user is at max_sessions
    with pytest.raises(SessionLimitReached):
        await manager.launch("https://example.org/")
    assert len(ready_ids(manager)) == 1  # the refused launch did not take it
    await manager.cleanup([first["id"]])
    second = await manager.launch("https://example.org/two")
    assert second["start_url"] == "https://example.org/two"
    await manager.cleanup([second["id"]])
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_a_pooled_session_older_than_pool_max_age_is_replaced(world: World) -> None:
    manager, _fake, _events = pooled(world, pool_max_age=0.5)
    [old] = await full(manager)
    await eventually(
        lambda: (ids := ready_ids(manager)) and ids != [old] and ids, what="the old pooled session replaced"
    )
    await eventually(lambda: old not in manager.ctx.sessions, what="the old one stopped")
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_pooled_sessions_are_not_culled_as_idle(world: World) -> None:
    manager, _fake, _events = pooled(world, idle_timeout=0.1)
    [sid] = await full(manager)
    await asyncio.sleep(0.2)
    assert await manager.cull_idle() == []
    assert sid in manager.ctx.sessions
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_no_pooled_session_leaks_after_many_claims_and_cleanups(world: World) -> None:
    manager, fake, _events = pooled(world, size=1)
    for n in range(6):
        await full(manager)
        session = await manager.launch(f"https://example.org/{n}")
        await manager.cleanup([session["id"]])
    await full(manager)
    assert len([s for s in manager.ctx.sessions.values() if s.pooled]) == 1
    assert len(world.units() or []) == 1 and len(world.dirs()) == 1
    assert [url for _sid, url in fake.opened] == [f"https://example.org/{n}" for n in range(6)]
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_pool_size_zero_launches_cold_and_starts_nothing_ahead(world: World) -> None:
    manager = world.make()
    await manager.start()
    await asyncio.sleep(0.3)
    assert world.units() == [] and manager.pool.members() == []
    session = await manager.launch("https://example.org/")
    assert not manager.ctx.sessions[session["id"]].warm
    await manager.cleanup([session["id"]])
    await manager.shutdown()
    await world.assert_clean(manager)


async def test_a_restarted_server_stops_the_pooled_sessions_of_its_predecessor(world: World) -> None:
    manager, _fake, _events = pooled(world)
    [sid] = await full(manager)
    manager.pool._closing = True  # as if the server died: nothing stops the pool
    if manager._housekeeping is not None:
        manager._housekeeping.cancel()
    await manager.systemd.close()
    world.retire(manager)
    successor = world.make()
    await successor.start()
    await eventually(lambda: world.units() == [], what="the predecessor's pooled unit to be stopped")
    assert successor.session_ids() == [] and not Path(world.root / f"session-{sid}").exists()
    await world.assert_clean(successor)


async def test_shutdown_while_a_pooled_session_starts_leaves_nothing(world: World) -> None:
    manager, _fake, _events = pooled(world)
    await manager.start()
    await eventually(lambda: manager.pool.members(), what="a pooled session to be starting")
    assert manager.pool.members()[0].state.value == "starting"
    await manager.shutdown()
    assert [s for s in manager.ctx.sessions.values() if s.pooled] == []
    await world.assert_clean(manager)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_claims_and_pool_starts_and_show_the_pool(world: World) -> None:
    manager, _fake, _events = pooled(world)
    metrics.install(manager)
    hits, misses = (
        sample("ffsystemd_pool_claims_total", outcome="hit"),
        sample("ffsystemd_pool_claims_total", outcome="miss"),
    )
    starts = sample("ffsystemd_pool_starts_total", outcome="running")
    launches = sample("ffsystemd_launches_total", outcome="running", step="")
    await full(manager)
    assert sample("ffsystemd_pool_sessions", state="ready") == 1
    assert sample("ffsystemd_pool_starts_total", outcome="running") == starts + 1
    claimed = await manager.launch("https://example.org/")
    manager.pool.ready = lambda paths: False  # the refill is not ready: the next launch misses
    cold = await manager.launch("https://example.org/")
    assert sample("ffsystemd_pool_claims_total", outcome="hit") == hits + 1
    assert sample("ffsystemd_pool_claims_total", outcome="miss") == misses + 1
    assert sample("ffsystemd_launches_total", outcome="running", step="") == launches + 1  # the cold one
    await manager.cleanup([claimed["id"], cold["id"]])
    await manager.shutdown()
    metrics.SESSIONS.discard(manager)
    await world.assert_clean(manager)


async def test_a_claim_without_waiting_answers_once_the_url_is_sent_and_confirms_later(world: World) -> None:
    manager, fake, events = pooled(world)
    confirm = asyncio.Event()

    async def taken(paths: SessionPaths) -> None:
        await confirm.wait()
        raise OpenFailed("Firefox's remote client ended with 1")

    manager.pool.taken = taken
    [sid] = await full(manager)
    session = await manager.launch("https://example.org/", wait=False)
    assert (session["id"], session["state"]) == (sid, "running") and fake.opened == [
        (sid, "https://example.org/")
    ]
    assert not [e for e in events if isinstance(e, PoolClaimed)]  # not confirmed yet
    confirm.set()
    await eventually(
        lambda: [e.outcome for e in events if isinstance(e, PoolClaimed)] == ["failed"], what="the failure"
    )
    assert manager.get(sid).state.value == "running"  # the user's session stays, on its blank page
    await manager.cleanup([sid])
    await manager.shutdown()
    await world.assert_clean(manager)
