"""The session page: index.html rewriting, CSP hashes, the policy, static file types (pure)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from ffsystemd.session_page import (
    CLIENT_SHIM_JS,
    CLIENT_SHIM_PATH,
    CLIENT_VIEW_JS,
    CLIENT_VIEW_PATH,
    LOCKED_DOWN_POLICY,
    OUR_SCRIPTS,
    PageError,
    content_security_policy,
    inline_script_hashes,
    is_index,
    rewrite_index,
    security_headers,
    static_content_type,
)

XPRA_INDEX = Path("/usr/share/xpra/www/index.html")


def sha(text: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode()


def test_the_shim_goes_right_after_head_before_every_script() -> None:
    page, hashes = rewrite_index(
        b'<html><HEAD lang="x"><script src="a.js"></script></HEAD><body>x</body></html>'
    )
    assert page.startswith(
        b'<html><HEAD lang="x">\n<script src="' + CLIENT_SHIM_PATH.encode() + b'"></script>\n'
    )
    assert page.index(CLIENT_SHIM_PATH.encode()) < page.index(b"a.js")
    assert hashes == []


def test_our_scripts_load_in_order_before_the_clients_and_are_served_as_files() -> None:
    page, hashes = rewrite_index(b"<html><head><script src='js/Client.js'></script></head></html>")
    positions = [page.index(f'<script src="{path}"></script>'.encode()) for path in OUR_SCRIPTS]
    assert list(OUR_SCRIPTS) == [CLIENT_SHIM_PATH, CLIENT_VIEW_PATH]
    assert positions == sorted(positions) and positions[-1] < page.index(b"js/Client.js")
    assert hashes == []  # nothing inline: the policy needs no hash and no 'unsafe-inline' for them
    assert all(path.startswith("_ffsystemd/") and path.endswith(".js") for path in OUR_SCRIPTS)
    assert OUR_SCRIPTS[CLIENT_VIEW_PATH] == CLIENT_VIEW_JS
    assert b"fill_screen" in CLIENT_VIEW_JS and b'addEventListener("paste"' in CLIENT_VIEW_JS


def test_inline_scripts_are_hashed_as_served_and_src_scripts_are_not() -> None:
    html = (
        b"<head></head><script>var a = 1;</script>"
        b"<SCRIPT type='text/javascript'>\n b()\n</SCRIPT><script src=x.js>ignored</script>"
    )
    _page, hashes = rewrite_index(html)
    assert hashes == [sha(b"var a = 1;"), sha(b"\n b()\n")]


def test_a_page_without_head_is_refused() -> None:
    with pytest.raises(PageError):
        rewrite_index(b"<html><body><script>x()</script></body></html>")


@pytest.mark.skipif(not XPRA_INDEX.exists(), reason="Xpra's HTML5 client is not installed")
def test_xpras_own_index_has_one_inline_script() -> None:
    page, hashes = rewrite_index(XPRA_INDEX.read_bytes())
    assert len(hashes) == 1
    assert list(inline_script_hashes(page)) == hashes
    assert page.index(CLIENT_SHIM_PATH.encode()) < page.index(b"js/lib/es6-shim.js")


def test_the_policy_is_limited_to_the_capability_path() -> None:
    policy = content_security_policy(
        "http", "127.0.0.1:8888", "/user/a%40b/firefox-launcher/session/x/c/CAP/", ["sha256-h"]
    )
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    files = "http://127.0.0.1:8888/user/a%40b/firefox-launcher/session/x/c/CAP/"
    assert directives["sandbox"] == "allow-scripts"
    assert directives["script-src"] == f"{files} 'sha256-h'"
    assert directives["connect-src"] == "ws://127.0.0.1:8888/user/a%40b/firefox-launcher/session/x/c/CAP/"
    assert directives["frame-ancestors"] == "'self'"
    assert "unsafe-eval" not in policy and "'self'" not in directives["script-src"]


def test_https_gives_https_and_wss_sources() -> None:
    policy = content_security_policy("https", "example.org", "/c/CAP/")
    assert "script-src https://example.org/c/CAP/" in policy
    assert "connect-src wss://example.org/c/CAP/" in policy


@pytest.mark.parametrize("host", ["evil; script-src *", "a b", "", "x/y", "host:port"])
def test_a_host_that_could_change_the_policy_is_refused(host: str) -> None:
    with pytest.raises(PageError):
        content_security_policy("http", host, "/c/CAP/")


def test_policy_separators_in_the_path_are_escaped() -> None:
    policy = content_security_policy("http", "h", "/a;b,c d/c/CAP/")
    assert policy.count(";") == LOCKED_DOWN_POLICY.count(";") + policy.count(";") - LOCKED_DOWN_POLICY.count(
        ";"
    )
    assert "/a%3Bb%2Cc%20d/" in policy


def test_security_headers() -> None:
    headers = security_headers("P", same_origin_only=True)
    assert headers == {
        "Content-Security-Policy": "P",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    assert "Cross-Origin-Resource-Policy" not in security_headers("P", same_origin_only=False)
    assert LOCKED_DOWN_POLICY.startswith("sandbox;") and "default-src 'none'" in LOCKED_DOWN_POLICY


@pytest.mark.parametrize(
    "path,expected",
    [
        ("js/Client.js", "text/javascript; charset=utf-8"),
        ("css/client.css", "text/css; charset=utf-8"),
        ("icons/materialicons-regular.woff2", "font/woff2"),
        ("favicon.png", "image/png"),
        ("connect.html", None),
        ("index.html", None),
        ("js/../index.js", None),
        ("js//a.js", None),
        ("/etc/passwd.js", None),
        (".hidden.js", None),
        ("Info", None),
        ("js/a.exe", None),
    ],
)
def test_static_files(path: str, expected: str | None) -> None:
    assert static_content_type(path) == expected


def test_the_index_and_the_shim() -> None:
    assert is_index("") and is_index("index.html") and not is_index("connect.html")
    assert b"NoWorker" in CLIENT_SHIM_JS and b"result: false" in CLIENT_SHIM_JS
