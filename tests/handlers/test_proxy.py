"""The session page for Jupyter's users (`<base_url>firefox-launcher/session/<id>/`): auth, redirect.

The cookie- or token-authenticated entry serves nothing of Xpra's: it mints a capability and
redirects to the client's path under it, with the client options the server pins. See
test_session_client.py for what is served under the capability, test_ws_proxy.py for websockets.
"""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fakes.polling import eventually
from tornado.httpclient import HTTPClientError

from ffsystemd.client_options import COSMETIC_DEFAULTS, DEFAULT_CLIENT_OPTIONS, PINNED_OPTIONS

from .proxy_world import *  # noqa: F403
from .proxy_world import (
    CAPABILITY_CHARS,
    UNUSED_ID,
    DenyingAuthorizer,
    World,
    location_parts,
    recv,
)

MALFORMED_IDS = {
    "dot-dot": "..",
    "escaped-dot-dot": "%2e%2e",
    "escaped-dot-dot-upper": "%2E%2E",
    "upper-case": "ABCDEF012345",
    "13-hex": "0123456789abc",
    "11-hex": "0123456789a",
    "unicode": "%C3%A9" * 12,
    "raw-unicode": "\u00e9" * 12,
    "fullwidth-digits": "%EF%BC%90" * 12,
    "escaped-hex": "%30%31%32%33%34%35%36%37%38%39%61%62",
    "traversal": "..%2f..%2fetc",
}
CAPABILITY_PATH = re.compile(rf"c/[A-Za-z0-9_-]{{{CAPABILITY_CHARS}}}/")


def capability_of(location: str, session: dict[str, Any]) -> str:
    path = urlsplit(location).path
    assert path.startswith(session["url"]), (path, session["url"])
    rest = path[len(session["url"]) :]
    assert CAPABILITY_PATH.fullmatch(rest), rest
    return rest[2:-1]


# --- the redirect -----------------------------------------------------------------------------------
async def test_session_url_is_the_route_under_base_url(world: World, session: dict[str, Any]) -> None:
    assert session["url"] == f"{world.base_url}firefox-launcher/session/{session['id']}/"


@pytest.mark.parametrize("page", ["", "index.html"])
async def test_page_redirects_to_a_capability_path_with_the_servers_options(
    world: World, session: dict[str, Any], page: str
) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(session["url"] + page)
    assert response.code == 302
    path, query = location_parts(response)
    capability_of(response.headers["Location"], session)
    assert path.endswith("/")  # the client's websocket URL is its page's path: Xpra's "/"
    assert dict(query) == DEFAULT_CLIENT_OPTIONS
    assert len(query) == len(DEFAULT_CLIENT_OPTIONS)
    assert {"sharing": "true", "sound": "false", "floating_menu": "false", "submit": "false"}.items() <= dict(
        query
    ).items()
    assert await world.backend_requests(session["id"]) == before  # answered by the proxy itself


async def test_every_opening_mints_its_own_capability(world: World, session: dict[str, Any]) -> None:
    first = capability_of(await world.open_page(session), session)
    second = capability_of(await world.open_page(session), session)
    assert first != second
    for capability in (first, second):
        response = await world.http(f"{session['url']}c/{capability}/js/echo-headers.js", token=False)
        assert response.code == 200, (capability, response.code)


async def test_connection_options_and_the_token_never_reach_the_client_url(
    world: World, session: dict[str, Any]
) -> None:
    hostile = (
        "server=evil.example&port=4444&path=/elsewhere/&ssl=true&password=guessed&username=u"
        "&encryption=AES&key=k&insecure=true&action=shadow&display=:9&shadow_display=:9&start=xterm"
        "&exit_with_client=true&sound=true&sharing=false&steal=true&submit=true"
        "&file_transfer=true&printing=true&reconnect=false&bogus=1&debug_main=true"
    )
    response = await world.http(f"{session['url']}?{hostile}")
    assert response.code == 302
    _path, query = location_parts(response)
    assert dict(query) == DEFAULT_CLIENT_OPTIONS, query


async def test_a_token_in_the_url_opens_the_page_and_is_not_passed_on(
    world: World, session: dict[str, Any]
) -> None:
    token = world.auth["Authorization"].split()[-1]
    response = await world.http(f"{session['url']}?token={token}&keyboard_layout=fr", token=False)
    assert response.code == 302, response.code
    capability_of(response.headers["Location"], session)
    assert token not in response.headers["Location"]
    assert dict(location_parts(response)[1])["keyboard_layout"] == "fr"
    assert "Set-Cookie" not in response.headers  # no login cookie from a session URL
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


async def test_cosmetic_options_pass_when_valid(world: World, session: dict[str, Any]) -> None:
    location = await world.open_page(
        session,
        "keyboard_layout=de&floating_menu=true&swap_keys=true&touchaction=zoom&clock=yes"
        "&encoding=jpeg&bandwidth_limit=100000&clipboard=false&video=false&autohide=true",
    )
    options = dict(location_parts_of(location))
    assert options == {
        **PINNED_OPTIONS,
        "keyboard_layout": "de",
        "floating_menu": "true",
        "swap_keys": "true",
        "touchaction": "zoom",
        "clock": "yes",
        "encoding": "jpeg",
        "bandwidth_limit": "100000",
        "clipboard": "false",
        "video": "false",
        "autohide": "true",
    }


@pytest.mark.parametrize(
    "bad",
    [
        'keyboard_layout=de"><script>x</script>',
        "keyboard_layout=",
        "touchaction=javascript:x",
        "floating_menu=maybe",
        "bandwidth_limit=-1",
        "encoding=jpeg%20png",
    ],
)
async def test_invalid_cosmetic_values_are_dropped(world: World, session: dict[str, Any], bad: str) -> None:
    options = dict(location_parts_of(await world.open_page(session, bad)))
    assert options == {**COSMETIC_DEFAULTS, **PINNED_OPTIONS}, bad


def location_parts_of(location: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)


async def test_entry_answers_carry_the_locked_down_headers(world: World, session: dict[str, Any]) -> None:
    for response in (await world.http(session["url"]), await world.http(session["url"] + "nothing-here")):
        headers = response.headers
        policy = headers["Content-Security-Policy"]
        assert policy.startswith("sandbox;"), policy
        assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"


async def test_head_answers_without_minting(world: World, session: dict[str, Any]) -> None:
    store = world.settings["ffsystemd_capabilities"]
    response = await world.http(session["url"], method="HEAD")
    assert response.code == 200
    assert response.body == b""
    assert session["id"] not in store.sessions()
    assert (await world.http(session["url"] + "js/Client.js", method="HEAD")).code == 404


# --- nothing else is served on the cookie route ------------------------------------------------------
@pytest.mark.parametrize("page", ["echo-headers", "js/echo-headers.js", "connect.html", "c/"])
async def test_other_paths_are_404_and_never_reach_xpra(
    world: World, session: dict[str, Any], page: str
) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(session["url"] + page)
    assert response.code == 404, (page, response.code)
    assert response.headers["Content-Type"].startswith("application/json")
    assert await world.backend_requests(session["id"]) == before


async def test_an_authenticated_websocket_on_the_cookie_route_is_404(
    world: World, session: dict[str, Any]
) -> None:
    before = await world.backend_ws_count(session["id"])
    for path in (session["url"], session["url"] + "some/path"):
        with pytest.raises(HTTPClientError) as caught:
            await world.ws(path, token=True, subprotocols=["binary"])
        assert caught.value.code == 404, path
    assert await world.backend_ws_count(session["id"]) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("page", ["", "echo-headers"])
async def test_other_methods_are_405_and_never_reach_xpra(
    world: World, session: dict[str, Any], method: str, page: str
) -> None:
    before = await world.backend_requests(session["id"])
    response = await world.http(session["url"] + page, method=method)
    assert response.code == 405, (response.code, response.body)
    assert await world.backend_requests(session["id"]) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_405_names_the_allowed_methods(world: World, session: dict[str, Any], method: str) -> None:
    response = await world.http(session["url"], method=method)
    assert response.code == 405
    allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
    assert allow == {"GET", "HEAD"}, dict(response.headers)


async def test_unknown_valid_id_is_404(world: World, session: dict[str, Any]) -> None:
    assert session["id"] != UNUSED_ID
    base = f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/"
    for path in (base, f"{base}index.html", f"{base}echo-headers"):
        response = await world.http(path)
        assert response.code == 404, (path, response.code)
    assert (await world.http(base, method="HEAD")).code == 404
    assert UNUSED_ID not in world.settings["ffsystemd_capabilities"].sessions()


@pytest.mark.parametrize("bad_id", list(MALFORMED_IDS.values()), ids=list(MALFORMED_IDS))
async def test_malformed_ids_are_404_without_a_connection(
    world: World, session: dict[str, Any], bad_id: str
) -> None:
    before = await world.backend_requests(session["id"])
    base = f"{world.base_url}firefox-launcher/session/{bad_id}"
    capability = "A" * CAPABILITY_CHARS
    for path in (f"{base}/", f"{base}/index.html", f"{base}/echo-headers", f"{base}/c/{capability}/"):
        response = await world.http(path)
        assert response.code == 404, (path, response.code, response.body[:200])
    response = await world.http(base)
    if bad_id == MALFORMED_IDS["escaped-hex"]:
        # Tornado hands the slash handler the unescaped id, a well-formed one: it adds the slash, and
        # the slash form (whose raw path does not match the session route) is then 404.
        assert response.code == 302
        assert response.headers["Location"] == f"{base}/"
    else:
        assert response.code == 404, (base, response.code, response.body[:200])
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(f"{base}/", token=True)
    assert caught.value.code == 404
    assert await world.backend_requests(session["id"]) == before


async def test_slashless_session_url_redirects_to_the_slash_form(
    world: World, session: dict[str, Any]
) -> None:
    bare = session["url"].rstrip("/")
    response = await world.http(bare)
    assert response.code == 302
    assert response.headers["Location"] == session["url"]
    response = await world.http(f"{bare}?keyboard_layout=de")
    assert response.code == 302
    assert response.headers["Location"] == f"{session['url']}?keyboard_layout=de"


async def test_a_cleaned_up_session_is_404(world: World, session: dict[str, Any]) -> None:
    client = await world.client_path(session)
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 200
    await world.cleanup(session["id"])
    assert (await world.http(session["url"])).code == 404
    assert (await world.http(client + "js/echo-headers.js", token=False)).code == 404
    assert session["id"] not in world.settings["ffsystemd_capabilities"].sessions()
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(client)
    assert caught.value.code == 404


async def test_a_session_whose_xpra_exited_is_404(world: World, session: dict[str, Any]) -> None:
    client = await world.client_path(session)
    os.kill(session["main_pid"], signal.SIGTERM)  # the fake Xpra this test's server started

    async def stopped() -> bool:
        return (await world.status(session["id"]))["state"] not in ("running", "starting")

    await eventually(stopped, what="the session to stop after its Xpra exited")
    assert (await world.http(session["url"])).code == 404
    with pytest.raises(HTTPClientError) as caught:
        await world.ws(client)
    assert caught.value.code == 404
    await world.cleanup(session["id"])


# --- authentication and authorization ---------------------------------------------------------------
async def test_without_token_the_page_is_refused(world: World, session: dict[str, Any]) -> None:
    before = await world.backend_requests(session["id"])
    for path in (session["url"], f"{session['url']}index.html", session["url"] + "echo-headers"):
        response = await world.http(path, token=False)
        if response.code == 302:
            assert urlsplit(response.headers["Location"]).path == f"{world.base_url}login"
        else:
            assert response.code == 403, (path, response.code)
    assert (await world.http(session["url"].rstrip("/"), token=False)).code in (302, 403)
    assert (await world.http(session["url"], method="HEAD", token=False)).code in (302, 403)
    for method in ("POST", "PUT", "DELETE"):
        assert (await world.http(session["url"], method=method, token=False)).code == 403
    assert await world.backend_requests(session["id"]) == before
    assert session["id"] not in world.settings["ffsystemd_capabilities"].sessions()


async def test_without_token_websocket_is_403(world: World, session: dict[str, Any]) -> None:
    before = await world.backend_ws_count(session["id"])
    for path in (session["url"], f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/"):
        with pytest.raises(HTTPClientError) as caught:
            await world.ws(path)
        assert caught.value.code == 403, path
    assert await world.backend_ws_count(session["id"]) == before


@pytest.mark.parametrize("serverapp_traits", [{"authorizer_class": DenyingAuthorizer}])
async def test_a_user_the_authorizer_denies_gets_403(
    world: World, denying_authorizer: type[DenyingAuthorizer], serverapp_traits: dict[str, Any]
) -> None:
    assert isinstance(world.settings["authorizer"], DenyingAuthorizer)
    session = await world.launch()
    assert (await world.http(session["url"])).code == 302
    denying_authorizer.deny = {"execute"}
    denying_authorizer.asked = []
    store = world.settings["ffsystemd_capabilities"]
    minted = len(store._grants.get(session["id"], []))
    assert (await world.http(session["url"])).code == 403  # minting a capability needs execute
    assert ("execute", "ffsystemd") in denying_authorizer.asked
    assert len(store._grants.get(session["id"], [])) == minted
    assert (await world.http(session["url"], method="HEAD")).code == 200  # HEAD only reads
    denying_authorizer.deny = {"read", "execute"}
    assert (await world.http(session["url"], method="HEAD")).code == 403
    assert ("read", "ffsystemd") in denying_authorizer.asked
    denying_authorizer.deny = set()
    assert (await world.http(session["url"])).code == 302


@pytest.mark.parametrize("serverapp_traits", [{"authorizer_class": DenyingAuthorizer}])
async def test_unauthenticated_requests_never_reach_the_authorizer(
    world: World, denying_authorizer: type[DenyingAuthorizer], serverapp_traits: dict[str, Any]
) -> None:
    session = await world.launch()
    denying_authorizer.users = []
    for path in (session["url"], f"{world.base_url}firefox-launcher/session/{UNUSED_ID}/"):
        response = await world.http(path, token=False)
        assert response.code in (302, 403)
    assert None not in denying_authorizer.users


# --- base_url variants ----------------------------------------------------------------------------------
# jupyter_server accepts base_url "/user/al ice/" too, but serves nothing under it (tornado matches routes
# against the still-escaped request path, "/user/al%20ice/..."): JupyterHub's escaped form is what counts.
@pytest.mark.parametrize(
    "jp_base_url", ["/", "/user/alice/", "/user/a%20b/", "/a%40b/", "/user/a@b/", "/user/%C3%A9l%C3%A8ve/"]
)
async def test_page_files_and_websocket_under_base_url(world: World, jp_base_url: str) -> None:
    assert world.base_url == jp_base_url
    session = await world.launch()
    assert session["url"] == f"{jp_base_url}firefox-launcher/session/{session['id']}/"
    location = await world.open_page(session)
    assert location.startswith(session["url"] + "c/")
    response = await world.http(location, token=False)
    assert response.code == 200
    assert b"ws fake xpra" in response.body
    client = urlsplit(location).path
    assert f"http://127.0.0.1:{world.port}{client}" in response.headers["Content-Security-Policy"]
    assert f"ws://127.0.0.1:{world.port}{client}" in response.headers["Content-Security-Policy"]
    echoed = await world.http(client + "js/echo-headers.js", token=False)
    headers = dict(json.loads(echoed.body)["headers"])
    assert headers["X-Forwarded-Prefix"] == session["url"].rstrip("/")
    assert (await world.http(session["url"].rstrip("/"))).headers["Location"] == session["url"]
    conn = await world.ws(client, subprotocols=["binary"])
    await conn.write_message(b"\x00\x01binary", binary=True)
    assert await recv(conn) == b"\x00\x01binary"
    await conn.write_message("text")
    assert await recv(conn) == "text"
