#!/usr/bin/env python3
"""A fake Xpra with websockets, for the proxy tests and benchmarks (tornado).

Accepts the command line ffsystemd builds (`ws_xpra.py start --bind=PATH ...`; unknown options
are ignored) and serves on the unix socket given by --bind:

  GET/HEAD / and /index.html   200 text/html mentioning xpra, with one inline script (PAGE)
  GET /echo-headers, /js/echo-headers.js
                               200 JSON: {"method", "path", "query", "headers": [[name, value], ...]}
  GET /big, /js/big.js         200 application/octet-stream, BIG_SIZE bytes of big_body()
  GET /connect.html            200 text/html (a page of Xpra's the proxy must not serve)
  GET /ws-count                200 JSON: {"open": websockets open now, "opened": ever opened}
  GET /requests                200 JSON: [[method, path], ...] of every request received so far
                               (websocket upgrades as "WEBSOCKET"; /requests itself not recorded)
  any other GET/HEAD           404
  every HTTP answer also carries BACKEND_HEADERS (cookies, CORS, a loose policy: the proxy
  must not pass them on) and Content-Language: en
  any other method             405 (and recorded, so a test can see it reached the fake)
  a websocket at any path      echoes every message back with the same type (binary stays
                               binary); selects the subprotocol "binary" when offered; a text
                               message "close-me" makes it close the connection from its side

FAKE_XPRA_BACKLOG=N (environment): listen with a backlog of N (Xpra's own is 5) instead of 128.
FAKE_XPRA_BUSY_MS=N (environment): block for N ms before each answer (a busy server that
accepts no connection meanwhile, as Xpra under load).
FAKE_XPRA_START_MS=N (environment): wait N ms before listening (an Xpra slow to start).

SIGTERM or SIGINT: close the listener, remove the socket, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

from tornado import httpserver, netutil, web, websocket

BIG_SIZE = 5 * 1024 * 1024
INLINE_SCRIPT = b"\n\t\t\tvar fake_client = 'ws fake xpra';\n\t\t"
PAGE = (
    b"<!DOCTYPE html><html><head><title>xpra html5 client</title>"
    b'<script src="js/Client.js"></script></head>'
    b"<body>ws fake xpra<script>" + INLINE_SCRIPT + b"</script></body></html>\n"
)
BACKEND_HEADERS = [
    ("Set-Cookie", "xpra-session=from-the-backend; Path=/"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Credentials", "true"),
    ("Content-Security-Policy", "default-src *"),
    ("X-Frame-Options", "ALLOWALL"),
    ("Refresh", "0; url=http://evil.example/"),
]
MAX_MESSAGE = 64 * 1024 * 1024


def big_body() -> bytes:
    """The /big body: a pattern in which a dropped, repeated or shifted chunk shows."""
    block = bytes(range(256)) + b"xpra"
    count = BIG_SIZE // len(block) + 1
    return (block * count)[:BIG_SIZE]


def log(message: str) -> None:
    sys.stderr.write(f"ws fake xpra: {message}\n")
    sys.stderr.flush()


class State:
    open_ws = 0
    opened_ws = 0
    requests: list[tuple[str, str]] = []


class FakeXpraHandler(websocket.WebSocketHandler):
    """Plain HTTP and websocket on every path, like Xpra's own server."""

    def prepare(self) -> None:
        is_ws = self.request.headers.get("Upgrade", "").lower() == "websocket"
        if self.request.path != "/requests":
            State.requests.append(("WEBSOCKET" if is_ws else self.request.method or "", self.request.path))
        busy_ms = int(os.environ.get("FAKE_XPRA_BUSY_MS", "0"))
        if busy_ms:
            time.sleep(busy_ms / 1000)  # on purpose: nothing is accepted meanwhile

    def check_xsrf_cookie(self) -> None:
        """No XSRF for a fake backend."""

    def check_origin(self, origin: str) -> bool:
        return True

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await super().get(*args, **kwargs)
            return
        self._http(with_body=True)

    def head(self, *args: Any, **kwargs: Any) -> None:
        self._http(with_body=False)

    def _reply(self, content_type: str, body: bytes, with_body: bool) -> None:
        for name, value in BACKEND_HEADERS:
            self.add_header(name, value)
        self.set_header("Content-Language", "en")
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Length", str(len(body)))
        if with_body:
            self.write(body)
        self.finish()

    def _http(self, with_body: bool) -> None:
        path = self.request.path
        if path in ("/", "/index.html"):
            self._reply("text/html; charset=utf-8", PAGE, with_body)
        elif path == "/connect.html":
            self._reply("text/html", b"<html><body>connect to any server</body></html>", with_body)
        elif path in ("/echo-headers", "/js/echo-headers.js"):
            info = {
                "method": self.request.method,
                "path": path,
                "query": self.request.query,
                "headers": [[k, v] for k, v in self.request.headers.get_all()],
            }
            self._reply("application/json", json.dumps(info).encode(), with_body)
        elif path in ("/big", "/js/big.js"):
            self._reply("application/octet-stream", BIG, with_body)
        elif path == "/ws-count":
            body = json.dumps({"open": State.open_ws, "opened": State.opened_ws}).encode()
            self._reply("application/json", body, with_body)
        elif path == "/requests":
            self._reply("application/json", json.dumps(State.requests).encode(), with_body)
        else:
            self.set_status(404)
            self._reply("text/plain", b"not found\n", with_body)

    def _not_allowed(self, *args: Any, **kwargs: Any) -> None:
        self.set_status(405)
        self.finish("method not allowed by the fake\n")

    post = put = delete = patch = options = _not_allowed

    # --- websocket --------------------------------------------------------------
    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "binary" if "binary" in subprotocols else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def open(self, *args: Any, **kwargs: Any) -> None:
        State.open_ws += 1
        State.opened_ws += 1
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        if message == "close-me":
            self.close(1000, "closing as asked")
            return
        self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        State.open_ws -= 1


BIG = big_body()


def parse_options(argv: list[str]) -> tuple[str | None, dict[str, str]]:
    command = None
    options: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            options[name] = value
        elif command is None:
            command = arg
    return command, options


async def serve(bind: str) -> None:
    await asyncio.sleep(int(os.environ.get("FAKE_XPRA_START_MS", "0")) / 1000)
    app = web.Application(
        [(r"/.*", FakeXpraHandler)],
        websocket_max_message_size=MAX_MESSAGE,
        log_function=lambda handler: None,
    )
    server = httpserver.HTTPServer(app, max_body_size=MAX_MESSAGE)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(bind)
    backlog = int(os.environ.get("FAKE_XPRA_BACKLOG", "128"))
    server.add_socket(netutil.bind_unix_socket(bind, mode=0o600, backlog=backlog))
    log(f"serving on {bind} (pid {os.getpid()})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("got a stop signal, exiting")
    server.stop()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(bind)


def main(argv: list[str]) -> int:
    _command, options = parse_options(argv)
    bind = options.get("bind", "")
    if not bind:
        log("no --bind given")
        return 2
    asyncio.run(serve(bind))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
