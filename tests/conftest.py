"""Shared fixtures; their machinery lives in tests/fakes/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from fakes.dbus_world import FakeSystemd, start_fake_systemd
from fakes.manager_world import World
from fakes.memory_systemd import MemorySystemd

# tests/vm runs only inside the VM tier's guest (scripts/test-vm), never in the host run.
collect_ignore = ["vm"]


@pytest.fixture
def fake_systemd(request: pytest.FixtureRequest) -> Iterator[FakeSystemd]:
    """A fresh private session bus with the fake systemd user manager on it (`.address`, fault controls).

    Template parameters (e.g. {"stop_timeout_cap": 1.0}) can be given by indirect parametrization.
    The fake's call log is printed at teardown (pytest shows it when the test failed).
    """
    fake = start_fake_systemd(getattr(request, "param", None))
    try:
        yield fake
    finally:
        print(fake.output())
        fake.stop()


async def _world_fixture(world: World, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    yield world
    problems = await world.finish()
    if problems and request.node.get_closest_marker("xfail") is None:
        pytest.fail(f"left behind: {problems}")


@pytest_asyncio.fixture
async def memory_world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Session managers on the in-memory systemd (tests/fakes/memory_systemd.py); fails on leftovers."""
    async for world in _world_fixture(World(MemorySystemd()), request):
        yield world


@pytest.fixture(params=["memory_world", "bus_world"], ids=["memory", "bus"])
def memory_or_bus_world(request: pytest.FixtureRequest) -> World:
    """The test twice: on the in-memory systemd, then end to end on the dbusmock one (a fault
    whose truth lies both in the state machine and in the D-Bus client)."""
    world: World = request.getfixturevalue(request.param)
    return world


@pytest_asyncio.fixture
async def bus_world(fake_systemd: FakeSystemd, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Session managers on the dbusmock systemd on a private bus; fails on leftovers."""
    async for world in _world_fixture(World(fake_systemd), request):
        yield world
