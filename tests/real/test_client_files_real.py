"""The client's page and files in real JupyterLab in Chromium: one document, the rest static.

Two launches from one JupyterLab page: each tab's client (in its opaque origin) runs the
scripts it needs inline in its one page (built once at start-up, each allowed by its CSP hash),
loads what its page still names (styles, fonts, one script that cannot be inline) from
`.../firefox-launcher/client/<version>/` — never next to its page, never from the session's
Xpra — and connects. It holds none of the scripts it does not need and advertises only the
encodings it can decode. What the browser caches is measured and stated, not assumed:
Chromium caches no subresource of an opaque-origin document (README, Threat model), so the
second launch asks the server for those files again (from its memory, while the session starts).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Frame, Page

from .browser import chromium
from .test_lab_real import PANEL, wait_for_firefox
from .world import JupyterServer

pytestmark = [pytest.mark.real, pytest.mark.browser]

SCRIPTS = (
    "() => performance.getEntriesByType('resource')"
    ".filter(e => e.initiatorType === 'script').map(e => e.name)"
)
STATIC = re.compile(r"/firefox-launcher/client/[0-9a-f]{20}/")


def served(server: JupyterServer, answer: str = "200") -> float:
    """ffsystemd_client_files_total{answer} as the server's /metrics reports it."""
    text = server.get("metrics").text
    match = re.search(rf'^ffsystemd_client_files_total\{{answer="{answer}"\}} (\S+)$', text, re.M)
    assert match, "no ffsystemd_client_files_total in /metrics"
    return float(match.group(1))


PAGE_SCRIPTS = "() => Array.from(document.scripts).map(s => s.src)"
LIBRARIES = """() => ({
  forge: typeof forge, aurora: typeof AV, jszip: typeof JSZip, saveAs: typeof saveAs,
  brotli: typeof BrotliDecode, h264: typeof Decoder, mpeg1: typeof JSMpeg,
  encodings: window.client.supported_encodings,
})"""
UNUSED = {"forge": "undefined", "aurora": "undefined", "jszip": "undefined", "saveAs": "undefined"}


RESOURCES = "() => performance.getEntriesByType('resource').map(e => e.name)"


def check_client(frame: Frame) -> list[str]:
    """The opaque-origin client, its small scripts and styles in its page, the rest static."""
    assert frame.evaluate("() => String(self.origin)") == "null"
    sources = frame.evaluate(PAGE_SCRIPTS)
    named = [url for url in sources if url]
    assert len(sources) > 20 and sources.count("") > len(named), sources  # most inline
    assert all(STATIC.search(url) for url in named), named  # the big ones (streamed off-thread)
    assert sorted(frame.evaluate(SCRIPTS)) == sorted(named)
    loaded = [url for url in frame.evaluate(RESOURCES) if STATIC.search(url)]
    styles = "() => Array.from(document.querySelectorAll('style')).map(s => s.sheet !== null)"
    assert frame.evaluate(styles) == [True] * 5  # inline, each allowed by its hash
    assert frame.evaluate("() => document.querySelectorAll('link[rel=stylesheet]').length") == 0
    libraries = frame.evaluate(LIBRARIES)
    encodings = libraries.pop("encodings")
    # Not loaded: nothing under our pinned options uses them (ffsystemd.session_page.UNUSED_SCRIPTS).
    # `video` is on by default: both decoders, both encodings.
    assert libraries == {**UNUSED, "brotli": "undefined", "h264": "function", "mpeg1": "object"}
    assert {"h264", "mpeg1", "jpeg", "png", "rgb"} <= set(encodings), encodings
    return loaded


def check_without_video(browser: Any, frame: Frame) -> None:
    """The same client opened with `video=false`: no video decoder, and no video encoding offered."""
    page = browser.new_page()
    try:
        page.goto(re.sub(r"([?&])video=[^&]*&?", r"\1", frame.url) + "&video=false")
        assert "video=false" in page.url
        page.wait_for_function("() => window.client && window.client.connected === true", timeout=60_000)
        libraries = page.evaluate(LIBRARIES)
        encodings = libraries.pop("encodings")
        assert libraries == {**UNUSED, "brotli": "undefined", "h264": "undefined", "mpeg1": "undefined"}
        assert not {"h264", "mpeg1"} & set(encodings) and {"jpeg", "png"} <= set(encodings), encodings
    finally:
        page.close()


def test_each_launch_loads_the_client_from_the_static_route(server_factory) -> None:
    server: JupyterServer = server_factory()
    with chromium() as browser:
        page: Page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}lab?token={server.token}")
        tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
        before = served(server) + served(server, "404")
        tile.first.click(timeout=60_000)
        frame = wait_for_firefox(page)
        first_files = check_client(frame)
        first = served(server) + served(server, "404") - before
        assert first >= len(first_files)
        check_without_video(browser, frame)

        # The session ends (stopped from elsewhere); the tab offers a new Firefox: same page,
        # same browser cache, a second launch.
        first_id = page.locator(PANEL).get_attribute("data-session-id")
        server.cleanup(id=first_id)
        restart = page.locator(".jp-FFSystemd-restart")
        restart.wait_for(timeout=60_000)
        before = served(server) + served(server, "404")
        restart.click()
        page.locator(f"{PANEL}[data-state='running']:not([data-session-id='{first_id}'])").wait_for(
            timeout=90_000
        )
        second_files = check_client(wait_for_firefox(page))
        second = served(server) + served(server, "404") - before
        # The same version; the page's CSS names them (its icon font only once its icons show).
        versions = {STATIC.search(url).group(0) for url in first_files + second_files}  # type: ignore[union-attr]
        assert len(versions) == 1, versions
        for files in (first_files, second_files):
            assert any(url.endswith("/background.png") for url in files), files
        # Measured: Chromium fetched them again (an opaque origin's subresources are not cached).
        assert second >= len(second_files) >= 1, (first, second)
        # (the client's CSS names a background.png Xpra does not ship: a 404, fetched each time)
        server.cleanup(all=True)
