"""Ownership between two servers of one user that share a session_root (configured so).

This server (pytest-jupyter's, derived id) talks to the fake systemd through a relay
(tests/fakes/bus_relay.py), so cutting the relay is an outage and a reconnect of this server
only; "other" is a second SessionManager with server id `other-1` on the same fake, directly on
its bus, with its own liveness lock held (alive). Whatever state other's sessions are in, this
server never lists, adopts, discards, sweeps, proxies or cleans them up.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fakes.bus_relay import BusRelay
from fakes.dbus_world import FAKE_XPRA, FakeSystemd
from fakes.polling import eventually

import ffsystemd.launch
from ffsystemd.commands import XpraSettings
from ffsystemd.identity import unit_description
from ffsystemd.liveness import try_lock
from ffsystemd.manager import ManagerSettings, SessionManager
from ffsystemd.process import GatedProcess
from ffsystemd.systemd import SystemdClient
from ffsystemd.units import ScopeLimits

from .conftest import Api, unit_properties
from .test_firefox import launched

OTHER = "other-1"


@pytest.fixture
def relay(fake_systemd: FakeSystemd) -> Iterator[BusRelay]:
    workdir = Path(tempfile.mkdtemp(prefix="ffs-relay-", dir="/tmp"))
    relay = BusRelay(fake_systemd.bus.socket, workdir).start()
    yield relay
    relay.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def launcher_traits(launcher_traits: dict[str, Any], relay: BusRelay) -> dict[str, Any]:
    """This server reaches the fake through the relay."""
    return dict(launcher_traits, bus_address=relay.address)


@pytest_asyncio.fixture
async def other(
    fake_systemd: FakeSystemd, session_root: Path, jp_serverapp: Any
) -> AsyncIterator[SessionManager]:
    """Another live server's manager (id other-1) on the same fake and the same session_root."""
    lock = try_lock(Path(os.environ["HOME"]) / ".firefox-launcher", OTHER)
    assert lock is not None
    settings = ManagerSettings(
        session_root=session_root,
        slice_name="app-ffsystemd.slice",
        limits=ScopeLimits(),
        xpra=XpraSettings(xpra_command=(sys.executable, str(FAKE_XPRA)), firefox_command=("/bin/true",)),
        ready_timeout=10,
        server_id=OTHER,
    )
    manager = SessionManager(
        settings, SystemdClient(fake_systemd.address), url_for=lambda sid: f"/other/{sid}/"
    )
    await manager.start()
    yield manager
    await manager.shutdown(stop_sessions=True)
    lock.release()


def _pause(monkeypatch: pytest.MonkeyPatch, where: str) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the next launch before its unit exists ('spawn') or before Xpra counts as ready."""
    reached, go = asyncio.Event(), asyncio.Event()
    if where == "spawn":
        real_spawn = GatedProcess.spawn

        async def paused_spawn(*args: Any, **kwargs: Any) -> GatedProcess:
            reached.set()
            await go.wait()
            return await real_spawn(*args, **kwargs)

        monkeypatch.setattr(GatedProcess, "spawn", paused_spawn)
    else:
        real_ready = ffsystemd.launch.serves_html5_client

        async def paused_ready(path: Path) -> bool:
            reached.set()
            await go.wait()
            return await real_ready(path)

        monkeypatch.setattr(ffsystemd.launch, "serves_html5_client", paused_ready)
    return reached, go


async def test_sessions_name_their_server(api: Api, launcher_app: Any, fake_systemd, session_root) -> None:
    session = await launched(api)
    server_id = launcher_app.server_lock.server_id
    assert session["server_id"] == server_id
    meta = (session_root / f"session-{session['id']}" / "session.json").read_text()
    assert f'"server_id": "{server_id}"' in meta
    description = unit_properties(fake_systemd, session["unit"])["Description"]
    assert description == unit_description(session["id"], server_id)
    assert (await api.cleanup(all=True)).code == 200


@pytest.mark.parametrize("where", ["spawn", "ready"])
async def test_a_reconnect_here_leaves_the_other_servers_launch_intact(
    api: Api,
    manager: SessionManager,
    other: SessionManager,
    relay: BusRelay,
    fake_systemd: FakeSystemd,
    session_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    assert await api.sessions() == []  # this server is up (its manager starts on first use)
    assert manager.systemd.connected
    reached, go = _pause(monkeypatch, where)
    launch = asyncio.ensure_future(other.launch())
    await eventually(reached.is_set, 10, f"other's launch to reach {where}")
    (sid,) = other.session_ids()
    directory = session_root / f"session-{sid}"
    assert (directory / "session.json").is_file()  # the directory is filled, the launch goes on

    listed_before = fake_systemd.call_count("ListUnitsByPatterns")
    relay.cut()  # this server's bus drops; other's does not
    await eventually(lambda: not manager.systemd.connected, 10, "this server to see the outage")
    await eventually(
        lambda: manager.systemd.connected and fake_systemd.call_count("ListUnitsByPatterns") > listed_before,
        20,
        "this server to reconnect and re-sync",
    )
    assert await api.sessions() == []  # nothing adopted
    assert directory.is_dir()  # nothing swept

    go.set()
    session = await asyncio.wait_for(launch, 20)
    assert session["state"] == "running" and session["server_id"] == OTHER
    assert (directory / "session.json").is_file()
    assert fake_systemd.unit_state(session["unit"]) == ("active", "success")

    # Neither a listing, a lookup, the proxy nor a cleanup of this server reaches it.
    assert await api.sessions() == []
    assert (await api.session(sid)).code == 404
    assert (await api.cleanup(id=sid)).code == 404
    assert (await api.cleanup(all=True)).json == {"stopped": [], "errors": {}}
    assert fake_systemd.unit_state(session["unit"]) == ("active", "success")


async def test_shutdown_here_leaves_the_other_servers_sessions(
    api: Api, manager: SessionManager, other: SessionManager, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    ours = await launched(api)
    theirs = await other.launch()
    await manager.shutdown(stop_sessions=True)  # what stop_extension does with on_shutdown = stop
    await eventually(lambda: fake_systemd.unit_state(ours["unit"]) is None, 10, "our unit to go")
    assert not (session_root / f"session-{ours['id']}").exists()
    assert fake_systemd.unit_state(theirs["unit"]) == ("active", "success")
    assert (session_root / f"session-{theirs['id']}").is_dir()


@pytest.mark.launcher(idle_timeout=1, culling_interval=0.2)
async def test_idle_culling_here_culls_only_this_servers_sessions(
    api: Api, manager: SessionManager, other: SessionManager, fake_systemd: FakeSystemd
) -> None:
    ours = await launched(api)
    theirs = await other.launch()
    status = await eventually(lambda: _ended(api, ours["id"]), 15, "this server's idle session to be culled")
    assert status["result"] == "idle-timeout"
    assert fake_systemd.unit_state(theirs["unit"]) == ("active", "success")
    assert (await other.status(theirs["id"]))["state"] == "running"
    assert (await api.cleanup(id=ours["id"])).code == 200


async def _ended(api: Api, session_id: str) -> dict[str, Any] | None:
    reply = await api.session(session_id)
    return reply.json if reply.code == 200 and reply.json["state"] in ("stopped", "failed") else None
