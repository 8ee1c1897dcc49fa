"""The client loads while its session starts: `POST {"wait": false}`, and a websocket that waits.

The fake Xpra here listens only after FAKE_XPRA_START_MS (an Xpra slow to start); the page and
the client's files come from the server's memory (a small client directory), so the tab can
open the page at once; the websocket is held, bounded by the launch's own ready_timeout, until
the session runs, then tunnelled at once; a launch that fails meanwhile answers it 502.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fakes.polling import eventually
from tornado.httpclient import HTTPClientError

from ffsystemd.handlers import client as client_module

from .proxy_world import *  # noqa: F403
from .proxy_world import FIREFOX_ROUTE, World, recv
from .test_static_client import make_www

SLOW = {"pass_environment": ["FAKE_XPRA_*"], "ready_timeout": 20}


@pytest.fixture
def client_dirs(tmp_path: Path) -> tuple[Path, ...]:
    return (make_www(tmp_path),)


async def launch_early(world: World, start_ms: int) -> tuple[dict[str, Any], float]:
    """POST {"wait": false} with an Xpra that listens after start_ms: (session JSON, seconds taken)."""
    world.manager._environ["FAKE_XPRA_START_MS"] = str(start_ms)
    started = time.monotonic()
    response = await world._fetch(
        *FIREFOX_ROUTE, method="POST", body=json.dumps({"wait": False}), raise_error=False
    )
    took = time.monotonic() - started
    assert response.code == 202, (response.code, response.body)
    session = json.loads(response.body)
    assert response.headers["Location"] == session["url"]
    return session, took


@pytest.mark.parametrize("launcher_traits", [SLOW])
async def test_the_page_loads_and_the_websocket_connects_the_moment_xpra_is_ready(
    world: World, launcher_traits: dict[str, Any]
) -> None:
    session, took = await launch_early(world, 2500)
    assert session["state"] == "starting"
    assert took < 2.0  # answered before Xpra listens
    location = await world.open_page(session)  # the capability is minted while it starts
    page = await world.http(location, token=False)
    assert page.code == 200
    assert b"<script>var client = 'ours';\n</script>" in page.body  # js/Client.js, inline
    client = location.split("?")[0]
    assert (await world.http(client + "js/Client.js", token=False)).code == 200
    assert (await world.status(session["id"]))["state"] == "starting"
    conn = await world.ws(client, subprotocols=["binary"])  # held until the session runs
    running_at = time.monotonic()
    assert (await world.status(session["id"]))["state"] == "running"
    conn.write_message("hello")
    assert await recv(conn) == "hello"
    assert (await world.status(session["id"]))["connections"] == 1
    assert time.monotonic() - running_at < 5


@pytest.mark.parametrize("launcher_traits", [dict(SLOW, ready_timeout=1)])
async def test_a_launch_that_fails_answers_the_waiting_websocket_and_leaves_a_record(
    world: World, launcher_traits: dict[str, Any]
) -> None:
    session, _took = await launch_early(world, 60_000)  # never ready within ready_timeout
    client = (await world.open_page(session)).split("?")[0]
    started = time.monotonic()
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(client)
    assert caught.value.code == 502
    assert time.monotonic() - started < 8  # bounded by ready_timeout, not by the client's wait

    async def final() -> dict[str, Any] | None:
        record = await world.status(session["id"])
        return record if record["state"] == "failed" else None

    record = await eventually(final, what="the failed launch's final record")
    assert "xpra-ready" in record["message"] and "ready_timeout" in record["message"]
    assert not world.socket(session["id"]).parent.exists()  # nothing else left behind
    assert (await world.http(session["url"])).code == 404  # no page for it any more
    await world.cleanup(session["id"])
    assert session["id"] not in world.manager.session_ids()


@pytest.mark.parametrize("launcher_traits", [SLOW])
async def test_the_wait_has_its_own_deadline(
    world: World, launcher_traits: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were a launch to hang past ready_timeout, the websocket still gets an answer (504)."""
    monkeypatch.setattr(client_module, "WAIT_GRACE", -19.5)  # deadline: 0.5 s after the request
    session, _took = await launch_early(world, 5_000)
    client = (await world.open_page(session)).split("?")[0]
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(client)
    assert caught.value.code == 504
    assert (await world.status(session["id"]))["state"] == "starting"  # the launch goes on


@pytest.mark.parametrize("launcher_traits", [SLOW])
async def test_the_default_post_still_answers_once_running(
    world: World, launcher_traits: dict[str, Any]
) -> None:
    world.manager._environ["FAKE_XPRA_START_MS"] = "300"
    session = await world.launch()  # asserts 201 and state running
    assert session["state"] == "running"


@pytest.mark.parametrize("body", ['{"wait": "no"}', '{"wait": 0}', '{"wait": null}'])
async def test_wait_must_be_a_boolean(world: World, body: str) -> None:
    response = await world._fetch(*FIREFOX_ROUTE, method="POST", body=body, raise_error=False)
    assert response.code == 400
    assert "wait" in json.loads(response.body)["message"]
    assert world.manager.session_ids() == []


@pytest.mark.parametrize(
    "body", ['{"screen": "1070x779"}', '{"screen": [10, 779]}', '{"screen": [1070.5, 779]}']
)
async def test_screen_must_be_two_integers_saying_so(world: World, body: str) -> None:
    response = await world._fetch(*FIREFOX_ROUTE, method="POST", body=body, raise_error=False)
    assert response.code == 400
    assert "screen must be" in json.loads(response.body)["message"]
    assert world.manager.session_ids() == []


async def test_the_websocket_waits_for_the_first_screen_size_then_goes_through(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake Xpra runs no start child, so the test plays the session writing its marker."""
    monkeypatch.setattr(client_module, "SCREEN_WAIT", 30.0)
    response = await world._fetch(
        *FIREFOX_ROUTE, method="POST", body=json.dumps({"screen": [1070, 779]}), raise_error=False
    )
    assert response.code == 201, response.body
    session = json.loads(response.body)
    marker = world.manager.screen_marker(session["id"])
    assert marker is not None and marker.parent == world.socket(session["id"]).parent.parent / "runtime"
    client = (await world.open_page(session)).split("?")[0]
    pending = asyncio.ensure_future(world.ws(client, subprotocols=["binary"]))
    await asyncio.sleep(0.5)  # the websocket must still be held: nothing else could have let it go
    assert not pending.done()
    marker.write_text("set\n")
    conn = await asyncio.wait_for(pending, 10)
    conn.write_message("hello")
    assert await recv(conn) == "hello"


async def test_a_session_that_never_says_its_screen_is_set_is_connected_after_screen_wait(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "SCREEN_WAIT", 0.3)
    response = await world._fetch(
        *FIREFOX_ROUTE, method="POST", body=json.dumps({"screen": [800, 600]}), raise_error=False
    )
    session = json.loads(response.body)
    client = (await world.open_page(session)).split("?")[0]
    conn = await asyncio.wait_for(world.ws(client, subprotocols=["binary"]), 10)
    conn.write_message("hello")
    assert await recv(conn) == "hello"
    plain = await world.launch()  # no screen asked for: nothing to wait for
    assert world.manager.screen_marker(plain["id"]) is None
