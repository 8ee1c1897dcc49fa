"""ffsystemd_websocket_bytes_total counts what the websocket tunnel carries, both ways."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.polling import eventually
from prometheus_client import REGISTRY

from .proxy_world import *  # noqa: F403
from .proxy_world import World, recv


def tunnel_bytes(direction: str) -> float:
    return REGISTRY.get_sample_value("ffsystemd_websocket_bytes_total", {"direction": direction}) or 0.0


@pytest.fixture
async def client(world: World, session: dict[str, Any]) -> str:
    return await world.client_path(session)


async def test_websocket_bytes_are_counted_each_way(
    world: World, session: dict[str, Any], client: str
) -> None:
    to_session, to_browser = tunnel_bytes("to_session"), tunnel_bytes("to_browser")
    conn = await world.ws(client, subprotocols=["binary"], headers={"Origin": "null"})
    payload = bytes(range(256)) * 64  # 16 KiB
    await conn.write_message(payload, binary=True)
    assert await recv(conn) == payload
    # frames add a few bytes of framing each way; the handshake adds its headers
    sent = await eventually(lambda: (n := tunnel_bytes("to_session") - to_session) >= len(payload) and n, 5)
    received = await eventually(
        lambda: (n := tunnel_bytes("to_browser") - to_browser) >= len(payload) and n, 5
    )
    assert sent < len(payload) + 4096
    assert received < len(payload) + 4096
    conn.close()
