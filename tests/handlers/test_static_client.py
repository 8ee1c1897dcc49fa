"""The client's static files from the Jupyter server (`.../firefox-launcher/client/<version>/...`).

Read once at start-up from Xpra's installed client (here: the real /usr/share/xpra/www, or a
small directory a test builds with hostile entries), served without cookies, cacheable for a
year, under a locked-down policy; the session's page comes from memory too and points there,
so no request of the page or its files reaches the session's (fake) Xpra.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY

from ffsystemd.client_files import HTML5_DIRS, INLINE_SCRIPT_MAX_BYTES, ClientFiles, load_client_files
from ffsystemd.session_page import (
    CLIENT_SHIM_JS,
    CLIENT_SHIM_PATH,
    CLIENT_VIEW_JS,
    CLIENT_VIEW_PATH,
    OUR_SCRIPTS,
    UNUSED_SCRIPTS,
)

from .proxy_world import *  # noqa: F403
from .proxy_world import World

REAL_WWW = next((d for d in HTML5_DIRS if (d / "index.html").is_file()), None)
PAGE = (
    b"<!DOCTYPE html><html><head><title>xpra</title>"
    b'<link rel="stylesheet" href="css/client.css">'
    b'<script src="js/Client.js"></script><script src="./js/inside.js"></script>'
    b'<script src="https://elsewhere.example/x.js"></script></head>'
    b"<body><script>var inline = 1;</script></body></html>\n"
)


def sha(text: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode()


def make_www(root: Path) -> Path:
    """A client directory with what must be served and what must not."""
    www = root / "www"
    (www / "js").mkdir(parents=True)
    (www / "css").mkdir()
    (www / "index.html").write_bytes(PAGE)
    (www / "js" / "Client.js").write_bytes(b"var client = 'ours';\n")
    (www / "css" / "client.css").write_bytes(b"body { margin: 0 }\n")
    (www / "js" / "inside.js").symlink_to("Client.js")  # a link inside: served
    secret = root / "secret.js"
    secret.write_bytes(b"secret outside the client\n")
    (www / "js" / "outside.js").symlink_to(secret)  # a link out of the directory: never
    (www / "linked").symlink_to(root)  # a linked directory: never entered
    (www / "connect.html").write_bytes(b"<html>not served</html>")
    (www / "notes.txt").write_bytes(b"not a client file type")
    writable = www / "js" / "writable.js"
    writable.write_bytes(b"anyone in the group may change me\n")
    os.chmod(writable, 0o664)
    return www


@pytest.fixture
def www(tmp_path: Path) -> Path:
    return make_www(tmp_path)


@pytest.fixture
def client_dirs(www: Path) -> tuple[Path, ...]:
    return (www,)


def files_of(world: World) -> ClientFiles:
    files = world.settings["ffsystemd_client_files"]
    assert files is not None
    return files


def static_url(world: World, path: str) -> str:
    return files_of(world).url_path(world.base_url) + path


def assert_locked_down(response: Any) -> None:
    policy = response.headers["Content-Security-Policy"]
    assert policy.split(";")[0] == "sandbox"  # opened as a page, nothing runs
    assert "default-src 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    names = {name.lower() for name in response.headers}
    assert "set-cookie" not in names
    assert not any(name.startswith("access-control-") for name in names)


# --- the static route ------------------------------------------------------------------------------
async def test_files_are_served_without_credentials_cacheable_and_locked_down(world: World) -> None:
    response = await world.http(static_url(world, "js/Client.js"), token=False)
    assert response.code == 200, response.body
    assert response.body == b"var client = 'ours';\n"
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    cache = {part.strip() for part in response.headers["Cache-Control"].split(",")}
    assert cache == {"public", "max-age=31536000", "immutable"}
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])
    assert_locked_down(response)
    css = await world.http(static_url(world, "css/client.css"), token=False)
    assert (css.code, css.headers["Content-Type"]) == (200, "text/css; charset=utf-8")
    shim = await world.http(static_url(world, CLIENT_SHIM_PATH), token=False)
    assert (shim.code, shim.body) == (200, CLIENT_SHIM_JS)
    view = await world.http(static_url(world, CLIENT_VIEW_PATH), token=False)
    assert (view.code, view.body) == (200, CLIENT_VIEW_JS)


async def test_head_answers_the_length_without_a_body(world: World) -> None:
    response = await world.http(static_url(world, "js/Client.js"), "HEAD", token=False)
    assert response.code == 200
    assert response.headers["Content-Length"] == str(len(b"var client = 'ours';\n"))
    assert response.body == b""
    assert "immutable" in response.headers["Cache-Control"]


async def test_a_known_etag_is_304(world: World) -> None:
    first = await world.http(static_url(world, "js/Client.js"), token=False)
    again = await world.http(
        static_url(world, "js/Client.js"), token=False, headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.code == 304
    assert again.body == b""
    other = await world.http(static_url(world, "js/Client.js"), token=False, headers={"If-None-Match": '"x"'})
    assert other.code == 200


async def test_a_link_inside_the_directory_is_served(world: World) -> None:
    response = await world.http(static_url(world, "js/inside.js"), token=False)
    assert (response.code, response.body) == (200, b"var client = 'ours';\n")


@pytest.mark.parametrize(
    "path",
    [
        "js/outside.js",  # a symlink out of the client's directory
        "linked/secret.js",  # through a symlinked directory
        "js/writable.js",  # group-writable: not a file an installer left
        "connect.html",
        "index.html",
        "notes.txt",
        "js/missing.js",
        "",
        "js/",
        "js/../js/Client.js",
        "js/%2e%2e/js/Client.js",
        "../../api/contents",
        "%2e%2e/%2e%2e/api/contents",
        "js//Client.js",
        "/etc/passwd",
        "js/Client.js/",
    ],
)
async def test_anything_else_is_404(world: World, path: str) -> None:
    response = await world.http(static_url(world, path), token=False)
    assert response.code == 404, (path, response.code, response.body[:80])
    assert json.loads(response.body)["message"]
    assert_locked_down(response)


async def test_answers_are_counted(world: World) -> None:
    def count(answer: str) -> float:
        return REGISTRY.get_sample_value("ffsystemd_client_files_total", {"answer": answer}) or 0.0

    before = {answer: count(answer) for answer in ("200", "304", "404")}
    ok = await world.http(static_url(world, "js/Client.js"), token=False)
    await world.http(
        static_url(world, "js/Client.js"), token=False, headers={"If-None-Match": ok.headers["ETag"]}
    )
    await world.http(static_url(world, "js/missing.js"), token=False)
    assert {answer: count(answer) - before[answer] for answer in before} == {"200": 1, "304": 1, "404": 1}


async def test_another_version_is_404(world: World) -> None:
    version = files_of(world).version
    for other in ("0" * len(version), version[:-1], "latest", ".."):
        path = f"{world.base_url}firefox-launcher/client/{other}/js/Client.js"
        assert (await world.http(path, token=False)).code == 404, other


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405(world: World, method: str) -> None:
    response = await world.http(static_url(world, "js/Client.js"), method, token=False)
    assert response.code == 405
    assert response.headers["Allow"] == "GET, HEAD"


async def test_a_body_is_413(world: World) -> None:
    response = await world.http(
        static_url(world, "js/Client.js"), token=False, headers={"Content-Length": "5"}, body=b"hello"
    )
    assert response.code == 413


async def test_the_version_names_the_content(www: Path) -> None:
    first = load_client_files(www)
    assert load_client_files(www).version == first.version
    (www / "js" / "Client.js").write_bytes(b"var client = 'changed';\n")
    assert load_client_files(www).version != first.version
    assert sorted(first.files) == sorted([*OUR_SCRIPTS, "css/client.css", "js/Client.js", "js/inside.js"])


# --- the page under the capability ----------------------------------------------------------------------
async def test_the_page_comes_from_memory_and_points_to_the_static_route(
    world: World, session: dict[str, Any]
) -> None:
    location = await world.open_page(session)
    before = await world.backend_requests(session["id"])
    response = await world.http(location, token=False)
    assert response.code == 200
    static = files_of(world).url_path(world.base_url)
    body = response.body
    head = body.index(b"<head>") + len(b"<head>")
    # Our scripts first, then the client's, each inline: one document, no request per script.
    ours = b"".join(b"<script>" + script + b"</script>\n" for script in OUR_SCRIPTS.values())
    assert body[body.index(b"<script", head) :].startswith(ours)
    client_js = b"<script>var client = 'ours';\n</script>"
    assert body.count(client_js) == 2  # js/Client.js and the link to it, js/inside.js
    assert b"js/Client.js" not in body and b"js/inside.js" not in body
    assert b"<style>body { margin: 0 }\n</style>" in body and b"css/client.css" not in body
    assert b'src="https://elsewhere.example/x.js"' in body  # not ours to move (and the CSP refuses it)
    policy = response.headers["Content-Security-Policy"]
    origin = f"http://127.0.0.1:{world.port}"
    client = urlsplit(location).path
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src")).split()[1:]
    assert script_src[:2] == [f"{origin}{client}", f"{origin}{static}"]
    inline = [*OUR_SCRIPTS.values(), b"var client = 'ours';\n", b"var inline = 1;"]
    assert sorted(script_src[2:]) == sorted({f"'{sha(text)}'" for text in inline})  # each once
    assert "'unsafe-inline'" not in script_src
    style_src = next(p for p in policy.split(";") if p.strip().startswith("style-src-elem")).split()[1:]
    css_hash = sha(b"body { margin: 0 }\n")
    assert style_src == [f"{origin}{client}", f"{origin}{static}", f"'{css_hash}'"]
    assert f"connect-src ws://127.0.0.1:{world.port}{client}" in policy  # the websocket stays per session
    assert "elsewhere.example" not in policy
    assert response.headers["Cache-Control"] == "no-store"  # the page itself is per session
    # A file the page's scripts ask for next to the page comes from memory too.
    icon = await world.http(client + "js/Client.js", token=False)
    assert (icon.code, icon.body) == (200, b"var client = 'ours';\n")
    for missing in ("js/echo-headers.js", "background.png", "js/outside.js"):  # the fake has the first
        assert (await world.http(client + missing, token=False)).code == 404, missing
    assert await world.backend_requests(session["id"]) == before


# --- the real client's files ------------------------------------------------------------------------------
@pytest.fixture
def real_www() -> Iterator[Path]:
    if REAL_WWW is None:
        pytest.skip("Xpra's HTML5 client is not installed")
    yield REAL_WWW


@pytest.mark.parametrize("client_dirs", [(REAL_WWW,) if REAL_WWW else ()])
async def test_every_file_the_real_page_names_is_served_as_on_disk(
    world: World, session: dict[str, Any], real_www: Path, client_dirs: tuple[Path, ...]
) -> None:
    page = await world.http(await world.open_page(session), token=False)
    assert page.code == 200
    static = files_of(world).url_path(world.base_url)
    # Only the tags the browser loads (commented-out ones would 404 on Xpra too).
    live = re.sub(rb"<!--.*?-->", b"", page.body, flags=re.S)
    live_tags = re.sub(rb"(<script>).*?(</script>)", rb"\1\2", live, flags=re.S)  # not the inline text
    urls = re.findall(rb'<(?:script|link)\b[^>]*\s(?:src|href)="([^"]+)"', live_tags)
    ours = [u.decode() for u in urls]
    assert ours[0] == f"{static}favicon.png"  # then the scripts too big to be inline
    assert all(u.startswith(static) for u in ours), [u for u in ours if not u.startswith(static)]
    big = [u[len(static) :] for u in ours[1:]]
    assert all((real_www / path).stat().st_size >= INLINE_SCRIPT_MAX_BYTES for path in big), big
    # Every other script of Xpra's page is inline, exactly as on disk (but the ones not needed).
    xpra = re.sub(rb"<!--.*?-->", b"", (real_www / "index.html").read_bytes(), flags=re.S)
    named = [u.decode() for u in re.findall(rb'<script\b[^>]*\ssrc="([^"]+)"', xpra)]
    assert len(named) > 20
    inline = re.findall(rb"<script>(.*?)</script>", live, flags=re.S)
    for path in named:
        if path in UNUSED_SCRIPTS:
            assert (real_www / path).read_bytes() not in inline, path
        elif f"{static}{path}" not in ours:
            assert (real_www / path).read_bytes() in inline, path
    expected = len(named) - len(UNUSED_SCRIPTS) - len(big) + len(OUR_SCRIPTS) + 1  # + Xpra's own
    assert len(inline) == expected > len(OUR_SCRIPTS) + 1
    # The stylesheets too, their url()s pointed to the static route, where those files are.
    styles = re.findall(rb"<style>(.*?)</style>", live_tags, flags=re.S)  # not in a script
    assert len(styles) == len(re.findall(rb'rel="stylesheet"', xpra)) == 5
    for url in re.findall(rb'url\("([^"]+)"\)', b"".join(styles)):
        assert url.decode().startswith(static), url
        relative = url.decode()[len(static) :]
        expected = 200 if (real_www / relative).is_file() else 404  # its client.css names a missing png
        assert (await world.http(url.decode(), token=False)).code == expected, url
    for url in ours:
        response = await world.http(url, token=False)
        assert response.code == 200, url
        relative = url[len(static) :]
        if relative not in OUR_SCRIPTS:
            assert response.body == (real_www / relative).read_bytes(), url
    assert await world.backend_requests(session["id"]) == [["GET", "/"]] * len(
        await world.backend_requests(session["id"])
    )  # only the launch's readiness probes reached Xpra
