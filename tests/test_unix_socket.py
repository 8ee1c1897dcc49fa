"""connect_unix and backend_http.fetch against listeners whose backlog is full (real unix sockets).

Xpra listens with a backlog of 5 and accepts from a busy process: when more of our
connections arrive than it has accepted, the kernel refuses the rest with EAGAIN. These tests
make that happen on purpose (a backlog of 1, accepting late) and need no Xpra.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ffsystemd import backend_http
from ffsystemd.unix_socket import connect_unix

Answer = Callable[[socket.socket, bytes], Awaitable[None]]


@contextlib.asynccontextmanager
async def slow_listener(
    path: Path, answer: Answer | None = None, *, accept_after: float = 0.2, accept_every: float = 0.01
) -> AsyncIterator[socket.socket]:
    """A listener with a backlog of 1 that starts accepting late, one connection at a time."""
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.setblocking(False)
    accepted: list[socket.socket] = []
    serving: set[asyncio.Future[None]] = set()

    async def serve_one(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            more = await loop.sock_recv(conn, 4096)
            if not more:
                return
            data += more
        if answer is not None:
            await answer(conn, data)
        conn.close()

    async def accept_loop() -> None:
        await asyncio.sleep(accept_after)
        while True:
            conn, _ = await loop.sock_accept(listener)
            accepted.append(conn)
            task = asyncio.ensure_future(serve_one(conn))
            serving.add(task)
            task.add_done_callback(serving.discard)
            await asyncio.sleep(accept_every)

    task = asyncio.ensure_future(accept_loop())
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()
        for conn in accepted:
            conn.close()


async def echo_path(conn: socket.socket, request: bytes) -> None:
    path = request.split(b" ", 2)[1]
    body = b"file " + path
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    await asyncio.get_running_loop().sock_sendall(conn, head + body)


async def test_asyncio_connect_takes_eagain_for_a_connection(tmp_path: Path) -> None:
    """The cause, measured: sock_connect to a full backlog hands back an unconnected socket."""
    path = tmp_path / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)  # never accepts
    loop = asyncio.get_running_loop()
    socks = []
    try:
        unconnected = 0
        for _ in range(5):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            socks.append(sock)
            await asyncio.wait_for(loop.sock_connect(sock, str(path)), 5)
            try:
                sock.getpeername()
            except OSError:
                unconnected += 1
        assert unconnected >= 3
    finally:
        for sock in socks:
            sock.close()
        listener.close()


async def test_parallel_connects_to_a_full_backlog_all_connect(tmp_path: Path) -> None:
    path = tmp_path / "s"
    async with slow_listener(path):
        socks = await asyncio.gather(*(connect_unix(str(path), timeout=10) for _ in range(30)))
    try:
        for sock in socks:
            assert sock.getpeername() == str(path)  # raises ENOTCONN if it never connected
            assert not sock.getblocking()
    finally:
        for sock in socks:
            sock.close()


async def test_nobody_listening_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s"
    started = time.monotonic()
    with pytest.raises(FileNotFoundError):
        await connect_unix(str(path))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))  # bound, not listening
    try:
        with pytest.raises(ConnectionRefusedError):
            await connect_unix(str(path))
    finally:
        listener.close()
    assert time.monotonic() - started < 1


async def test_a_backlog_that_stays_full_times_out(tmp_path: Path) -> None:
    path = tmp_path / "s"
    async with slow_listener(path, accept_after=60) as _listener:
        first = [await connect_unix(str(path), timeout=1) for _ in range(2)]  # fill the backlog
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await connect_unix(str(path), timeout=0.3)
        finally:
            for sock in first:
                sock.close()
        assert 0.25 < time.monotonic() - started < 2


async def test_parallel_fetches_from_a_busy_listener_all_answer(tmp_path: Path) -> None:
    path = tmp_path / "s"
    async with slow_listener(path, echo_path):
        responses = await asyncio.gather(
            *(backend_http.fetch(str(path), "GET", f"js/f{n}.js", {}) for n in range(30))
        )
    assert [(r.code, r.body) for r in responses] == [(200, b"file /js/f%d.js" % n) for n in range(30)]


async def test_fetch_decompresses_and_keeps_headers(tmp_path: Path) -> None:
    async def gzipped(conn: socket.socket, request: bytes) -> None:
        assert b"accept-encoding: gzip" in request.lower()
        body = gzip.compress(b"x" * 10000)
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        await asyncio.get_running_loop().sock_sendall(conn, head + body)

    path = tmp_path / "s"
    async with slow_listener(path, gzipped, accept_after=0):
        response = await backend_http.fetch(str(path), "GET", "big.js", {"Accept": "*/*"})
    assert response.code == 200
    assert response.body == b"x" * 10000
    assert response.headers["Last-Modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"


async def test_an_answer_cut_short_is_an_error(tmp_path: Path) -> None:
    async def cut(conn: socket.socket, request: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(
            conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
        )

    path = tmp_path / "s"
    async with slow_listener(path, cut, accept_after=0):
        with pytest.raises(ConnectionError):
            await backend_http.fetch(str(path), "GET", "x.js", {})
