"""ffsystemd.manager.SessionManager without HTTP: the fake systemd user manager and the fake Xpra.

Each test builds a SessionManager with `make_manager(**settings)` (ManagerSettings fields),
talking to `fake_systemd` and running tests/fakes/fake_xpra.py as Xpra, with a short session
root under /tmp. Afterwards every session left is stopped and the test fails if anything
(unit, process, directory) was left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
from fakes.dbus_world import FAKE_XPRA, FAKE_XPRA_ENV, FakeSystemd
from fakes.polling import eventually

from ffsystemd.commands import XpraSettings
from ffsystemd.errors import LaunchError, SessionLimitReached, UnknownSession
from ffsystemd.manager import ManagerSettings, SessionManager
from ffsystemd.systemd import SystemdClient
from ffsystemd.units import UNIT_PREFIX, ScopeLimits, scope_properties

pytestmark = pytest.mark.asyncio


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def ended(manager: SessionManager, session_id: str) -> dict[str, Any] | None:
    """The session's status once it is no longer starting, running or stopping."""
    status = await manager.status(session_id)
    return status if status["state"] not in ("starting", "running", "stopping") else None


class World:
    def __init__(self, fake: FakeSystemd) -> None:
        self.fake = fake
        self.root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
        self.managers: list[SessionManager] = []
        self.pids: list[int] = []

    def make(self, environ: dict[str, str] | None = None, **overrides: Any) -> SessionManager:
        xpra = overrides.pop("xpra", None) or XpraSettings(
            xpra_command=(sys.executable, str(FAKE_XPRA)),
            firefox_command=("/bin/true",),
            pass_environment=FAKE_XPRA_ENV,
        )
        settings = ManagerSettings(
            session_root=self.root,
            slice_name="app-ffsystemd.slice",
            limits=ScopeLimits(memory_max=2**30, tasks_max=256, stop_timeout_usec=2_000_000),
            xpra=xpra,
            **{"max_sessions": 2, "ready_timeout": 5.0, **overrides},
        )
        manager = SessionManager(
            settings,
            SystemdClient(self.fake.address, call_timeout=5),
            url_for=lambda sid: f"/firefox-launcher/session/{sid}/",
            environ=dict(os.environ, **(environ or {})),
        )
        self.managers.append(manager)
        return manager

    async def launch(self, manager: SessionManager, url: str | None = None) -> dict[str, Any]:
        session = await manager.launch(url)
        self.pids.append(session["main_pid"])
        return session

    def retire(self, manager: SessionManager) -> None:
        """A manager shut down keeping its sessions: they are handed over, not left behind."""
        self.managers.remove(manager)

    def units(self) -> list[str]:
        return [u for u in self.fake.loaded_units() if u.startswith(UNIT_PREFIX)]

    def dirs(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())


@pytest_asyncio.fixture
async def world(fake_systemd: FakeSystemd) -> AsyncIterator[World]:
    """Managers on the fake systemd; checks at the end that nothing is left behind."""
    w = World(fake_systemd)
    yield w
    problems = []
    for manager in w.managers:
        if manager.session_ids():
            problems.append(f"sessions left: {manager.session_ids()}")
            await manager.cleanup(manager.session_ids(), force=True)
        await manager.shutdown(stop_sessions=False)
    if fake_systemd.process is not None and w.units():
        problems.append(f"units left: {w.units()}")
    for pid in w.pids:
        if alive(pid):
            problems.append(f"process {pid} left")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if w.dirs():
        problems.append(f"directories left: {w.dirs()}")
    shutil.rmtree(w.root, ignore_errors=True)
    assert not problems, problems


async def test_launch_status_cleanup_round_trip(world: World) -> None:
    manager = world.make()
    session = await world.launch(manager, "https://example.org/")
    assert session["state"] == "running"
    assert session["memory_max"] == 2**30 and session["tasks_max"] == 256
    assert world.units() == [session["unit"]]
    assert (
        manager.socket_path(session["id"])
        == world.root / f"session-{session['id']}" / "sockets" / "xpra.sock"
    )
    status = await manager.status(session["id"])
    assert status["state"] == "running" and status["main_pid"] == session["main_pid"]
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    assert world.units() == [] and world.dirs() == []
    assert not alive(session["main_pid"])
    assert manager.socket_path(session["id"]) is None
    with pytest.raises(UnknownSession):
        await manager.status(session["id"])


async def test_socket_path_refuses_unknown_and_malformed_ids(world: World) -> None:
    manager = world.make()
    for value in ("0123456789ab", "../../etc", "ABCDEF012345", ""):
        assert manager.socket_path(value) is None


async def test_hanging_start_job_fails_at_unit_start_and_leaves_nothing(world: World) -> None:
    manager = world.make(job_timeout=1.0)
    world.fake.hang_start_jobs()
    started = time.monotonic()
    with pytest.raises(LaunchError) as failure:
        await manager.launch()
    assert failure.value.step == "unit-start"
    assert "did not finish within 1 s" in failure.value.message
    assert time.monotonic() - started < 10
    assert world.units() == [] and world.dirs() == [] and manager.session_ids() == []
    assert world.fake.call_count("StopUnit") == 1


async def test_job_removed_before_the_reply_is_not_lost(world: World) -> None:
    manager = world.make(job_timeout=5.0)
    world.fake.job_removed_before_reply()
    session = await world.launch(manager)
    assert session["state"] == "running"
    assert (await manager.cleanup([session["id"]]))[1] == {}


async def test_concurrent_launches_reserve_their_slot(world: World) -> None:
    manager = world.make(max_sessions=1)
    results = await asyncio.gather(manager.launch(), manager.launch(), return_exceptions=True)
    sessions = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, SessionLimitReached)]
    assert len(sessions) == 1 and len(refused) == 1, results
    world.pids.append(sessions[0]["main_pid"])
    assert world.fake.call_count("StartTransientUnit") == 1
    await manager.cleanup(manager.session_ids())


async def test_missing_xpra_program_fails_at_xpra_ready(world: World) -> None:
    manager = world.make(
        xpra=XpraSettings(xpra_command=("/nonexistent/xpra",), firefox_command=("/bin/true",))
    )
    with pytest.raises(LaunchError) as failure:
        await manager.launch()
    assert failure.value.step == "xpra-ready"
    assert "status 127" in failure.value.message
    assert any("/nonexistent/xpra" in line for line in failure.value.log_tail), failure.value.log_tail
    assert world.units() == [] and world.dirs() == []


async def test_xpra_killed_stops_the_scope_and_marks_the_session_failed(world: World) -> None:
    manager = world.make()
    session = await world.launch(manager)
    os.kill(session["main_pid"], signal.SIGKILL)  # our child
    status = await eventually(lambda: ended(manager, session["id"]), what="the session to end")
    assert world.units() == []
    assert status["state"] == "failed"
    assert status["result"] == "signal"
    assert status["main_pid"] is None
    assert status["message"] == "Xpra was killed by SIGKILL"
    assert manager.active_count() == 0
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})


async def test_xpra_exiting_normally_marks_the_session_stopped(world: World) -> None:
    manager = world.make()
    session = await world.launch(manager)
    os.kill(session["main_pid"], signal.SIGTERM)  # the fake Xpra exits 0 on SIGTERM
    status = await eventually(lambda: ended(manager, session["id"]), what="the session to end")
    assert world.units() == []
    assert status["state"] == "stopped"
    assert status["result"] == "success"
    assert "exited normally" in status["message"]
    await manager.cleanup([session["id"]])


async def test_stop_failure_is_reported_and_ends_our_child(world: World) -> None:
    manager = world.make()
    session = await world.launch(manager)
    world.fake.fail_method("StopUnit", "org.freedesktop.DBus.Error.AccessDenied", "no", 1)
    stopped, errors = await manager.cleanup([session["id"]])
    assert stopped == []
    assert "AccessDenied" in errors[session["id"]]
    # The launcher ended its own child by PID; the session stays known, failed.
    assert not alive(session["main_pid"])
    assert manager.session_ids() == [session["id"]]
    assert (await manager.status(session["id"]))["state"] == "failed"
    await eventually(lambda: not world.units(), what="the empty scope to be collected")
    assert await manager.cleanup([session["id"]]) == ([session["id"]], {})
    assert world.dirs() == []


async def test_cleanup_during_launch_leaves_nothing(world: World) -> None:
    manager = world.make(environ={"FAKE_XPRA_NEVER_READY": "1"}, ready_timeout=10.0)
    launch = asyncio.ensure_future(manager.launch())
    (unit,) = await eventually(lambda: world.units(), what="the scope to start")
    pids = world.fake.unit_pids(unit)
    world.pids.extend(pids)
    (sid,) = manager.session_ids()
    assert await manager.cleanup([sid]) == ([sid], {})
    with pytest.raises(BaseException):  # noqa: B017 - what it raises is the subject of a bug report
        await launch
    assert world.units() == [] and world.dirs() == [] and manager.session_ids() == []
    assert pids and not any(alive(pid) for pid in pids)


async def test_shutdown_stops_sessions_and_closes_the_bus(world: World) -> None:
    manager = world.make()
    session = await world.launch(manager)
    await manager.shutdown(stop_sessions=True)
    assert manager.session_ids() == []
    assert world.units() == [] and world.dirs() == []
    assert not alive(session["main_pid"])
    assert not manager.systemd.connected


async def test_shutdown_keeping_sessions_leaves_them_running(world: World) -> None:
    manager = world.make()
    session = await world.launch(manager)
    await manager.shutdown(stop_sessions=False)
    assert world.units() == [session["unit"]]
    assert alive(session["main_pid"])
    assert not manager.systemd.connected
    assert await manager.cleanup([session["id"]], force=True) == ([session["id"]], {})


# --- re-adoption after a restart ---------------------------------------------------------------------
@pytest.fixture
def xpra_named_xpra(tmp_path: Path) -> XpraSettings:
    """The fake Xpra under a program name ending in `xpra` (how the manager recognises an Xpra server)."""
    link = tmp_path / "xpra"
    link.symlink_to(FAKE_XPRA)
    return XpraSettings(
        xpra_command=(sys.executable, str(link)),
        firefox_command=("/bin/true",),
        pass_environment=FAKE_XPRA_ENV,
    )


async def test_a_restarted_launcher_re_adopts_its_running_sessions(
    world: World, xpra_named_xpra: XpraSettings
) -> None:
    first = world.make(xpra=xpra_named_xpra)
    session = await world.launch(first, "https://example.org/")
    await first.shutdown(stop_sessions=False)
    world.retire(first)
    assert world.units() == [session["unit"]] and alive(session["main_pid"])

    second = world.make(xpra=xpra_named_xpra)
    await second.start()
    assert second.session_ids() == [session["id"]]
    status = await second.status(session["id"])
    assert status["state"] == "running"
    assert status["adopted"] is True
    assert status["start_url"] == "https://example.org/"
    assert status["created"] == session["created"]
    assert second.socket_path(session["id"]) is not None
    assert await second.cleanup([session["id"]]) == ([session["id"]], {})
    assert world.units() == [] and world.dirs() == []
    await eventually(lambda: not alive(session["main_pid"]), what="the adopted Xpra to end")


async def test_a_restarted_launcher_finds_the_xpra_of_an_adopted_session(
    world: World, xpra_named_xpra: XpraSettings
) -> None:
    first = world.make(xpra=xpra_named_xpra)
    session = await world.launch(first)
    await first.shutdown(stop_sessions=False)
    world.retire(first)
    second = world.make(xpra=xpra_named_xpra)
    try:
        await second.start()
        status = await second.status(session["id"])
        assert status["main_pid"] == session["main_pid"]
    finally:
        await second.cleanup(second.session_ids(), force=True)


async def test_a_restarted_launcher_ends_an_adopted_session_whose_xpra_exits(
    world: World, xpra_named_xpra: XpraSettings
) -> None:
    first = world.make(xpra=xpra_named_xpra)
    session = await world.launch(first)
    await first.shutdown(stop_sessions=False)
    world.retire(first)
    second = world.make(xpra=xpra_named_xpra)
    await second.start()
    os.kill(session["main_pid"], signal.SIGTERM)  # the fake Xpra exits 0
    status = await eventually(lambda: ended(second, session["id"]), what="the adopted session to end")
    assert status["main_pid"] is None
    assert world.units() == []
    await second.cleanup([session["id"]])
    assert world.dirs() == []


async def test_start_leaves_units_that_are_not_its_own_alone(world: World) -> None:
    # A unit with our name prefix but no session directory under our root: another launcher's.
    sleeper = await asyncio.create_subprocess_exec("sleep", "300", start_new_session=True)
    world.pids.append(sleeper.pid)
    lookalike = "app-ffsystemd-firefox-0123456789ab.scope"
    client = SystemdClient(world.fake.address)
    try:
        limits = ScopeLimits(stop_timeout_usec=1_000_000)
        props = scope_properties(pid=sleeper.pid, description="x", slice_name="app.slice", limits=limits)
        await client.start_transient_unit(lookalike, props)
    finally:
        await client.close()
    # A stray session directory without a unit is removed at start.
    stray = world.root / "session-ba9876543210"
    stray.mkdir(mode=0o700)
    manager = world.make()
    await manager.start()
    assert manager.session_ids() == []
    assert not stray.exists()
    assert world.fake.unit_state(lookalike) == ("active", "success")
    assert alive(sleeper.pid)
    sleeper.kill()
    await sleeper.wait()
    world.fake.wait_unit_gone(lookalike)
