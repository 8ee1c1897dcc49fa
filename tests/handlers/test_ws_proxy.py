"""Websockets of the session's client, under its capability: tunnel, origins, limits, activity.

The client copies its page's path into its websocket URL, so the websocket arrives at the
capability path, without cookies and with `Origin: null` (its opaque origin).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from fakes.polling import eventually
from tornado.httpclient import HTTPClientError

from .proxy_world import *  # noqa: F403
from .proxy_world import CAPABILITY_CHARS, TIMEOUT, World, recv


@pytest.fixture
async def client(world: World, session: dict[str, Any]) -> str:
    """A fresh capability path of the session's client."""
    return await world.client_path(session)


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def backend_open(world: World, session: dict[str, Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await world.backend_ws_count(session["id"]))["open"] == count

    return check


def connections(world: World, session: dict[str, Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await world.status(session["id"]))["connections"] == count

    return check


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- the tunnel -------------------------------------------------------------------------------------------
async def test_websocket_echoes_text_and_binary_keeping_their_type(
    world: World, session: dict[str, Any], client: str
) -> None:
    conn = await world.ws(client, subprotocols=["binary"], headers={"Origin": "null"})
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
    await conn.write_message(b"plain ascii", binary=True)  # binary that happens to be UTF-8 stays binary
    assert await recv(conn) == b"plain ascii"
    assert (await world.backend_requests(session["id"]))[-1] == ["WEBSOCKET", "/"]


async def test_websocket_on_a_subpath_reaches_that_path_without_query(
    world: World, session: dict[str, Any], client: str
) -> None:
    conn = await world.ws(client + "some/ws/path?token=secret&x=1")
    await conn.write_message("ping")
    assert await recv(conn) == "ping"
    assert (await world.backend_requests(session["id"]))[-1] == ["WEBSOCKET", "/some/ws/path"]


async def test_websocket_4mb_binary_round_trip(world: World, session: dict[str, Any], client: str) -> None:
    conn = await world.ws(client, subprotocols=["binary"])
    payload = os.urandom(4 * 1024 * 1024)
    await conn.write_message(payload, binary=True)
    reply = await recv(conn)
    assert isinstance(reply, bytes)
    assert reply == payload


async def test_websocket_1000_small_messages_stay_in_order(
    world: World, session: dict[str, Any], client: str
) -> None:
    conn = await world.ws(client, subprotocols=["binary"])
    sent = [f"message {i}" if i % 2 else f"message {i}".encode() for i in range(1000)]
    for message in sent:
        await conn.write_message(message, binary=isinstance(message, bytes))
    assert [await recv(conn) for _ in sent] == sent


async def test_xpra_closing_the_websocket_closes_the_client(
    world: World, session: dict[str, Any], client: str
) -> None:
    conn = await world.ws(client, subprotocols=["binary"])
    await conn.write_message("close-me")
    assert await recv(conn) is None
    assert conn.close_code == 1000  # Xpra's own close frame reaches the browser

    async def all_closed() -> bool:
        return await backend_open(world, session, 0)() and await connections(world, session, 0)()

    await eventually(all_closed, what="the backend socket and the connection count to drop")


async def test_client_closing_the_websocket_closes_the_backend_connection(
    world: World, session: dict[str, Any], client: str
) -> None:
    first = await world.ws(client, subprotocols=["binary"])
    second = await world.ws(client, subprotocols=["binary"])
    for conn in (first, second):
        await conn.write_message(b"x", binary=True)
        assert await recv(conn) == b"x"
    await eventually(backend_open(world, session, 2), what="two backend websockets")
    first.close()
    await eventually(backend_open(world, session, 1), what="the first backend websocket to close")
    await second.write_message("still works")
    assert await recv(second) == "still works"
    second.close()
    await eventually(backend_open(world, session, 0), what="the second backend websocket to close")
    assert (await world.backend_ws_count(session["id"]))["opened"] == 2


async def test_an_upgrade_with_bytes_right_after_its_headers(
    world: World, session: dict[str, Any], client: str
) -> None:
    """A client may send its first frame in the same packet as the upgrade (tornado has read it)."""
    loop = asyncio.get_running_loop()
    before_fds = open_fds()
    frame = (
        bytes([0x81, 0x80 | 4])
        + b"\x01\x02\x03\x04"
        + bytes(b ^ m for b, m in zip(b"ping", b"\x01\x02\x03\x04", strict=True))
    )
    request = (
        f"GET {client} HTTP/1.1\r\nHost: 127.0.0.1:{world.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nOrigin: null\r\n\r\n"
    ).encode() + frame
    sock = socket.create_connection(("127.0.0.1", world.port))
    sock.setblocking(False)
    try:
        await loop.sock_sendall(sock, request)
        data = b""
        while b"ping" not in data:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), TIMEOUT)
            assert chunk, f"closed early after {data!r}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 101")
        assert data.endswith(bytes([0x81, 4]) + b"ping")  # the echo of the frame sent with the upgrade
    finally:
        sock.close()
    await eventually(connections(world, session, 0), what="the tunnel to close")
    await eventually(lambda: open_fds() <= before_fds, what=f"fds back to {before_fds} (now {open_fds()})")


# --- who may open one ---------------------------------------------------------------------------------
async def test_a_bad_capability_or_foreign_origin_is_403_without_a_connection(
    world: World, session: dict[str, Any], client: str
) -> None:
    before = await world.backend_ws_count(session["id"])
    for path, headers in (
        (f"{session['url']}c/{'A' * CAPABILITY_CHARS}/", {}),
        (f"{session['url']}c/short/", {}),
        (client, {"Origin": "http://evil.example"}),
        (client, {"Origin": f"http://127.0.0.1.evil.example:{world.port}"}),
    ):
        for token in (False, True):
            with pytest.raises(HTTPClientError) as caught:
                await world.ws(path, token=token, headers=headers, subprotocols=["binary"])
            assert caught.value.code == 403, (path, headers, token)
    assert await world.backend_ws_count(session["id"]) == before
    assert (await world.status(session["id"]))["connections"] == 0


@pytest.mark.parametrize("origin", [None, "null", "http://127.0.0.1:{port}"])
async def test_the_clients_own_origins_are_accepted(
    world: World, session: dict[str, Any], client: str, origin: str | None
) -> None:
    headers = {} if origin is None else {"Origin": origin.format(port=world.port)}
    conn = await world.ws(client, headers=headers, subprotocols=["binary"])
    await conn.write_message("hi")
    assert await recv(conn) == "hi"


async def test_websocket_to_an_unknown_or_ended_session_is_404(world: World, session: dict[str, Any]) -> None:
    client = await world.client_path(session)
    capability = client.rstrip("/").rsplit("/", 1)[-1]
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(f"{world.base_url}firefox-launcher/session/0123456789ab/c/{capability}/")
    assert caught.value.code == 404


@pytest.mark.parametrize("launcher_traits", [{"max_connections_per_session": 2}])
async def test_open_websockets_per_session_are_capped(
    world: World, session: dict[str, Any], client: str, launcher_traits: dict[str, Any]
) -> None:
    first = await world.ws(client, subprotocols=["binary"])
    await world.ws(client, subprotocols=["binary"])
    await eventually(backend_open(world, session, 2), what="two backend websockets")
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(client, subprotocols=["binary"])
    assert caught.value.code == 429
    assert "max_connections_per_session" in caught.value.response.body.decode()
    assert (await world.backend_ws_count(session["id"]))["opened"] == 2
    other = await world.launch()  # the cap is per session
    await world.ws(await world.client_path(other), subprotocols=["binary"])
    first.close()
    await eventually(connections(world, session, 1), what="one connection left")
    third = await world.ws(client, subprotocols=["binary"])
    await third.write_message("room again")
    assert await recv(third) == "room again"


@pytest.mark.parametrize("launcher_traits", [{"websocket_idle_timeout": 0.5}])
async def test_a_silent_tunnel_is_closed_after_the_idle_timeout(
    world: World, session: dict[str, Any], client: str, launcher_traits: dict[str, Any]
) -> None:
    conn = await world.ws(client, subprotocols=["binary"])
    for _ in range(4):  # traffic keeps it open beyond the timeout
        await conn.write_message("tick")
        assert await recv(conn) == "tick"
        await asyncio.sleep(0.2)
    assert await asyncio.wait_for(conn.read_message(), TIMEOUT) is None  # then silence closes it
    await eventually(backend_open(world, session, 0), what="the backend side to close too")
    await eventually(connections(world, session, 0), what="the connection count to drop")


# --- activity ----------------------------------------------------------------------------------------
async def test_connections_count_open_websockets(world: World, session: dict[str, Any], client: str) -> None:
    assert session["connections"] == 0
    first = await world.ws(client)
    await eventually(connections(world, session, 1), what="connections == 1")
    second = await world.ws(client + "other")
    await eventually(connections(world, session, 2), what="connections == 2")
    second.close()
    await eventually(connections(world, session, 1), what="connections back to 1")
    first.close()
    await eventually(connections(world, session, 0), what="connections back to 0")
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 200
    assert (await world.status(session["id"]))["connections"] == 0  # plain HTTP is not a connection


async def test_websocket_traffic_counts_as_session_and_jupyter_activity(
    world: World, session: dict[str, Any], client: str
) -> None:
    conn = await world.ws(client, subprotocols=["binary"])
    await conn.write_message("warm up")
    assert await recv(conn) == "warm up"
    first = (await world.status(session["id"]))["last_activity"]

    async def advanced() -> bool:
        await conn.write_message(b"tick", binary=True)
        assert await recv(conn) == b"tick"
        return parse_time((await world.status(session["id"]))["last_activity"]) > parse_time(first)

    await eventually(advanced, what="last_activity to advance with websocket messages")
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)
    times = world.settings.setdefault("last_activity_times", {})
    for key in list(times):
        times[key] = long_ago
    for key in [k for k in world.settings if k.endswith("_last_activity")]:
        world.settings[key] = long_ago
    mark = datetime.now(timezone.utc)
    await conn.write_message(b"more", binary=True)
    assert await recv(conn) == b"more"
    assert times["ffsystemd"] >= mark
    response = await world._fetch("api", "status")
    assert parse_time(json.loads(response.body)["last_activity"]) >= mark


async def test_an_open_websocket_keeps_its_capability_alive(world: World, session: dict[str, Any]) -> None:
    store = world.settings["ffsystemd_capabilities"]
    now = [1000.0]
    store.clock = lambda: now[0]
    client = await world.client_path(session)
    conn = await world.ws(client, subprotocols=["binary"])
    for _ in range(3):
        now[0] += store.idle_lifetime - 1
        await conn.write_message("still here")
        assert await recv(conn) == "still here"
    again = await world.ws(client, subprotocols=["binary"])  # a reconnect with the same URL works
    await again.write_message("reconnected")
    assert await recv(again) == "reconnected"
