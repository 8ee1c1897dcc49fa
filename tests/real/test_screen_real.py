"""Real tier: a launch that says the tab's size gets an X screen of that size before its client
connects, so Xpra answers the client's hello without resizing (and without its 0.5 s sleep).

Evidence that no resize ran is Xpra's own log: its screen resize logs "server virtual display now
set to WxH"; the control launch (no size given) shows that line, so the check can fail.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .browser import RecordingPage, chromium
from .test_lab_real import XPRA_TITLES, session_frame, sessions
from .test_pool_real import ready_pooled
from .world import JupyterServer, wait_until

pytestmark = pytest.mark.real

RESIZED = "server virtual display now set to"
DESKTOP = "() => [client.desktop_width, client.desktop_height]"
FIREFOX_SIZE = (
    "() => { const w = Object.values(client.id_to_window).find(w => /Firefox/.test(w.title || ''));"
    " return w ? [w.w, w.h] : null; }"
)


def root_size(socket: Path) -> tuple[int, int] | None:
    """The X screen's size as the session's Xpra reports it (`xpra info`)."""
    proc = subprocess.run(["xpra", "info", f"socket://{socket}"], capture_output=True, text=True, timeout=60)
    match = re.search(r"^server\.root_window_size=\((\d+), (\d+)\)$", proc.stdout, re.MULTILINE)
    return (int(match.group(1)), int(match.group(2))) if match else None


def session_dir(server: JupyterServer, session_id: str) -> Path:
    return server.session_root / f"session-{session_id}"


def xpra_log(server: JupyterServer, session_id: str) -> str:
    logs = sorted((session_dir(server, session_id) / "runtime").glob("*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


def connect(server: JupyterServer, session: dict, size: tuple[int, int]) -> tuple[list[int], list[int]]:
    """Open the session's page in Chromium at `size`: (the client's desktop, Firefox's window size)."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        page.goto(f"http://127.0.0.1:{server.port}{session['url']}?token={server.token}")
        page.wait_for_function("() => window.client && window.client.connected === true", timeout=90_000)
        page.wait_for_function(f"() => ({XPRA_TITLES})().some(t => /Firefox/.test(t))", timeout=90_000)
        desktop = page.evaluate(DESKTOP)
        fills = f"() => {{ const s = ({FIREFOX_SIZE})(); return s && s[0] === {desktop[0]} && s; }}"
        window = page.wait_for_function(fills, timeout=30_000).json_value()
        return desktop, window


@pytest.mark.parametrize("pool_size", [0, 1], ids=["cold", "warm"])
def test_the_screen_has_the_tabs_size_before_the_client_connects(server_factory, pool_size: int) -> None:
    with RecordingPage() as site:
        server: JupyterServer = server_factory(screen_size="1280x800", pool_size=pool_size)
        if pool_size:
            wait_until(lambda: ready_pooled(server), 120, "a ready pooled session")
        url = f"http://127.0.0.1:{site.port}/start"
        session = server.launch(url=url, screen=[1000, 700])
        marker = session_dir(server, session["id"]) / "runtime" / "screen-set"
        wait_until(lambda: marker.exists() and marker.read_text(), 30, "the session to set its screen")
        assert marker.read_text() == "set\n"
        socket = session_dir(server, session["id"]) / "sockets" / "xpra.sock"
        assert root_size(socket) == (1000, 700)  # before any client connected
        desktop, window = connect(server, session, (1000, 700))
        assert desktop == [1000, 700] and window == [1000, 700]
        assert RESIZED not in xpra_log(server, session["id"])  # the hello needed no resize
        server.cleanup(id=session["id"])

        control = server.launch(url=url)  # no size given: Xpra resizes at the hello, as before
        desktop, _window = connect(server, control, (1000, 700))
        assert desktop == [1000, 700]
        wait_until(lambda: RESIZED in xpra_log(server, control["id"]), 30, "Xpra to resize its screen")
        server.cleanup(id=control["id"])


@pytest.mark.parametrize("scale", [1, 2], ids=["1x", "2x"])
def test_the_tab_sends_the_size_its_client_asks_for(server_factory, scale: int) -> None:
    """At a device pixel ratio of 2 the client asks for twice its CSS size (client_scale.js)."""
    server: JupyterServer = server_factory()
    # The flag gives the client's frame the ratio too (Playwright's emulation reaches only the
    # page); the context's factor keeps Playwright's page at the same ratio.
    with chromium([f"--force-device-scale-factor={scale}"]) as browser:
        context = browser.new_context(viewport={"width": 1300, "height": 850}, device_scale_factor=scale)
        page = context.new_page()
        page.goto(f"{server.url}lab?token={server.token}")
        tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
        tile.first.wait_for(timeout=60_000)
        is_launch = lambda r: r.method == "POST" and r.url.split("?")[0].endswith("api/firefox")  # noqa: E731
        with page.expect_request(is_launch, timeout=60_000) as posted:
            tile.first.click()
        body = json.loads(posted.value.post_data or "{}")
        frame = session_frame(page)
        frame.wait_for_function("() => window.client && window.client.connected === true", timeout=90_000)
        desktop = frame.evaluate(DESKTOP)
        assert body.get("screen") == desktop, (body, desktop)
        css = frame.evaluate("() => [window.innerWidth, window.innerHeight]")
        assert desktop == [css[0] * scale, css[1] * scale]
        (session,) = sessions(server)
        assert RESIZED not in xpra_log(server, session["id"])
        page.set_viewport_size({"width": 1100, "height": 800})  # and later sizes still follow
        smaller = f"s[0] < {desktop[0]} && s[0] === client.desktop_width"
        follows = f"() => {{ const s = ({FIREFOX_SIZE})(); return s && {smaller}; }}"
        frame.wait_for_function(follows, timeout=30_000)
        server.cleanup(id=session["id"])
