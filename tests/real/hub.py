"""A real JupyterHub for the real tier: the hub, configurable-http-proxy and single-user servers.

`Hub` runs `jupyterhub` (installed by the test extras) with configurable-http-proxy from
`.venv/chp` (installed there by scripts/setup), DummyAuthenticator with one password,
SimpleLocalProcessSpawner (every hub user's server runs as this Unix user, with HOME
`<root>/<user>`, on this machine's one systemd user manager) and named servers enabled.
Every single-user server carries the ffsystemd extension (enabled by the package's config)
and gets the user bus through `c.Spawner.environment`.

The test talks to the hub's REST API and, through the hub's proxy, to the single-user
servers with one service token holding admin and access scopes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .world import REPO, free_port, wait_until

VENV_BIN = Path(sys.executable).parent
CHP = REPO / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "ffsystemd-hub-test"
SERVICE = "ffsystemd-test"
ACTIVITY_INTERVAL = 2  # seconds between a single-user server's activity reports to the hub

CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{root}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/{{username}}"
c.JupyterHub.allow_named_servers = True
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {environment!r}
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
# The hub's own activity sampling from the proxy is pushed far out, so a fresh last_activity
# can only come from the single-user server's reports (what jupyterhub-idle-culler reads).
c.JupyterHub.last_activity_interval = 3600
c.JupyterHub.services = [{{"name": {service!r}, "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "ffsystemd-test",
        "scopes": ["admin:users", "admin:servers", "access:servers", "read:users:activity", "list:users"],
        "services": [{service!r}],
    }}
]
"""


@dataclass
class Hub:
    """A running JupyterHub; `api()` for the hub, `user_api()` for a single-user server."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ffh-", dir="/tmp")))
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen[bytes] | None = None
    launched: list[dict[str, Any]] = field(default_factory=list)  # sessions the test launched

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "hub.log"

    def home(self, user: str) -> Path:
        """The user's HOME (SimpleLocalProcessSpawner's home_dir_template)."""
        return self.root / user

    def start(self) -> Hub:
        """Write the config, start the hub (it starts its proxy) and wait for its API."""
        environment = {
            "DBUS_SESSION_BUS_ADDRESS": os.environ.get("DBUS_SESSION_BUS_ADDRESS", ""),
            "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"),
            "JUPYTERHUB_ACTIVITY_INTERVAL": str(ACTIVITY_INTERVAL),
        }
        config = CONFIG.format(
            port=self.port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            root=self.root,
            password=PASSWORD,
            singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
            environment=environment,
            service=SERVICE,
            token=self.token,
        )
        cfg = self.root / "jupyterhub_config.py"
        cfg.write_text(config)
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=env,
                start_new_session=True,
            )
        wait_until(self._answers, 60, "JupyterHub to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"jupyterhub exited: {self.log_tail()}")
        try:
            return self.api("GET", "").status_code == 200
        except requests.ConnectionError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, body: Any = None) -> requests.Response:
        """Call the hub's REST API (`/hub/api/<path>`) with the service token."""
        data = None if body is None else json.dumps(body)
        return requests.request(
            method, f"{self.url}/hub/api/{path}", data=data, headers=self.headers(), timeout=60
        )

    # --- users and their servers ----------------------------------------------------------
    def add_users(self, *names: str) -> None:
        resp = self.api("POST", "users", {"usernames": list(names)})
        assert resp.status_code in (201, 409), resp.text

    def user(self, name: str) -> dict[str, Any]:
        resp = self.api("GET", f"users/{name}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    @staticmethod
    def _server_path(user: str, server: str) -> str:
        return f"users/{user}/servers/{server}" if server else f"users/{user}/server"

    def request_server(self, user: str, server: str = "") -> None:
        """Ask the hub to spawn a server (does not wait; see wait_ready)."""
        resp = self.api("POST", self._server_path(user, server))
        assert resp.status_code in (201, 202), resp.text

    def wait_ready(self, user: str, server: str = "", timeout: float = 120) -> None:
        def ready() -> bool:
            info = self.user(user)["servers"].get(server)
            return bool(info and info.get("ready"))

        try:
            wait_until(ready, timeout, f"{user}'s server {server!r} to be ready", interval=0.5)
        except AssertionError:
            raise AssertionError(f"{user}/{server!r} not ready; hub log: {self.log_tail()}") from None

    def stop_server(self, user: str, server: str = "", timeout: float = 90) -> None:
        """Stop a server from the hub (as the idle culler does) and wait until it is gone."""
        resp = self.api("DELETE", self._server_path(user, server))
        assert resp.status_code in (202, 204), resp.text
        gone = lambda: server not in self.user(user)["servers"]  # noqa: E731
        wait_until(gone, timeout, f"{user}/{server!r} to stop", interval=0.5)

    def server_prefix(self, user: str, server: str = "") -> str:
        """The server's base_url on the hub's proxy: /user/<name>/ or /user/<name>/<server>/."""
        return f"/user/{user}/{server}/" if server else f"/user/{user}/"

    def user_api(self, method: str, user: str, server: str, path: str, body: Any = None) -> requests.Response:
        """Call a single-user server through the hub's proxy (service token, access:servers)."""
        data = None if body is None else json.dumps(body)
        return requests.request(
            method,
            f"{self.url}{self.server_prefix(user, server)}{path}",
            data=data,
            headers=self.headers(),
            timeout=120,
            allow_redirects=False,
        )

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM the hub: it stops every single-user server (cleanup_servers) and its proxy."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the hub's own process group only
            self.proc.wait()
