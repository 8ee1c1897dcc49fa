"""Real tier: the first keys typed right after Firefox's window appears reach the page complete."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator

import pytest

from .browser import chromium, save_artifact
from .world import JupyterServer, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

# A page that is one focused text area and reports its value after every input.
KEYS_PAGE = (
    b"<!doctype html><title>keys page</title>"
    b'<textarea id=t autofocus style="position:fixed;left:0;top:0;width:100vw;height:100vh"></textarea>'
    b"<script>const t = document.getElementById('t');"
    b"t.addEventListener('input', () => fetch('/value', {method: 'POST', body: JSON.stringify(t.value)}));"
    b"</script>"
)
TITLES = "() => window.client ? Object.values(client.id_to_window).map(w => w.title || '') : []"
TYPED = "The quick brown fox 0123456789"


@pytest.fixture
def keys_site() -> Iterator[tuple[str, list[str]]]:
    """The page on 127.0.0.1: (URL, every value the text area reported)."""
    values: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(KEYS_PAGE)))
            self.end_headers()
            self.wfile.write(KEYS_PAGE)

        def do_POST(self) -> None:
            values.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/", values
    httpd.shutdown()
    httpd.server_close()


def test_text_typed_right_after_the_window_appears_arrives_complete(
    server_factory: Callable[..., JupyterServer], keys_site: tuple[str, list[str]]
) -> None:
    url, values = keys_site
    server = server_factory(screen_size="1280x800")
    session = server.launch(url=url)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{server.port}{session['url']}?token={server.token}")
        page.wait_for_function(f"() => ({TITLES})().some(t => t.includes('keys page'))", timeout=90_000)
        # No click, no wait: the first keys go out as soon as the page's window is listed.
        page.keyboard.type(TYPED, delay=30)
        wait_until(lambda: values and values[-1] == TYPED, 30, f"the page to hold {TYPED!r}")
        save_artifact("keys-typed-at-once.png", page.screenshot())
    assert values[0] == TYPED[0]  # the very first key was not lost
    server.cleanup(id=session["id"])
