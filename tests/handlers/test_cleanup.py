"""POST /firefox-launcher/api/cleanup, and the extension's shutdown, against the fake systemd."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakes.dbus_world import FAKE_XPRA, FakeSystemd
from fakes.polling import eventually

from ffsystemd.manager import SessionManager

from .conftest import (
    CLEANUP_ROUTE,
    Api,
    ForeignUnits,
    fake_calls,
    our_units,
    process_alive,
    session_dirs,
)
from .test_firefox import MALFORMED_IDS, assert_error, launched

UNKNOWN_ID = "0123456789ab"


def assert_gone(fake: FakeSystemd, root: Path, session: dict[str, Any]) -> None:
    """The session's unit, Xpra process and directory are gone."""
    assert fake.unit_state(session["unit"]) is None
    assert session["unit"] not in fake.loaded_units()
    assert not process_alive(session["main_pid"])
    assert not (root / f"session-{session['id']}").exists()


async def test_cleanup_by_id(api: Api, fake_systemd: FakeSystemd, session_root: Path) -> None:
    session = await launched(api)
    other = await launched(api)
    reply = await api.cleanup(id=session["id"])
    assert reply.code == 200, reply.body
    assert reply.json == {"stopped": [session["id"]], "errors": {}}
    assert_gone(fake_systemd, session_root, session)
    # The other session is untouched.
    assert our_units(fake_systemd) == [other["unit"]]
    assert process_alive(other["main_pid"])
    assert session_dirs(session_root) == [f"session-{other['id']}"]
    assert [s["id"] for s in await api.sessions()] == [other["id"]]
    assert_error(await api.session(session["id"]), 404)
    # Without force: a plain stop, no SIGKILL.
    assert fake_calls(fake_systemd, "KillUnit") == []
    assert (await api.cleanup(id=other["id"])).code == 200


async def test_cleanup_by_ids(api: Api, fake_systemd: FakeSystemd, session_root: Path) -> None:
    first = await launched(api)
    second = await launched(api)
    reply = await api.cleanup(ids=[second["id"], first["id"]])
    assert reply.code == 200, reply.body
    assert sorted(reply.json["stopped"]) == sorted([first["id"], second["id"]])
    assert reply.json["errors"] == {}
    for session in (first, second):
        assert_gone(fake_systemd, session_root, session)
    assert await api.sessions() == []


async def test_cleanup_all(api: Api, fake_systemd: FakeSystemd, session_root: Path) -> None:
    first = await launched(api)
    second = await launched(api)
    reply = await api.cleanup(all=True)
    assert reply.code == 200, reply.body
    assert sorted(reply.json["stopped"]) == sorted([first["id"], second["id"]])
    assert reply.json["errors"] == {}
    for session in (first, second):
        assert_gone(fake_systemd, session_root, session)
    assert our_units(fake_systemd) == []
    assert session_dirs(session_root) == []
    assert await api.sessions() == []


async def test_cleanup_all_without_sessions(api: Api, fake_systemd: FakeSystemd) -> None:
    reply = await api.cleanup(all=True)
    assert reply.code == 200
    assert reply.json == {"stopped": [], "errors": {}}
    assert fake_systemd.call_count("StopUnit") == 0


async def test_force_kills_stops_and_resets(api: Api, fake_systemd: FakeSystemd, session_root: Path) -> None:
    session = await launched(api)
    unit = session["unit"]
    reply = await api.cleanup(id=session["id"], force=True)
    assert reply.code == 200, reply.body
    assert reply.json == {"stopped": [session["id"]], "errors": {}}
    calls = [c for c in fake_calls(fake_systemd) if c.method in ("KillUnit", "StopUnit", "ResetFailedUnit")]
    assert [c.method for c in calls] == ["KillUnit", "StopUnit", "ResetFailedUnit"], calls
    assert calls[0].args == f'"{unit}" "all" 9'
    assert calls[1].args.startswith(f'"{unit}" ')
    assert calls[2].args == f'"{unit}"'
    assert_gone(fake_systemd, session_root, session)


async def test_keep_profile_keeps_the_directory(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    base = session_root / f"session-{session['id']}"
    assert (base / "runtime" / "Xauthority").is_file()
    reply = await api.cleanup(id=session["id"], keep_profile=True)
    assert reply.code == 200, reply.body
    assert reply.json["stopped"] == [session["id"]]
    assert (base / "profile" / "user.js").is_file()
    # The profile stays; the dead X server's cookie, the sockets and temp files do not.
    assert not (base / "runtime" / "Xauthority").exists()
    assert list((base / "sockets").iterdir()) == []
    assert list((base / "temp").iterdir()) == []
    assert fake_systemd.unit_state(session["unit"]) is None
    assert not process_alive(session["main_pid"])
    assert await api.sessions() == []
    shutil.rmtree(base)


@pytest.mark.launcher(keep_profile=True)
async def test_keep_profile_false_overrides_the_configured_default(api: Api, session_root: Path) -> None:
    kept = await launched(api)
    removed = await launched(api)
    assert (await api.cleanup(id=kept["id"])).code == 200
    assert (await api.cleanup(id=removed["id"], keep_profile=False)).code == 200
    assert session_dirs(session_root) == [f"session-{kept['id']}"]
    shutil.rmtree(session_root / f"session-{kept['id']}")


async def test_cleanup_unknown_id_is_404(api: Api, fake_systemd: FakeSystemd) -> None:
    session = await launched(api)
    assert_error(await api.cleanup(id=UNKNOWN_ID), 404, UNKNOWN_ID)
    assert_error(await api.cleanup(ids=[UNKNOWN_ID, "ba9876543210"]), 404)
    assert fake_systemd.call_count("StopUnit") == 0
    assert process_alive(session["main_pid"])
    assert (await api.cleanup(id=session["id"])).code == 200


@pytest.mark.parametrize("bad_id", MALFORMED_IDS, ids=range(len(MALFORMED_IDS)))
async def test_cleanup_malformed_id_is_400(api: Api, fake_systemd: FakeSystemd, bad_id: str) -> None:
    session = await launched(api)
    assert_error(await api.cleanup(id=bad_id), 400, "malformed")
    assert_error(await api.cleanup(ids=[session["id"], bad_id]), 400, "malformed")
    assert fake_systemd.call_count("StopUnit") == 0
    assert process_alive(session["main_pid"])
    assert (await api.cleanup(id=session["id"])).code == 200


async def test_cleanup_known_and_unknown_reports_the_unknown(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    reply = await api.cleanup(ids=[session["id"], UNKNOWN_ID])
    assert reply.code == 200, reply.body
    assert reply.json["stopped"] == [session["id"]]
    assert list(reply.json["errors"]) == [UNKNOWN_ID]
    assert UNKNOWN_ID in reply.json["errors"][UNKNOWN_ID]
    assert_gone(fake_systemd, session_root, session)


BAD_CLEANUP_BODIES = {
    "no-selector": {},
    "only-force": {"force": True},
    "id-and-ids": {"id": UNKNOWN_ID, "ids": [UNKNOWN_ID]},
    "id-and-all": {"id": UNKNOWN_ID, "all": True},
    "ids-and-all": {"ids": [UNKNOWN_ID], "all": True},
    "force-string": {"all": True, "force": "yes"},
    "force-number": {"all": True, "force": 1},
    "keep-profile-string": {"all": True, "keep_profile": "no"},
    "all-false": {"all": False},
    "all-string": {"all": "true"},
    "ids-not-a-list": {"ids": UNKNOWN_ID},
    "ids-empty": {"ids": []},
    "ids-too-many": {"ids": [f"{i:012x}" for i in range(101)]},
    "id-number": {"id": 5},
    "id-null": {"id": None},
    "unknown-field": {"all": True, "signal": 9},
}


@pytest.mark.parametrize("body", list(BAD_CLEANUP_BODIES.values()), ids=list(BAD_CLEANUP_BODIES))
async def test_bad_cleanup_body_is_400_and_stops_nothing(
    api: Api, fake_systemd: FakeSystemd, body: dict[str, Any]
) -> None:
    session = await launched(api)
    assert_error(await api.cleanup(body), 400)
    calls = fake_systemd.call_counts()
    assert calls.get("StopUnit", 0) == 0 and calls.get("KillUnit", 0) == 0
    assert process_alive(session["main_pid"])
    assert [s["id"] for s in await api.sessions()] == [session["id"]]
    assert (await api.cleanup(id=session["id"])).code == 200


@pytest.mark.parametrize(
    "raw", ["{", "[]", '"all"', "null", b"\xff"], ids=["malformed", "array", "string", "null", "not-utf8"]
)
async def test_cleanup_body_that_is_not_a_json_object_is_400(api: Api, raw: str | bytes) -> None:
    assert_error(await api.call("POST", CLEANUP_ROUTE, raw=raw), 400)


async def test_oversized_cleanup_body_is_413(api: Api) -> None:
    raw = json.dumps({"all": True, "pad": "x" * (64 * 1024)})
    assert_error(await api.call("POST", CLEANUP_ROUTE, raw=raw), 413)


async def test_foreign_units_are_never_touched(
    api: Api, fake_systemd: FakeSystemd, foreign_unit: ForeignUnits, session_root: Path
) -> None:
    # A unit named like ours, and one in our slice, that this launcher did not create.
    lookalike = f"app-ffsystemd-firefox-{UNKNOWN_ID}.scope"
    lookalike_pid = foreign_unit.start(lookalike)
    other_pid = foreign_unit.start("other-app.scope")
    session = await launched(api)
    assert [s["id"] for s in await api.sessions()] == [session["id"]]
    assert_error(await api.session(UNKNOWN_ID), 404)
    assert_error(await api.cleanup(id=UNKNOWN_ID, force=True), 404)
    reply = await api.cleanup(ids=[session["id"], UNKNOWN_ID], force=True)
    assert reply.code == 200
    assert reply.json["stopped"] == [session["id"]] and list(reply.json["errors"]) == [UNKNOWN_ID]
    session = await launched(api)
    reply = await api.cleanup(all=True, force=True)
    assert reply.code == 200
    assert reply.json == {"stopped": [session["id"]], "errors": {}}
    for unit, pid in ((lookalike, lookalike_pid), ("other-app.scope", other_pid)):
        assert fake_systemd.unit_state(unit) == ("active", "success"), unit
        assert process_alive(pid)
        for call in fake_calls(fake_systemd):
            if call.method in ("KillUnit", "StopUnit", "ResetFailedUnit"):
                assert not call.args.startswith(f'"{unit}"'), call
    assert session_dirs(session_root) == []


async def test_cleanup_of_a_session_whose_xpra_died(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    session = await launched(api)
    os.kill(session["main_pid"], signal.SIGKILL)  # our child: the session's Xpra
    unit = session["unit"]  # the launcher stops what is left
    await eventually(lambda: fake_systemd.unit_state(unit) is None, 10, "the scope of a dead Xpra to stop")
    reply = await api.cleanup(id=session["id"])
    assert reply.code == 200, reply.body
    assert reply.json == {"stopped": [session["id"]], "errors": {}}
    assert_gone(fake_systemd, session_root, session)
    assert manager.session_ids() == []


async def test_cleanup_without_force_ends_an_xpra_that_ignores_sigterm(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, xpra_env: Any
) -> None:
    xpra_env(FAKE_XPRA_IGNORE_SIGTERM="1")
    session = await launched(api)
    started = time.monotonic()
    reply = await api.cleanup(id=session["id"])
    assert reply.code == 200, reply.body
    assert reply.json == {"stopped": [session["id"]], "errors": {}}
    assert_gone(fake_systemd, session_root, session)
    assert time.monotonic() - started < 15


# --- shutdown --------------------------------------------------------------------------------------------
async def test_shutdown_stops_the_sessions(
    api: Api, launcher_app: Any, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    sessions = [await launched(api), await launched(api)]
    await launcher_app.stop_extension()
    for session in sessions:
        assert_gone(fake_systemd, session_root, session)
    assert our_units(fake_systemd) == []
    assert manager.session_ids() == []
    assert fake_systemd.call_count("StopUnit") == 2


@pytest.mark.launcher(on_shutdown="keep")
async def test_shutdown_with_on_shutdown_keep_leaves_sessions_running(
    api: Api, launcher_app: Any, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    session = await launched(api)
    await launcher_app.stop_extension()
    assert fake_systemd.unit_state(session["unit"]) == ("active", "success")
    assert process_alive(session["main_pid"])
    assert (session_root / f"session-{session['id']}").is_dir()
    assert fake_systemd.call_count("StopUnit") == 0
    # Clean up here (the manager reconnects to the bus on demand).
    stopped, errors = await manager.cleanup([session["id"]], force=True)
    assert (stopped, errors) == ([session["id"]], {})
    assert_gone(fake_systemd, session_root, session)


# --- a cleanup that failed can be retried ----------------------------------------------------------------
# Xpra that leaves a child in its process group (as Xvfb and Firefox would be): the scope outlives Xpra.
XPRA_WITH_A_CHILD = ["/bin/sh", "-c", 'sleep 300 & exec "$0" "$@"', sys.executable, str(FAKE_XPRA)]


@pytest.mark.launcher(xpra_command=XPRA_WITH_A_CHILD)
async def test_failed_stop_is_reported_per_session(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    unit = session["unit"]
    processes = fake_systemd.unit_processes(unit)
    assert session["main_pid"] in processes and len(processes) >= 2
    fake_systemd.fail_method("StopUnit", "org.freedesktop.DBus.Error.AccessDenied", "denied by the test", 1)
    reply = await api.cleanup(id=session["id"])
    assert reply.code == 200, reply.body
    assert reply.json["stopped"] == []
    assert "AccessDenied" in reply.json["errors"][session["id"]]
    try:
        status = await api.session(session["id"])
        assert status.code == 200
        assert status.json["state"] == "failed"
        assert not process_alive(session["main_pid"])  # the launcher ended its own child by PID
    finally:
        _end_scope(fake_systemd, unit)
    assert (await api.cleanup(id=session["id"])).code == 200
    assert session_dirs(session_root) == []


@pytest.mark.launcher(xpra_command=XPRA_WITH_A_CHILD)
async def test_cleanup_retried_after_a_failed_stop_stops_the_scope(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    unit = session["unit"]
    processes = fake_systemd.unit_processes(unit)
    assert len(processes) >= 2
    for method in ("StopUnit", "KillUnit"):
        fake_systemd.fail_method(method, "org.freedesktop.DBus.Error.AccessDenied", "denied by the test")
    reply = await api.cleanup(id=session["id"])
    assert reply.code == 200 and reply.json["stopped"] == [], reply.body
    await _retry_and_check(api, fake_systemd, session, processes)


async def _retry_and_check(
    api: Api, fake: FakeSystemd, session: dict[str, Any], processes: list[int]
) -> None:
    """Clear the faults, retry the cleanup with force: the scope and all its processes must be gone."""
    unit = session["unit"]
    try:
        fake.reset_faults()
        reply = await api.cleanup(id=session["id"], force=True)
        assert reply.code == 200, reply.body
        assert reply.json == {"stopped": [session["id"]], "errors": {}}
        assert fake.unit_state(unit) is None
        assert not any(process_alive(pid) for pid in processes)
    finally:
        _end_scope(fake, unit)


def _end_scope(fake: FakeSystemd, unit: str) -> None:
    """End what is left in a scope (descendants of this test) by PID, and wait for the unit to go."""
    if fake.unit_state(unit) is not None:
        for pid in fake.unit_processes(unit):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        fake.wait_unit_gone(unit)
