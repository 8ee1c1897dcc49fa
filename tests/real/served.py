"""A tiny local web server of one page that records visits and what the page POSTs back.

Standard library only: tests/real/conftest.py imports it, and the VM guest runs those tests
without the browser tier's packages (PIL, Playwright)."""

from __future__ import annotations

import http.server
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, overload

TEST_PAGE = b"<html><head><title>ffsystemd test page</title></head><body>hello</body></html>"


class ServedPage:
    """An HTTP server on 127.0.0.1 (a free port) that answers every GET with `page` and records its
    path in `paths`, and every POST with 204, keeping `on_post(body)` in `posts` (default: the raw
    bytes; e.g. `json.loads` for pages that report JSON) and in `posts_to[path]`. As a context
    manager it serves from entry and is shut down and closed on exit."""

    def __init__(self, page: bytes = TEST_PAGE, on_post: Callable[[bytes], Any] = bytes) -> None:
        self.paths: list[str] = []
        self.posts: list[Any] = []
        self.posts_to: defaultdict[str, list[Any]] = defaultdict(list)
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posted = on_post(body)
                served.posts.append(posted)
                served.posts_to[self.path].append(posted)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ServedPage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class RecordingPage(ServedPage):
    """A ServedPage of a small titled test page: what matters is which paths were requested."""

    def __init__(self) -> None:
        super().__init__(TEST_PAGE)


class InPageOrder(Sequence[str]):
    """Values a page reported as `[n, value]` (n counting up in the page), in the page's order.

    Each report is a request of its own, on a thread of its own: two sent 30 ms apart can be
    recorded the other way round, so the last one recorded is not always the page's last."""

    def __init__(self, posts: list[Any]) -> None:
        self.posts = posts

    def _values(self) -> list[str]:
        return [value for _, value in sorted(list(self.posts), key=lambda post: post[0])]

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._values()[index]

    def __len__(self) -> int:
        return len(self.posts)

    def clear(self) -> None:
        """Forget every report so far."""
        self.posts.clear()
