"""A byte-level tunnel for a websocket upgrade: the browser talks to Xpra through it.

After Jupyter has authenticated and authorized the upgrade request, the handler hands
its connection to `tunnel()`: the request (minus Jupyter's credentials) is replayed on
the session's unix socket and from then on bytes are copied both ways, untouched. Xpra
answers the handshake itself (so its subprotocol choice and close codes reach the
browser) and no websocket frame is decoded, unmasked and re-framed in between.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from urllib.parse import quote

from tornado.iostream import IOStream

CHUNK = 256 * 1024
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "x-xsrftoken", "proxy-authorization"})


def upgrade_request(path: str, query: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The HTTP/1.1 upgrade request replayed to Xpra: same headers, minus credentials (pure)."""
    target = quote("/" + path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")
    if query:
        target += "?" + query
    lines = [f"GET {target} HTTP/1.1"]
    for name, value in headers:
        if name.lower() in CREDENTIAL_HEADERS or "\r" in value or "\n" in value:
            continue
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def connect_unix(path: str, timeout: float = 10.0) -> socket.socket:
    """Open a non-blocking connection to a unix socket (OSError if nobody listens)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, path), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


class _Pipe(asyncio.Protocol):
    """One side of the tunnel: what it receives is written to its peer (with flow control)."""

    def __init__(self, on_traffic: Callable[[], None], closed: asyncio.Future[None]) -> None:
        self.on_traffic = on_traffic
        self.closed = closed
        self.peer: _Pipe | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.peer is not None and self.peer.pending:
            transport.write(b"".join(self.peer.pending))  # type: ignore[attr-defined]
            self.peer.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.on_traffic()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)  # the peer's transport is not set up yet

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None or peer.eof or not peer.transport.can_write_eof():
            return False  # both directions ended (or cannot half-close): close
        peer.transport.write_eof()
        return True  # keep the other direction open until it ends too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)

    # The peer's send buffer is full: stop reading here until it drains.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def tunnel(client: IOStream, backend: socket.socket, on_traffic: Callable[[], None]) -> None:
    """Copy bytes both ways between a detached client stream and Xpra until both ends close."""
    loop = asyncio.get_running_loop()
    client_sock = client.socket
    buffered = bytes(client._read_buffer[client._read_buffer_pos :]) if client._read_buffer_size else b""
    # Take the socket away from tornado's IOStream; from here on asyncio transports drive it.
    client.io_loop.remove_handler(client_sock)
    client.socket = None  # type: ignore[assignment]
    client_closed: asyncio.Future[None] = loop.create_future()
    backend_closed: asyncio.Future[None] = loop.create_future()
    to_backend = _Pipe(on_traffic, client_closed)
    to_client = _Pipe(on_traffic, backend_closed)
    to_backend.peer, to_client.peer = to_client, to_backend
    try:
        await loop.connect_accepted_socket(lambda: to_client, sock=backend)
        await loop.connect_accepted_socket(lambda: to_backend, sock=client_sock)
    except BaseException:
        client_sock.close()
        backend.close()
        raise
    if buffered:
        to_backend.data_received(buffered)
    try:
        await asyncio.gather(client_closed, backend_closed)
    finally:
        for pipe in (to_backend, to_client):
            if pipe.transport is not None:
                pipe.transport.close()
