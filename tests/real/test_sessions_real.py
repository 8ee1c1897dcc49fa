"""Real sessions: real Jupyter server, real systemd --user, real Xpra and Firefox."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from .world import (
    JupyterServer,
    alive,
    firefox_window,
    process_tree,
    strays,
    systemctl_show,
    unit_gone,
    wait_until,
)

pytestmark = pytest.mark.real


def session_dir(server: JupyterServer, session_id: str) -> Path:
    return server.session_root / f"session-{session_id}"


def assert_nothing_left(server: JupyterServer, session: dict, pids: list[int]) -> None:
    wait_until(lambda: not alive(pids), 30, "every process of the session to end")
    wait_until(lambda: unit_gone(session["unit"]), 30, f"{session['unit']} to be unloaded")
    assert not session_dir(server, session["id"]).exists()


def test_launch_runs_firefox_in_a_limited_scope_and_cleanup_leaves_nothing(server: JupyterServer) -> None:
    session = server.launch(url="about:blank")
    sid, unit = session["id"], session["unit"]
    assert session["state"] == "running"
    assert unit == f"app-ffsystemd-firefox-{sid}.scope"
    assert session["url"] == f"{server.base_url}firefox-launcher/session/{sid}/"
    # The limits are what systemd reads back from the unit.
    assert session["memory_max"] == 1024**3
    assert session["tasks_max"] == 512
    assert session["cpu_quota"] == 150
    shown = systemctl_show(unit, "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec", "Slice", "ActiveState")
    assert shown["MemoryMax"] == str(1024**3)
    assert shown["TasksMax"] == "512"
    assert shown["CPUQuotaPerSecUSec"] == "1.500000s"
    assert shown["Slice"] == "app-ffsystemd.slice"
    assert shown["ActiveState"] == "active"

    sock = session_dir(server, sid) / "sockets" / "xpra.sock"
    wait_until(lambda: firefox_window(sock), 90, "Xpra to list a Firefox window")

    procs = process_tree(session["main_pid"])
    names = [p.name() for p in procs]
    assert any(n.startswith("Xvfb") for n in names), names
    assert any("firefox" in n for n in names), names
    assert not any("xmessage" in n for n in names), names
    # Every process of the session is in its scope and none listens on TCP.
    assert strays(procs, unit) == []
    xvfb = next(p for p in procs if p.name().startswith("Xvfb"))
    assert "1280x800x24" in " ".join(xvfb.cmdline())

    # Firefox really uses the session's profile and cache.
    firefox = next(p for p in procs if p.name().startswith("firefox") and "-contentproc" not in p.cmdline())
    profile = session_dir(server, sid) / "profile"
    assert str(profile) in firefox.cmdline()
    assert (profile / "prefs.js").exists() or (profile / "times.json").exists()
    env = firefox.environ()
    assert env["XDG_CACHE_HOME"] == str(session_dir(server, sid) / "cache")
    assert env["TMPDIR"] == str(session_dir(server, sid) / "temp")
    assert "JUPYTER_TOKEN" not in env and "DBUS_SESSION_BUS_ADDRESS" not in env
    wait_until(
        lambda: (session_dir(server, sid) / "cache" / "mozilla").is_dir(), 30, "the cache in the session"
    )

    pids = [p.pid for p in procs]
    result = server.cleanup(id=sid)
    assert result == {"stopped": [sid], "errors": {}}
    assert_nothing_left(server, session, pids)
    assert server.get(f"firefox-launcher/api/firefox?id={sid}").status_code == 404


def test_killed_xpra_is_reported_and_its_scope_stopped(server: JupyterServer) -> None:
    session = server.launch()
    pids = [p.pid for p in process_tree(session["main_pid"])]
    os.kill(session["main_pid"], signal.SIGKILL)  # the Xpra this test's server started
    status = wait_until(
        lambda: (s := server.status(session["id"]))["state"] in ("failed", "stopped") and s,
        10,
        "the session to be reported as failed",
    )
    assert status["state"] == "failed"
    assert status["result"] == "signal"
    assert "SIGKILL" in status["message"]
    assert status["main_pid"] is None
    # Xvfb and Firefox did not outlive their Xpra: the scope was stopped.
    wait_until(lambda: unit_gone(session["unit"]), 10, "the unit to be gone")
    wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), 10, "leftover processes to end")
    assert server.cleanup(id=session["id"])["stopped"] == [session["id"]]
    assert not session_dir(server, session["id"]).exists()


def test_two_sessions_run_side_by_side_and_cleanup_all(server: JupyterServer) -> None:
    first, second = server.launch(), server.launch()
    assert first["id"] != second["id"]
    listed = server.get("firefox-launcher/api/firefox").json()["sessions"]
    assert {s["id"] for s in listed} == {first["id"], second["id"]}
    states = [(s["state"], s["result"], s["message"]) for s in listed]
    assert all(state == "running" for state, _result, _message in states), states  # seen once: why
    pids = [p.pid for s in (first, second) for p in process_tree(s["main_pid"])]
    result = server.cleanup(all=True, force=True)
    assert sorted(result["stopped"]) == sorted([first["id"], second["id"]])
    for s in (first, second):
        assert_nothing_left(server, s, pids)


def test_launch_timeout_reports_step_and_log_and_leaves_nothing(server_factory) -> None:
    server = server_factory(ready_timeout=0.2)
    resp = server.post("firefox-launcher/api/firefox", {})
    assert resp.status_code == 500, resp.text
    body = resp.json()
    assert body["step"] == "xpra-ready"
    assert "ready_timeout" in body["message"]
    assert isinstance(body["log_tail"], list)
    assert server.get("firefox-launcher/api/firefox").json() == {"sessions": []}
    # Only the failed launch's Xpra log is kept (bounded), for `ffsystemd logs ID`.
    assert [p.name for p in server.session_root.iterdir()] == ["failed"]
    (kept,) = (server.session_root / "failed").iterdir()
    assert kept.name.startswith("session-") and kept.name.endswith(".log")
    assert server.units() == []


def test_server_shutdown_stops_its_sessions(server_factory) -> None:
    server = server_factory()
    session = server.launch()
    pids = [p.pid for p in process_tree(session["main_pid"])]
    assert server.stop() == 0
    wait_until(lambda: unit_gone(session["unit"]), 10, "the unit to stop with the server")
    wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), 10, "the processes to end")
    assert not session_dir(server, session["id"]).exists()


def test_health_reports_every_precondition(server: JupyterServer) -> None:
    report = server.get("firefox-launcher/api/health").json()
    names = [c["name"] for c in report["checks"]]
    assert names == ["user_bus", "user_manager", "delegated_controllers", "xpra", "xpra_html5", "firefox"]
    by_name = {c["name"]: c for c in report["checks"]}
    for name in ("user_bus", "user_manager", "xpra", "xpra_html5", "firefox"):
        assert by_name[name]["verdict"] == "ok", by_name[name]
    assert by_name["delegated_controllers"]["verdict"] in ("ok", "warning")
    assert server.get("firefox-launcher/api/firefox").status_code == 200
    import requests

    head = requests.head(server.url + "firefox-launcher/api/firefox", headers=server.headers(), timeout=30)
    assert head.status_code == 200


def test_install_units_installs_the_aggregate_slice() -> None:
    import subprocess
    import sys
    from pathlib import Path

    target = Path.home() / ".config" / "systemd" / "user" / "app-ffsystemd.slice"
    existed = target.exists()
    try:
        subprocess.run([sys.executable, "-m", "ffsystemd.cli", "install-units"], check=True, timeout=60)
        shown = systemctl_show("app-ffsystemd.slice", "MemoryMax", "TasksMax", "FragmentPath")
        assert shown["FragmentPath"] == str(target)
        assert shown["MemoryMax"] == str(8 * 1024**3)
        assert shown["TasksMax"] == "4096"
    finally:
        if not existed:
            target.unlink(missing_ok=True)
            subprocess.run(["systemctl", "--user", "daemon-reload"], check=True, timeout=60)
