"""Plain HTTP to a session's Xpra on its unix socket, with headers filtered both ways.

Requests carry only an allow-list of the browser's headers (never cookies, Authorization,
Jupyter's XSRF token or the Referer) and no query string (the client reads its options from
its own page's location; Jupyter's `?token=` never reaches Xpra). Responses pass on only an
allow-list of Xpra's headers (no Set-Cookie, no CORS, no policy headers of its own: ours
replace them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.iostream import IOStream, StreamClosedError

from .unix_socket import connect_unix

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest file of the client we relay (Xpra's biggest script is ~1 MB)."""
TIMEOUT = 30.0

REQUEST_HEADERS = frozenset({"accept", "accept-language", "user-agent"})
"""Browser headers Xpra gets for a file (lower case); X-Forwarded-* are added by us. No
conditional requests: session responses are never cached (their URLs hold a capability)."""

RESPONSE_HEADERS = frozenset({"last-modified", "content-language"})
"""Xpra's response headers the browser gets (lower case); Content-Type and the rest are ours."""


@dataclass
class BackendResponse:
    """Xpra's whole answer to one request: status, headers and (decompressed) body."""

    code: int
    headers: httputil.HTTPHeaders = field(default_factory=httputil.HTTPHeaders)
    body: bytes = b""


class _Collect(httputil.HTTPMessageDelegate):
    """Keeps what tornado's HTTP/1 client connection reads of one response."""

    def __init__(self) -> None:
        self.response = BackendResponse(code=0)
        self.chunks: list[bytes] = []
        self.complete = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.ResponseStartLine)
        self.response.code = start_line.code
        self.response.headers = headers

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        self.response.body = b"".join(self.chunks)
        self.complete = True


def backend_request_headers(
    browser_headers: Iterable[tuple[str, str]], forwarded_prefix: str
) -> dict[str, str]:
    """The headers Xpra gets: the allow-listed browser headers plus where we serve it from (pure)."""
    headers = {
        name: value
        for name, value in browser_headers
        if name.lower() in REQUEST_HEADERS and "\r" not in value and "\n" not in value
    }
    headers["X-Forwarded-Prefix"] = forwarded_prefix
    headers["X-Forwarded-Context"] = forwarded_prefix
    return headers


def passed_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Xpra's response headers that reach the browser (pure)."""
    return [(name, value) for name, value in headers if name.lower() in RESPONSE_HEADERS]


async def fetch(socket_path: str, method: str, path: str, headers: dict[str, str]) -> BackendResponse:
    """GET or HEAD `path` (no query) on the session's socket; the whole answer, errors included.

    One connection per request (ffsystemd.unix_socket.connect_unix, which waits out a full
    listen backlog), closed afterwards. Raises OSError (TimeoutError after TIMEOUT seconds)
    when Xpra does not answer, or answers something that is not a complete HTTP response of at
    most MAX_BODY_BYTES.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    sock = await connect_unix(socket_path, TIMEOUT)
    stream = IOStream(sock, max_buffer_size=MAX_BODY_BYTES + 1024 * 1024)
    try:
        connection = HTTP1Connection(
            stream,
            True,
            HTTP1ConnectionParameters(no_keep_alive=True, max_body_size=MAX_BODY_BYTES, decompress=True),
        )
        target = quote("/" + path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")
        request_headers = httputil.HTTPHeaders(headers)
        request_headers["Host"] = "localhost"
        request_headers["Connection"] = "close"
        request_headers["Accept-Encoding"] = "gzip"
        connection.write_headers(httputil.RequestStartLine(method, target, "HTTP/1.1"), request_headers)
        connection.finish()
        collected = _Collect()
        try:
            await asyncio.wait_for(connection.read_response(collected), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise TimeoutError(f"the session's Xpra did not answer within {TIMEOUT:g} s") from None
        except StreamClosedError:
            collected.complete = False
        if not collected.complete:
            raise ConnectionError("the session's Xpra closed the connection without a complete answer")
        return collected.response
    finally:
        stream.close()
