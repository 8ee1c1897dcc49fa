"""Real tier: the first keys typed right after Firefox's window appears reach the page complete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .browser import chromium, save_artifact
from .world import JupyterServer, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

TITLES = "() => window.client ? Object.values(client.id_to_window).map(w => w.title || '') : []"
TYPED = "The quick brown fox 0123456789"


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
