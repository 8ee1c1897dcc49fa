"""The browser path: headless Chromium shows a real session's Firefox through the Jupyter proxy."""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from .browser import RecordingPage, chromium, distinct_colours, save_artifact
from .world import JupyterServer, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

XPRA_WINDOW_TITLES = "() => window.client ? Object.values(client.id_to_window).map(w => w.title || '') : []"


def test_chromium_shows_firefox_through_the_proxy_and_firefox_loads_a_typed_url(server_factory) -> None:
    server: JupyterServer = server_factory(screen_size="1280x800")
    session = server.launch(url="about:blank")
    page_url = f"http://127.0.0.1:{server.port}{session['url']}?token={server.token}"

    with RecordingPage() as target, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        response = page.goto(page_url)
        assert response is not None and response.ok
        # The Xpra client connected through the proxy and lists Firefox's window.
        page.wait_for_function("() => window.client && window.client.connected === true", timeout=60_000)
        page.wait_for_function(f"() => ({XPRA_WINDOW_TITLES})().some(t => /Firefox/.test(t))", timeout=90_000)
        titles = page.evaluate(XPRA_WINDOW_TITLES)
        assert any("Firefox" in t for t in titles), titles
        # Firefox starts maximized, fills the page and follows its size.
        firefox_window = "() => Object.values(client.id_to_window).find(w => /Firefox/.test(w.title || ''))"
        page.wait_for_function(f"() => ({firefox_window})().maximized === true", timeout=30_000)
        page.set_viewport_size({"width": 1100, "height": 700})
        page.wait_for_function(f"() => ({firefox_window})().w === 1100", timeout=30_000)
        page.set_viewport_size({"width": 1280, "height": 800})
        page.wait_for_function(f"() => ({firefox_window})().w === 1280", timeout=30_000)
        # Pixels: the window is painted (a blank canvas has one or two colours).
        wait_until(lambda: distinct_colours(page.screenshot()) > 50, 60, "Firefox's window to be painted")
        shot = page.screenshot()
        save_artifact("firefox-through-proxy.png", shot)
        status = server.status(session["id"])
        assert status["connections"] >= 1
        assert status["last_activity"] is not None

        # Type a URL into Firefox and see Firefox (not Chromium) fetch it.
        url = f"http://127.0.0.1:{target.port}/typed-by-the-test"
        canvas = page.locator("div.window canvas").first
        deadline = time.monotonic() + 90
        while "/typed-by-the-test" not in target.paths:
            if time.monotonic() > deadline:
                save_artifact("firefox-typing-failed.png", page.screenshot())
                raise AssertionError(f"Firefox never requested the typed page; saw {target.paths}")
            canvas.click(position={"x": 400, "y": 300})
            page.keyboard.press("Control+l")
            page.keyboard.type(url, delay=20)
            page.keyboard.press("Enter")
            attempt_ends = time.monotonic() + 10
            while "/typed-by-the-test" not in target.paths and time.monotonic() < attempt_ends:
                page.wait_for_timeout(100)  # poll the recording server, bounded by the attempt
        page.wait_for_function(
            f"() => ({XPRA_WINDOW_TITLES})().some(t => t.includes('ffsystemd test page'))", timeout=30_000
        )
        save_artifact("firefox-loaded-typed-url.png", page.screenshot())
    server.cleanup(id=session["id"])


def test_without_the_token_neither_page_nor_websocket_is_served(server: JupyterServer) -> None:
    session = server.launch()
    page_url = f"http://127.0.0.1:{server.port}{session['url']}"
    with chromium() as browser:
        page = browser.new_page()
        response = page.goto(page_url)
        assert response is not None
        # Redirected to Jupyter's login page, never the Xpra client.
        assert "/login" in page.url, page.url
        assert "xpra" not in page.content().lower()

    async def open_ws() -> int:
        request = HTTPRequest(f"ws://127.0.0.1:{server.port}{session['url']}")
        try:
            ws = await websocket_connect(request, subprotocols=["binary"])
        except HTTPClientError as exc:
            return exc.code
        ws.close()
        return 101

    assert asyncio.run(open_ws()) == 403
    assert server.status(session["id"])["connections"] == 0
    server.cleanup(id=session["id"])
