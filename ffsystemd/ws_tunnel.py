"""A byte-level tunnel for a websocket upgrade: the browser talks to Xpra through it.

Once the handler has checked the upgrade request, it replays it (headers from an allow-list)
on the session's unix socket and detaches the browser's connection from tornado; from then
on bytes are copied both ways, untouched. Xpra answers the handshake itself (so its
subprotocol choice and close codes reach the browser) and no websocket frame is decoded,
unmasked and re-framed in between.

Only public tornado APIs: `RequestHandler.detach()` gives the browser's IOStream, and reading
it with `read_bytes(partial=True)` returns first what tornado had already read past the
upgrade request's headers (a client may send its first frame in the same packet). Every way
the tunnel ends closes both sides; a tunnel without traffic for `idle_timeout` seconds is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
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


async def _pump(
    source: IOStream, sink: IOStream, on_traffic: Callable[[], None], count: Callable[[int], None]
) -> None:
    """Copy source to sink until source ends (buffered bytes first); waits for sink to drain."""
    while True:
        data = await source.read_bytes(CHUNK, partial=True)
        on_traffic()
        count(len(data))
        await sink.write(data)


async def tunnel(
    client: IOStream,
    backend: socket.socket | IOStream,
    on_traffic: Callable[[], None],
    idle_timeout: float = 0.0,
    on_bytes: Callable[[str, int], None] | None = None,
) -> None:
    """Copy bytes both ways between a detached client stream and Xpra until either end closes.

    on_bytes(direction, n), if given, hears of every chunk (`to_session` / `to_browser`).

    Both streams are closed when it returns, whatever ended it (an end closing, an error, the
    idle timeout, cancellation). idle_timeout 0 means none.
    """
    try:
        peer = backend if isinstance(backend, IOStream) else IOStream(backend)
    except BaseException:
        client.close()
        if isinstance(backend, socket.socket):
            backend.close()
        raise
    loop = asyncio.get_running_loop()
    last_traffic = loop.time()

    def traffic() -> None:
        nonlocal last_traffic
        last_traffic = loop.time()
        on_traffic()

    counted = on_bytes or (lambda _direction, _n: None)
    pumps = [
        asyncio.ensure_future(_pump(client, peer, traffic, lambda n: counted("to_session", n))),
        asyncio.ensure_future(_pump(peer, client, traffic, lambda n: counted("to_browser", n))),
    ]
    try:
        while True:
            wait = None if idle_timeout <= 0 else max(0.0, last_traffic + idle_timeout - loop.time())
            done, _ = await asyncio.wait(pumps, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if done or loop.time() - last_traffic >= idle_timeout > 0:
                break
    finally:
        client.close()
        peer.close()
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, StreamClosedError, OSError):
                await pump
