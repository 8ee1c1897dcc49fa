"""Real tier, in real JupyterLab: Firefox is the whole tab (no Xpra title bar, it fills the iframe
and follows its size), and the clipboard works both ways."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable

import pytest
from PIL import Image
from playwright.sync_api import Frame, Page

from .browser import chromium, save_artifact
from .served import InPageOrder
from .test_lab_real import PANEL, wait_for_firefox
from .world import JupyterServer, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

FIREFOX = "Object.values(client.id_to_window).find(w => /Firefox|keys page/.test(w.title || ''))"
# Where Firefox's window is in the frame, what the server was told, and what of Xpra's chrome shows.
GEOMETRY = f"""() => {{
  const w = {FIREFOX};
  if (!w) return null;
  const box = w.div[0].getBoundingClientRect();
  const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  return {{
    left: box.left, top: box.top, width: box.width, height: box.height,
    inner: [window.innerWidth, window.innerHeight], xpra: [w.x, w.y, w.w, w.h],
    canvas: [w.canvas.width, w.canvas.height],
    heads: [...document.querySelectorAll('.windowhead')].filter(shown).length,
    menu: [...document.querySelectorAll('#float_menu')].filter(shown).length,
    maximized: w.maximized,
  }};
}}"""


def open_firefox_tab(page: Page, server: JupyterServer, start_url: str | None = None) -> Frame:
    """JupyterLab in `page`, the Firefox launcher tile clicked: the running tab's client frame."""
    page.goto(f"{server.url}lab?token={server.token}")
    tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
    tile.first.click(timeout=60_000)
    page.locator(f"{PANEL}[data-state='running']").wait_for(timeout=90_000)
    return wait_for_firefox(page)


def focus_state(page: Page, frame: Frame) -> str:
    """Where the keyboard is, in JupyterLab's page and in the client's frame (for failure messages)."""
    outer = page.evaluate("() => [document.activeElement?.className, document.hasFocus()]")
    inner = frame.evaluate("() => [document.activeElement?.id, document.hasFocus(), client.topwindow]")
    return f"page {outer}, frame {inner}"


def firefox_takes_keys(page: Page, frame: Frame, values: InPageOrder) -> None:
    """Wait until the just-started Firefox's keys page takes keys at all, then empty it.

    These tests are about the tab, the clipboard and tab switches, not the first keys of a fresh
    Firefox (test_keyboard_real): in the lab a key typed while the keyboard is back in
    JupyterLab's page (the client's page replaced the frame's first document) is lost (README,
    Keyboard).
    """
    deadline = time.monotonic() + 60
    while not values:
        assert time.monotonic() < deadline, f"Firefox never took a key ({focus_state(page, frame)})"
        page.keyboard.press("x")
        page.wait_for_timeout(1000)
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    wait_until(lambda: values[-1] == "", 30, "the page's text area to be empty again")


def window_covers_frame(g: dict, slack: int) -> bool:
    """Whether, in a GEOMETRY result, Firefox's window sits at the frame's top left corner and is
    the frame's inner size, within `slack` px each, with no Xpra window header showing."""
    width, height = g["inner"]
    return (
        abs(g["left"]) <= slack
        and abs(g["top"]) <= slack
        and abs(g["width"] - width) <= slack
        and abs(g["height"] - height) <= slack
        and g["heads"] == 0
    )


def fills(frame: Frame, slack: int = 2) -> dict | None:
    """The geometry if Firefox's window covers the frame within `slack` px and nothing of Xpra's shows."""
    g = frame.evaluate(GEOMETRY)
    if not g or not window_covers_frame(g, slack):
        return None
    width, height = g["inner"]
    ok = abs(g["xpra"][2] - width) <= slack and abs(g["xpra"][3] - height) <= slack and g["menu"] == 0
    return g if ok else None


UNPAINTED = {(0, 0, 0), (2, 29, 58)}  # a cleared canvas, and the client's page behind it


def painted_to_the_edges(page: Page) -> bool:
    """The frame's last rows and columns show Firefox, not a cleared canvas or Xpra's page."""
    image = Image.open(io.BytesIO(page.locator(".jp-FFSystemd-frame").screenshot())).convert("RGB")
    width, height = image.size
    edge = [image.getpixel((x, height - 3)) for x in range(0, width, 4)]
    edge += [image.getpixel((width - 3, y)) for y in range(0, height, 4)]
    return sum(pixel in UNPAINTED for pixel in edge) < len(edge) // 20


def test_firefox_is_the_whole_tab_and_follows_resizes_and_the_sidebar(
    server_factory: Callable[..., JupyterServer],
) -> None:
    server = server_factory(screen_size="1920x1080")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        frame = open_firefox_tab(page, server)
        wait_until(lambda: fills(frame), 60, f"Firefox to fill the tab, saw {frame.evaluate(GEOMETRY)}")
        wait_until(lambda: painted_to_the_edges(page), 60, "Firefox to paint the whole tab")
        iframe = page.locator(".jp-FFSystemd-frame").bounding_box()
        panel = page.locator(PANEL).bounding_box()
        assert iframe and panel
        assert abs(iframe["width"] - panel["width"]) <= 2 and abs(iframe["height"] - panel["height"]) <= 2
        save_artifact("view-whole-tab.png", page.screenshot())

        widths = [frame.evaluate("() => window.innerWidth")]
        page.set_viewport_size({"width": 1100, "height": 760})
        wait_until(lambda: frame.evaluate("() => window.innerWidth") < widths[0], 30, "the tab to shrink")
        wait_until(lambda: fills(frame), 30, f"Firefox to follow the smaller tab: {frame.evaluate(GEOMETRY)}")
        wait_until(lambda: painted_to_the_edges(page), 60, "Firefox to paint the smaller tab")

        # A sidebar opening or closing changes the tab's width: Firefox follows both ways.
        sidebar_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='filebrowser']")
        for _ in range(2):
            before = frame.evaluate("() => window.innerWidth")
            sidebar_tab.click()
            wait_until(
                lambda before=before: frame.evaluate("() => window.innerWidth") != before,
                30,
                "the sidebar to change the tab's width",
            )
            wait_until(lambda: fills(frame), 30, f"Firefox to follow the sidebar: {frame.evaluate(GEOMETRY)}")
            wait_until(lambda: painted_to_the_edges(page), 60, "Firefox to paint the resized tab")
            widths.append(frame.evaluate("() => window.innerWidth"))
        assert len(set(widths)) >= 2, widths
        save_artifact("view-after-sidebar.png", page.screenshot())
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)


READ_CLIPBOARD = "() => navigator.clipboard.readText()"


def test_the_clipboard_works_both_ways(
    server_factory: Callable[..., JupyterServer], keys_site: tuple[str, InPageOrder]
) -> None:
    """Firefox's copy reaches the user's clipboard, and the user's clipboard pastes into Firefox."""
    url, values = keys_site
    server = server_factory(screen_size="1280x800", start_url=url)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        frame = open_firefox_tab(page, server)
        frame.wait_for_function(f"() => {{ const w = {FIREFOX}; return w && /keys page/.test(w.title); }}")
        firefox_takes_keys(page, frame, values)
        copied = "copied in Firefox 42"
        page.keyboard.type(copied, delay=30)
        wait_until(lambda: values and values[-1] == copied, 30, f"the page to hold {copied!r}")

        # Firefox -> the user's clipboard: select all, copy (Xpra's server sends it, the client writes it).
        page.evaluate("() => navigator.clipboard.writeText('before the copy')")
        page.keyboard.press("Control+a")
        page.keyboard.press("Control+c")
        wait_until(lambda: page.evaluate(READ_CLIPBOARD) == copied, 30, "Firefox's copy in the clipboard")

        # The user's clipboard -> Firefox: Ctrl+V in the tab pastes what the user copied elsewhere.
        pasted = "pasted from the browser: ünïcode €"
        page.evaluate("text => navigator.clipboard.writeText(text)", pasted)
        page.keyboard.press("Control+a")
        page.keyboard.press("Control+v")
        wait_until(lambda: values[-1] == pasted, 30, f"Firefox's page to hold {pasted!r}, saw {values[-3:]}")

        # And non-ASCII text copied in Firefox arrives as the same text.
        page.evaluate("() => navigator.clipboard.writeText('something else')")
        page.keyboard.press("Control+a")
        page.keyboard.press("Control+c")
        wait_until(lambda: page.evaluate(READ_CLIPBOARD) == pasted, 30, "Firefox's non-ASCII copy")
        save_artifact("view-clipboard.png", page.screenshot())
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)


def test_ctrl_v_pastes_without_the_read_permission(
    server_factory: Callable[..., JupyterServer], keys_site: tuple[str, InPageOrder]
) -> None:
    """A user who never granted clipboard-read still pastes with Ctrl+V (the paste event's text)."""
    url, values = keys_site
    server = server_factory(screen_size="1280x800", start_url=url)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.grant_permissions(["clipboard-write"])  # what Chromium grants a focused page anyway
        page = context.new_page()
        frame = open_firefox_tab(page, server)
        frame.wait_for_function(f"() => {{ const w = {FIREFOX}; return w && /keys page/.test(w.title); }}")
        read = "() => navigator.clipboard.readText().then(() => 'read', () => 'denied')"
        assert frame.evaluate(read) == "denied"
        firefox_takes_keys(page, frame, values)
        page.keyboard.type("x", delay=30)
        wait_until(lambda: values[-1] == "x", 30, "the page to hold 'x'")
        pasted = "no read permission needed ✓"
        page.evaluate("text => navigator.clipboard.writeText(text)", pasted)
        page.keyboard.press("Control+v")
        wait_until(lambda: values[-1] == "x" + pasted, 30, f"the paste to arrive, saw {values[-3:]}")
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)


def test_the_keyboard_follows_the_active_tab(
    server_factory: Callable[..., JupyterServer], keys_site: tuple[str, InPageOrder]
) -> None:
    """Keys go to Firefox while its tab is active, to the other tab once that is (none are stolen)."""
    url, values = keys_site
    server = server_factory(screen_size="1280x800", start_url=url)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        frame = open_firefox_tab(page, server)
        frame.wait_for_function(f"() => {{ const w = {FIREFOX}; return w && /keys page/.test(w.title); }}")
        firefox_takes_keys(page, frame, values)
        page.keyboard.type("ff1", delay=30)
        wait_until(lambda: values and values[-1] == "ff1", 30, "the first keys in Firefox")

        # Another tab (a text editor from a new launcher) takes the keyboard.
        page.locator(".lm-TabBar-addButton:not(.lm-mod-hidden)").first.click()
        text_file = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Text File\s*$"))
        text_file.first.click(timeout=30_000)
        editor = page.locator(".jp-FileEditor .cm-content").first
        editor.wait_for(timeout=30_000)
        wait_until(
            lambda: page.evaluate("() => !!document.activeElement?.closest('.jp-FileEditor')"),
            30,
            "the editor to have the keyboard",
        )
        page.keyboard.type("lab", delay=30)
        wait_until(lambda: "lab" in (editor.text_content() or ""), 30, "the keys in the editor")
        assert values[-1] == "ff1"  # nothing reached Firefox

        # Back to the Firefox tab (a click on its tab): the keyboard is Firefox's again.
        page.locator(".lm-TabBar-tab", has_text="Firefox").first.click()
        wait_until(
            lambda: page.evaluate("() => document.activeElement?.className === 'jp-FFSystemd-frame'"),
            30,
            "the Firefox frame to have the keyboard",
        )
        catcher = "() => document.activeElement?.id === 'pasteboard'"  # the client's key catcher
        wait_until(lambda: frame.evaluate(catcher), 10, "the client's key catcher to be focused")
        page.keyboard.type("ff2", delay=30)
        wait_until(lambda: values[-1] == "ff1ff2", 30, f"the keys back in Firefox, saw {values[-3:]}")
        assert "ff2" not in (editor.text_content() or "")
        save_artifact("view-keyboard-follows-tab.png", page.screenshot())
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)


def test_a_tab_larger_than_the_x_screen_is_filled_too(server_factory: Callable[..., JupyterServer]) -> None:
    """Xvfb's screen (screen_size) cannot grow, but a window may be larger than it."""
    server = server_factory(screen_size="800x600")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        frame = open_firefox_tab(page, server)
        wait_until(lambda: fills(frame), 60, f"Firefox to fill the tab, saw {frame.evaluate(GEOMETRY)}")
        width, height = frame.evaluate(GEOMETRY)["inner"]
        assert width > 800 and height > 600
        wait_until(lambda: painted_to_the_edges(page), 60, "Firefox to paint beyond the X screen's size")
        save_artifact("view-larger-than-screen.png", page.screenshot())
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)
