"""The session proxy (`<base_url>firefox-launcher/session/<id>/...`): HTTP and websockets to a fake Xpra.

Each test runs pytest-jupyter's in-process server with ffsystemd on the fake systemd user manager;
sessions run tests/fakes/ws_xpra.py as Xpra, a tornado server on the session's unix socket that
serves a page, echoes request headers, serves a 5 MB body, echoes websocket messages and keeps a
log of the requests it received (read directly on its socket, bypassing the proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import inspect
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fakes.ws_xpra import BIG_SIZE, big_body
from jupyter_server.auth import Authorizer
from packaging.requirements import Requirement
from packaging.version import Version

# pytest-jupyter has no entry point: its server fixtures (jp_fetch, jp_serverapp, ...) come in here.
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect

from ffsystemd.client_options import DEFAULT_CLIENT_OPTIONS
from ffsystemd.handlers.proxy import SessionProxyHandler
from ffsystemd.manager import SessionManager
from ffsystemd.session_dirs import session_paths

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WS_XPRA = REPO / "tests" / "fakes" / "ws_xpra.py"

FIREFOX_ROUTE = ("firefox-launcher", "api", "firefox")
ALL_OPTIONS = urlencode(DEFAULT_CLIENT_OPTIONS)
TIMEOUT = 10.0
UNUSED_ID = "0123456789ab"
MALFORMED_IDS = {
    "dot-dot": "..",
    "escaped-dot-dot": "%2e%2e",
    "escaped-dot-dot-upper": "%2E%2E",
    "upper-case": "ABCDEF012345",
    "13-hex": "0123456789abc",
    "11-hex": "0123456789a",
    "unicode": "%C3%A9" * 12,
    "raw-unicode": "\u00e9" * 12,
    "fullwidth-digits": "%EF%BC%90" * 12,
    "escaped-hex": "%30%31%32%33%34%35%36%37%38%39%61%62",
    "traversal": "..%2f..%2fetc",
}


# --- the server -----------------------------------------------------------------------------------
# This module imports pytest-jupyter's fixtures itself, which shadow tests/handlers/conftest.py's;
# so the two overrides below (same as the conftest's) must live here too.
@pytest.fixture
def jp_asyncio_loop(_function_scoped_runner: asyncio.Runner) -> asyncio.AbstractEventLoop:
    """pytest-asyncio's loop for this test: the server lives on the loop the test runs on."""
    return _function_scoped_runner.get_loop()


@pytest.fixture
def session_root() -> Iterator[Path]:
    """A short, empty session root under /tmp (unix socket paths must stay below 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def serverapp_traits() -> dict[str, Any]:
    """Extra ServerApp traits (tests parametrize this name to change them)."""
    return {}


@pytest.fixture
def jp_server_config(
    fake_systemd: Any, session_root: Path, serverapp_traits: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"ffsystemd": True}, **serverapp_traits},
        "FirefoxLauncher": {
            "bus_address": fake_systemd.address,
            "xpra_command": [sys.executable, str(WS_XPRA)],
            "firefox_command": ["/bin/true"],
            "session_root": str(session_root),
            "ready_timeout": 10,
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


async def poll(predicate: Callable[[], Awaitable[Any]], what: str, timeout: float = TIMEOUT) -> Any:
    """Await predicate() until it returns something truthy; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


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

    async def ws(
        self, path: str, *, token: bool = True, subprotocols: list[str] | None = None
    ) -> WebSocketClientConnection:
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.port}{path}",
            headers=dict(self.auth) if token else {},
            connect_timeout=TIMEOUT,
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


def location_parts(response: HTTPResponse) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(response.headers["Location"])
    assert not parts.scheme and not parts.netloc, response.headers["Location"]
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


# --- HTTP -----------------------------------------------------------------------------------------
async def test_session_url_is_the_route_under_base_url(world: World, session: dict[str, Any]) -> None:
    assert session["url"] == f"{world.base_url}firefox-launcher/session/{session['id']}/"


@pytest.mark.parametrize("page", ["", "index.html"])
async def test_page_without_client_options_redirects_to_our_defaults(
    world: World, session: dict[str, Any], page: str
) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(session["url"] + page)
    assert response.code == 302
    path, query = location_parts(response)
    assert path == session["url"] + page
    assert dict(query) == DEFAULT_CLIENT_OPTIONS
    assert len(query) == len(DEFAULT_CLIENT_OPTIONS)
    assert {"sharing": "true", "sound": "false", "floating_menu": "false"}.items() <= dict(query).items()
    assert await world.backend_requests(session["id"]) == before  # answered by the proxy itself


async def test_user_given_client_options_win_and_the_rest_are_added(
    world: World, session: dict[str, Any]
) -> None:
    response = await world.http(session["url"] + "?sound=true&keyboard_layout=de&sharing=false")
    assert response.code == 302
    path, query = location_parts(response)
    assert path == session["url"]
    as_dict = dict(query)
    assert len(as_dict) == len(query), f"a key repeated: {query}"
    assert as_dict["sound"] == "true"
    assert as_dict["sharing"] == "false"
    assert as_dict["keyboard_layout"] == "de"
    for key, value in DEFAULT_CLIENT_OPTIONS.items():
        if key not in ("sound", "sharing"):
            assert as_dict[key] == value, key


async def test_page_with_all_client_options_comes_from_the_fake(
    world: World, session: dict[str, Any]
) -> None:
    before = len(await world.backend_requests(session["id"]))
    response = await world.http(f"{session['url']}?{ALL_OPTIONS}")
    assert response.code == 200, response.body
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"ws fake xpra" in response.body
    assert (await world.backend_requests(session["id"]))[before:] == [["GET", "/"]]


async def test_backend_sees_the_forwarded_prefix_and_no_hop_by_hop_headers(
    world: World, session: dict[str, Any]
) -> None:
    response = await world.http(
        session["url"] + "echo-headers?x=1",
        headers={"X-Custom": "kept", "Proxy-Authorization": "Basic c2VjcmV0", "Keep-Alive": "timeout=5"},
    )
    assert response.code == 200, response.body
    seen = json.loads(response.body)
    headers = {name.lower(): value for name, value in seen["headers"]}
    prefix = f"{world.base_url}firefox-launcher/session/{session['id']}"
    assert headers["x-forwarded-prefix"] == prefix
    assert headers["x-forwarded-context"] == prefix
    assert seen["path"] == "/echo-headers"
    assert seen["query"] == "x=1"
    assert headers["x-custom"] == "kept"
    assert "proxy-authorization" not in headers
    assert "keep-alive" not in headers


async def test_jupyter_credentials_are_not_forwarded_to_xpra(world: World, session: dict[str, Any]) -> None:
    login_cookie = f"username-127-0-0-1-{world.port}"  # Jupyter's login cookie for this host
    response = await world.http(
        session["url"] + "echo-headers", headers={"Cookie": f"{login_cookie}=secret-login; _xsrf=secret-xsrf"}
    )
    assert response.code == 200, response.body
    seen = json.loads(response.body)
    sent = json.dumps(seen["headers"])
    token = world.auth["Authorization"].split()[-1]
    assert token not in sent
    assert "secret-login" not in sent
    assert "secret-xsrf" not in sent


async def test_big_body_arrives_intact(world: World, session: dict[str, Any]) -> None:
    response = await world.http(session["url"] + "big")
    assert response.code == 200
    assert len(response.body) == BIG_SIZE
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(big_body()).digest()


@pytest.mark.parametrize("page", [f"?{ALL_OPTIONS}", "echo-headers"])
async def test_head_is_proxied(world: World, session: dict[str, Any], page: str) -> None:
    before = len(await world.backend_requests(session["id"]))
    response = await world.http(session["url"] + page, method="HEAD")
    assert response.code == 200
    assert response.body == b""
    assert (await world.backend_requests(session["id"]))[before:] == [["HEAD", "/" + page.split("?")[0]]]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("page", ["", "echo-headers"])
async def test_other_methods_are_405_and_never_reach_xpra(
    world: World, session: dict[str, Any], method: str, page: str
) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(session["url"] + page, method=method)
    assert response.code == 405, (response.code, response.body)
    assert await world.backend_requests(session["id"]) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_405_names_the_allowed_methods(world: World, session: dict[str, Any], method: str) -> None:
    response = await world.http(session["url"], method=method)
    assert response.code == 405
    allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
    assert allow == {"GET", "HEAD"}, dict(response.headers)


async def test_unknown_valid_id_is_404(world: World, session: dict[str, Any]) -> None:
    assert session["id"] != UNUSED_ID
    base = f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/"
    for path in (base, f"{base}?{ALL_OPTIONS}", f"{base}echo-headers"):
        response = await world.http(path)
        assert response.code == 404, (path, response.code)
    assert (await world.http(base, method="HEAD")).code == 404


@pytest.mark.parametrize("bad_id", list(MALFORMED_IDS.values()), ids=list(MALFORMED_IDS))
async def test_malformed_ids_are_404_without_a_connection(
    world: World, session: dict[str, Any], bad_id: str
) -> None:
    before = await world.backend_requests(session["id"])
    base = f"{world.base_url}firefox-launcher/session/{bad_id}"
    for path in (f"{base}/", f"{base}/?{ALL_OPTIONS}", f"{base}/echo-headers"):
        response = await world.http(path)
        assert response.code == 404, (path, response.code, response.body[:200])
    response = await world.http(base)
    if bad_id == MALFORMED_IDS["escaped-hex"]:
        # Tornado hands the slash handler the unescaped id, a well-formed one: it adds the slash, and
        # the slash form (whose raw path does not match the session route) is then 404.
        assert response.code == 302
        assert response.headers["Location"] == f"{base}/"
    else:
        assert response.code == 404, (base, response.code, response.body[:200])
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(f"{base}/")
    assert caught.value.code == 404
    assert await world.backend_requests(session["id"]) == before


async def test_slashless_session_url_redirects_to_the_slash_form(
    world: World, session: dict[str, Any]
) -> None:
    bare = session["url"].rstrip("/")
    response = await world.http(bare)
    assert response.code == 302
    assert response.headers["Location"] == session["url"]
    response = await world.http(f"{bare}?sound=true")
    assert response.code == 302
    assert response.headers["Location"] == f"{session['url']}?sound=true"


async def test_a_cleaned_up_session_is_404(world: World, session: dict[str, Any]) -> None:
    page = f"{session['url']}?{ALL_OPTIONS}"
    assert (await world.http(page)).code == 200
    await world.cleanup(session["id"])
    assert (await world.http(page)).code == 404
    assert (await world.http(session["url"] + "echo-headers")).code == 404
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(session["url"])
    assert caught.value.code == 404


async def test_a_session_whose_xpra_exited_is_404(world: World, session: dict[str, Any]) -> None:
    os.kill(session["main_pid"], signal.SIGTERM)  # the fake Xpra this test's server started

    async def stopped() -> bool:
        return (await world.status(session["id"]))["state"] not in ("running", "starting")

    await poll(stopped, "the session to stop after its Xpra exited")
    assert (await world.http(f"{session['url']}?{ALL_OPTIONS}")).code == 404
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(session["url"])
    assert caught.value.code == 404
    await world.cleanup(session["id"])


# --- authentication and authorization ---------------------------------------------------------------
async def test_without_token_http_is_refused(world: World, session: dict[str, Any]) -> None:
    before = await world.backend_requests(session["id"])
    for path in (session["url"], f"{session['url']}?{ALL_OPTIONS}", session["url"] + "echo-headers"):
        response = await world.http(path, token=False)
        if response.code == 302:
            assert urlsplit(response.headers["Location"]).path == f"{world.base_url}login"
        else:
            assert response.code == 403, (path, response.code)
    assert (await world.http(session["url"].rstrip("/"), token=False)).code in (302, 403)
    assert (await world.http(session["url"], method="HEAD", token=False)).code in (302, 403)
    for method in ("POST", "PUT", "DELETE"):
        assert (await world.http(session["url"], method=method, token=False)).code == 403
    assert await world.backend_requests(session["id"]) == before


async def test_without_token_websocket_is_403(world: World, session: dict[str, Any]) -> None:
    before = await world.backend_ws_count(session["id"])
    for path in (session["url"], f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/"):
        with pytest.raises(HTTPClientError) as caught:
            await world.ws(path, token=False)
        assert caught.value.code == 403, path
    assert await world.backend_ws_count(session["id"]) == before


@pytest.mark.parametrize("serverapp_traits", [{"authorizer_class": DenyingAuthorizer}])
async def test_a_user_the_authorizer_denies_gets_403(
    world: World, denying_authorizer: type[DenyingAuthorizer], serverapp_traits: dict[str, Any]
) -> None:
    assert isinstance(world.settings["authorizer"], DenyingAuthorizer)
    session = await world.launch()
    page = f"{session['url']}?{ALL_OPTIONS}"
    assert (await world.http(page)).code == 200
    before = await world.backend_requests(session["id"])
    denying_authorizer.deny = {"read", "execute"}
    denying_authorizer.asked = []
    assert (await world.http(page)).code == 403
    assert (await world.http(session["url"] + "echo-headers")).code == 403
    assert (await world.http(page, method="HEAD")).code == 403
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(session["url"], subprotocols=["binary"])
    assert caught.value.code == 403
    assert ("read", "ffsystemd") in denying_authorizer.asked
    assert ("execute", "ffsystemd") in denying_authorizer.asked
    assert await world.backend_requests(session["id"]) == before
    denying_authorizer.deny = set()
    assert (await world.http(page)).code == 200


@pytest.mark.parametrize("serverapp_traits", [{"authorizer_class": DenyingAuthorizer}])
async def test_unauthenticated_requests_never_reach_the_authorizer(
    world: World, denying_authorizer: type[DenyingAuthorizer], serverapp_traits: dict[str, Any]
) -> None:
    session = await world.launch()
    denying_authorizer.users = []
    for path in (session["url"], f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/"):
        response = await world.http(path, token=False)
        assert response.code in (302, 403)
    assert None not in denying_authorizer.users


# --- websockets --------------------------------------------------------------------------------------
async def test_websocket_echoes_text_and_binary_keeping_their_type(
    world: World, session: dict[str, Any]
) -> None:
    conn = await world.ws(session["url"], subprotocols=["binary"])
    assert conn.selected_subprotocol == "binary"
    await conn.write_message("héllo xpra")
    reply = await recv(conn)
    assert isinstance(reply, str)
    assert reply == "héllo xpra"
    payload = bytes(range(256)) * 4
    await conn.write_message(payload, binary=True)
    reply = await recv(conn)
    assert isinstance(reply, bytes)
    assert reply == payload
    # a binary message that happens to be valid UTF-8 stays binary
    await conn.write_message(b"plain ascii", binary=True)
    assert await recv(conn) == b"plain ascii"
    assert (await world.backend_requests(session["id"]))[-1] == ["WEBSOCKET", "/"]


async def test_websocket_on_a_subpath_reaches_that_path(world: World, session: dict[str, Any]) -> None:
    conn = await world.ws(session["url"] + "some/ws/path?x=1")
    await conn.write_message("ping")
    assert await recv(conn) == "ping"
    assert (await world.backend_requests(session["id"]))[-1] == ["WEBSOCKET", "/some/ws/path"]


async def test_websocket_4mb_binary_round_trip(world: World, session: dict[str, Any]) -> None:
    conn = await world.ws(session["url"], subprotocols=["binary"])
    payload = os.urandom(4 * 1024 * 1024)
    await conn.write_message(payload, binary=True)
    reply = await recv(conn)
    assert isinstance(reply, bytes)
    assert len(reply) == len(payload)
    assert reply == payload


async def test_websocket_1000_small_messages_stay_in_order(world: World, session: dict[str, Any]) -> None:
    conn = await world.ws(session["url"], subprotocols=["binary"])
    sent = [f"message {i}" if i % 2 else f"message {i}".encode() for i in range(1000)]
    for message in sent:
        await conn.write_message(message, binary=isinstance(message, bytes))
    received = [await recv(conn) for _ in sent]
    assert received == sent


async def test_xpra_closing_the_websocket_closes_the_client(world: World, session: dict[str, Any]) -> None:
    conn = await world.ws(session["url"], subprotocols=["binary"])
    await conn.write_message("still there?")
    assert await recv(conn) == "still there?"
    await conn.write_message("close-me")
    assert await recv(conn) is None  # closed (jupyter-server-proxy does not relay Xpra's close code)

    async def all_closed() -> bool:
        backend = await world.backend_ws_count(session["id"])
        status = await world.status(session["id"])
        return backend["open"] == 0 and status["connections"] == 0

    await poll(all_closed, "the backend socket and the connection count to drop")


async def test_client_closing_the_websocket_closes_the_backend_connection(
    world: World, session: dict[str, Any]
) -> None:
    first = await world.ws(session["url"], subprotocols=["binary"])
    second = await world.ws(session["url"], subprotocols=["binary"])
    for conn in (first, second):
        await conn.write_message(b"x", binary=True)
        assert await recv(conn) == b"x"

    def backend_open(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (await world.backend_ws_count(session["id"]))["open"] == count

        return check

    await poll(backend_open(2), "two backend websockets")
    first.close()
    await poll(backend_open(1), "the first backend websocket to close")
    await second.write_message("still works")
    assert await recv(second) == "still works"
    second.close()
    await poll(backend_open(0), "the second backend websocket to close")
    assert (await world.backend_ws_count(session["id"]))["opened"] == 2


async def test_websocket_to_an_unknown_id_is_404_without_a_connection(
    world: World, session: dict[str, Any]
) -> None:
    before = await world.backend_ws_count(session["id"])
    for path in (
        f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/",
        f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/some/path",
    ):
        with pytest.raises(HTTPClientError) as caught:
            await world.ws(path, subprotocols=["binary"])
        assert caught.value.code == 404, path
    assert await world.backend_ws_count(session["id"]) == before


async def test_cross_origin_websocket_is_refused_without_a_connection(
    world: World, session: dict[str, Any]
) -> None:
    # A browser authenticates websockets with the login cookie (a token in a header is not
    # something a foreign page can send, so Jupyter skips the origin check for it).
    reply = await world.http(f"{world.base_url}firefox-launcher/api/firefox")
    cookies = [c.split(";", 1)[0] for c in reply.headers.get_list("Set-Cookie") if c.startswith("username-")]
    assert cookies, reply.headers
    before = await world.backend_ws_count(session["id"])

    def request(origin: str) -> HTTPRequest:
        return HTTPRequest(
            f"ws://127.0.0.1:{world.port}{session['url']}",
            headers={"Cookie": cookies[0], "Origin": origin},
            connect_timeout=TIMEOUT,
        )

    with pytest.raises(HTTPClientError) as caught:
        await asyncio.wait_for(
            websocket_connect(request("http://evil.example"), subprotocols=["binary"]), TIMEOUT
        )
    assert caught.value.code == 403
    assert await world.backend_ws_count(session["id"]) == before
    assert (await world.status(session["id"]))["connections"] == 0
    # The same cookie from the server's own origin is accepted.
    conn = await asyncio.wait_for(
        websocket_connect(request(f"http://127.0.0.1:{world.port}"), subprotocols=["binary"]), TIMEOUT
    )
    conn.close()


# --- activity ----------------------------------------------------------------------------------------
async def test_connections_count_open_websockets(world: World, session: dict[str, Any]) -> None:
    assert session["connections"] == 0

    def connections(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (await world.status(session["id"]))["connections"] == count

        return check

    first = await world.ws(session["url"])
    await poll(connections(1), "connections == 1")
    second = await world.ws(session["url"] + "other")
    await poll(connections(2), "connections == 2")
    second.close()
    await poll(connections(1), "connections back to 1")
    first.close()
    await poll(connections(0), "connections back to 0")
    # plain HTTP through the proxy is not a connection
    assert (await world.http(f"{session['url']}?{ALL_OPTIONS}")).code == 200
    assert (await world.status(session["id"]))["connections"] == 0


async def test_last_activity_advances_with_proxied_traffic(world: World, session: dict[str, Any]) -> None:
    conn = await world.ws(session["url"], subprotocols=["binary"])
    await conn.write_message("warm up")
    assert await recv(conn) == "warm up"
    first = (await world.status(session["id"]))["last_activity"]
    assert first is not None

    async def advanced() -> bool:
        await conn.write_message(b"tick", binary=True)
        assert await recv(conn) == b"tick"
        now = (await world.status(session["id"]))["last_activity"]
        return parse_time(now) > parse_time(first)

    await poll(advanced, "last_activity to advance with websocket messages")
    after_ws = parse_time((await world.status(session["id"]))["last_activity"])

    async def advanced_by_http() -> bool:
        assert (await world.http(session["url"] + "echo-headers")).code == 200
        return parse_time((await world.status(session["id"]))["last_activity"]) > after_ws

    await poll(advanced_by_http, "last_activity to advance with proxied HTTP")


async def test_proxied_traffic_counts_as_jupyter_activity(world: World, session: dict[str, Any]) -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)
    conn = await world.ws(session["url"], subprotocols=["binary"])
    await conn.write_message("hello")
    assert await recv(conn) == "hello"
    # From here on only websocket traffic happens until api/status (which is not tracked).
    times = world.settings.setdefault("last_activity_times", {})
    for key in list(times):
        times[key] = long_ago
    for key in [k for k in world.settings if k.endswith("_last_activity")]:
        world.settings[key] = long_ago
    mark = datetime.now(timezone.utc)
    await conn.write_message(b"more", binary=True)
    assert await recv(conn) == b"more"
    assert times.get("jupyter-server-proxy", long_ago) >= mark
    response = await world._fetch("api", "status")
    assert parse_time(json.loads(response.body)["last_activity"]) >= mark

    times["jupyter-server-proxy"] = long_ago
    mark = datetime.now(timezone.utc)
    assert (await world.http(session["url"] + "echo-headers")).code == 200
    assert times["jupyter-server-proxy"] >= mark


# --- base_url variants ----------------------------------------------------------------------------------
# jupyter_server accepts base_url "/user/al ice/" too, but serves nothing under it (tornado matches routes
# against the still-escaped request path, "/user/al%20ice/..."): JupyterHub's escaped form is what counts.
@pytest.mark.parametrize(
    "jp_base_url", ["/", "/user/alice/", "/user/a%20b/", "/a%40b/", "/user/a@b/", "/user/%C3%A9l%C3%A8ve/"]
)
async def test_http_and_websocket_under_base_url(world: World, jp_base_url: str) -> None:
    assert world.base_url == jp_base_url
    session = await world.launch()
    assert session["url"] == f"{jp_base_url}firefox-launcher/session/{session['id']}/"
    response = await world.http(session["url"])
    assert response.code == 302
    assert location_parts(response)[0] == session["url"]
    response = await world.http(f"{session['url']}?{ALL_OPTIONS}")
    assert response.code == 200
    assert b"ws fake xpra" in response.body
    headers = dict(json.loads((await world.http(session["url"] + "echo-headers")).body)["headers"])
    assert headers["X-Forwarded-Prefix"] == session["url"].rstrip("/")
    assert (await world.http(session["url"].rstrip("/"))).headers["Location"] == session["url"]
    conn = await world.ws(session["url"], subprotocols=["binary"])
    await conn.write_message(b"\x00\x01binary", binary=True)
    assert await recv(conn) == b"\x00\x01binary"
    await conn.write_message("text")
    assert await recv(conn) == "text"


# --- the jupyter-server-proxy interface we build on -------------------------------------------------------
def _params(func: Any) -> list[str]:
    return [name for name in inspect.signature(func).parameters if name != "self"]


def test_jupyter_server_proxy_interface_we_rely_on() -> None:
    from jupyter_server_proxy.handlers import ProxyHandler
    from jupyter_server_proxy.websocket import WebSocketHandlerMixin

    requirement = next(
        Requirement(dep)
        for dep in _pyproject()["project"]["dependencies"]
        if Requirement(dep).name == "jupyter-server-proxy"
    )
    installed = Version(importlib.metadata.version("jupyter-server-proxy"))
    assert requirement.specifier.contains(installed), (str(requirement), str(installed))
    assert str(requirement.specifier) in (">=4.1,<5", "<5,>=4.1")

    assert issubclass(SessionProxyHandler, ProxyHandler)
    assert issubclass(ProxyHandler, WebSocketHandlerMixin)
    assert issubclass(ProxyHandler, WebSocketHandler)
    assert _params(ProxyHandler.proxy)[:3] == ["host", "port", "proxied_path"]
    assert inspect.iscoroutinefunction(ProxyHandler.proxy)
    assert _params(ProxyHandler.proxy_open)[:3] == ["host", "port", "proxied_path"]
    assert inspect.iscoroutinefunction(ProxyHandler.proxy_open)
    assert "unix_socket" in vars(ProxyHandler)
    assert ProxyHandler.unix_socket is None
    assert _params(ProxyHandler._record_activity) == []
    assert _params(ProxyHandler._get_context_path) == ["host", "port"]
    assert _params(ProxyHandler.check_origin) == ["origin"]
    assert _params(ProxyHandler.select_subprotocol) == ["subprotocols"]
    assert callable(ProxyHandler.http_get)
    assert inspect.iscoroutinefunction(ProxyHandler.http_get)
    # the mixin's GET hands the route's groups to http_get unchanged (our http_get(session_id, proxied_path))
    assert _params(WebSocketHandlerMixin.get) == ["args", "kwargs"]
    assert "self.http_get(*args, **kwargs)" in inspect.getsource(WebSocketHandlerMixin.get)
    # the websocket relay we inherit: client -> backend in on_message, closing in on_close
    for name in ("on_message", "on_close", "on_ping", "proxy_request_headers"):
        assert callable(getattr(ProxyHandler, name)), name
    # ... and our overrides keep the signatures ProxyHandler calls them with
    assert _params(SessionProxyHandler._get_context_path) == ["host", "port"]
    assert _params(SessionProxyHandler._record_activity) == []


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())
