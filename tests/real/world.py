"""The real world for the `real` tests: a real Jupyter server process talking to the real
systemd user manager, with helpers to inspect units, processes and Xpra from outside."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from fakes import polling

REPO = Path(__file__).resolve().parents[2]
# Slow machines (the VM tier's emulated guest) stretch every deadline by this factor.
TIME_SCALE = polling.TIME_SCALE
# An API call (a launch answers once Xpra is ready) may take this long on a slow host.
HTTP_TIMEOUT = 120 * TIME_SCALE


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """fakes.polling.wait_until, every 50 ms by default (the real tier's checks spawn systemctl or
    talk HTTP); the deadline is stretched by $FFSYSTEMD_TEST_TIME_SCALE there."""
    return polling.wait_until(predicate, timeout, what, interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def systemctl_show(unit: str, *props: str) -> dict[str, str]:
    """`systemctl --user show` of a unit as a dict (LoadState=not-found when it is gone)."""
    out = subprocess.run(
        ["systemctl", "--user", "show", unit, *(f"--property={p}" for p in props)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def unit_gone(unit: str) -> bool:
    return systemctl_show(unit, "LoadState")["LoadState"] == "not-found"


def session_units() -> list[tuple[str, str]]:
    """(unit, description) of every ffsystemd session unit on the user manager."""
    out = subprocess.run(
        ["systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "app-ffsystemd-firefox-*"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    units = []
    for line in out.splitlines():
        fields = line.split(None, 4)
        if fields:
            units.append((fields[0], fields[4] if len(fields) == 5 else ""))
    return units


def our_units(server_ids: Iterable[str] | None = None) -> list[str]:
    """ffsystemd's session units on the user manager; with server_ids, only those servers' own.

    The user manager may be shared (a workstation's own sessions, parallel test runs): a leak
    check counts only the units of the servers it started, which each unit's Description names
    (`Firefox session <id> (ffsystemd server <server id>)`).
    """
    if server_ids is None:
        return [unit for unit, _description in session_units()]
    marks = [f"(ffsystemd server {sid})" for sid in server_ids]
    return [unit for unit, description in session_units() if any(m in description for m in marks)]


def cgroup_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cgroup").read_text().splitlines()


def alive(pids: Iterable[int]) -> list[int]:
    """Of `pids`, those whose process exists and is not a zombie (one exiting meanwhile is not)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def strays(procs: Iterable[psutil.Process], unit: str) -> list[tuple[str, object]]:
    """Of `procs`, those outside the cgroup of `unit` or listening on TCP, as (name, evidence).

    A process that exits between the listing and the check (a short-lived helper such as
    xrandr or xprop) is skipped: it can no longer be outside the scope or listen on anything.
    """
    found: list[tuple[str, object]] = []
    for proc in procs:
        try:
            name = proc.name()
            lines = cgroup_of(proc.pid)
            listening = [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
            continue
        if not any(line.endswith(f"/{unit}") for line in lines):
            found.append((f"{proc.pid} {name}", lines))
        if listening:
            found.append((f"{proc.pid} {name}", listening))
    return found


class NamedProcess(psutil.Process):
    """A process whose name was read when it was listed, so `name()` works after it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self._listed_name = super().name()

    def name(self) -> str:
        return self._listed_name


def process_tree(pid: int) -> list[psutil.Process]:
    """`pid` and its descendants alive at the call, each with its name read then.

    A session runs short-lived helpers (xrandr, xprop, a shell); one that exits while the tree
    is listed is left out instead of failing the caller.
    """
    root = psutil.Process(pid)
    tree: list[psutil.Process] = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            tree.append(NamedProcess(proc.pid))
        except psutil.NoSuchProcess:
            continue
    return tree


def xpra_windows(socket_path: Path) -> dict[str, str]:
    """`xpra info` on the session socket, reduced to the windows.* lines."""
    proc = subprocess.run(
        ["xpra", "info", f"socket://{socket_path}"], capture_output=True, text=True, timeout=60
    )
    info = {}
    for line in proc.stdout.splitlines():
        if line.startswith("windows.") and "=" in line:
            key, value = line.split("=", 1)
            info[key] = value
    return info


def firefox_window(socket_path: Path) -> bool:
    return any(
        "firefox" in v.lower() for k, v in xpra_windows(socket_path).items() if k.endswith("class-instance")
    )


@dataclass
class JupyterServer:
    """A `jupyter server` subprocess with the extension, reachable with a token."""

    root: Path
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    base_url: str = "/user/real-tester/"
    root_dir: Path | None = None  # ServerApp.root_dir; default: root
    default_session_root: bool = False  # leave session_root to the per-server default
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    launched: list[dict[str, Any]] = field(default_factory=list)  # every session launch() made
    server_id: str | None = None  # the extension's server id (health report), once started
    # Server extensions to enable or disable besides the installed defaults.
    server_extensions: dict[str, bool] = field(default_factory=lambda: {"ffsystemd": True})
    # Runs the server through e.g. `sudo -u OTHER env ...` (the VM tier's second user).
    command_prefix: list[str] = field(default_factory=list)

    @property
    def session_root(self) -> Path:
        return self.root / "sessions"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def start(self) -> JupyterServer:
        """Start the server and wait until its API answers."""
        config = {
            "ServerApp": {
                "port": self.port,
                "ip": "127.0.0.1",
                "open_browser": False,
                "allow_root": True,
                "base_url": self.base_url,
                "root_dir": str(self.root_dir or self.root),
                "jpserver_extensions": self.server_extensions,
            },
            "IdentityProvider": {"token": self.token},
            "FirefoxLauncher": dict(self.config),
        }
        if not self.default_session_root:
            config["FirefoxLauncher"].setdefault("session_root", str(self.session_root))
        cfg = self.root / "jupyter_server_config.json"
        cfg.write_text(json.dumps(config))
        self.log_path = self.root / "server.log"
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(self.root / "config"), **self.env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*self.command_prefix, sys.executable, "-m", "jupyter_server", f"--config={cfg}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,  # no terminal, as under JupyterHub or a supervisor
                env=env,
                cwd=self.root,
            )
        wait_until(self._answers, 60, "the Jupyter server to answer")
        try:
            self.server_id = self.get("firefox-launcher/api/health").json()["server"]["server_id"]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            self.server_id = None  # no extension (a test that disables or breaks it)
        return self

    def units(self) -> list[str]:
        """The session units of this server on the user manager (and of units launch() saw)."""
        mark = f"(ffsystemd server {self.server_id})" if self.server_id else None
        launched = {s["unit"] for s in self.launched}
        return [
            unit
            for unit, description in session_units()
            if unit in launched or (mark is not None and mark in description)
        ]

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"jupyter server exited: {self.log_path.read_text()[-3000:]}")
        try:
            return self.get("api/status").status_code == 200
        except requests.ConnectionError:
            return False

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(), timeout=HTTP_TIMEOUT, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        data = None if body is None else json.dumps(body)
        return requests.post(self.url + path, data=data, headers=self.headers(), timeout=HTTP_TIMEOUT, **kw)

    def client_path(self, session: dict[str, Any], query: str = "") -> str:
        """Where the session page sends an authenticated browser: `.../c/<capability>/?<options>`.

        Under that path the client's files and websocket need no token (the capability is the key).
        """
        url = f"http://127.0.0.1:{self.port}{session['url']}" + (f"?{query}" if query else "")
        resp = requests.get(url, headers=self.headers(), timeout=120, allow_redirects=False)
        assert resp.status_code == 302, (resp.status_code, resp.text[:300])
        return resp.headers["Location"]

    def launch(self, **body: Any) -> dict[str, Any]:
        resp = self.post("firefox-launcher/api/firefox", body)
        assert resp.status_code == 201, resp.text
        self.launched.append(resp.json())
        return resp.json()

    def status(self, session_id: str) -> dict[str, Any]:
        resp = self.get(f"firefox-launcher/api/firefox?id={session_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def cleanup(self, **body: Any) -> dict[str, Any]:
        resp = self.post("firefox-launcher/api/cleanup", body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def stop(self, timeout: float = 120, sig: int = signal.SIGTERM) -> int:
        """Signal the server (SIGTERM; it stops or keeps sessions per on_shutdown) and wait; after
        `timeout` s (a shutdown may take shutdown_timeout twice plus 10 s) SIGKILL it. Returns
        its exit status (negative: the signal that ended it)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def stop_leaving_nothing(servers: Iterable[JupyterServer]) -> list[str]:
    """Stop every server (each on its own: one that fails to stop does not keep the others
    running), give their session units 30 s to go, then stop any unit still there so the next
    test starts clean. Returns what was left behind: units, and servers whose stop failed."""
    servers = list(servers)
    left: list[str] = []
    for server in servers:
        try:
            server.stop()
        except Exception as exc:  # reported below, after the others are stopped
            left.append(f"server {server.url} did not stop: {exc!r}")

    def units() -> list[str]:
        return sorted({unit for server in servers for unit in server.units()})

    try:
        wait_until(lambda: not units(), 30, "the servers' session units to go")
    except AssertionError:
        stuck = units()
        for unit in stuck:
            subprocess.run(["systemctl", "--user", "stop", unit], capture_output=True, timeout=120)
        left += stuck
    return left
