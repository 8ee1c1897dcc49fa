"""Plain HTTP to a session's Xpra on its unix socket, with headers filtered both ways.

Requests carry only an allow-list of the browser's headers (never cookies, Authorization,
Jupyter's XSRF token or the Referer) and no query string (the client reads its options from
its own page's location; Jupyter's `?token=` never reaches Xpra). Responses pass on only an
allow-list of Xpra's headers (no Set-Cookie, no CORS, no policy headers of its own: ours
replace them).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest file of the client we relay (Xpra's biggest script is ~1 MB)."""
TIMEOUT = 30.0

REQUEST_HEADERS = frozenset({"accept", "accept-language", "user-agent"})
"""Browser headers Xpra gets for a file (lower case); X-Forwarded-* are added by us. No
conditional requests: session responses are never cached (their URLs hold a capability)."""

RESPONSE_HEADERS = frozenset({"last-modified", "content-language"})
"""Xpra's response headers the browser gets (lower case); Content-Type and the rest are ours."""


class _SocketResolver(Resolver):
    """Resolve any host to one unix socket."""

    def initialize(self, socket_path: str) -> None:  # type: ignore[override]
        self.socket_path = socket_path

    async def resolve(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self.socket_path)]


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


async def fetch(socket_path: str, method: str, path: str, headers: dict[str, str]) -> HTTPResponse:
    """GET or HEAD `path` (no query) on the session's socket; the whole answer, errors included.

    Raises OSError (or tornado's HTTPClientError 599) when Xpra does not answer.
    """
    client = SimpleAsyncHTTPClient(
        force_instance=True, resolver=_SocketResolver(socket_path=socket_path), max_body_size=MAX_BODY_BYTES
    )
    try:
        target = quote("/" + path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")
        request = HTTPRequest(
            f"http://localhost{target}",
            method=method,
            headers=headers,
            follow_redirects=False,
            connect_timeout=TIMEOUT,
            request_timeout=TIMEOUT,
            decompress_response=True,
        )
        return await client.fetch(request, raise_error=False)
    finally:
        client.close()
