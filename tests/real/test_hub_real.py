"""A real JupyterHub: two hub users, one of them with two named servers, each server with ffsystemd.

All three single-user servers run as this Unix user on this machine's one systemd user manager
(what JupyterHub's named servers are). Through the hub's proxy: each launches, sees Firefox in
headless Chromium, lists and reaches only its own sessions; the hub's last_activity of a server
advances while only its Firefox tab streams; stopping a named server from the hub ends its
sessions and leaves the others'.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ffsystemd.identity import hub_server_id, unit_description

from .browser import chromium, distinct_colours, save_artifact
from .hub import ACTIVITY_INTERVAL, PASSWORD, Hub
from .world import our_units, systemctl_show, unit_gone, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

SERVERS = [("alice", ""), ("alice", "work"), ("bob", "")]
XPRA_WINDOW_TITLES = "() => window.client ? Object.values(client.id_to_window).map(w => w.title || '') : []"


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    """The hub with alice (default + 'work' servers) and bob (default server), all ready.

    Afterwards (the hub stopped every server) no unit of the hub's sessions may be left.
    """
    hub = Hub().start()
    try:
        hub.add_users("alice", "bob")
        for user, server in SERVERS:
            hub.request_server(user, server)
        for user, server in SERVERS:
            hub.wait_ready(user, server)
        yield hub
    finally:
        hub.stop()
    leaked = {s["unit"] for s in hub.launched} & set(our_units())
    assert not leaked, f"units left behind after the hub stopped its servers: {leaked}"


@pytest.fixture(scope="module")
def sessions(hub: Hub) -> dict[tuple[str, str], dict[str, Any]]:
    """One session launched on each of the three servers, in parallel."""

    def launch(key: tuple[str, str]) -> dict[str, Any]:
        resp = hub.user_api("POST", *key, "firefox-launcher/api/firefox", {})
        assert resp.status_code == 201, f"{key}: {resp.status_code} {resp.text}"
        hub.launched.append(resp.json())
        return resp.json()

    with ThreadPoolExecutor(len(SERVERS)) as pool:
        launched = list(pool.map(launch, SERVERS))
    return dict(zip(SERVERS, launched, strict=True))


def session_dir(hub: Hub, user: str, server: str, session_id: str) -> Path:
    """Where a session of that server lives by default (alice's two servers share her HOME)."""
    return hub.home(user) / ".firefox-launcher" / hub_server_id(user, server) / f"session-{session_id}"


def _listed(hub: Hub, user: str, server: str) -> set[str]:
    resp = hub.user_api("GET", user, server, "firefox-launcher/api/firefox")
    assert resp.status_code == 200, resp.text
    return {s["id"] for s in resp.json()["sessions"]}


def test_each_server_has_its_hub_identity_and_sees_only_its_own(hub: Hub, sessions) -> None:
    for (user, server), session in sessions.items():
        health = hub.user_api("GET", user, server, "firefox-launcher/api/health").json()
        assert health["server"]["source"] == "jupyterhub"
        assert (health["server"]["hub_user"], health["server"]["hub_server_name"]) == (user, server)
        server_id = hub_server_id(user, server)
        assert health["server"]["server_id"] == server_id
        assert health["orphans"] == []
        assert session["server_id"] == server_id
        # The id is in the unit and in the session directory (alice's two servers share a HOME).
        assert systemctl_show(session["unit"], "Description")["Description"] == unit_description(
            session["id"], server_id
        )
        meta = session_dir(hub, user, server, session["id"]) / "session.json"
        assert json.loads(meta.read_text())["server_id"] == server_id
        assert session["url"].startswith(hub.server_prefix(user, server))
        assert _listed(hub, user, server) == {session["id"]}

    for owner, session in sessions.items():
        for other in SERVERS:
            if other == owner:
                continue
            # Not listed, not found, not proxied, not cleaned up by any other server.
            by_id = hub.user_api("GET", *other, f"firefox-launcher/api/firefox?id={session['id']}")
            assert by_id.status_code == 404, (owner, other, by_id.text)
            foreign_url = hub.server_prefix(*other) + session["url"][len(hub.server_prefix(*owner)) :]
            proxied = hub.user_api("GET", *other, foreign_url[len(hub.server_prefix(*other)) :])
            assert proxied.status_code == 404, (owner, other, foreign_url, proxied.status_code)
            cleanup = hub.user_api("POST", *other, "firefox-launcher/api/cleanup", {"id": session["id"]})
            assert cleanup.status_code == 404, (owner, other, cleanup.text)
    for session in sessions.values():
        assert systemctl_show(session["unit"], "ActiveState")["ActiveState"] == "active"


def _server_activity(hub: Hub, user: str, server: str) -> datetime:
    stamp = hub.user(user)["servers"][server]["last_activity"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_firefox_through_the_hub_and_its_stream_keeps_the_server_active(hub: Hub, sessions) -> None:
    session = sessions[("alice", "")]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("[type=submit]")
        page.wait_for_url("**/user/alice/**", timeout=60_000)
        response = page.goto(f"{hub.url}{session['url']}")  # the session's own URL, as the API gave it
        assert response is not None and response.ok, response and response.status
        page.wait_for_function("() => window.client && window.client.connected === true", timeout=60_000)
        page.wait_for_function(f"() => ({XPRA_WINDOW_TITLES})().some(t => /Firefox/.test(t))", timeout=90_000)
        wait_until(lambda: distinct_colours(page.screenshot()) > 50, 60, "Firefox's window to be painted")
        save_artifact("firefox-through-jupyterhub.png", page.screenshot())

        # From now on only the tab's websocket talks to alice's server (the test asks only the hub).
        time.sleep(ACTIVITY_INTERVAL * 1.5)  # let the report of the page load itself reach the hub
        baseline = _server_activity(hub, "alice", "")
        later = wait_until(
            lambda: (stamp := _server_activity(hub, "alice", "")) > baseline and stamp,
            ACTIVITY_INTERVAL * 10,
            "the hub's last_activity of alice's server to advance while the tab streams",
            interval=0.5,
        )
        assert later > baseline
        page.close()


def test_stopping_a_named_server_from_the_hub_ends_its_sessions_only(hub: Hub, sessions) -> None:
    work = sessions[("alice", "work")]
    hub.stop_server("alice", "work")
    wait_until(lambda: unit_gone(work["unit"]), 30, "alice/work's session unit to be stopped")
    assert not session_dir(hub, "alice", "work", work["id"]).exists()
    for key in (("alice", ""), ("bob", "")):
        assert systemctl_show(sessions[key]["unit"], "ActiveState")["ActiveState"] == "active", key
        assert _listed(hub, *key) == {sessions[key]["id"]}
    # {"all": true} on bob's server leaves alice's running.
    stopped = hub.user_api("POST", "bob", "", "firefox-launcher/api/cleanup", {"all": True}).json()
    assert stopped == {"stopped": [sessions[("bob", "")]["id"]], "errors": {}}
    assert systemctl_show(sessions[("alice", "")]["unit"], "ActiveState")["ActiveState"] == "active"
