"""The websocket tunnel's replayed upgrade request (pure) and its byte pumping (socketpairs)."""

from __future__ import annotations

import asyncio
import socket

from tornado.iostream import IOStream

from ffsystemd.ws_tunnel import tunnel, upgrade_request


def test_upgrade_request_keeps_websocket_headers_and_drops_credentials() -> None:
    raw = upgrade_request(
        "",
        "a=1",
        [
            ("Host", "example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "abc"),
            ("Sec-WebSocket-Protocol", "binary"),
            ("Authorization", "token secret"),
            ("Cookie", "username-x=secret"),
            ("X-XSRFToken", "secret"),
            ("X-Evil", "a\r\nInjected: yes"),
        ],
    ).decode()
    head, _, rest = raw.partition("\r\n")
    assert head == "GET /?a=1 HTTP/1.1"
    assert raw.endswith("\r\n\r\n") and rest.count("\r\n\r\n") == 1
    assert "Sec-WebSocket-Key: abc" in raw and "Sec-WebSocket-Protocol: binary" in raw
    assert "secret" not in raw and "Injected" not in raw


def test_upgrade_request_quotes_the_path() -> None:
    assert upgrade_request("js/a b.js", "", []).startswith(b"GET /js/a%20b.js HTTP/1.1\r\n")


async def test_tunnel_copies_both_ways_and_closes_both_ends() -> None:
    browser, client_end = socket.socketpair()
    xpra, backend_end = socket.socketpair()
    for sock in (browser, xpra, client_end, backend_end):
        sock.setblocking(False)
    seen: list[int] = []
    task = asyncio.ensure_future(tunnel(IOStream(client_end), backend_end, lambda: seen.append(1)))
    loop = asyncio.get_running_loop()
    big = bytes(range(256)) * 40_000  # ~10 MB, more than any socket buffer
    send = asyncio.ensure_future(loop.sock_sendall(browser, big))
    received = bytearray()
    while len(received) < len(big):
        received += await asyncio.wait_for(loop.sock_recv(xpra, 1 << 20), 10)
    await send
    assert bytes(received) == big
    await loop.sock_sendall(xpra, b"answer")
    assert await asyncio.wait_for(loop.sock_recv(browser, 100), 10) == b"answer"
    assert seen
    xpra.close()  # Xpra goes away: the browser's side is closed too
    assert await asyncio.wait_for(loop.sock_recv(browser, 100), 10) == b""
    browser.close()
    await asyncio.wait_for(task, 10)
