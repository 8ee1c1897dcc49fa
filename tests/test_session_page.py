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
    UNUSED_SCRIPTS,
    VIDEO_SCRIPTS,
    PageError,
    can_inline,
    content_security_policy,
    inline_css,
    inline_script_hashes,
    inline_style_hashes,
    is_index,
    page_scripts_dropped,
    rewrite_index,
    security_headers,
    static_content_type,
    video_enabled,
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
    assert list(OUR_SCRIPTS)[:2] == [CLIENT_SHIM_PATH, CLIENT_VIEW_PATH]
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


# --- leaner pages: scripts dropped or inline -------------------------------------------------------
LIVE_AND_COMMENTED = (
    b"<html><head><link rel=stylesheet href='css/a.css'>"
    b'<script src="js/a.js"></script><script type="text/javascript" src="./js/b.js"></script>'
    b'<!-- <script src="js/a.js"></script> <script src="js/gone.js"></script> -->'
    b'<script src="js/gone.js"></script><script src="js/unsafe.js"></script>'
    b"<script>var t = \"<link href='x.css'>\";</script></head></html>"
)


def test_a_dropped_script_is_removed_and_an_inlined_one_holds_exactly_the_file() -> None:
    inline = {"js/a.js": b"var a = '<b>';\n", "js/b.js": b"var b;", "js/unsafe.js": b"x('</SCRIPT>')"}
    page, hashes = rewrite_index(LIVE_AND_COMMENTED, "/s/", drop=["js/gone.js"], inline=inline)
    live, comment, rest = page.partition(b"<!--")[0], *page.partition(b"<!--")[2].partition(b"-->")[::2]
    assert b"<script>var a = '<b>';\n</script><script>var b;</script>" in live
    assert b"gone.js" not in live + rest and b"a.js" not in live + rest  # removed, inlined
    # Inside an HTML comment nothing is touched (no file's text is put where `-->` could end it).
    assert comment == b' <script src="js/a.js"></script> <script src="js/gone.js"></script> '
    # A file that could end its element early stays a file, pointed to the static route.
    assert b'<script src="/s/js/unsafe.js"></script>' in rest
    assert b"href='/s/css/a.css'" in live
    assert b"<link href='x.css'>" in rest  # an inline script's text is not markup: not rewritten
    assert hashes == [sha(b"var a = '<b>';\n"), sha(b"var b;"), sha(b"var t = \"<link href='x.css'>\";")]
    assert list(inline_script_hashes(page)) == hashes


def test_our_scripts_can_be_inlined_first_too() -> None:
    page, hashes = rewrite_index(b"<head><script src='js/Client.js'></script></head>", inline=OUR_SCRIPTS)
    assert page.startswith(b"<head>\n<script>" + CLIENT_SHIM_JS + b"</script>\n<script>" + CLIENT_VIEW_JS)
    assert hashes[:2] == [sha(CLIENT_SHIM_JS), sha(CLIENT_VIEW_JS)]
    assert b"<script src='js/Client.js'></script>" in page


@pytest.mark.parametrize(
    "body,ok",
    [
        (b"var a = 1;", True),
        (b"var s = '</script>';", False),
        (b"var s = '</ScRiPt ';", False),
        (b"var s = '<!-- <script>';", False),  # would make the parser skip our `</script>`
        (b"var a = 1;\r\n", False),  # the parser turns CR LF into LF: the hash would differ
        (b"var a = '\0';", False),
        (b"var s = '<script>';", True),
    ],
)
def test_what_can_be_inlined(body: bytes, ok: bool) -> None:
    assert can_inline(body) is ok


def test_the_dropped_scripts_depend_only_on_video() -> None:
    assert video_enabled({}) and video_enabled({"video": "true"}) and video_enabled({"video": "1"})
    assert not any(video_enabled({"video": v}) for v in ("false", "off", "no", "0", "FALSE"))
    assert page_scripts_dropped(True) == frozenset(UNUSED_SCRIPTS)
    assert page_scripts_dropped(False) == frozenset(UNUSED_SCRIPTS) | set(VIDEO_SCRIPTS)


@pytest.mark.skipif(not XPRA_INDEX.exists(), reason="Xpra's HTML5 client is not installed")
def test_every_dropped_script_is_one_xpras_page_loads() -> None:
    www = XPRA_INDEX.parent
    for path in [*UNUSED_SCRIPTS, *VIDEO_SCRIPTS]:
        assert f'src="{path}"'.encode() in XPRA_INDEX.read_bytes() and (www / path).is_file(), path
    page, _ = rewrite_index(XPRA_INDEX.read_bytes(), drop=page_scripts_dropped(False))
    live = b"".join(part.split(b"-->")[-1] for part in page.split(b"<!--"))
    assert not any(path.encode() in live for path in [*UNUSED_SCRIPTS, *VIDEO_SCRIPTS])
    assert b'src="js/Client.js"' in live and b'src="js/lib/zlib.js"' in live


# --- stylesheets inline ---------------------------------------------------------------------------
STYLED = (
    b"<html><head><link rel=\"stylesheet\" href=\"css/a.css\"><link rel='stylesheet' href='./css/b.css'/>"
    b'<link rel="stylesheet" href="css/imports.css"><link rel="icon" href="favicon.png">'
    b'<!-- <link rel="stylesheet" href="css/a.css"> --></head></html>'
)


def test_a_stylesheet_becomes_a_style_with_its_urls_pointed_to_the_static_route() -> None:
    styles = {
        "css/a.css": b"body { background: url(../background.png) } .x { src: url('../icons/f.woff') }",
        "css/b.css": b'p { background: url("data:image/png;base64,AA") }',
        "css/imports.css": b"@import url(a.css);",
    }
    page, _ = rewrite_index(STYLED, "/s/", styles=styles)
    a = b'body { background: url("/s/background.png") } .x { src: url("/s/icons/f.woff") }'
    b = b'p { background: url("data:image/png;base64,AA") }'
    assert page.count(b"<style>") == 2
    assert b"<style>" + a + b"</style><style>" + b + b"</style>" in page
    assert b'<link rel="stylesheet" href="/s/css/imports.css">' in page  # an @import stays a file
    assert b'<link rel="icon" href="/s/favicon.png">' in page
    assert b'<!-- <link rel="stylesheet" href="css/a.css"> -->' in page  # comments are left alone
    assert list(inline_style_hashes(page)) == [sha(a), sha(b)]
    assert list(inline_style_hashes(b"<script>var s = '<style>x</style>';</script>")) == []


@pytest.mark.parametrize(
    "css",
    [
        b"a { b: c } </style><script>x()</script>",
        b"a { background: url(../../../etc/x.png) }",  # out of the client's files
        b"a { background: url(https://elsewhere.example/x.png) }",
        b"a { background: url(/elsewhere/x.png) }",
        b"a { b: c }\r\n",
        b"a { content: '<script>' }",
        b"@import 'other.css';",
    ],
)
def test_a_stylesheet_that_cannot_be_inline_stays_a_file(css: bytes) -> None:
    assert inline_css("css/a.css", css, b"/s/") is None


def test_style_hashes_go_to_style_src_elem_only() -> None:
    policy = content_security_policy("http", "h", "/c/CAP/", ["sha256-s"], "/st/", ["sha256-c"])
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["style-src-elem"] == "http://h/c/CAP/ http://h/st/ 'sha256-c'"
    assert directives["script-src"] == "http://h/c/CAP/ http://h/st/ 'sha256-s'"
    assert "'sha256-c'" not in directives["style-src"] + directives["style-src-attr"]
