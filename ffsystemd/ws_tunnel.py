"""A byte-level tunnel for a websocket upgrade: the browser talks to Xpra through it.

Once the handler has checked the upgrade request, it replays it (headers from an allow-list)
on the session's unix socket and detaches the browser's connection from tornado; from then
on bytes are copied both ways, untouched. Xpra answers the handshake itself (so its
subprotocol choice and close codes reach the browser) and no websocket frame is decoded,
unmasked and re-framed in between.

Only public tornado APIs: `RequestHandler.detach()` gives the browser's IOStream; what tornado
had already read past the upgrade request's headers (a client may send its first frame in the
same packet) is drained with `read_bytes(partial=True)` before asyncio transports take over a
duplicate of the connection's descriptor (take_over). Every way the tunnel ends closes both
sides; a tunnel without traffic for `idle_timeout` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Iterable
from urllib.parse import quote

from tornado.iostream import IOStream, StreamClosedError

CHUNK = 256 * 1024
UPGRADE_HEADERS = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "origin",
        "user-agent",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
    }
)
"""Headers of the browser's upgrade request Xpra gets (lower case); never cookies or tokens."""


def upgrade_request(path: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The HTTP/1.1 upgrade request replayed to Xpra: allow-listed headers, no query (pure)."""
    target = quote("/" + path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")
    lines = [f"GET {target} HTTP/1.1"]
    for name, value in headers:
        if name.lower() not in UPGRADE_HEADERS or "\r" in value or "\n" in value:
            continue
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def take_over(stream: IOStream) -> tuple[socket.socket, bytes]:
    """The detached stream's connection as a socket of our own, plus the bytes tornado had read.

    Public tornado API only: `read_bytes(partial=True)` answers at once (a done future) while
    tornado holds buffered bytes or the socket has some; the first read that does not is left
    pending and ended by `close()` in the same step, so no byte can be read in between. The
    connection lives on in a duplicate of the socket's descriptor. Raises StreamClosedError if
    the browser has already gone.
    """
    chunks: list[bytes] = []
    while True:
        future = stream.read_bytes(CHUNK, partial=True)
        if not future.done():
            future.add_done_callback(lambda f: f.exception())  # ended by close() below
            break
        if future.exception() is not None:
            stream.close()
            raise StreamClosedError()
        chunks.append(future.result())
    handle = stream.fileno()
    fd = os.dup(handle if isinstance(handle, int) else handle.fileno())
    stream.close()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock, b"".join(chunks)


class _Pipe(asyncio.Protocol):
    """One side of the tunnel: what it receives is written to its peer (with flow control)."""

    def __init__(
        self, on_traffic: Callable[[], None], closed: asyncio.Future[None], on_bytes: Callable[[int], None]
    ) -> None:
        self.on_traffic = on_traffic
        self.on_bytes = on_bytes
        self.closed = closed
        self.peer: _Pipe | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.peer is not None and self.peer.pending:
            self.transport.write(b"".join(self.peer.pending))  # type: ignore[union-attr]
            self.peer.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.on_traffic()
        self.on_bytes(len(data))
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)  # the peer's transport is not set up yet

    def eof_received(self) -> bool:
        return False  # one side ended: close (a websocket has no half-closed state)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    # The peer's send buffer is full: stop reading here until it drains.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def tunnel(
    client: IOStream,
    backend: socket.socket,
    on_traffic: Callable[[], None],
    idle_timeout: float = 0.0,
    on_bytes: Callable[[str, int], None] | None = None,
) -> None:
    """Copy bytes both ways between a detached client stream and Xpra until either end closes.

    on_bytes(direction, n), if given, hears of every chunk (`to_session` / `to_browser`).

    Both connections are closed when it returns, whatever ended it (an end closing, an error,
    the idle timeout, cancellation). idle_timeout 0 means none.
    """
    loop = asyncio.get_running_loop()
    last_traffic = loop.time()

    def traffic() -> None:
        nonlocal last_traffic
        last_traffic = loop.time()
        on_traffic()

    ended: asyncio.Future[None] = loop.create_future()
    counted = on_bytes or (lambda _direction, _n: None)
    to_backend = _Pipe(traffic, ended, lambda n: counted("to_session", n))
    to_client = _Pipe(traffic, ended, lambda n: counted("to_browser", n))
    to_backend.peer, to_client.peer = to_client, to_backend
    loose: list[socket.socket] = [backend]  # sockets no transport owns yet (we close those)
    try:
        client_sock, buffered = take_over(client)
        loose.append(client_sock)
        with contextlib.suppress(OSError):
            if client_sock.family in (socket.AF_INET, socket.AF_INET6):
                client_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.connect_accepted_socket(lambda: to_client, sock=backend)
        loose.remove(backend)
        await loop.connect_accepted_socket(lambda: to_backend, sock=client_sock)
        loose.remove(client_sock)
        if buffered:
            to_backend.data_received(buffered)
        while not ended.done():
            wait = None if idle_timeout <= 0 else max(0.0, last_traffic + idle_timeout - loop.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), wait)
            if idle_timeout > 0 and loop.time() - last_traffic >= idle_timeout:
                break
    except StreamClosedError:
        pass  # the browser went away before the tunnel started
    finally:
        # An end that closed: let the other side flush what it has (Xpra's close frame), then
        # close. Idle timeout, cancellation or an error: drop both at once.
        for pipe in (to_backend, to_client):
            if pipe.transport is not None:
                if ended.done():
                    pipe.transport.close()
                else:
                    pipe.transport.abort()
        client.close()
        for sock in loose:
            sock.close()
