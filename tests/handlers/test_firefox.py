"""POST/GET/HEAD /firefox-launcher/api/firefox against the fake systemd user manager and a fake Xpra."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest
from fakes.dbus_world import FakeSystemd
from fakes.polling import eventually

from ffsystemd.manager import SessionManager
from ffsystemd.session import RECORD_LINE_CHARS, RECORD_TAIL_CHARS, RECORD_TAIL_LINES

from .conftest import (
    FIREFOX_ROUTE,
    Api,
    fake_calls,
    our_units,
    process_alive,
    session_dirs,
    started_units,
    unit_properties,
)

SESSION_FIELDS = {
    "id",
    "unit",
    "state",
    "sub_state",
    "result",
    "main_pid",
    "created",
    "url",
    "memory_current",
    "memory_max",
    "tasks_current",
    "tasks_max",
    "cpu_quota",
    "cpu_usage_nsec",
}
SUBDIRS = ("profile", "cache", "temp", "runtime", "sockets")
GIB = 1024**3
MALFORMED_IDS = [
    "../etc",
    "ABCDEF012345",
    "0123456789a",
    "0123456789abc",
    "a" * 200,
    "ééééééééééé\u00e9",
    "0123456789ab/",
    "0123456789a\n",
    "",
]


async def launched(api: Api, url: str | None = None) -> dict[str, Any]:
    reply = await api.launch(url)
    assert reply.code == 201, reply.body
    return reply.json


async def stop(api: Api, *ids: str) -> None:
    reply = await api.cleanup(ids=list(ids))
    assert reply.code == 200, reply.body
    assert reply.json == {"stopped": list(ids), "errors": {}}


def assert_error(reply: Any, code: int, *words: str) -> dict[str, Any]:
    """reply is a JSON error with this status whose message contains every word."""
    assert reply.code == code, (reply.code, reply.body)
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json
    assert isinstance(body.get("message"), str) and body["message"], body
    for word in words:
        assert word in body["message"], (word, body["message"])
    return body


def assert_nothing_left(fake: FakeSystemd | None, root: Path, manager: SessionManager) -> None:
    """No unit (not even failed), no process of a started scope, no directory, no session."""
    if fake is not None:
        assert fake.loaded_units() == []
        for name, pids in started_units(fake):
            assert fake.unit_state(name) is None, name
            assert pids and not any(process_alive(pid) for pid in pids), (name, pids)
    assert session_dirs(root) == []
    assert manager.session_ids() == []


# --- launch -------------------------------------------------------------------------------------------
async def test_launch_answers_201_with_the_session(api: Api, jp_base_url: str) -> None:
    before = datetime.now(timezone.utc)
    reply = await api.launch()
    assert reply.code == 201, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    session = reply.json
    assert set(session) >= SESSION_FIELDS
    sid = session["id"]
    assert re.fullmatch(r"[0-9a-f]{12}", sid)
    assert session["unit"] == f"app-ffsystemd-firefox-{sid}.scope"
    assert session["state"] == "running"
    assert session["sub_state"] == "running"
    assert session["result"] is None
    assert isinstance(session["main_pid"], int) and process_alive(session["main_pid"])
    assert session["created"].endswith("Z")
    created = datetime.fromisoformat(session["created"].replace("Z", "+00:00"))
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= datetime.now(timezone.utc)
    assert session["url"] == f"{jp_base_url}firefox-launcher/session/{sid}/"
    assert reply.headers["Location"] == session["url"]
    assert session["memory_max"] == 2 * GIB
    assert session["tasks_max"] == 1024
    assert session["cpu_quota"] is None  # no CPUQuota configured: systemd reports infinity
    assert isinstance(session["memory_current"], int)
    assert isinstance(session["tasks_current"], int) and session["tasks_current"] >= 1
    assert isinstance(session["cpu_usage_nsec"], int) and session["cpu_usage_nsec"] >= 0
    assert session["start_url"] == "about:blank"
    await stop(api, sid)


async def test_launch_starts_our_scope_in_the_fake(api: Api, fake_systemd: FakeSystemd) -> None:
    session = await launched(api)
    unit, pid = session["unit"], session["main_pid"]
    assert started_units(fake_systemd) == [(unit, [pid])]
    (call,) = fake_calls(fake_systemd, "StartTransientUnit")
    assert call.args.startswith(f'"{unit}" "fail" ')
    assert fake_systemd.unit_pids(unit) == [pid]
    assert pid in fake_systemd.unit_processes(unit)
    props = unit_properties(fake_systemd, unit)
    assert props["ActiveState"] == "active"
    assert props["Slice"] == "app-ffsystemd.slice"
    assert props["MemoryMax"] == 2 * GIB
    assert props["TasksMax"] == 1024
    assert props["CollectMode"] == "inactive-or-failed"
    assert our_units(fake_systemd) == [unit]
    await stop(api, session["id"])


async def test_launch_creates_the_session_directory(api: Api, session_root: Path) -> None:
    session = await launched(api)
    base = session_root / f"session-{session['id']}"
    assert session_dirs(session_root) == [base.name]
    for path in (base, *(base / name for name in SUBDIRS)):
        assert path.is_dir() and not path.is_symlink(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_ISSOCK((base / "sockets" / "xpra.sock").stat().st_mode)
    user_js = (base / "profile" / "user.js").read_text()
    assert 'user_pref("browser.startup.homepage", "about:blank");' in user_js
    await stop(api, session["id"])


async def test_launch_opens_the_requested_url(api: Api, session_root: Path) -> None:
    session = await launched(api, "https://example.org/")
    assert session["start_url"] == "https://example.org/"
    base = session_root / f"session-{session['id']}"
    user_js = (base / "profile" / "user.js").read_text()
    assert 'user_pref("browser.startup.homepage", "https://example.org/");' in user_js
    # The fake Xpra got the start child with the URL (it logs it, without running it).
    log = (base / "runtime" / "xpra.log").read_text()
    child = [line for line in log.splitlines() if "start child (not run)" in line]
    assert child and child[0].endswith(" https://example.org/"), log
    assert f"--profile {base / 'profile'}" in child[0]
    await stop(api, session["id"])


async def test_xpra_runs_in_the_foreground_on_a_unix_socket_only(api: Api, session_root: Path) -> None:
    session = await launched(api)
    proc = psutil.Process(session["main_pid"])
    argv = proc.cmdline()
    sockets = session_root / f"session-{session['id']}" / "sockets"
    assert f"--bind={sockets / 'xpra.sock'}" in argv
    assert "--daemon=no" in argv and "--systemd-run=no" in argv
    assert not [a for a in argv if a.startswith(("--bind-", "--bind-tcp"))]
    inet = [c for c in proc.net_connections(kind="inet")]
    assert inet == []
    await stop(api, session["id"])


@pytest.mark.parametrize("jp_base_url", ["/user/alice/"])
async def test_session_url_and_redirect_follow_the_base_url(api: Api, jp_base_url: str) -> None:
    session = await launched(api)
    url = f"/user/alice/firefox-launcher/session/{session['id']}/"
    assert session["url"] == url
    reply = await api.session(session["id"], redirect="1", follow_redirects=False)
    assert reply.code == 302
    assert reply.headers["Location"] == url
    assert [s["url"] for s in await api.sessions()] == [url]
    await stop(api, session["id"])


# --- GET -----------------------------------------------------------------------------------------------
async def test_list_is_empty_at_first(api: Api) -> None:
    reply = await api.call("GET", FIREFOX_ROUTE)
    assert reply.code == 200
    assert reply.json == {"sessions": []}


async def test_list_and_get_show_every_session(api: Api) -> None:
    first = await launched(api)
    second = await launched(api, "https://example.org/")
    sessions = await api.sessions()
    assert [s["id"] for s in sessions] == [first["id"], second["id"]]
    for listed, started in zip(sessions, (first, second), strict=True):
        assert set(listed) >= SESSION_FIELDS
        assert listed["state"] == "running"
        for key in ("id", "unit", "url", "main_pid", "created", "start_url", "memory_max"):
            assert listed[key] == started[key], key
        reply = await api.session(started["id"])
        assert reply.code == 200
        one = reply.json
        assert {k: one[k] for k in ("id", "unit", "url", "main_pid")} == {
            k: started[k] for k in ("id", "unit", "url", "main_pid")
        }
    await stop(api, first["id"], second["id"])
    assert await api.sessions() == []


async def test_get_redirect_answers_302_to_the_session(api: Api, jp_base_url: str) -> None:
    session = await launched(api)
    for flag in ("1", "true"):
        reply = await api.session(session["id"], redirect=flag, follow_redirects=False)
        assert reply.code == 302
        assert reply.headers["Location"] == session["url"]
    reply = await api.session(session["id"], redirect="0", follow_redirects=False)
    assert reply.code == 200 and reply.json["id"] == session["id"]
    await stop(api, session["id"])


async def test_get_unknown_id_is_404(api: Api, fake_systemd: FakeSystemd) -> None:
    assert_error(await api.session("0123456789ab"), 404, "0123456789ab")
    assert_error(await api.session("0123456789ab", redirect="1", follow_redirects=False), 404)
    assert fake_systemd.call_count("GetUnit") == 0


@pytest.mark.parametrize("bad_id", MALFORMED_IDS, ids=range(len(MALFORMED_IDS)))
async def test_get_malformed_id_is_400(api: Api, fake_systemd: FakeSystemd, bad_id: str) -> None:
    session = await launched(api)
    calls = fake_systemd.call_counts()
    assert_error(await api.session(bad_id), 400, "malformed session id")
    assert_error(await api.session(bad_id, redirect="1", follow_redirects=False), 400)
    assert fake_systemd.call_counts() == calls  # refused before anything was asked of systemd
    await stop(api, session["id"])


async def test_status_reports_an_xpra_that_died(api: Api, fake_systemd: FakeSystemd) -> None:
    session = await launched(api)
    os.kill(session["main_pid"], signal.SIGKILL)  # our child: the session's Xpra
    status = await wait_until_ended(api, session["id"], 10)
    assert status["state"] == "failed"
    assert status["result"] == "signal"
    assert status["main_pid"] is None
    assert "SIGKILL" in (status.get("message") or "")
    assert our_units(fake_systemd) == []  # the session's scope was stopped
    await stop(api, session["id"])


async def test_status_reports_systemds_result_of_a_failed_scope(api: Api, fake_systemd: FakeSystemd) -> None:
    session = await launched(api)
    fake_systemd.fail_unit(session["unit"], "oom-kill", kill=True)
    status = await wait_until_ended(api, session["id"], 10)
    await stop(api, session["id"])
    assert status["state"] == "failed"
    assert status["result"] == "oom-kill", status


# --- HEAD ----------------------------------------------------------------------------------------------
async def test_head_is_200_when_a_launch_can_succeed(api: Api) -> None:
    reply = await api.head()
    assert reply.code == 200
    assert reply.body == b""


async def test_head_is_503_at_max_sessions(api: Api) -> None:
    first = await launched(api)
    assert (await api.head()).code == 200
    second = await launched(api)
    assert (await api.head()).code == 503
    await stop(api, first["id"])
    assert (await api.head()).code == 200
    await stop(api, second["id"])


async def test_head_is_503_when_the_user_manager_is_gone(api: Api, fake_systemd: FakeSystemd) -> None:
    assert (await api.head()).code == 200
    fake_systemd.kill_manager()  # the bus stays, nobody owns org.freedesktop.systemd1
    assert (await api.head()).code == 503


async def test_head_is_503_when_the_bus_is_gone(api: Api, fake_systemd: FakeSystemd) -> None:
    assert (await api.head()).code == 200
    fake_systemd.stop()
    assert (await api.head()).code == 503


@pytest.mark.launcher(bus_address="unix:path=/nonexistent/bus")
async def test_head_is_503_when_the_bus_is_unreachable(api: Api) -> None:
    assert (await api.head()).code == 503


# --- max_sessions --------------------------------------------------------------------------------------
async def test_launch_beyond_max_sessions_is_429_and_starts_nothing(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    first = await launched(api)
    second = await launched(api)
    reply = await api.launch()
    assert_error(reply, 429, "max_sessions")
    assert fake_systemd.call_count("StartTransientUnit") == 2
    assert sorted(our_units(fake_systemd)) == sorted([first["unit"], second["unit"]])
    assert len(session_dirs(session_root)) == 2
    assert len(await api.sessions()) == 2
    # A freed slot can be used again.
    await stop(api, first["id"])
    third = await launched(api)
    await stop(api, second["id"], third["id"])


@pytest.mark.launcher(max_sessions=1)
async def test_concurrent_launches_respect_max_sessions(api: Api, fake_systemd: FakeSystemd) -> None:
    replies = await asyncio.gather(api.launch(), api.launch(), api.launch())
    codes = sorted(r.code for r in replies)
    assert codes == [201, 429, 429], [r.body for r in replies]
    assert fake_systemd.call_count("StartTransientUnit") == 1
    (ok,) = [r.json for r in replies if r.code == 201]
    await stop(api, ok["id"])


# --- no systemd user manager: 503 ----------------------------------------------------------------------
@pytest.mark.launcher(bus_address="unix:path=/nonexistent/bus")
async def test_launch_without_a_user_bus_is_503(
    api: Api, session_root: Path, manager: SessionManager
) -> None:
    reply = await api.launch()
    body = assert_error(reply, 503, "/nonexistent/bus", "user bus")
    assert "DBUS_SESSION_BUS_ADDRESS" in body["message"]
    assert_nothing_left(None, session_root, manager)
    assert await api.sessions() == []


async def test_launch_without_a_user_manager_is_503(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    fake_systemd.kill_manager()
    reply = await api.launch()
    assert_error(reply, 503, "no systemd user manager", fake_systemd.address)
    assert_nothing_left(None, session_root, manager)


async def test_launch_after_the_bus_dropped_is_503(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    await stop(api, session["id"])
    fake_systemd.stop()
    assert_error(await api.launch(), 503, fake_systemd.address)
    assert session_dirs(session_root) == []


# --- launch failures leave nothing behind --------------------------------------------------------------
def assert_launch_error(reply: Any, step: str, *words: str, code: int = 500) -> dict[str, Any]:
    body = assert_error(reply, code, *words)
    assert body["step"] == step, body
    assert isinstance(body["log_tail"], list) and all(isinstance(line, str) for line in body["log_tail"])
    return body


async def test_failed_start_job_leaves_nothing(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    fake_systemd.set_start_result("failed", times=1)
    body = assert_launch_error(await api.launch(), "unit-start", "failed")
    assert fake_systemd.call_count("StartTransientUnit") == 1
    assert_nothing_left(fake_systemd, session_root, manager)
    assert await api.sessions() == []
    # The fault is gone: the next launch works.
    session = await launched(api)
    await stop(api, session["id"])
    assert "fake xpra starting" not in "\n".join(body["log_tail"])  # Xpra never ran


async def test_unit_exists_leaves_nothing(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    fake_systemd.fail_method("StartTransientUnit", "org.freedesktop.systemd1.UnitExists", "already loaded", 1)
    assert_launch_error(await api.launch(), "unit-start", "UnitExists")
    assert_nothing_left(fake_systemd, session_root, manager)
    assert await api.sessions() == []


async def test_hanging_start_job_times_out_and_leaves_nothing(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager
) -> None:
    # job_timeout is derived (at least 30 s); shorten it on the manager to keep the test fast.
    manager.settings = dataclasses.replace(manager.settings, job_timeout=1.0)
    fake_systemd.hang_start_jobs()
    started = time.monotonic()
    assert_launch_error(await api.launch(), "unit-start", "did not finish within 1 s")
    assert time.monotonic() - started < 10
    (unit, _pids) = started_units(fake_systemd)[0]
    assert [c.args.split(" ")[0] for c in fake_calls(fake_systemd, "StopUnit")] == [f'"{unit}"']
    assert_nothing_left(fake_systemd, session_root, manager)
    assert await api.sessions() == []


async def test_xpra_exiting_at_start_leaves_nothing(
    api: Api,
    fake_systemd: FakeSystemd,
    session_root: Path,
    manager: SessionManager,
    xpra_env: Any,
) -> None:
    xpra_env(FAKE_XPRA_EXIT_AT_START="3")
    body = assert_launch_error(await api.launch(), "xpra-ready", "status 3")
    assert "fake xpra: failing on purpose" in body["log_tail"]
    assert body["result"] is None  # systemd gave no verdict of its own (no oom-kill, no timeout)
    assert_nothing_left(fake_systemd, session_root, manager)
    assert await api.sessions() == []


async def failed_record(api: Api, session_id: str) -> dict[str, Any]:
    """The final record of a launch nobody waited for, once it failed (polled)."""

    async def final() -> dict[str, Any] | None:
        reply = await api.session(session_id)
        return reply.json if reply.code == 200 and reply.json["state"] == "failed" else None

    return await eventually(final, 20, "the failed launch's final record")


async def test_a_launch_nobody_waits_for_keeps_its_failed_step_and_log_tail(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, manager: SessionManager, xpra_env: Any
) -> None:
    """What the tab shows of a failed start (`wait: false`): the record has what a 500 answer had."""
    xpra_env(FAKE_XPRA_EXIT_AT_START="3")
    reply = await api.call("POST", FIREFOX_ROUTE, {"wait": False})
    assert reply.code == 202, reply.body
    assert reply.json["state"] == "starting"
    assert reply.json["step"] is None and reply.json["log_tail"] is None  # nothing failed yet
    record = await failed_record(api, reply.json["id"])
    assert record["step"] == "xpra-ready", record
    assert "status 3" in record["message"]
    assert "fake xpra: failing on purpose" in record["log_tail"]
    assert all(isinstance(line, str) for line in record["log_tail"])
    (listed,) = await api.sessions()  # the list the tab's store polls carries them too
    assert (listed["step"], listed["log_tail"]) == (record["step"], record["log_tail"])
    assert fake_systemd.loaded_units() == [] and session_dirs(session_root) == []  # only the record
    # The Xpra log is also kept whole (bounded) for `ffsystemd logs ID`.
    kept = session_root / "failed" / f"session-{record['id']}.log"
    assert "fake xpra: failing on purpose" in kept.read_text()
    assert (await api.cleanup(id=record["id"])).code == 200
    assert_nothing_left(fake_systemd, session_root, manager)


async def test_a_failed_start_record_has_a_bounded_log_tail(
    api: Api, manager: SessionManager, xpra_env: Any
) -> None:
    """A log of huge lines cannot make every list poll huge: lines and their total are cut."""
    xpra_env(FAKE_XPRA_EXIT_AT_START="3", FAKE_XPRA_LOG_FLOOD="1")
    reply = await api.call("POST", FIREFOX_ROUTE, {"wait": False})
    record = await failed_record(api, reply.json["id"])
    tail = record["log_tail"]
    assert tail and len(tail) <= RECORD_TAIL_LINES
    assert all(len(line) <= RECORD_LINE_CHARS for line in tail)
    assert sum(map(len, tail)) <= RECORD_TAIL_CHARS
    assert tail[-1] == "fake xpra: failing on purpose"  # the last line, the one that says why, stays
    await manager.cleanup([record["id"]])


@pytest.mark.launcher(ready_timeout=1)
async def test_xpra_never_ready_times_out_and_leaves_nothing(
    api: Api,
    fake_systemd: FakeSystemd,
    session_root: Path,
    manager: SessionManager,
    xpra_env: Any,
) -> None:
    xpra_env(FAKE_XPRA_NEVER_READY="1")
    started = time.monotonic()
    body = assert_launch_error(await api.launch(), "xpra-ready", "ready_timeout", "1 s")
    assert 1 <= time.monotonic() - started < 10
    assert any("never getting ready" in line for line in body["log_tail"])
    assert_nothing_left(fake_systemd, session_root, manager)
    assert await api.sessions() == []


@pytest.mark.launcher(ready_timeout=10)
async def test_cleanup_during_launch_answers_the_launch_with_json(
    api: Api, manager: SessionManager, session_root: Path, xpra_env: Any
) -> None:
    xpra_env(FAKE_XPRA_NEVER_READY="1")
    launch = asyncio.ensure_future(api.launch())
    await eventually(
        lambda: launch.done() or (manager.session_ids() and session_dirs(session_root)),
        5,
        "the launch to create its session",
    )
    assert not launch.done()
    (sid,) = manager.session_ids()
    reply = await api.cleanup(id=sid)
    assert reply.code == 200 and reply.json["stopped"] == [sid]
    answer = await launch
    assert session_dirs(session_root) == []
    assert manager.session_ids() == []
    body = assert_launch_error(answer, "cancelled", "stopped", code=409)
    assert any("never getting ready" in line for line in body["log_tail"]) or body["log_tail"] == []


# --- bad input -----------------------------------------------------------------------------------------
BAD_BODIES = {
    "malformed-json": "{",
    "json-array": "[]",
    "json-string": '"https://example.org/"',
    "json-null": "null",
    "unknown-field": json.dumps({"uri": "https://example.org/"}),
    "url-number": json.dumps({"url": 5}),
    "url-list": json.dumps({"url": ["https://example.org/"]}),
    "javascript-url": json.dumps({"url": "javascript:alert(1)"}),
    "file-url": json.dumps({"url": "file:///etc/passwd"}),
    "data-url": json.dumps({"url": "data:text/html,<script>alert(1)</script>"}),
    "url-with-space": json.dumps({"url": "https://example.org/ x"}),
    "url-with-newline": json.dumps({"url": "https://example.org/\nx"}),
    "empty-url": json.dumps({"url": ""}),
    "long-url": json.dumps({"url": "https://example.org/" + "a" * 3000}),
    "not-utf8": b"\xff\xfe{",
}


@pytest.mark.parametrize("raw", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
async def test_bad_launch_body_is_400_and_starts_nothing(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, raw: str | bytes
) -> None:
    reply = await api.call("POST", FIREFOX_ROUTE, raw=raw)
    assert_error(reply, 400)
    assert fake_systemd.call_count("StartTransientUnit") == 0
    assert session_dirs(session_root) == []


async def test_oversized_launch_body_is_413(api: Api, fake_systemd: FakeSystemd, session_root: Path) -> None:
    raw = json.dumps({"url": "https://example.org/", "pad": "x" * (64 * 1024)})
    reply = await api.call("POST", FIREFOX_ROUTE, raw=raw)
    assert_error(reply, 413, "too large")
    assert fake_systemd.call_count("StartTransientUnit") == 0
    assert session_dirs(session_root) == []


@pytest.mark.parametrize(
    "raw", ["", "{}", '{"url": null}', "  \n"], ids=["empty", "object", "null-url", "blank"]
)
async def test_launch_body_may_be_empty(api: Api, raw: str) -> None:
    reply = await api.call("POST", FIREFOX_ROUTE, raw=raw)
    assert reply.code == 201, reply.body
    assert reply.json["start_url"] == "about:blank"
    await stop(api, reply.json["id"])


async def test_launch_accepts_about_pages(api: Api) -> None:
    session = await launched(api, "about:preferences")
    assert session["start_url"] == "about:preferences"
    await stop(api, session["id"])


async def wait_until_ended(api: Api, session_id: str, timeout: float = 15) -> dict[str, Any]:
    """Poll GET ?id until the session is no longer starting, running or stopping; its status."""

    async def ended() -> dict[str, Any] | None:
        reply = await api.session(session_id)
        assert reply.code == 200, reply.body
        return None if reply.json["state"] in ("starting", "running", "stopping") else reply.json

    return await eventually(ended, timeout, f"session {session_id} to end")


async def test_a_vanished_unit_ends_the_session(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    assert fake_systemd.vanish_unit(session["unit"])  # systemd forgets it without a signal
    status = await wait_until_ended(api, session["id"])
    assert status["state"] in ("failed", "stopped")
    assert "vanished" in (status.get("message") or ""), status
    assert status["main_pid"] is None
    pid = session["main_pid"]
    await eventually(lambda: not process_alive(pid), 10, "the Xpra of a vanished unit to end")
    assert (await api.head()).code == 200  # the slot is free
    assert (await api.cleanup(id=session["id"])).code == 200
    assert session_dirs(session_root) == []


@pytest.mark.launcher(max_age=1)
async def test_max_age_ends_the_session_with_systemds_timeout(
    api: Api, fake_systemd: FakeSystemd, session_root: Path
) -> None:
    session = await launched(api)
    props = unit_properties(fake_systemd, session["unit"])
    assert props["RuntimeMaxUSec"] == 1_000_000
    status = await wait_until_ended(api, session["id"])
    assert our_units(fake_systemd) == []
    assert not process_alive(session["main_pid"])
    assert (await api.cleanup(id=session["id"])).code == 200
    assert status["state"] == "failed", status
    assert status["result"] == "timeout", status
    assert "max_age" in status["message"], status
