"""How the session's Xpra HTML5 client is served: opaque origin, strict CSP, rewritten index (pure).

Xpra's client inserts text it receives (window titles a web page chooses) into its page as
HTML. Whatever runs there must not act with the user's Jupyter credentials, so:

* every response under a session carries `Content-Security-Policy: sandbox allow-scripts`:
  the page runs in an opaque origin, where no request carries Jupyter's cookies and
  `parent.document`, `/api/...` with the user's login and Jupyter's cookies are out of reach
  (the Firefox tab's iframe is sandboxed the same way);
* the same policy allows only the client's own files under the session's capability path, the
  hash of each inline script of its index.html (computed from the file served), inline style
  attributes (the client needs them), `data:` images (frames arrive so) and a websocket to the
  same path; no `eval`, no inline event handlers, no other frame may embed it
  (`frame-ancestors 'self'`), no `<base>`, no form submission;
* `window.Worker` is replaced before the client's scripts run (CLIENT_SHIM_JS, the first
  script we insert into index.html): in an opaque origin the client's `new Worker(...)`
  throws and it never catches that; our stand-in answers its capability probe "no", so it
  falls back to its main-thread protocol (`Worker = undefined` is not enough: measured).

Speed: Chromium caches nothing an opaque-origin document loads (measured), so every launch
fetched the client's ~30 scripts again. The page built by ffsystemd.client_files holds every
script the client needs inline instead (one document; each inline script allowed by the hash of
exactly its served text, never 'unsafe-inline') and none it does not need under our pinned
options (UNUSED_SCRIPTS; VIDEO_SCRIPTS when `video` is off).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

CLIENT_SHIM_PATH = "_ffsystemd/client-shim.js"
"""Where, under the capability path, our shim is served (by us, never by Xpra)."""

CLIENT_SHIM_JS = (Path(__file__).parent / "client_shim.js").read_bytes()
"""ffsystemd/client_shim.js: the Worker stand-in and text-only titles (see the module docstring)."""

CLIENT_VIEW_PATH = "_ffsystemd/client-view.js"
CLIENT_VIEW_JS = (Path(__file__).parent / "client_view.js").read_bytes()
"""ffsystemd/client_view.js: Firefox's window fills the frame without Xpra's title bar, and a
paste reaches the X clipboard before its key press (see the file's comment)."""

OUR_SCRIPTS: dict[str, bytes] = {CLIENT_SHIM_PATH: CLIENT_SHIM_JS, CLIENT_VIEW_PATH: CLIENT_VIEW_JS}
"""Our own scripts, by their path under the capability path, in the order the page loads them
(before every script of the client). Served by us, never by Xpra."""
OUR_SCRIPTS["_ffsystemd/client-scale.js"] = (Path(__file__).parent / "client_scale.js").read_bytes()  # HiDPI

CONTENT_TYPES: dict[str, str] = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "png": "image/png",
    "ico": "image/x-icon",
    "gif": "image/gif",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "svg": "image/svg+xml",
    "ttf": "font/ttf",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "map": "application/json",
}
"""The client's static files we pass on, by extension (the type is ours, not Xpra's)."""

_STATIC_RE = re.compile(r"\A(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*\.([a-z0-9]+)\Z")
_HOST_RE = re.compile(r"\A(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
_HEAD_RE = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)
_SCRIPT_RE = re.compile(rb"<script(\s[^>]*)?>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_SRC_ATTR_RE = re.compile(rb"\ssrc\s*=", re.IGNORECASE)
_SRC_VALUE_RE = re.compile(rb"\ssrc\s*=\s*([\"'])([^\"'<>]*)\1", re.IGNORECASE)
_TAG_RE = re.compile(rb"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_STYLESHEET_RE = re.compile(rb"<link\b[^>]*\srel\s*=\s*([\"']?)stylesheet\1[^>]*>", re.IGNORECASE)
_HREF_VALUE_RE = re.compile(rb"\shref\s*=\s*([\"'])([^\"'<>]*)\1", re.IGNORECASE)
_STYLE_RE = re.compile(rb"<style(\s[^>]*)?>(.*?)</style\s*>", re.IGNORECASE | re.DOTALL)
_CSS_URL_RE = re.compile(rb"url\(\s*([\"']?)([^\"')]*)\1\s*\)", re.IGNORECASE)
_URL_ATTR_RE = re.compile(rb"(\s(?:src|href)\s*=\s*)([\"'])([^\"'<>]*)\2", re.IGNORECASE)
_NOT_RELATIVE_RE = re.compile(rb"\A(?:[/#?]|[A-Za-z][A-Za-z0-9+.-]*:)")


class PageError(ValueError):
    """Xpra's index.html cannot be served safely (we fail closed)."""


def is_index(path: str) -> bool:
    """The client's page itself: the directory or its index.html."""
    return path in ("", "index.html")


def static_content_type(path: str) -> str | None:
    """The Content-Type for a client file we pass on, or None if the path is not one of those.

    Only plain relative paths (no `..`, no empty segment, no query) with a known extension
    qualify: other pages of Xpra's (connect.html, its info pages) are never served.
    """
    match = _STATIC_RE.match(path)
    if match is None or ".." in path.split("/"):
        return None
    return CONTENT_TYPES.get(match.group(1))


UNUSED_SCRIPTS: dict[str, str] = {
    "js/lib/forge.js": (
        "password digests and AES only: the session's socket asks no password, `encryption` is never passed"
    ),
    "js/lib/aurora/aurora.js": "audio decoding: `sound` is pinned off (the client checks `typeof AV`)",
    "js/lib/aurora/aurora-xpra.js": "audio decoding, as aurora.js",
    "js/lib/jszip.js": "the bug-report menu only (its inline onclick handler never runs under the policy)",
    "js/lib/FileSaver.js": "the bug-report menu only, as jszip.js",
    "js/lib/brotli_decode.js": (
        "packet compression the server never picks: it prefers lz4, which the client has (and"
        " Debian's Xpra has no brotli); the client checks `typeof BrotliDecode`"
    ),
}
"""Scripts of Xpra's index.html the page does not load, and why the client needs none of them
under our pinned options (read in Xpra 3.1.3's Client.js, Protocol.js and index.html)."""

VIDEO_SCRIPTS = ("js/lib/jsmpeg.js", "js/lib/broadway/Decoder.js")
"""The mpeg1 and h264 decoders: loaded only when the client's `video` option is on (the page's
inline script names JSMpeg, and advertises both encodings, only then)."""

_VIDEO_OFF = {"false", "off", "no", "0"}


def video_enabled(options: Mapping[str, str]) -> bool:
    """Whether Xpra's client enables video for these options (its default is on, 64-bit)."""
    return options.get("video", "true").lower() not in _VIDEO_OFF


def page_scripts_dropped(video: bool) -> frozenset[str]:
    """The client's scripts a page leaves out: UNUSED_SCRIPTS, and VIDEO_SCRIPTS without video."""
    return frozenset(UNUSED_SCRIPTS) | (frozenset() if video else frozenset(VIDEO_SCRIPTS))


def rewrite_index(
    html: bytes,
    static_base: str | None = None,
    *,
    drop: Iterable[str] = (),
    inline: Mapping[str, bytes] | None = None,
    styles: Mapping[str, bytes] | None = None,
) -> tuple[bytes, list[str]]:
    """Xpra's index.html with our scripts loaded first, and the CSP hashes of its inline scripts.

    One `<script src>` per OUR_SCRIPTS goes right after `<head>` (before every script of the
    client), in order. A `<script src>` naming a relative path of `drop` is removed; one naming
    a path of `inline` (ours included) becomes an inline script holding exactly those bytes,
    in its place, unless they could end the element early or read differently inline than as a
    file (`</script`, `<!--`, CR or NUL: that script stays a file). Tags inside HTML comments are
    left alone. With `static_base` (the URL path of ffsystemd.client_files, trailing slash), a
    `<link rel=stylesheet>` naming a path of `styles` becomes a `<style>` in its place (its
    `url(...)`s pointed to `static_base`; kept a link if it imports or could end the element
    early; see inline_css), and every remaining relative `src`/`href` of the page's `<script>`
    and `<link>` tags points there instead of next to the page, so they come from the Jupyter
    server's memory (while the session still starts), never from the session's Xpra. The
    hashes are `sha256-<base64>` of each inline script's text exactly as served (those of the
    styles: inline_style_hashes). Raises PageError if the page has no `<head>`.
    """
    head = _HEAD_RE.search(html)
    if head is None:
        raise PageError("the client's index.html has no <head>")
    ours = "".join(f'\n<script src="{path}"></script>' for path in OUR_SCRIPTS).encode() + b"\n"
    html = html[: head.end()] + ours + html[head.end() :]
    dropped, bodies = frozenset(drop), inline or {}
    base = None if static_base is None else static_base.encode()
    out: list[bytes] = []
    for kind, part in _segments(html):
        if kind == "script":
            assert isinstance(part, re.Match)
            out.append(_edit_script(part, dropped, bodies, base))
        elif kind == "text" and base is not None:
            assert isinstance(part, bytes)
            if styles:
                part = _STYLESHEET_RE.sub(lambda link: _inline_style(link, styles, base), part)
            out.append(_TAG_RE.sub(lambda tag: _point_to(tag.group(0), base), part))
        else:
            assert isinstance(part, bytes)
            out.append(part)
    page = b"".join(out)
    return page, list(inline_script_hashes(page))


def can_inline(body: bytes) -> bool:
    """Whether a script reads the same inline as from a file (and cannot end its element early)."""
    return not any(mark in body.lower() for mark in (b"</script", b"<!--", b"\r", b"\0"))


def inline_css(path: str, css: bytes, base: bytes) -> bytes | None:
    """The stylesheet at `path` as the text of a `<style>` in the page, or None if it cannot be.

    Each relative `url(...)` (resolved against `path`, as the browser would for the file) is
    made to point to `base`. None when the text has an `@import`, a `url(...)` leading out of
    the client's files, or anything that could end the element early, read differently inline
    or be taken for other markup by this module (`</style`, `<script`, `<!--`, CR, NUL).
    """
    if any(mark in css.lower() for mark in (b"</style", b"<script", b"<!--", b"@import", b"\r", b"\0")):
        return None
    folder = posixpath.dirname(path)
    unsafe = False

    def point(match: re.Match[bytes]) -> bytes:
        nonlocal unsafe
        value = match.group(2).strip()
        if not value or value.startswith(b"data:") or value.startswith(b"#"):
            return match.group(0)
        target = posixpath.normpath(posixpath.join(folder, value.decode("utf-8", "replace")))
        if _NOT_RELATIVE_RE.match(value) or target.startswith("../") or target == "..":
            unsafe = True
            return match.group(0)
        return b'url("' + base + target.encode() + b'")'

    text = _CSS_URL_RE.sub(point, css)
    return None if unsafe or b'"' in base else text


def _inline_style(link: re.Match[bytes], styles: Mapping[str, bytes], base: bytes) -> bytes:
    """A `<link rel=stylesheet>` as a `<style>` holding its file, or the link as it is."""
    href = _HREF_VALUE_RE.search(link.group(0))
    if href is None:
        return link.group(0)
    path = href.group(2).decode("utf-8", "replace")
    path = path[2:] if path.startswith("./") else path
    css = styles.get(path)
    text = None if css is None else inline_css(path, css, base)
    return link.group(0) if text is None else b"<style>" + text + b"</style>"


def inline_style_hashes(html: bytes) -> Iterator[str]:
    """CSP hash sources of the `<style>` elements of a page (not in scripts or comments), in order."""
    for kind, part in _segments(html):
        if kind == "text":
            assert isinstance(part, bytes)
            for match in _STYLE_RE.finditer(part):
                digest = hashlib.sha256(match.group(2)).digest()
                yield "sha256-" + base64.b64encode(digest).decode()


def _segments(html: bytes) -> Iterator[tuple[str, bytes | re.Match[bytes]]]:
    """The page as ("text", bytes), ("comment", bytes) and ("script", match of a whole element)."""
    pos = 0
    while pos < len(html):
        comment = html.find(b"<!--", pos)
        script = _SCRIPT_RE.search(html, pos)
        if comment != -1 and (script is None or comment < script.start()):
            end = html.find(b"-->", comment + 4)
            end = len(html) if end == -1 else end + 3
            yield "text", html[pos:comment]
            yield "comment", html[comment:end]
            pos = end
        elif script is not None:
            yield "text", html[pos : script.start()]
            yield "script", script
            pos = script.end()
        else:
            yield "text", html[pos:]
            return


def _edit_script(
    element: re.Match[bytes], drop: frozenset[str], inline: Mapping[str, bytes], base: bytes | None
) -> bytes:
    """One live `<script>` element: removed, inlined, pointed to base, or as it is."""
    attributes = element.group(1) or b""
    src = _SRC_VALUE_RE.search(attributes)
    if src is None:
        return element.group(0)
    path = src.group(2).decode("utf-8", "replace")
    path = path[2:] if path.startswith("./") else path
    if path in drop:
        return b""
    body = inline.get(path)
    if body is not None and can_inline(body):
        return b"<script>" + body + b"</script>"
    if base is None:
        return element.group(0)
    tag_end = element.start(2) - element.start()
    whole = element.group(0)
    return _point_to(whole[:tag_end], base) + whole[tag_end:]


def _point_to(tag: bytes, base: bytes) -> bytes:
    """A `<script>`/`<link>` tag whose relative src/href is made relative to `base`."""

    def absolute(match: re.Match[bytes]) -> bytes:
        value = match.group(3)
        if not value or _NOT_RELATIVE_RE.match(value):
            return match.group(0)
        if value.startswith(b"./"):
            value = value[2:]
        return match.group(1) + match.group(2) + base + value + match.group(2)

    return _URL_ATTR_RE.sub(absolute, tag)


def inline_script_hashes(html: bytes) -> Iterator[str]:
    """CSP hash sources of the inline (no src) scripts of a page, in order."""
    for match in _SCRIPT_RE.finditer(html):
        attributes = match.group(1) or b""
        if _SRC_ATTR_RE.search(attributes):
            continue
        digest = hashlib.sha256(match.group(2)).digest()
        yield "sha256-" + base64.b64encode(digest).decode()


def check_host(host: str) -> str:
    """The request's Host if it can go into a policy (host[:port]); PageError otherwise."""
    if not _HOST_RE.match(host):
        raise PageError(f"unusable Host header {host[:60]!r}")
    return host


def content_security_policy(
    protocol: str,
    host: str,
    capability_path: str,
    hashes: Iterable[str] = (),
    static_path: str | None = None,
    style_hashes: Iterable[str] = (),
) -> str:
    """The policy of every response under a capability path (pure).

    `capability_path` is the path of the session's client, as in the request
    (`<base_url>firefox-launcher/session/<id>/c/<capability>/`); sources are limited to it, on
    the request's own host (http:/ws: also match https:/wss: behind a TLS proxy), and to
    `static_path` (ffsystemd.client_files' URL path) for scripts, styles, images and fonts;
    `hashes` allow inline scripts, `style_hashes` `<style>` elements.
    """
    secure = protocol == "https"
    origin = f"{'https' if secure else 'http'}://{check_host(host)}"
    path = _source_path(capability_path)
    files = f"{origin}{path}"
    if static_path is not None:
        files = f"{files} {origin}{_source_path(static_path)}"
    socket = f"{'wss' if secure else 'ws'}://{host}{path}"
    scripts = " ".join([files, *(f"'{h}'" for h in hashes)])
    return "; ".join(
        [
            "sandbox allow-scripts",
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {files} 'unsafe-inline'",
            " ".join([f"style-src-elem {files}", *(f"'{h}'" for h in style_hashes)]),
            "style-src-attr 'unsafe-inline'",
            f"img-src {files} data:",
            f"font-src {files}",
            f"connect-src {socket}",
            "frame-ancestors 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "worker-src 'none'",
            "object-src 'none'",
        ]
    )


def _source_path(path: str) -> str:
    quoted = quote(path, safe="/%-._~!$&'()*+=:@")
    return quoted if quoted.endswith("/") else quoted + "/"


LOCKED_DOWN_POLICY = (
    "sandbox; default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
"""The policy of our own answers (redirects, errors): nothing may run or load."""


def security_headers(policy: str, *, same_origin_only: bool) -> dict[str, str]:
    """Headers every session response carries.

    `Cross-Origin-Resource-Policy: same-origin` goes on what is reached with Jupyter's cookies
    (the entry page and its errors), not on the client's files: in the opaque origin every
    load is cross-origin, and Chromium blocks them all under that header (measured); the
    unguessable capability path protects those instead.
    """
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if same_origin_only:
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return headers
