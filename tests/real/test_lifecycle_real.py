"""Lifecycle under faults, for real: crashes, restarts, idle culling, concurrency, emergency stop, soak."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .world import JupyterServer, alive, process_tree, unit_gone, wait_until

pytestmark = pytest.mark.real


def ended(server: JupyterServer, sid: str) -> dict | None:
    status = server.status(sid)
    return status if status["state"] in ("stopped", "failed") else None


def firefox_main(pid: int) -> psutil.Process:
    return next(
        p for p in process_tree(pid) if p.name().startswith("firefox") and "-contentproc" not in p.cmdline()
    )


def firefox_main_or_none(pid: int) -> psutil.Process | None:
    try:
        return firefox_main(pid)
    except StopIteration:
        return None


def test_killed_firefox_is_reported_within_a_second_and_nothing_is_left(server: JupyterServer) -> None:
    session = server.launch()
    pids = [p.pid for p in process_tree(session["main_pid"])]
    wait_until(lambda: any("firefox" in p.name() for p in process_tree(session["main_pid"])), 60, "Firefox")
    pids = [p.pid for p in process_tree(session["main_pid"])]
    os.kill(firefox_main(session["main_pid"]).pid, signal.SIGKILL)
    status = wait_until(lambda: ended(server, session["id"]), 1.5, "the session to be reported ended")
    assert (status["state"], status["result"]) == ("failed", "signal")
    assert status["message"] == "Firefox was killed (SIGKILL)"
    assert status["main_pid"] is None
    wait_until(lambda: not alive(pids), 10, "every process of the session to end")
    wait_until(lambda: unit_gone(session["unit"]), 10, "the unit to be gone")
    wait_until(
        lambda: not (server.session_root / f"session-{session['id']}").exists(), 10, "the directory to go"
    )
    server.cleanup(id=session["id"])


def test_killed_xpra_is_reported_within_a_second(server: JupyterServer) -> None:
    session = server.launch()
    pids = [p.pid for p in process_tree(session["main_pid"])]
    os.kill(session["main_pid"], signal.SIGKILL)
    status = wait_until(lambda: ended(server, session["id"]), 1.5, "the session to be reported ended")
    assert (status["state"], status["result"]) == ("failed", "signal")
    wait_until(lambda: not alive(pids), 30, "every process of the session to end")
    wait_until(lambda: unit_gone(session["unit"]), 30, "the ended session's unit to be gone")
    server.cleanup(id=session["id"])


def test_restart_with_keep_re_adopts_the_running_session(server_factory) -> None:
    first = server_factory(on_shutdown="keep")
    session = first.launch()
    firefox = wait_until(lambda: firefox_main_or_none(session["main_pid"]), 60, "Firefox to start")
    assert first.stop() == 0
    # on_shutdown=keep: the unit, Xpra and Firefox outlive the server.
    assert not unit_gone(session["unit"])
    assert alive([session["main_pid"], firefox.pid]) == [session["main_pid"], firefox.pid]
    pids = [p.pid for p in process_tree(session["main_pid"])]

    # A new server process on the same session_root.
    adopted_server = JupyterServer(first.root, config={"on_shutdown": "stop"})
    adopted_server.start()
    try:
        listed = wait_until(
            lambda: adopted_server.get("firefox-launcher/api/firefox").json()["sessions"], 10, "re-adoption"
        )
        assert [s["id"] for s in listed] == [session["id"]]
        adopted = listed[0]
        assert adopted["state"] == "running" and adopted["adopted"] is True
        assert adopted["main_pid"] == session["main_pid"]
        assert adopted["start_url"] == session["start_url"]
        # Still reachable through the proxy of the new server, HTTP and websocket.
        client = adopted_server.client_path(adopted)
        page = requests.get(f"http://127.0.0.1:{adopted_server.port}{client}", timeout=30)
        assert page.status_code == 200 and "xpra" in page.text.lower()

        async def open_ws() -> str | None:
            path = client.split("?", 1)[0]
            request = HTTPRequest(f"ws://127.0.0.1:{adopted_server.port}{path}", headers={"Origin": "null"})
            ws = await websocket_connect(request, subprotocols=["binary"])
            protocol = ws.selected_subprotocol
            ws.close()
            return protocol

        assert asyncio.run(open_ws()) == "binary"
        # A crash of the adopted Xpra (not the new server's child) is still noticed.
        os.kill(session["main_pid"], signal.SIGKILL)
        wait_until(lambda: ended(adopted_server, session["id"]), 3, "the adopted session to end")
        wait_until(lambda: not alive(pids), 30, "the adopted session's processes to end")
        wait_until(lambda: unit_gone(session["unit"]), 30, "the adopted session's unit to be gone")
    finally:
        adopted_server.stop()


def test_restart_cleans_dead_units_and_orphan_directories(server_factory) -> None:
    first = server_factory(on_shutdown="keep")
    session = first.launch()
    server_id = first.get("firefox-launcher/api/health").json()["server"]["server_id"]
    first.stop()
    orphan = first.session_root / "session-00000000abcd"  # ours (session.json says so), no unit
    orphan.mkdir(mode=0o700)
    (orphan / "session.json").write_text(json.dumps({"id": "00000000abcd", "server_id": server_id}))
    nobodys = first.session_root / "session-00000000dcba"  # no owner written: never swept
    nobodys.mkdir(mode=0o700)
    stranger = first.session_root / "not-a-session"
    stranger.mkdir()
    # The session dies while no server watches it.
    os.kill(session["main_pid"], signal.SIGKILL)
    restarted = JupyterServer(first.root, config={})
    restarted.start()
    try:
        wait_until(lambda: unit_gone(session["unit"]), 15, "the dead session's unit to be cleaned")
        wait_until(lambda: not orphan.exists(), 10, "the orphan directory to be removed")
        assert not (first.session_root / f"session-{session['id']}").exists()
        assert stranger.is_dir()  # not ours: untouched
        assert nobodys.is_dir()  # no readable owner (another server's launch may be filling it)
        # The dead session is reported once, with the reason, and cleaned on request.
        (listed,) = restarted.get("firefox-launcher/api/firefox").json()["sessions"]
        assert (listed["id"], listed["state"]) == (session["id"], "failed")
        assert "Xpra" in listed["message"]
        assert restarted.cleanup(id=session["id"])["stopped"] == [session["id"]]
    finally:
        restarted.stop()


def test_idle_session_is_culled_and_says_why(server_factory) -> None:
    server = server_factory(idle_timeout=3, culling_interval=0.5)
    session = server.launch()
    pids = [p.pid for p in process_tree(session["main_pid"])]
    status = wait_until(lambda: ended(server, session["id"]), 30, "the idle session to be culled")
    assert (status["state"], status["result"]) == ("stopped", "idle-timeout")
    assert "idle" in status["message"]
    wait_until(lambda: not alive(pids), 30, "the culled session's processes to end")
    wait_until(lambda: unit_gone(session["unit"]), 30, "the culled session's unit to be gone")
    assert not (server.session_root / f"session-{session['id']}").exists()


def test_parallel_launches_respect_max_sessions(server_factory) -> None:
    server = server_factory(max_sessions=3, ready_timeout=90)
    with ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(lambda _: server.post("firefox-launcher/api/firefox", {}), range(10)))
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] * 3 + [429] * 7, [r.text for r in replies]
    assert all("max_sessions" in r.json()["message"] for r in replies if r.status_code == 429)
    ids = sorted(r.json()["id"] for r in replies if r.status_code == 201)
    assert (
        sorted(u.removeprefix("app-ffsystemd-firefox-").removesuffix(".scope") for u in server.units()) == ids
    )
    result = server.cleanup(all=True)
    assert sorted(result["stopped"]) == ids
    assert server.units() == []
    assert list(server.session_root.iterdir()) == []


def test_emergency_cleanup_kills_processes_that_ignore_sigterm(server_factory, tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn-firefox"
    stubborn.write_text('#!/bin/sh\ntrap "" TERM\nwhile :; do sleep 1; done\n')
    stubborn.chmod(stubborn.stat().st_mode | stat.S_IXUSR)
    # Long stop timeout: only a SIGKILL of the whole cgroup ends this session quickly.
    server = server_factory(firefox_command=[str(stubborn)], stop_timeout=60)
    session = server.launch()
    wait_until(lambda: len(process_tree(session["main_pid"])) >= 3, 30, "the stubborn child to start")
    pids = [p.pid for p in process_tree(session["main_pid"])]
    started = time.monotonic()
    assert server.cleanup(id=session["id"], force=True)["stopped"] == [session["id"]]
    assert time.monotonic() - started < 30  # not the 60 s stop timeout
    wait_until(lambda: not alive(pids), 5, "every process to be killed")
    assert unit_gone(session["unit"])  # stopped and reset, not left failed


def test_soak_launch_cleanup_cycles_leak_nothing(server: JupyterServer) -> None:
    assert server.proc is not None
    server_process = psutil.Process(server.proc.pid)

    def cycle() -> None:
        session = server.launch()
        pids = [p.pid for p in process_tree(session["main_pid"])]
        assert server.cleanup(id=session["id"])["stopped"] == [session["id"]]
        wait_until(lambda: not alive(pids), 10, "the cycle's processes to end")

    cycle()  # warm-up: imports, caches, first connections
    fds_before = server_process.num_fds()
    rss_before = server_process.memory_info().rss
    for _ in range(6):
        cycle()
    assert server.units() == []
    assert list(server.session_root.iterdir()) == []
    assert [c.pid for c in server_process.children(recursive=True) if c.status() != "zombie"] == []
    wait_until(lambda: server_process.num_fds() <= fds_before + 2, 10, "file descriptors to settle")
    assert server_process.memory_info().rss - rss_before < 40 * 1024 * 1024
