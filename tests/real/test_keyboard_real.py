"""Real tier, in real JupyterLab: text typed the moment Firefox's window shows its page arrives complete.

Several launches through the launcher tile in one test, cold (Firefox started for the launch) and
warm (a pooled session claimed): each types at once (no click, no pause, no waiting for Firefox
to take a key) when the tab's client lists the page's window, and every character must reach
the page (its document; a key lost to Firefox's address bar or on the way never does). On
failure the message says where the keys went: which keys JupyterLab's page, the client's frame
and the page's document each saw, how many the client sent, and their focus.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Frame, Page

from .browser import RecordingPage, chromium, save_artifact
from .served import InPageOrder, ServedPage
from .test_lab_real import PANEL, session_frame
from .test_pool_real import ready_pooled
from .world import JupyterServer, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

TYPED = "The quick brown fox 0123456789"
LAUNCHES = 3
PAGE_LISTED = (
    "() => window.client && Object.values(client.id_to_window).some(w => /keys page/.test(w.title || ''))"
)
# Before any page script, in JupyterLab's page and in the client's frame: the keys each document
# saw (with where its focus was), and in the frame the key packets the client sent.
COUNT_KEYS = """
window.__keys = {seen: [], sent: 0, focus: []};
const stamp = () => Math.round(performance.timeOrigin + performance.now());
const where = () => document.activeElement ? (document.activeElement.id || document.activeElement.className
  || document.activeElement.tagName) : null;
document.addEventListener('keydown', e => window.__keys.seen.push([stamp(), e.key, where()]), true);
window.addEventListener('focus', () => window.__keys.focus.push([stamp(), 'focus', where()]));
window.addEventListener('blur', () => window.__keys.focus.push([stamp(), 'blur', where()]));
if (/firefox-launcher\\/session\\//.test(location.pathname)) {
  document.addEventListener('DOMContentLoaded', () => {
    const proto = window.XpraClient && XpraClient.prototype;
    if (!proto) return;
    const send = proto.send;
    proto.send = function (packet) {
      if (packet && packet[0] === 'key-action' && packet[3]) window.__keys.sent++;
      return send.apply(this, arguments);
    };
  });
}
"""


SUMMARY = """() => {
  const k = window.__keys || {seen: [], focus: []};
  return {keys: k.seen.length, first: k.seen.slice(0, 3), sent: k.sent, focus: k.focus.slice(-6),
    active: document.activeElement?.id || document.activeElement?.className, has_focus: document.hasFocus()};
}"""


def where_keys_went(page: Page, frame: Frame) -> str:
    """What JupyterLab's page and the client's frame saw of the keys, and where their focus was."""
    return f"JupyterLab's page {page.evaluate(SUMMARY)}; the client's frame {frame.evaluate(SUMMARY)}"


def type_at_once_in_a_new_tab(
    browser: Browser, server: JupyterServer, served: ServedPage, name: str
) -> tuple[str, str | None]:
    """Open JupyterLab (a fresh workspace), click the Firefox tile and type the moment the tab's
    client lists the page's window; (session id, None if every character arrived, else what
    the page holds and where the keys went)."""
    values, seen = InPageOrder(served.posts_to["/value"]), served.posts_to["/seen"]
    values.clear()
    seen.clear()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(COUNT_KEYS)
    page = context.new_page()
    try:
        page.goto(f"{server.url}lab/workspaces/{name}?token={server.token}")
        tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
        tile.first.click(timeout=60_000)
        page.locator(f"{PANEL}[data-state='running']").wait_for(timeout=90_000)
        frame = session_frame(page)
        frame.wait_for_function(PAGE_LISTED, timeout=90_000, polling=20)
        page.keyboard.type(TYPED, delay=30)  # no click, no pause
        session_id = page.locator(PANEL).get_attribute("data-session-id") or ""
        try:
            # The page reports the keys its document saw at every key, each in its own request:
            # they may arrive out of order, so the complete text showing at all is what counts.
            # Its document, not its text area: the keys' way ends where Firefox hands them to the
            # page, and where the page puts its focus (autofocus, applied at a later rendering
            # step than the title, so up to a frame later on a loaded machine) is the page's.
            wait_until(lambda: TYPED in seen, 30, f"the page's document to see {TYPED!r}")
        except AssertionError:
            save_artifact(f"keys-{name}.png", page.screenshot())
            document = max(seen, key=len, default=None)
            longest = max(values, key=len, default=None)
            return session_id, (
                f"{name}: the page's document saw at most {document!r} (its text area held {longest!r}); "
                f"{where_keys_went(page, frame)}"
            )
        return session_id, None
    finally:
        context.close()


def test_text_typed_right_after_a_cold_launch_arrives_complete(
    server_factory: Callable[..., JupyterServer], keys_served: ServedPage
) -> None:
    server = server_factory(screen_size="1280x800", start_url=keys_served.url)
    lost = []
    with chromium() as browser:
        for n in range(LAUNCHES):
            session_id, failure = type_at_once_in_a_new_tab(browser, server, keys_served, f"cold{n}")
            lost += [failure] if failure else []
            server.cleanup(id=session_id)
    assert not lost, f"{len(lost)} of {LAUNCHES} launches lost keys: {lost}"


def test_text_typed_right_after_a_warm_launch_arrives_complete(
    server_factory: Callable[..., JupyterServer], keys_served: ServedPage
) -> None:
    server = server_factory(screen_size="1280x800", start_url=keys_served.url, pool_size=1)
    lost = []
    with chromium() as browser:
        for n in range(LAUNCHES):
            [pooled] = wait_until(lambda: ready_pooled(server), 180, "a ready pooled session")
            session_id, failure = type_at_once_in_a_new_tab(browser, server, keys_served, f"warm{n}")
            assert session_id == pooled  # the launch claimed the pooled session
            lost += [failure] if failure else []
            server.cleanup(id=session_id)
    assert not lost, f"{len(lost)} of {LAUNCHES} launches lost keys: {lost}"


FIREFOX_LISTED = (
    "() => window.client && Object.values(client.id_to_window).some(w => /Firefox/.test(w.title || ''))"
)


def test_a_warm_launch_on_a_blank_start_page_types_into_the_address_bar(server_factory) -> None:
    """With the default start page (about:blank) the keyboard is in Firefox's address bar after a
    claim, as in a cold session on about:blank: a URL typed at once, then Enter, is opened."""
    with RecordingPage() as site:
        server: JupyterServer = server_factory(screen_size="1280x800", pool_size=1)
        [pooled] = wait_until(lambda: ready_pooled(server), 180, "a ready pooled session")
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(COUNT_KEYS)
            page = context.new_page()
            page.goto(f"{server.url}lab/workspaces/blank?token={server.token}")
            tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
            tile.first.click(timeout=60_000)
            page.locator(f"{PANEL}[data-state='running']").wait_for(timeout=90_000)
            assert page.locator(PANEL).get_attribute("data-session-id") == pooled
            frame = session_frame(page)
            frame.wait_for_function(FIREFOX_LISTED, timeout=90_000, polling=20)
            page.keyboard.type(f"127.0.0.1:{site.port}/typed", delay=30)  # no click, no pause
            page.keyboard.press("Enter")
            try:
                wait_until(lambda: "/typed" in site.paths, 30, "Firefox to open the typed URL")
            except AssertionError:
                save_artifact("keys-blank-warm.png", page.screenshot())
                went = where_keys_went(page, frame)
                raise AssertionError(f"the typed URL was not opened; {went}") from None
        server.cleanup(id=pooled)
