"""The `ffsystemd` command as a process, against the real user manager and real sessions
launched through a real Jupyter server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .world import JupyterServer, unit_gone, wait_until

pytestmark = pytest.mark.real

SAME_FIELDS = ("unit", "state", "created", "start_url", "memory_max", "tasks_max", "cpu_quota")


def ffsystemd(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m ffsystemd.cli ARGV` (the installed command's code) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ffsystemd.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def config_of(server: JupyterServer) -> str:
    """The server's own config file: the CLI reads session_root (and the rest) from it."""
    return str(server.root / "jupyter_server_config.json")


def listed(server: JupyterServer) -> dict[str, dict[str, Any]]:
    proc = ffsystemd("list", "--json", "--config", config_of(server))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["session_roots"] == [str(server.session_root)]
    return {s["id"]: s for s in body["sessions"]}


def test_list_matches_the_rest_api_and_stop_ends_a_session_the_server_notices(
    server: JupyterServer,
) -> None:
    first, second = server.launch(), server.launch(url="https://example.org/")
    rest = {s["id"]: s for s in server.get("firefox-launcher/api/firefox").json()["sessions"]}
    cli = listed(server)
    assert set(cli) == set(rest) == {first["id"], second["id"]}
    for sid, session in rest.items():
        mine = cli[sid]
        assert {k: mine[k] for k in SAME_FIELDS} == {k: session[k] for k in SAME_FIELDS}, sid
        assert mine["ours"] is True
        assert isinstance(mine["memory_current"], (int, type(None)))
        assert mine["tasks_current"] is None or mine["tasks_current"] > 0
        assert mine["age_seconds"] >= 0
    assert cli[first["id"]]["memory_max"] == 1024**3 and cli[first["id"]]["cpu_quota"] == 150

    # A websocket through the real proxy to the session's Xpra: the server records the activity
    # in session.json for the CLI (at once, then at most every few seconds), so both views agree.
    assert cli[first["id"]]["last_activity"] is None
    path = server.client_path(first).split("?", 1)[0]

    async def open_and_close_websocket() -> str | None:
        request = HTTPRequest(f"ws://127.0.0.1:{server.port}{path}", headers={"Origin": "null"})
        ws = await websocket_connect(request, subprotocols=["binary"])
        protocol = ws.selected_subprotocol
        ws.close()
        return protocol

    assert asyncio.run(open_and_close_websocket()) == "binary"
    seen = wait_until(lambda: server.status(first["id"])["last_activity"], 10, "the server to see traffic")
    assert seen is not None
    wait_until(
        lambda: listed(server)[first["id"]]["last_activity"] == server.status(first["id"])["last_activity"],
        30,
        "the CLI to show the server's last activity",
    )
    assert listed(server)[second["id"]]["last_activity"] is None  # no traffic: none recorded

    table = ffsystemd("list", "--config", config_of(server))
    assert table.returncode == 0
    assert first["id"] in table.stdout and "running" in table.stdout

    status = ffsystemd("status", first["id"], "--json", "--config", config_of(server))
    assert status.returncode == 0, status.stderr
    full = json.loads(status.stdout)
    assert full["properties"]["Slice"] == "app-ffsystemd.slice"
    assert full["properties"]["MemoryMax"] == 1024**3
    assert first["main_pid"] in [p["pid"] for p in full["processes"]]
    assert full["log"] == str(server.session_root / f"session-{first['id']}" / "runtime" / "xpra.log")

    stop = ffsystemd("stop", first["id"], "--json", "--config", config_of(server))
    assert stop.returncode == 0, stop.stderr
    assert json.loads(stop.stdout)["stopped"] == [first["id"]]
    assert unit_gone(first["unit"])
    assert not (server.session_root / f"session-{first['id']}").exists()
    ended = wait_until(
        lambda: (s := server.status(first["id"]))["state"] in ("stopped", "failed") and s,
        15,
        "the server to notice the stopped session",
    )
    assert ended["main_pid"] is None
    assert server.status(second["id"])["state"] == "running"
    assert set(listed(server)) == {second["id"]}

    stop_all = ffsystemd("stop", "--all", "--force", "--config", config_of(server))
    assert stop_all.returncode == 0, stop_all.stderr
    wait_until(lambda: unit_gone(second["unit"]), 10, "the second unit to be gone")
    wait_until(
        lambda: server.status(second["id"])["state"] in ("stopped", "failed"),
        15,
        "the server to notice the forced stop",
    )
    assert listed(server) == {}


def test_doctor_on_a_healthy_setup_exits_0(server: JupyterServer) -> None:
    proc = ffsystemd("doctor", "--json", "--config", config_of(server))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    rest = {c["name"]: c for c in server.get("firefox-launcher/api/health").json()["checks"]}
    for name, check in rest.items():
        assert checks[name]["verdict"] == check["verdict"], name
    for name in ("user_bus", "user_manager", "xpra", "xpra_html5", "firefox", "session_root"):
        assert checks[name]["verdict"] == "ok", checks[name]
    text = ffsystemd("doctor", "--config", config_of(server))
    assert text.returncode == 0 and "verdict: " in text.stdout


def test_doctor_without_a_user_manager_exits_1(tmp_path: Path) -> None:
    proc = ffsystemd(
        "doctor", "--session-root", "/tmp/ffs-doctor", "--bus-address", f"unix:path={tmp_path}/dead"
    )
    assert proc.returncode == 1, proc.stdout
    assert "ERROR    user_bus" in proc.stdout and "fix:  sudo systemctl start user@" in proc.stdout
    assert "verdict: error" in proc.stdout
    listing = ffsystemd(
        "list", "--session-root", "/tmp/ffs-doctor", "--bus-address", f"unix:path={tmp_path}/dead"
    )
    assert listing.returncode == 3 and "cannot connect to the user bus" in listing.stderr


def test_doctor_without_xpra_exits_1(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # neither xpra nor firefox on PATH
    proc = ffsystemd("doctor", "--json", "--session-root", "/tmp/ffs-doctor", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["user_manager"]["verdict"] == "ok"
    assert checks["xpra"]["verdict"] == "error"
    assert checks["xpra"]["fix"][0] == "sudo apt-get install xpra python3-pil"
