"""The warm pool with real systemd, Xpra and Firefox (and real JupyterLab in Chromium).

A pooled session is ready when its start script created `runtime/warm-ready` (Firefox is up
on about:blank and its remote server answers on the session's own bus); the page a launch
asks for must then be what Firefox shows: its title in Firefox's window (through `xpra info`
or the HTML5 client in the tab) and a request on the test's page server.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from .browser import RecordingPage, chromium, distinct_colours, save_artifact
from .test_lab_real import PANEL, XPRA_TITLES, sessions, wait_for_firefox
from .world import JupyterServer, process_tree, strays, unit_gone, wait_until, xpra_windows

pytestmark = pytest.mark.real

TITLE = "ffsystemd test page"


def ready_pooled(server: JupyterServer) -> list[str]:
    """Ids of the server's pooled sessions whose Firefox waits for its page (not listed in the API)."""
    listed = {s["id"] for s in sessions(server)}
    return [
        p.parent.parent.name.removeprefix("session-")
        for p in sorted(server.session_root.glob("session-*/runtime/warm-ready"))
        if p.parent.parent.name.removeprefix("session-") not in listed
    ]


def titles(socket: Path) -> list[str]:
    return [v for k, v in xpra_windows(socket).items() if k.endswith(".title")]


def test_a_warm_launch_opens_the_requested_page_and_shutdown_leaves_nothing(server_factory) -> None:
    with RecordingPage() as site:
        server: JupyterServer = server_factory(pool_size=1, screen_size="1280x800")
        [pooled] = wait_until(lambda: ready_pooled(server), 120, "a ready pooled session")
        assert sessions(server) == []  # not shown before it is claimed
        pooled_unit = f"app-ffsystemd-firefox-{pooled}.scope"
        assert pooled_unit in server.units()

        url = f"http://127.0.0.1:{site.port}/warm?x=1"
        started = time.monotonic()
        session = server.launch(url=url)
        answered = time.monotonic() - started
        assert session["id"] == pooled and session["state"] == "running"
        assert session["start_url"] == url and session["memory_max"] is not None
        assert [s["id"] for s in sessions(server)] == [pooled]
        wait_until(lambda: "/warm?x=1" in site.paths, 30, "Firefox to request the page")
        requested = time.monotonic() - started
        socket = server.session_root / f"session-{pooled}" / "sockets" / "xpra.sock"
        wait_until(lambda: any(TITLE in t for t in titles(socket)), 60, "Firefox to show the page")
        assert len([t for t in titles(socket) if "Firefox" in t]) == 1  # one window, no extra one

        # Everything the warm start ran (its bus, Firefox, the remote client) is in the scope,
        # and nothing listens on TCP.
        procs = process_tree(session["main_pid"])
        assert any(p.name() == "dbus-daemon" for p in procs), [p.name() for p in procs]
        assert strays(procs, pooled_unit) == []
        print(f"warm launch answered after {answered:.2f} s, page requested after {requested:.2f} s")

        # The pool refills with a session of its own; the claimed one is the user's to close.
        [refill] = wait_until(lambda: ready_pooled(server), 120, "the pool to refill")
        assert refill != pooled
        server.cleanup(ids=[pooled])
        wait_until(lambda: unit_gone(pooled_unit), 30, "the claimed session's unit to go")

        assert server.stop() == 0
        wait_until(lambda: server.units() == [], 30, "the pooled session to be stopped at shutdown")
        assert list(server.session_root.glob("session-*")) == []


@pytest.mark.browser
def test_the_launcher_tile_claims_a_pooled_session_showing_the_start_page(server_factory) -> None:
    with RecordingPage() as site:
        url = f"http://127.0.0.1:{site.port}/lab-warm"
        server: JupyterServer = server_factory(pool_size=1, start_url=url, screen_size="1280x800")
        [pooled] = wait_until(lambda: ready_pooled(server), 120, "a ready pooled session")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1300, "height": 850})
            page.goto(f"{server.url}lab?token={server.token}")
            tile = page.locator(".jp-LauncherCard", has_text=re.compile(r"^\s*Firefox\s*$"))
            tile.first.wait_for(timeout=60_000)
            tile.first.click()
            panel = page.locator(f"{PANEL}[data-state='running']")
            panel.wait_for(timeout=90_000)
            assert panel.get_attribute("data-session-id") == pooled
            frame = wait_for_firefox(page)
            frame.wait_for_function(
                f"() => ({XPRA_TITLES})().some(t => t.includes({TITLE!r}))", timeout=60_000
            )
            frame_el = page.locator(".jp-FFSystemd-frame")
            wait_until(lambda: distinct_colours(frame_el.screenshot()) > 20, 60, "the page painted")
            save_artifact("lab-warm-tab.png", page.screenshot())
            assert "/lab-warm" in site.paths
            assert [s["id"] for s in sessions(server)] == [pooled]
