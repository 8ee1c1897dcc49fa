"""The whole product as a user meets it: real JupyterLab, the launcher tile, the Firefox tab."""

from __future__ import annotations

import re
import time

import psutil
import pytest
from playwright.sync_api import Frame, Page

from .browser import RecordingPage, chromium, distinct_colours, save_artifact
from .world import JupyterServer, our_units, process_tree, unit_gone, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

PANEL = ".jp-FFSystemd-panel"
XPRA_TITLES = "() => window.client ? Object.values(client.id_to_window).map(w => w.title || '') : []"


def session_frame(page: Page) -> Frame:
    """The iframe of the Firefox tab (the session's Xpra HTML5 client), once it shows the session."""
    handle = page.wait_for_selector(".jp-FFSystemd-frame", timeout=60_000)
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_url(re.compile(r".*/firefox-launcher/session/[0-9a-f]{12}/.*"), timeout=60_000)
    return frame


def wait_for_firefox(page: Page) -> Frame:
    frame = session_frame(page)
    frame.wait_for_function("() => window.client && window.client.connected === true", timeout=60_000)
    frame.wait_for_function(f"() => ({XPRA_TITLES})().some(t => /Firefox/.test(t))", timeout=90_000)
    return frame


def sessions(server: JupyterServer) -> list[dict]:
    return server.get("firefox-launcher/api/firefox").json()["sessions"]


def test_launcher_tab_running_panel_reload_and_close(server_factory) -> None:
    server: JupyterServer = server_factory()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}lab?token={server.token}")
        tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
        tile.first.wait_for(timeout=60_000)
        save_artifact("lab-launcher.png", page.screenshot())
        tile.first.click()

        panel = page.locator(f"{PANEL}[data-state='running']")
        panel.wait_for(timeout=90_000)
        session_id = panel.get_attribute("data-session-id")
        assert session_id and re.fullmatch(r"[0-9a-f]{12}", session_id)
        assert [s["id"] for s in sessions(server)] == [session_id]
        wait_for_firefox(page)
        frame_el = page.locator(".jp-FFSystemd-frame")
        wait_until(
            lambda: distinct_colours(frame_el.screenshot()) > 50, 60, "Firefox to be painted in the tab"
        )
        box = frame_el.bounding_box()
        panel_box = page.locator(PANEL).bounding_box()
        assert box and panel_box and box["width"] >= panel_box["width"] - 2  # the view fills the tab
        save_artifact("lab-firefox-tab.png", page.screenshot())

        # The running-sessions sidebar lists it with its memory against its limit.
        page.locator("[data-id='jp-running-sessions']").first.click()
        item = page.locator(".jp-FFSystemd-runningItem").first
        item.wait_for(timeout=30_000)
        wait_until(
            lambda: "GiB" in (item.text_content() or "") + (item.get_attribute("title") or ""),
            30,
            "the memory figure in the running panel",
        )
        save_artifact("lab-running-panel.png", page.screenshot())

        # A reload restores the tab to the same running session, without a new launch.
        page.reload()
        page.locator(f"{PANEL}[data-session-id='{session_id}'][data-state='running']").wait_for(
            timeout=90_000
        )
        wait_for_firefox(page)
        assert [s["id"] for s in sessions(server)] == [session_id]
        save_artifact("lab-restored.png", page.screenshot())

        # Closing the tab (confirming) ends the session: unit and processes gone.
        pids = [p.pid for p in process_tree(sessions(server)[0]["main_pid"])]
        unit = sessions(server)[0]["unit"]
        tab = page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").first
        tab.click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        wait_until(lambda: sessions(server) == [], 30, "the session to be cleaned up")
        wait_until(lambda: unit_gone(unit), 10, "the unit to be gone")
        wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), 10, "its processes to end")
        assert unit not in our_units()  # other servers may share the user manager


FIREFOX_WINDOW = "() => Object.values(client.id_to_window).find(w => /Firefox/.test(w.title || ''))"


def test_the_sandboxed_tab_takes_keys_and_follows_its_size(server_factory) -> None:
    """The tab's iframe is sandboxed (opaque origin): keys still reach Firefox, resizes still follow."""
    server: JupyterServer = server_factory(screen_size="1920x1080")
    with RecordingPage() as target, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}lab?token={server.token}")
        tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
        tile.first.click(timeout=60_000)
        page.locator(f"{PANEL}[data-state='running']").wait_for(timeout=90_000)
        frame = wait_for_firefox(page)
        frame_el = page.locator(".jp-FFSystemd-frame")
        assert frame_el.get_attribute("sandbox") == "allow-scripts"
        assert frame.evaluate("() => String(self.origin)") == "null"
        assert "/c/" in frame.url and server.token not in frame.url

        # Firefox's window follows the tab's size, both ways.
        def follows() -> bool:
            return bool(frame.evaluate(f"() => ({FIREFOX_WINDOW})().w === window.innerWidth"))

        wait_until(follows, 30, "Firefox's window to fill the tab")
        first_width = frame.evaluate("() => window.innerWidth")
        page.set_viewport_size({"width": 1100, "height": 800})
        wait_until(lambda: frame.evaluate("() => window.innerWidth") < first_width, 30, "the tab to shrink")
        wait_until(follows, 30, "Firefox's window to follow the smaller tab")
        page.set_viewport_size({"width": 1400, "height": 900})
        wait_until(lambda: frame.evaluate("() => window.innerWidth") == first_width, 30, "the tab to grow")
        wait_until(follows, 30, "Firefox's window to follow the larger tab")

        # A click into the tab gives Firefox the keyboard: a typed URL is loaded by Firefox.
        url = f"http://127.0.0.1:{target.port}/typed-in-the-lab-tab"
        canvas = frame.locator("div.window canvas").first
        deadline = time.monotonic() + 90
        while "/typed-in-the-lab-tab" not in target.paths:
            if time.monotonic() > deadline:
                save_artifact("lab-typing-failed.png", page.screenshot())
                raise AssertionError(f"Firefox never requested the typed page; saw {target.paths}")
            canvas.click(position={"x": 400, "y": 300})
            page.keyboard.press("Control+l")
            page.keyboard.type(url, delay=20)
            page.keyboard.press("Enter")
            attempt_ends = time.monotonic() + 10
            while "/typed-in-the-lab-tab" not in target.paths and time.monotonic() < attempt_ends:
                page.wait_for_timeout(100)
        save_artifact("lab-typed-url.png", page.screenshot())
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)


def test_a_launch_that_fails_at_start_shows_the_step_and_the_xpra_log(server_factory, tmp_path) -> None:
    """The tab launches without waiting (202, starting): when the start then fails, its error box
    still names the failed step and shows the tail of Xpra's log, from the session's final record."""
    broken = tmp_path / "broken-xpra"
    broken.write_text('#!/bin/sh\necho "broken xpra: failing at start on purpose" >&2\nexit 7\n')
    broken.chmod(0o755)
    server: JupyterServer = server_factory(xpra_command=[str(broken)])
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}lab?token={server.token}")
        tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
        tile.first.click(timeout=60_000)
        failed = page.locator(f"{PANEL}[data-state='error']")
        failed.wait_for(timeout=90_000)
        session_id = failed.get_attribute("data-session-id")
        assert session_id and re.fullmatch(r"[0-9a-f]{12}", session_id)
        (record,) = sessions(server)
        assert record["id"] == session_id and record["state"] == "failed", record
        assert record["step"] == "xpra-ready", record
        box = failed.locator(".jp-FFSystemd-error")
        assert box.get_attribute("role") == "alert"
        assert box.locator(".jp-FFSystemd-title").inner_text() == (
            "Firefox failed to start while waiting for Xpra to answer"
        )
        assert "status 7" in box.locator(".jp-FFSystemd-message").inner_text()
        assert box.locator(".jp-FFSystemd-step").inner_text() == "Failed step: xpra-ready"
        box.locator(".jp-FFSystemd-log summary").click()
        log = box.locator(".jp-FFSystemd-log pre")
        assert "broken xpra: failing at start on purpose" in log.inner_text()
        assert log.is_visible()
        save_artifact("lab-start-failed.png", page.screenshot())

        # Retry starts a new Firefox (a new session), which fails the same way.
        box.locator(".jp-FFSystemd-retry").click()
        again = page.locator(f"{PANEL}[data-state='error']:not([data-session-id='{session_id}'])")
        again.wait_for(timeout=90_000)
        log_again = again.locator(".jp-FFSystemd-log pre").text_content() or ""  # (folded)
        assert "broken xpra: failing at start on purpose" in log_again
        assert server.cleanup(all=True)["errors"] == {}
        assert sessions(server) == []
