"""The world of the session proxy tests: an in-process server, our routes, a fake Xpra with websockets.

Each test runs pytest-jupyter's in-process server with ffsystemd on the fake systemd user manager;
sessions run tests/fakes/ws_xpra.py as Xpra, a tornado server on the session's unix socket that
serves a page, echoes request headers, serves a 5 MB body, echoes websocket messages and keeps a
log of the requests it received (read directly on its socket, bypassing the proxy).

The test modules import everything from here (`from proxy_world import *`): pytest-jupyter's
fixtures come in with it, and they would shadow tests/handlers/conftest.py's, so the
conftest's two overrides (jp_asyncio_loop, session_root) are imported again after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from jupyter_server.auth import Authorizer

# pytest-jupyter has no entry point: its server fixtures (jp_fetch, jp_serverapp, ...) come in here.
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from ffsystemd.manager import SessionManager
from ffsystemd.session_dirs import session_paths

from . import conftest as handlers_conftest

# After pytest-jupyter's star import, which would shadow them: the conftest's own overrides.
jp_asyncio_loop = handlers_conftest.jp_asyncio_loop
session_root = handlers_conftest.session_root

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WS_XPRA = REPO / "tests" / "fakes" / "ws_xpra.py"

FIREFOX_ROUTE = ("firefox-launcher", "api", "firefox")
TIMEOUT = 10.0
UNUSED_ID = "0123456789ab"
CAPABILITY_CHARS = 43


# --- the server -----------------------------------------------------------------------------------
@pytest.fixture
def serverapp_traits() -> dict[str, Any]:
    """Extra ServerApp traits (tests parametrize this name to change them)."""
    return {}


@pytest.fixture
def launcher_traits() -> dict[str, Any]:
    """Extra FirefoxLauncher traits (tests parametrize this name to change them)."""
    return {}


@pytest.fixture
def client_dirs() -> tuple[Path, ...]:
    """Where the server looks for Xpra's HTML5 client at start-up (ffsystemd.client_files).

    None here: the session's client is fetched from the fake Xpra (the fallback when no client
    directory is installed); tests/handlers/test_static_client.py parametrizes real ones.
    """
    return ()


@pytest.fixture
def jp_server_config(
    monkeypatch: pytest.MonkeyPatch,
    client_dirs: tuple[Path, ...],
    fake_systemd: Any,
    session_root: Path,
    serverapp_traits: dict[str, Any],
    launcher_traits: dict[str, Any],
) -> dict[str, Any]:
    monkeypatch.setattr("ffsystemd.client_files.HTML5_DIRS", client_dirs)
    return {
        "ServerApp": {"jpserver_extensions": {"ffsystemd": True}, **serverapp_traits},
        "FirefoxLauncher": {
            "bus_address": fake_systemd.address,
            "xpra_command": [sys.executable, str(WS_XPRA)],
            "firefox_command": ["/bin/true"],
            "session_root": str(session_root),
            "ready_timeout": 10,
            **launcher_traits,
        },
    }


class DenyingAuthorizer(Authorizer):
    """Allows everything until `deny` names actions; then refuses those on resource `ffsystemd`."""

    deny: set[str] = set()
    asked: list[tuple[str, str]] = []
    users: list[Any] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        DenyingAuthorizer.asked.append((action, resource))
        DenyingAuthorizer.users.append(user)
        return not (resource == "ffsystemd" and action in DenyingAuthorizer.deny)


@pytest.fixture
def denying_authorizer() -> Iterator[type[DenyingAuthorizer]]:
    DenyingAuthorizer.deny = set()
    DenyingAuthorizer.asked = []
    DenyingAuthorizer.users = []
    yield DenyingAuthorizer
    DenyingAuthorizer.deny = set()
    DenyingAuthorizer.asked = []
    DenyingAuthorizer.users = []


# --- talking to the server and to the fake behind it ------------------------------------------------
async def raw_http(socket_path: Path, path: str) -> tuple[int, bytes]:
    """GET path directly on a unix socket (HTTP/1.0, read to EOF): (status, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path)), TIMEOUT)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def location_parts(response: HTTPResponse) -> tuple[str, list[tuple[str, str]]]:
    """(path, query pairs) of a redirect, which must stay on this server (no scheme, no host)."""
    parts = urlsplit(response.headers["Location"])
    assert not parts.scheme and not parts.netloc, response.headers["Location"]
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


class World:
    """The in-process server, our REST API, raw requests, websockets, and the fake Xpra's own view."""

    def __init__(self, serverapp: Any, fetch: Any, client: Any, port: int, auth: dict[str, str]) -> None:
        self.serverapp = serverapp
        self.settings = serverapp.web_app.settings
        self.manager: SessionManager = self.settings["ffsystemd_manager"]
        self.base_url: str = serverapp.base_url
        self._fetch = fetch
        self._client = client
        self.port = port
        self.auth = auth
        self.websockets: list[WebSocketClientConnection] = []

    # REST API
    async def launch(self) -> dict[str, Any]:
        response = await self._fetch(*FIREFOX_ROUTE, method="POST", body="{}", raise_error=False)
        assert response.code == 201, (response.code, response.body)
        session = json.loads(response.body)
        assert session["state"] == "running", session
        return session

    async def status(self, session_id: str) -> dict[str, Any]:
        response = await self._fetch(*FIREFOX_ROUTE, params={"id": session_id})
        return json.loads(response.body)

    async def cleanup(self, session_id: str) -> None:
        response = await self._fetch(
            "firefox-launcher", "api", "cleanup", method="POST", body=json.dumps({"id": session_id})
        )
        assert json.loads(response.body) == {"stopped": [session_id], "errors": {}}

    # raw HTTP through the server: `path` is the whole path (base_url included), sent as is
    async def http(
        self,
        path: str,
        method: str = "GET",
        *,
        token: bool = True,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> HTTPResponse:
        all_headers = dict(self.auth) if token else {}
        all_headers.update(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b"{}"
        return await self._client.fetch(
            path,
            method=method,
            headers=all_headers,
            body=body,
            raise_error=False,
            follow_redirects=False,
            allow_nonstandard_methods=True,
            request_timeout=TIMEOUT * 3,
        )

    async def open_page(self, session: dict[str, Any], query: str = "") -> str:
        """What the session page redirects an authenticated GET to: `.../c/<capability>/?<options>`."""
        response = await self.http(session["url"] + (f"?{query}" if query else ""))
        assert response.code == 302, (response.code, response.body)
        return response.headers["Location"]

    async def client_path(self, session: dict[str, Any]) -> str:
        """A fresh capability path of a session's client (`.../c/<capability>/`)."""
        return urlsplit(await self.open_page(session)).path

    async def ws(
        self,
        path: str,
        *,
        token: bool = False,
        subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> WebSocketClientConnection:
        """A websocket to path (by default without Jupyter's token: the capability path needs none)."""
        all_headers = dict(self.auth) if token else {}
        all_headers.update(headers or {})
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.port}{path}", headers=all_headers, connect_timeout=TIMEOUT
        )
        conn = await asyncio.wait_for(
            websocket_connect(request, subprotocols=subprotocols, max_message_size=64 * 1024 * 1024), TIMEOUT
        )
        self.websockets.append(conn)
        return conn

    # the fake Xpra, directly on its socket
    def socket(self, session_id: str) -> Path:
        return session_paths(Path(self.manager.settings.session_root), session_id).socket

    async def backend_requests(self, session_id: str) -> list[list[str]]:
        code, body = await raw_http(self.socket(session_id), "/requests")
        assert code == 200
        return json.loads(body)

    async def backend_ws_count(self, session_id: str) -> dict[str, int]:
        code, body = await raw_http(self.socket(session_id), "/ws-count")
        assert code == 200
        return json.loads(body)


@pytest.fixture
def world(
    jp_serverapp: Any,
    jp_fetch: Any,
    http_server_client: Any,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> Iterator[World]:
    """The World; afterwards its websockets are closed and the sessions still known are stopped."""
    w = World(jp_serverapp, jp_fetch, http_server_client, jp_http_port, jp_auth_header)
    yield w
    for conn in w.websockets:
        conn.close()
    leftover = w.manager.session_ids()
    if leftover:
        jp_asyncio_loop.run_until_complete(w.manager.cleanup(leftover, force=True))


@pytest.fixture
async def session(world: World) -> dict[str, Any]:
    """A running session (stopped by the world fixture afterwards)."""
    return await world.launch()


async def recv(conn: WebSocketClientConnection) -> str | bytes | None:
    return await asyncio.wait_for(conn.read_message(), TIMEOUT)
