"""Server identity in health, and orphaned sessions of dead servers: listed, removed only on request."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fakes.dbus_world import FakeSystemd
from fakes.polling import eventually

from ffsystemd.identity import unit_description
from ffsystemd.ids import new_session_id
from ffsystemd.liveness import ServerLock, lock_path, read_record, try_lock
from ffsystemd.ownership import session_metadata
from ffsystemd.units import unit_name

from .conftest import HEALTH_ROUTE, Api, process_alive
from .test_firefox import assert_error


def state_dir() -> Path:
    return Path(os.environ["HOME"]) / ".firefox-launcher"  # pytest-jupyter's HOME for this test


@dataclass
class OtherServers:
    """Other servers of the same user, alive (lock held) or dead, with sessions in the fake."""

    fake: FakeSystemd
    tmp: Path
    locks: list[ServerLock] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def server(self, server_id: str, alive: bool, root: Path | None = None) -> Path:
        """Record a server (its lock file names its session root); hold its lock if alive."""
        root = root or self.tmp / server_id
        root.mkdir(exist_ok=True)
        lock = try_lock(state_dir(), server_id)
        assert lock is not None
        lock.write_record({"pid": 1, "session_root": str(root)})
        if alive:
            self.locks.append(lock)
        else:
            lock.release()
        return root

    def session(
        self, server_id: str, root: Path | None, *, unit: bool = True, description: str | None = None
    ) -> str:
        """A session of server_id: a directory under root (unless None) and a unit (unless not unit)."""
        sid = new_session_id()
        if root is not None:
            base = root / f"session-{sid}"
            (base / "profile").mkdir(parents=True)
            meta = session_metadata(
                session_id=sid, server_id=server_id, unit=unit_name(sid), start_url="about:blank", created="x"
            )
            (base / "session.json").write_text(json.dumps(meta))
        if unit:
            proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
            self.procs.append(proc)
            self.fake.start_scope(
                unit_name(sid),
                proc.pid,
                description=description or unit_description(sid, server_id),
            )
        return sid

    def unit_loaded(self, sid: str) -> bool:
        return unit_name(sid) in self.fake.loaded_units()

    def end(self) -> None:
        for lock in self.locks:
            lock.release()
        for unit in self.fake.loaded_units():
            if unit.startswith("app-ffsystemd-firefox-") and self.fake.process is not None:
                with contextlib.suppress(Exception):
                    self.fake._call("VanishUnit", "s", unit)
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def others(fake_systemd: FakeSystemd, tmp_path: Path) -> Iterator[OtherServers]:
    world = OtherServers(fake_systemd, tmp_path)
    yield world
    world.end()


async def health(api: Api) -> dict:
    reply = await api.call("GET", HEALTH_ROUTE)
    assert reply.code == 200, reply.body
    return reply.json


async def test_health_says_who_this_server_is(api: Api, launcher_app, session_root: Path) -> None:
    report = await health(api)
    server = report["server"]
    assert server["source"] == "derived"
    assert server["server_id"] == launcher_app.server_lock.server_id
    assert server["session_root"] == str(session_root)
    assert report["orphans"] == []
    record = read_record(lock_path(state_dir(), server["server_id"]))
    assert record["pid"] == os.getpid()
    assert record["session_root"] == str(session_root)


async def test_orphans_are_listed_and_removed_only_on_request(api: Api, others: OtherServers) -> None:
    dead_root = others.server("dead-1", alive=False)
    live_root = others.server("live-1", alive=True)
    orphan = others.session("dead-1", dead_root)
    dir_only = others.session("dead-1", dead_root, unit=False)
    unit_only = others.session("dead-1", None)
    alive = others.session("live-1", live_root)
    nobodys = others.session("dead-1", None, description="Firefox session from an older ffsystemd")
    elsewhere = others.session("ran-elsewhere", None)  # no lock file here: another HOME's server

    listed = {o["id"]: o for o in (await health(api))["orphans"]}
    assert set(listed) == {orphan, dir_only, unit_only}
    assert listed[orphan] == {
        "server_id": "dead-1",
        "id": orphan,
        "unit": unit_name(orphan),
        "unit_state": "active",
        "directory": str(dead_root / f"session-{orphan}"),
    }
    assert listed[dir_only]["unit"] is None and listed[unit_only]["directory"] is None
    # Listing, our own cleanup of everything of ours, and a re-sync touch none of them.
    assert (await api.cleanup(all=True)).json == {"stopped": [], "errors": {}}
    assert all(others.unit_loaded(s) for s in (orphan, unit_only, alive, nobodys, elsewhere))

    reply = await api.cleanup(orphans=True)
    assert reply.code == 200, reply.body
    assert sorted(reply.json["stopped"]) == sorted([orphan, dir_only, unit_only])
    assert reply.json["errors"] == {}
    assert {o["id"] for o in reply.json["orphans"]} == {orphan, dir_only, unit_only}
    await eventually(lambda: not others.unit_loaded(orphan) and not others.unit_loaded(unit_only), 5)
    assert not (dead_root / f"session-{orphan}").exists()
    assert not (dead_root / f"session-{dir_only}").exists()
    await eventually(lambda: not process_alive(others.procs[0].pid), 5, "the orphan's process to end")
    # The live server's session and the one without a readable owner are untouched.
    assert others.unit_loaded(alive) and (live_root / f"session-{alive}").is_dir()
    assert others.unit_loaded(nobodys) and others.unit_loaded(elsewhere)
    assert (await health(api))["orphans"] == []


async def test_a_server_that_comes_back_keeps_its_sessions(
    api: Api, others: OtherServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = others.server("back-1", alive=True)
    sid = others.session("back-1", root)
    # Seen as dead when listed, alive by the time the cleanup takes its lock.
    monkeypatch.setattr("ffsystemd.orphans.is_alive", lambda _state, _sid: False)
    reply = await api.cleanup(orphans=True)
    assert reply.code == 200, reply.body
    assert reply.json["stopped"] == []
    assert "running again" in reply.json["errors"]["back-1"]
    assert others.unit_loaded(sid) and (root / f"session-{sid}").is_dir()


@pytest.mark.parametrize(
    "body",
    [{"orphans": False}, {"orphans": 1}, {"orphans": True, "force": True}, {"orphans": True, "all": True}],
)
async def test_bad_orphan_cleanup_requests_are_400(api: Api, body: dict) -> None:
    assert_error(await api.cleanup(body), 400)
