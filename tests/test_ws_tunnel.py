"""The websocket tunnel's replayed upgrade request (pure) and its byte pumping (socketpairs)."""

from __future__ import annotations

import asyncio
import os
import socket

from tornado.iostream import IOStream

from ffsystemd.ws_tunnel import tunnel, upgrade_request


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_upgrade_request_keeps_only_websocket_headers() -> None:
    raw = upgrade_request(
        "",
        [
            ("Host", "example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Origin", "null"),
            ("Sec-WebSocket-Key", "abc"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", "binary"),
            ("Authorization", "token secret"),
            ("Cookie", "username-x=secret"),
            ("X-XSRFToken", "secret"),
            ("Referer", "http://example/lab?token=secret"),
            ("X-Custom", "secret"),
            ("Sec-WebSocket-Extensions", "a\r\nInjected: yes"),
        ],
    ).decode()
    head, _, rest = raw.partition("\r\n")
    assert head == "GET / HTTP/1.1"  # never a query: Jupyter's ?token= stays with Jupyter
    assert raw.endswith("\r\n\r\n") and rest.count("\r\n\r\n") == 1
    for kept in ("Host: example", "Origin: null", "Sec-WebSocket-Key: abc", "Sec-WebSocket-Protocol: binary"):
        assert kept in raw
    assert "secret" not in raw and "Injected" not in raw


def test_upgrade_request_quotes_the_path() -> None:
    assert upgrade_request("js/a b.js", []).startswith(b"GET /js/a%20b.js HTTP/1.1\r\n")


async def test_tunnel_copies_both_ways_and_closes_both_ends() -> None:
    browser, client_end = pair()
    xpra, backend_end = pair()
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


async def test_bytes_read_past_the_upgrade_headers_reach_xpra_first() -> None:
    """What tornado read beyond the request's headers (a first frame in the same packet) is not lost."""
    loop = asyncio.get_running_loop()
    browser, client_end = pair()
    xpra, backend_end = pair()
    stream = IOStream(client_end)
    await loop.sock_sendall(browser, b"GET / HTTP/1.1\r\n\r\nfirst-frame")
    assert await stream.read_until(b"\r\n\r\n") == b"GET / HTTP/1.1\r\n\r\n"  # as tornado reads a request
    task = asyncio.ensure_future(tunnel(stream, backend_end, lambda: None))
    await loop.sock_sendall(browser, b"+second")
    received = b""
    while received != b"first-frame+second":
        chunk = await asyncio.wait_for(loop.sock_recv(xpra, 100), 10)
        assert chunk, received
        received += chunk
    browser.close()
    await asyncio.wait_for(task, 10)
    xpra.close()


async def test_a_silent_tunnel_closes_both_sides_after_the_idle_timeout() -> None:
    loop = asyncio.get_running_loop()
    before = open_fds()
    browser, client_end = pair()
    xpra, backend_end = pair()
    task = asyncio.ensure_future(tunnel(IOStream(client_end), backend_end, lambda: None, idle_timeout=0.3))
    started = loop.time()
    await loop.sock_sendall(browser, b"x")
    assert await asyncio.wait_for(loop.sock_recv(xpra, 10), 10) == b"x"
    await asyncio.wait_for(task, 10)
    assert loop.time() - started >= 0.3
    assert await asyncio.wait_for(loop.sock_recv(browser, 10), 10) == b""
    assert await asyncio.wait_for(loop.sock_recv(xpra, 10), 10) == b""
    browser.close()
    xpra.close()
    assert open_fds() == before


async def test_cancelling_the_tunnel_closes_both_sides() -> None:
    loop = asyncio.get_running_loop()
    before = open_fds()
    browser, client_end = pair()
    xpra, backend_end = pair()
    task = asyncio.ensure_future(tunnel(IOStream(client_end), backend_end, lambda: None))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await asyncio.wait_for(loop.sock_recv(browser, 10), 10) == b""
    assert await asyncio.wait_for(loop.sock_recv(xpra, 10), 10) == b""
    browser.close()
    xpra.close()
    assert open_fds() == before
