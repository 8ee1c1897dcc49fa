"""The session's client under its capability (`.../session/<id>/c/<capability>/...`): no cookie, but the key.

What is served there (Xpra's index.html rewritten, its static files, our Worker stand-in), the
policy every answer carries, which headers pass each way, and what a forged, foreign, expired or
other session's capability gets. Requests here carry no Jupyter token unless a test says so.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fakes.ws_xpra import BIG_SIZE, INLINE_SCRIPT, big_body
from tornado.httpclient import AsyncHTTPClient

from ffsystemd.client_options import DEFAULT_CLIENT_OPTIONS
from ffsystemd.session_page import CLIENT_SHIM_JS, CLIENT_SHIM_PATH, CLIENT_VIEW_JS, CLIENT_VIEW_PATH

from .proxy_world import *  # noqa: F403
from .proxy_world import CAPABILITY_CHARS, World


def policy_of(response: Any) -> dict[str, str]:
    """The Content-Security-Policy header as {directive: sources}."""
    directives = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


@pytest.fixture
async def client(world: World, session: dict[str, Any]) -> str:
    """A fresh capability path of the session's client."""
    return await world.client_path(session)


# --- the page -----------------------------------------------------------------------------------------
async def test_the_page_is_xpras_with_our_worker_stand_in_first(
    world: World, session: dict[str, Any], client: str
) -> None:
    location = await world.open_page(session)
    before = len(await world.backend_requests(session["id"]))
    response = await world.http(location, token=False)
    assert response.code == 200, response.body
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    body = response.body
    assert b"ws fake xpra" in body
    head = body.index(b"<head>") + len(b"<head>")
    first_script = body.index(b"<script", head)
    assert body[first_script:].startswith(f'<script src="{CLIENT_SHIM_PATH}"></script>'.encode())
    assert first_script < body.index(b'src="js/Client.js"')
    assert (await world.backend_requests(session["id"]))[before:] == [["GET", "/"]]


async def test_the_page_policy_is_strict_and_sandboxed(world: World, session: dict[str, Any]) -> None:
    location = await world.open_page(session)
    client = urlsplit(location).path
    response = await world.http(location, token=False)
    policy = policy_of(response)
    files = f"http://127.0.0.1:{world.port}{client}"
    inline_hash = "sha256-" + base64.b64encode(hashlib.sha256(INLINE_SCRIPT).digest()).decode()
    assert policy["sandbox"] == "allow-scripts"  # opaque origin: no Jupyter cookie, no parent access
    assert policy["default-src"] == "'none'"
    assert policy["script-src"].split() == [files, f"'{inline_hash}'"]
    assert policy["style-src-elem"] == files
    assert policy["style-src-attr"] == "'unsafe-inline'"
    assert policy["img-src"].split() == [files, "data:"]
    assert policy["font-src"] == files
    assert policy["connect-src"] == f"ws://127.0.0.1:{world.port}{client}"
    assert policy["frame-ancestors"] == "'self'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'none'"
    assert policy["worker-src"] == "'none'"
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert "'self'" not in policy["script-src"] + policy["connect-src"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    # Not on the capability path: in the opaque origin every load is cross-origin (see session_page).
    assert "Cross-Origin-Resource-Policy" not in response.headers


async def test_the_inline_script_hash_is_computed_from_the_page_served(
    world: World, session: dict[str, Any]
) -> None:
    response = await world.http(await world.open_page(session), token=False)
    scripts = re.findall(rb"<script>(.*?)</script>", response.body, re.S)
    assert scripts == [INLINE_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
    assert f"'sha256-{digest}'" in policy_of(response)["script-src"]


async def test_the_worker_stand_in_is_ours(world: World, session: dict[str, Any], client: str) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(client + CLIENT_SHIM_PATH, token=False)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.body == CLIENT_SHIM_JS
    assert b"result: false" in response.body
    assert await world.backend_requests(session["id"]) == before


async def test_the_view_script_is_ours_too(world: World, session: dict[str, Any], client: str) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(client + CLIENT_VIEW_PATH, token=False)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.body == CLIENT_VIEW_JS
    assert await world.backend_requests(session["id"]) == before


async def test_options_on_the_client_page_are_pinned_too(
    world: World, session: dict[str, Any], client: str
) -> None:
    response = await world.http(f"{client}?server=evil.example&port=1&sound=true", token=False)
    assert response.code == 302
    parts = urlsplit(response.headers["Location"])
    assert parts.path == client
    assert dict(parse_qsl(parts.query)) == DEFAULT_CLIENT_OPTIONS
    response = await world.http(f"{client}index.html", token=False)
    assert response.code == 302
    assert urlsplit(response.headers["Location"]).path == client


# --- capabilities ---------------------------------------------------------------------------------------
async def test_forged_and_malformed_capabilities_are_403_without_a_connection(
    world: World, session: dict[str, Any]
) -> None:
    before = await world.backend_requests(session["id"])
    for capability in (
        "A" * CAPABILITY_CHARS,
        "short",
        "A" * (CAPABILITY_CHARS + 1),
        "%41" * CAPABILITY_CHARS,
    ):
        for page in ("", "js/echo-headers.js", CLIENT_SHIM_PATH):
            path = f"{session['url']}c/{capability}/{page}"
            for token in (False, True):  # Jupyter's token does not stand in for a capability
                response = await world.http(path, token=token)
                assert response.code == 403, (capability, page, token, response.code)
                assert json.loads(response.body)["message"]
    assert await world.backend_requests(session["id"]) == before


async def test_another_sessions_capability_is_403(world: World) -> None:
    first, second = await world.launch(), await world.launch()
    capability = urlsplit(await world.client_path(first)).path.rstrip("/").rsplit("/", 1)[-1]
    before = await world.backend_requests(second["id"])
    response = await world.http(f"{second['url']}c/{capability}/js/echo-headers.js", token=False)
    assert response.code == 403
    assert await world.backend_requests(second["id"]) == before
    assert (await world.http(f"{first['url']}c/{capability}/js/echo-headers.js", token=False)).code == 200


async def test_a_capability_expires_after_going_unused(world: World, session: dict[str, Any]) -> None:
    store = world.settings["ffsystemd_capabilities"]
    now = [1000.0]
    store.clock = lambda: now[0]
    client = await world.client_path(session)
    lifetime = store.idle_lifetime
    for _ in range(3):  # each use keeps it alive for another lifetime
        now[0] += lifetime - 1
        assert (await world.http(client + "js/echo-headers.js", token=False)).code == 200
    now[0] += lifetime
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 403
    fresh = await world.client_path(session)  # opening the page again works
    assert (await world.http(fresh + "js/echo-headers.js", token=False)).code == 200


@pytest.mark.parametrize(
    "origin,code", [("http://evil.example", 403), ("null", 200), ("http://127.0.0.1:{port}", 200)]
)
async def test_requests_from_foreign_origins_are_refused(
    world: World, session: dict[str, Any], client: str, origin: str, code: int
) -> None:
    response = await world.http(
        client + "js/echo-headers.js", token=False, headers={"Origin": origin.format(port=world.port)}
    )
    assert response.code == code


async def test_the_capability_stays_out_of_the_access_log(
    world: World, session: dict[str, Any], client: str, caplog: pytest.LogCaptureFixture
) -> None:
    capability = client.rstrip("/").rsplit("/", 1)[-1]
    caplog.set_level(logging.DEBUG)
    assert (await world.http(client + "missing.js", token=False)).code == 404
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 200
    assert "missing.js" in caplog.text
    assert capability not in caplog.text


# --- what is served -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "page", ["connect.html", "echo-headers", "Info", "js/", "a/../js/Client.js", "x.exe"]
)
async def test_only_the_clients_files_are_served(
    world: World, session: dict[str, Any], client: str, page: str
) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(client + page, token=False)
    assert response.code == 404, (page, response.code)
    assert await world.backend_requests(session["id"]) == before


async def test_a_file_xpra_lacks_is_404(world: World, session: dict[str, Any], client: str) -> None:
    response = await world.http(client + "js/not-there.js", token=False)
    assert response.code == 404
    assert response.headers["Content-Type"].startswith("application/json")


async def test_files_get_our_content_type_and_policy(
    world: World, session: dict[str, Any], client: str
) -> None:
    response = await world.http(client + "js/echo-headers.js", token=False)
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"  # not Xpra's JSON type
    assert policy_of(response)["sandbox"] == "allow-scripts"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_big_body_arrives_intact(world: World, session: dict[str, Any], client: str) -> None:
    response = await world.http(client + "js/big.js", token=False)
    assert response.code == 200
    assert len(response.body) == BIG_SIZE
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(big_body()).digest()


async def test_head_of_a_file(world: World, session: dict[str, Any], client: str) -> None:
    response = await world.http(client + "js/big.js", method="HEAD", token=False)
    assert response.code == 200
    assert response.body == b""
    assert response.headers["Content-Length"] == str(BIG_SIZE)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405(world: World, session: dict[str, Any], client: str, method: str) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(client + "js/echo-headers.js", method=method, token=False)
    assert response.code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD"}
    assert await world.backend_requests(session["id"]) == before


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_body_is_413_and_never_reaches_xpra(
    world: World, session: dict[str, Any], client: str, method: str
) -> None:
    """The capability path takes no body: a GET or HEAD with one is refused before it is read."""
    before = await world.backend_requests(session["id"])
    response = await world.http(client + "js/echo-headers.js", method=method, token=False, body=b"x" * 4096)
    assert response.code == 413, (response.code, response.body)
    assert await world.backend_requests(session["id"]) == before
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 200


@pytest.mark.parametrize("launcher_traits", [{"pass_environment": ["FAKE_XPRA_*"]}])
async def test_parallel_fetches_all_answer_when_xpras_backlog_is_full(
    world: World, monkeypatch: pytest.MonkeyPatch, launcher_traits: dict[str, Any]
) -> None:
    """30 files at once from a busy Xpra with a backlog of 1: each waits its turn, none fails.

    A non-blocking connect to a full unix backlog fails with EAGAIN; taken for a connection in
    progress it gave sockets that were never connected and 502 "[Errno 22] Invalid argument".
    """
    # The manager copied os.environ when the server started: the knobs go into its copy.
    monkeypatch.setitem(world.manager._environ, "FAKE_XPRA_BACKLOG", "1")
    monkeypatch.setitem(world.manager._environ, "FAKE_XPRA_BUSY_MS", "20")
    session = await world.launch()
    client = await world.client_path(session)
    http = AsyncHTTPClient(force_instance=True, max_clients=40)
    try:
        responses = await asyncio.gather(
            *(
                http.fetch(
                    f"http://127.0.0.1:{world.port}{client}js/echo-headers.js?n={n}",
                    raise_error=False,
                    request_timeout=60,
                )
                for n in range(30)
            )
        )
    finally:
        http.close()
    assert [(r.code, r.body[:80]) for r in responses if r.code != 200] == []
    assert all(json.loads(r.body)["path"] == "/js/echo-headers.js" for r in responses)


# --- headers, each way -----------------------------------------------------------------------------------
async def test_xpras_response_headers_are_filtered(
    world: World, session: dict[str, Any], client: str
) -> None:
    page = f"{client}?{urlencode(sorted(DEFAULT_CLIENT_OPTIONS.items()))}"
    for path in (page, client + "js/echo-headers.js"):
        response = await world.http(path, token=False)
        assert response.code == 200, (path, response.code)
        names = {name.lower() for name in response.headers}
        refused = {
            "set-cookie",
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "x-frame-options",
            "refresh",
        }
        assert not names & refused, (path, names & refused)
        assert "default-src *" not in response.headers["Content-Security-Policy"]
        assert response.headers["Content-Language"] == "en"  # an allowed one passes


async def test_xpra_gets_no_credentials_no_referer_and_no_query(
    world: World, session: dict[str, Any], client: str
) -> None:
    token = world.auth["Authorization"].split()[-1]
    response = await world.http(
        f"{client}js/echo-headers.js?token={token}&x=1",
        headers={
            "Cookie": f"username-127-0-0-1-{world.port}=secret-login; _xsrf=secret-xsrf",
            "Authorization": f"token {token}",
            "X-XSRFToken": "secret-xsrf",
            "Referer": f"http://127.0.0.1:{world.port}/lab?token={token}",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "X-Custom": "dropped",
            "Accept-Language": "de",
        },
        token=False,
    )
    assert response.code == 200, response.body
    seen = json.loads(response.body)
    sent = json.dumps(seen)
    for secret in (token, "secret-login", "secret-xsrf", "c2VjcmV0", "/lab"):
        assert secret not in sent, secret
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert seen["query"] == ""
    assert seen["path"] == "/js/echo-headers.js"
    assert "referer" not in headers and "x-custom" not in headers and "cookie" not in headers
    assert headers["accept-language"] == "de"
    prefix = f"{world.base_url}firefox-launcher/session/{session['id']}"
    assert headers["x-forwarded-prefix"] == prefix
    capability = client.rstrip("/").rsplit("/", 1)[-1]
    assert capability not in sent


async def test_http_traffic_counts_as_activity(world: World, session: dict[str, Any], client: str) -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)
    times = world.settings.setdefault("last_activity_times", {})
    times["ffsystemd"] = long_ago
    mark = datetime.now(timezone.utc)
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 200
    assert times["ffsystemd"] >= mark
    status = await world.status(session["id"])
    assert datetime.fromisoformat(status["last_activity"].replace("Z", "+00:00")) >= mark
