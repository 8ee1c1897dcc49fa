"""Attacks on a real session, tried as an attacker would (issue 8).

One real Jupyter server, one real session (Xpra + Firefox) and one headless Chromium, shared by
the tests of this module, with the user logged in to JupyterLab. The attacker controls a web
site on 127.0.0.1 (another origin than the Jupyter server's), pages that Firefox opens, and links
the user follows. Nothing the attacker does may reach Jupyter with the user's credentials.

Waiting for something *not* to happen needs an observation window: each one ends at a positive
event (the title shown, the client connected, the frame loaded) plus a short bounded poll, and
fails at once when the attack shows up.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from playwright.sync_api import BrowserContext, Error, Frame, Page, Request, sync_playwright

from .browser import CHROMIUM, CHROMIUM_ARGS, save_artifact
from .hostile import (
    DONE_PAGE,
    PAYLOAD_FILE_PREFIX,
    FakeXpraListener,
    HostileSite,
    cookie_header,
    websocket_handshake,
)
from .world import JupyterServer, process_tree, strays, unit_gone

pytestmark = [pytest.mark.real, pytest.mark.browser]

FRAME_REFUSED = re.compile(r"frame-ancestors|X-Frame-Options", re.IGNORECASE)
QUIET_WINDOW = 3.0
"""Seconds an attack is given, after the positive event, to show up before it counts as failed."""

CLIENT_CONNECTED = "() => !!(window.client && window.client.connected === true)"
TEXT_SHOWN = """(needle) => {
  const walk = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const tag = n.parentNode && n.parentNode.nodeName;
    if (tag !== 'SCRIPT' && tag !== 'STYLE' && n.nodeValue.includes(needle)) return true;
  }
  return false;
}"""
CLIENT_HAS_TITLE = "(t) => Object.values(client.id_to_window).some(w => (w.title || '').includes(t))"
CLICK_LINKS = """(site) => {
  const links = Array.from(document.querySelectorAll('a[href]')).filter(
    a => a.href.startsWith('javascript:') || a.href.startsWith(site));
  links.forEach(a => a.click());
  return links.length;
}"""
REACH = """async ({api, token}) => {
  const out = {};
  try { out.cookie = document.cookie; } catch (e) { out.cookie = 'threw ' + e.name; }
  out.href = location.href;
  out.referrer = document.referrer;
  out.origin = String(self.origin);
  out.framed = window !== top;
  try { out.parent = parent === window ? null : parent.location.href; } catch (e) { out.parent = null; }
  try { out.top = top === window ? null : top.document.title; } catch (e) { out.top = null; }
  const base = location.pathname.split('firefox-launcher/')[0];
  const attempts = {
    contents: [api + 'api/contents', {credentials: 'include'}],
    contents_relative: [base + 'api/contents', {credentials: 'include'}],
    kernelspecs: [api + 'api/kernelspecs', {credentials: 'include'}],
    put: [api + 'api/contents/pwned-reach.txt', {method: 'PUT', credentials: 'include',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({type: 'file', format: 'text', content: 'x'})}],
  };
  if (token) {
    attempts.token_query = [api + 'api/kernelspecs?token=' + token, {}];
  }
  out.fetch = {};
  for (const [name, [url, init]] of Object.entries(attempts)) {
    try { out.fetch[name] = (await fetch(url, init)).status; } catch (e) { out.fetch[name] = 'failed'; }
  }
  return out;
}"""


@dataclass
class World:
    """The shared real world of this module."""

    server: JupyterServer
    site: HostileSite
    session: dict[str, Any]
    context: BrowserContext
    units: list[str]
    api_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def session_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{self.session['url']}"

    def written_files(self) -> list[Path]:
        return sorted(self.server.root.rglob(f"{PAYLOAD_FILE_PREFIX}*"))

    def hostile_api_calls(self) -> list[dict[str, Any]]:
        """Chromium's requests to a Jupyter API made by a session page (never JupyterLab's)."""
        return [c for c in self.api_calls if "/firefox-launcher/session/" in c["frame"]]

    def evidence(self) -> list[str]:
        """Everything that shows an attack got somewhere (empty while none did)."""
        found = [f"file written: {p}" for p in self.written_files()]
        found += [f"payload got through: {r}" for r in self.site.successes()]
        found += [f"a title navigated a frame to the attacker's page: {s.path}" for s in self.site.phished()]
        found += [
            f"session page reached {c['method']} {c['url']} -> {c['status']}"
            for c in self.hostile_api_calls()
            if isinstance(c["status"], int) and c["status"] < 400
        ]
        return found

    def ran(self) -> list[str]:
        """Signs that a payload's script ran in the Xpra client at all."""
        return [f"{s.method} {s.path} from {s.user_agent[:40]}" for s in self.site.escaped()]


def _record_api_calls(context: BrowserContext, world_calls: list[dict[str, Any]], jupyter: str) -> None:
    def frame_url(request: Request) -> str:
        try:
            return request.frame.url
        except Error:
            return "?"

    def on_request(request: Request) -> None:
        if request.url.startswith(jupyter) and "/api/" in request.url:
            world_calls.append(
                {"method": request.method, "url": request.url, "frame": frame_url(request), "status": None}
            )

    def on_finished(request: Request) -> None:
        for call in reversed(world_calls):
            if call["url"] == request.url and call["status"] is None:
                response = request.response()
                call["status"] = response.status if response else "no response"
                return

    def on_failed(request: Request) -> None:
        for call in reversed(world_calls):
            if call["url"] == request.url and call["status"] is None:
                call["status"] = f"failed: {request.failure}"
                return

    context.on("request", on_request)
    context.on("requestfinished", on_finished)
    context.on("requestfailed", on_failed)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A real server, one session whose Firefox opens the hostile site, a logged-in Chromium.

    Other helpers' sessions may share the user manager, so the leak check looks at the units
    of the sessions this module started.
    """
    root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    server = JupyterServer(root, config={"screen_size": "1280x800"})
    units: list[str] = []
    try:
        server.start()
        with HostileSite(server.url) as site, sync_playwright() as pw:
            session = server.launch(url=site.page_url(site.current))
            units.append(session["unit"])
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                world = World(server, site, session, context, units)
                _record_api_calls(context, world.api_calls, f"http://127.0.0.1:{server.port}/")
                login = context.new_page()
                assert login.goto(f"{server.url}api/status?token={server.token}") is not None
                login.close()
                yield world
            finally:
                browser.close()
            server.cleanup(all=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        leaked = [unit for unit in units if not unit_gone(unit)]
        assert not leaked, f"units left behind: {leaked}"


def evaluate(frame: Frame, script: str, arg: Any = None) -> Any:
    """frame.evaluate, or None when the frame navigated away or went meanwhile."""
    try:
        return frame.evaluate(script, arg)
    except Error:
        return None


def client_frames(page: Page) -> list[Frame]:
    """The frames of `page` running a connected Xpra client (wherever the client is nested)."""
    return [frame for frame in page.frames if evaluate(frame, CLIENT_CONNECTED)]


def poll(
    page: Page,
    until: Callable[[], Any],
    what: str,
    timeout: float,
    evidence: Callable[[], list[str]] | None = None,
) -> Any:
    """Poll until() (pumping Playwright's events); fail at once when evidence() finds an attack."""
    deadline = time.monotonic() + timeout
    while True:
        found = evidence() if evidence else []
        if found:
            save_artifact("attack-succeeded.png", page.screenshot())
            raise AssertionError(f"attack succeeded while waiting for {what}: {found}")
        value = until()
        if value:
            return value
        if time.monotonic() > deadline:
            save_artifact("attack-timeout.png", page.screenshot())
            frames = [f.url[:120] for p in page.context.pages for f in p.frames]
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; frames {frames}")
        page.wait_for_timeout(100)


def quiet(page: Page, evidence: Callable[[], list[str]], seconds: float = QUIET_WINDOW) -> None:
    """Give the attack `seconds` more to show up (it fails at once when it does)."""
    deadline = time.monotonic() + seconds
    poll(page, lambda: time.monotonic() > deadline, "the quiet window to end", seconds + 5, evidence)


@pytest.fixture(scope="module")
def lab_view(world: World) -> Page:
    """JupyterLab with the session's Firefox tab open, opened from the running-sessions panel."""
    page = world.context.new_page()
    page.goto(f"{world.server.url}lab")
    page.locator("[data-id='jp-running-sessions']").first.click(timeout=90_000)
    item = page.locator(".jp-FFSystemd-runningItem").first
    item.wait_for(timeout=30_000)
    item.locator(".jp-RunningSessions-itemLabel").click()
    page.locator(f".jp-FFSystemd-panel[data-session-id='{world.session['id']}']").wait_for(timeout=60_000)
    poll(page, lambda: client_frames(page), "the Xpra client in the JupyterLab tab", 90)
    return page


@pytest.fixture(scope="module")
def direct_view(world: World) -> Page:
    """The session page opened top-level (same tab), the way a link or a bookmark opens it."""
    page = world.context.new_page()
    page.goto(world.session_url)
    poll(page, lambda: client_frames(page), "the Xpra client in the direct session page", 90)
    return page


def test_hostile_window_titles_reach_nothing_and_show_as_text(
    world: World, lab_view: Page, direct_view: Page
) -> None:
    site = world.site
    views = {"JupyterLab tab": lab_view, "direct page": direct_view}

    def reached_both(name: str) -> bool:
        """Both views' clients hold the title (in their data, however they render it)."""
        title = site.title_of(name)
        for view in views.values():
            frames = client_frames(view)
            for frame in frames:
                if name in ("link", "navlink"):  # the link covers the page: any click is on it
                    evaluate(frame, CLICK_LINKS, site.origin)
            if not any(evaluate(frame, CLIENT_HAS_TITLE, title) for frame in frames):
                return False
        return True

    not_text: list[str] = []
    for name in [*site.payloads, DONE_PAGE]:
        site.show(name)
        evidence = world.evidence
        poll(lab_view, lambda n=name: site.firefox_loaded(n), f"Firefox to load page {name}", 60, evidence)
        poll(lab_view, lambda n=name: reached_both(n), f"the title of {name} in both views", 60, evidence)
        title = site.title_of(name)
        for view_name, view in views.items():
            if not any(evaluate(frame, TEXT_SHOWN, title) for frame in client_frames(view)):
                not_text.append(f"{name} in the {view_name}")
        # The user opens the tab while the page is shown: the client creates the window with
        # this title (Xpra builds a new window's title bar from it, another path than updates).
        fresh = world.context.new_page()
        fresh.goto(world.session_url)

        def fresh_has_title(t: str = title, fresh: Page = fresh) -> bool:
            return any(evaluate(frame, CLIENT_HAS_TITLE, t) for frame in client_frames(fresh))

        poll(fresh, fresh_has_title, f"a view opened while {name} is shown", 60, evidence)
        if name in ("link", "navlink"):
            for frame in client_frames(fresh):
                evaluate(frame, CLICK_LINKS, site.origin)
        if not any(evaluate(frame, TEXT_SHOWN, title) for frame in client_frames(fresh)):
            not_text.append(f"{name} in a view opened while it was shown")
        fresh.close()
    quiet(lab_view, world.evidence)
    save_artifact("attack-titles.png", lab_view.screenshot())
    assert world.evidence() == []
    assert world.written_files() == []
    assert world.hostile_api_calls() == [], "a session page called a Jupyter API"
    assert not_text == [], "titles not shown as text (inserted as markup)"
    assert world.ran() == [], "a title's script ran in the Xpra client (the CSP let it)"


def test_session_page_cannot_use_the_users_cookies_or_token(
    world: World, lab_view: Page, direct_view: Page
) -> None:
    # A link with Jupyter's token in it: the token must not reach the client's page either.
    token_view = world.context.new_page()
    token_view.goto(f"{world.session_url}?token={world.server.token}")
    poll(token_view, lambda: client_frames(token_view), "the client opened with ?token=", 90)
    # The Firefox tab's iframe is sandboxed too (defence in depth, should a response lack the policy).
    sandbox = lab_view.locator(".jp-FFSystemd-frame").get_attribute("sandbox")
    assert sandbox is not None, "the Firefox tab's iframe has no sandbox attribute"
    assert not {"allow-same-origin", "allow-top-navigation", "allow-popups-to-escape-sandbox"} & set(
        sandbox.split()
    ), sandbox
    checked = 0
    for name, view in {"lab": lab_view, "direct": direct_view, "token link": token_view}.items():
        for frame in client_frames(view):
            reach = frame.evaluate(REACH, {"api": world.server.url, "token": world.server.token})
            checked += 1
            assert "_xsrf" not in reach["cookie"] and "username-" not in reach["cookie"], (name, reach)
            assert reach["origin"] == "null", (name, reach)
            assert world.server.token not in reach["href"] + reach["referrer"], (name, reach)
            assert reach["parent"] is None and reach["top"] is None, (name, reach)
            for attempt, status in reach["fetch"].items():
                assert status == "failed" or (isinstance(status, int) and status >= 400), (
                    name,
                    attempt,
                    reach,
                )
    token_view.close()
    assert checked >= 3
    assert not list(world.server.root.rglob("pwned-reach*"))


PINNED_OVERRIDES = [
    "server=127.0.0.1&port={port}&path=/fake-xpra/&ssl=false",
    "port={port}",
    "port={port}&insecure=true&encryption=&password=x&username=x",
    "serv%65r=127.0.0.1&p%6Frt={port}",
    "=port={port}",
    "sharing=true&port={jport}&port={port}",
]


@pytest.mark.parametrize("entry", ["", "index.html"])
def test_client_options_from_a_link_cannot_point_the_client_elsewhere(world: World, entry: str) -> None:
    with FakeXpraListener() as fake:
        for template in PINNED_OVERRIDES:
            query = template.format(port=fake.port, jport=world.server.port)
            page = world.context.new_page()
            page.goto(f"{world.session_url}{entry}?{query}")

            def own_client(page: Page = page) -> Frame | None:
                if fake.connections:
                    raise AssertionError(f"the client connected to the fake Xpra: {fake.connections}")
                frames = client_frames(page)
                return frames[0] if frames else None

            frame = poll(page, own_client, f"the client to connect with ?{query}", 60)
            uri = frame.evaluate("() => client.uri")
            host = urlsplit(uri)
            assert (host.hostname, host.port) == ("127.0.0.1", world.server.port), (query, uri)
            assert f"/firefox-launcher/session/{world.session['id']}/" in host.path, (query, uri)
            page.close()
        assert fake.connections == []


def test_another_origin_cannot_frame_the_session_page(world: World) -> None:
    targets = [world.session_url, lambda: f"http://127.0.0.1:{world.server.port}{capability_url(world)}"]
    for target_or_later in targets:  # the capability URL too, had it leaked
        target = target_or_later() if callable(target_or_later) else target_or_later
        page = world.context.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws, s=sockets: s.append(ws.url))
        refusals: list[str] = []
        page.on("console", lambda m, r=refusals: r.append(m.text) if FRAME_REFUSED.search(m.text) else None)
        response = page.goto(f"{world.site.origin}/frame?src={quote(target, safe='')}", wait_until="load")
        assert response is not None and response.ok
        assert len(page.frames) >= 2, "the framing page has no frame"
        for frame in page.frames[1:]:
            try:
                has_client = frame.evaluate("() => typeof window.client !== 'undefined'")
            except Error:
                has_client = False
            assert not has_client, f"{target} framed by {world.site.origin}: {frame.url}"
        assert sockets == [], f"the framed session page opened websockets: {sockets}"
        poll(
            page,
            lambda r=refusals: r,
            "Chromium to report refusing the frame (frame-ancestors or X-Frame-Options)",
            15,
        )
        page.close()


def capability_url(world: World, session: dict[str, Any] | None = None) -> str:
    """Where the cookie-authenticated session page sends the browser: the capability path."""
    session = session or world.session
    cookies = cookie_header(world.context.cookies())
    entry = f"http://127.0.0.1:{world.server.port}{session['url']}"
    reply = requests.get(entry, headers={"Cookie": cookies}, allow_redirects=False, timeout=30)
    assert reply.status_code in (301, 302, 303, 307), (reply.status_code, reply.text[:200])
    location = reply.headers["Location"]
    path = urlsplit(location).path
    assert re.search(rf"/firefox-launcher/session/{session['id']}/c/[^/]+/", path), (
        f"no capability in the session page's redirect: {location}"
    )
    assert world.server.token not in location
    return path


def test_websockets_need_the_capability_and_refuse_other_origins(world: World, direct_view: Page) -> None:
    port, sid = world.server.port, world.session["id"]
    cookies = cookie_header(world.context.cookies())
    capability_url(world)  # the session page is reached through a capability at all
    # The path the sandboxed client itself opens its websocket on.
    capability = urlsplit(client_frames(direct_view)[0].evaluate("() => client.uri")).path
    assert re.search(rf"/session/{sid}/c/[^/]+/", capability), capability
    other_cap = re.sub(r"/c/[^/]+/", f"/c/{secrets.token_urlsafe(24)}/", capability)
    plain = f"{world.server.base_url}firefox-launcher/session/{sid}/"
    before = world.server.status(sid)["connections"]
    refused = {
        "capability path, foreign origin, user's cookie": (capability, "http://evil.example", cookies),
        "capability path, the attacker's origin, user's cookie": (capability, world.site.origin, cookies),
        "a guessed capability, opaque origin": (other_cap, "null", None),
        "a guessed capability, opaque origin, user's cookie": (other_cap, "null", cookies),
        "cookie path, foreign origin, user's cookie": (plain, "http://evil.example", cookies),
        "cookie path, opaque origin, user's cookie": (plain, "null", cookies),
    }
    for what, (path, origin, cookie) in refused.items():
        status = websocket_handshake(port, path, origin=origin, cookie=cookie)
        assert status in (403, 404), (what, status)
        assert world.server.status(sid)["connections"] == before, what
    # The sandboxed client's own websocket (Origin: null, no cookie) is accepted: the refusals
    # above are for their reasons, not because no websocket works.
    assert websocket_handshake(port, capability, origin="null") == 101

    # A capability opens only its own session, and only while that session runs.
    second = world.server.launch(url="about:blank")
    world.units.append(second["unit"])
    try:
        foreign = capability.replace(f"/session/{sid}/", f"/session/{second['id']}/")
        assert websocket_handshake(port, foreign, origin="null") in (403, 404)
        assert world.server.status(second["id"])["connections"] == 0
        own = capability_url(world, second)
        back = own.replace(f"/session/{second['id']}/", f"/session/{sid}/")
        assert websocket_handshake(port, back, origin="null") in (403, 404)
        assert websocket_handshake(port, own, origin="null") == 101
    finally:
        world.server.cleanup(id=second["id"])
    assert websocket_handshake(port, own, origin="null") in (403, 404)
    gone = requests.get(f"http://127.0.0.1:{port}{own}js/Client.js", timeout=30)
    assert gone.status_code in (403, 404), gone.status_code


def test_every_session_document_is_sandboxed_and_strict(world: World) -> None:
    cookies = cookie_header(world.context.cookies())
    capability = capability_url(world)
    base = f"http://127.0.0.1:{world.server.port}"
    session_path = f"{world.server.base_url}firefox-launcher/session/{world.session['id']}"
    entries = [
        f"{session_path}/",
        f"{session_path}/index.html",
        f"{session_path}/connect.html",
        f"{session_path}/?token={world.server.token}",
        f"{capability}",
        f"{capability.rsplit('/', 1)[0]}/connect.html",
    ]
    for entry in entries:
        url = base + entry
        for _hop in range(5):  # follow redirects by hand, checking each hop
            reply = requests.get(url, headers={"Cookie": cookies}, allow_redirects=False, timeout=30)
            # Jupyter's own login cookie may be set on the cookie path (a ?token= link); nothing
            # else, and nothing at all under the capability (that would be Xpra's).
            set_cookies = reply.raw.headers.getlist("Set-Cookie")
            if "/c/" in urlsplit(url).path:
                assert set_cookies == [], (url, set_cookies)
            else:
                assert all(c.startswith(("username-", "_xsrf=")) for c in set_cookies), (url, set_cookies)
            # (an empty value grants nothing)
            assert not reply.headers.get("Access-Control-Allow-Origin"), f"{url}: {dict(reply.headers)}"
            if reply.status_code in (301, 302, 303, 307):
                location = reply.headers["Location"]
                assert world.server.token not in location, (url, location)
                url = requests.compat.urljoin(url, location)
                continue
            break
        if reply.status_code >= 400:
            continue  # a path the proxy refuses is not served at all
        csp = reply.headers.get("Content-Security-Policy", "")
        directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
        assert "sandbox" in directives, (url, csp)
        escapes = {"allow-same-origin", "allow-top-navigation", "allow-popups-to-escape-sandbox"}
        escapes |= {"allow-top-navigation-by-user-activation", "allow-top-navigation-to-custom-protocols"}
        assert not escapes & set(directives["sandbox"].split()), (url, csp)
        assert directives.get("frame-ancestors") == "frame-ancestors 'self'", (url, csp)
        scripts = directives.get("script-src") or directives.get("default-src") or "unset"
        assert scripts != "unset" and "'unsafe-inline'" not in scripts, (url, csp)
        assert "'unsafe-eval'" not in scripts and "*" not in scripts.split(), (url, csp)
        assert reply.headers.get("X-Content-Type-Options") == "nosniff", f"{url}: {dict(reply.headers)}"
        assert reply.headers.get("Referrer-Policy") == "no-referrer", f"{url}: {dict(reply.headers)}"


STATIC_FILE = re.compile(r'(?:src|href)="(/[^"]*firefox-launcher/client/[0-9a-f]{20}/[^"]+)"')
TRY_JUPYTER = """async (base) => {
  const body = JSON.stringify({type: 'file', format: 'text', content: 'x'});
  const write = {method: 'PUT', body, headers: {'Content-Type': 'application/json'}};
  const tries = {};
  for (const [name, init] of [['read', {}], ['write', write]]) {
    try {
      const url = base + 'api/contents/' + name + '-from-static.txt';
      const r = await fetch(url, Object.assign({credentials: 'include'}, init));
      tries[name] = r.status;
    } catch (e) {
      tries[name] = 'refused';
    }
  }
  return tries;
}"""


def test_the_static_client_files_open_nothing(world: World) -> None:
    """The client's static files need no credential; whoever opens or frames them gets inert files.

    A link to one opened by the logged-in user's browser is a document in an opaque origin
    that runs nothing of its own (and script forced into it cannot use the user's login);
    another origin cannot frame one; no answer sets a cookie or opens CORS.
    """
    base = f"http://127.0.0.1:{world.server.port}"
    page_html = requests.get(base + capability_url(world), timeout=30).text
    named = sorted(set(STATIC_FILE.findall(page_html)))  # the favicon (all else is inline)
    assert len(named) >= 1, named
    prefix = named[0][: named[0].index("/client/") + len("/client/") + 21]
    # The scripts and styles the page holds inline are served there too (as inert opened alone).
    inline = ("js/Client.js", "js/Window.js", "js/lib/jquery.js", "css/client.css")
    statics = sorted({*named, *(prefix + path for path in inline)})
    cookies = cookie_header(world.context.cookies())
    for path in statics[:: max(1, len(statics) // 8)]:
        reply = requests.get(base + path, headers={"Cookie": cookies}, timeout=30)
        assert reply.status_code == 200, path
        assert reply.headers["Content-Security-Policy"].startswith("sandbox;"), path
        assert reply.raw.headers.getlist("Set-Cookie") == [], path
        assert not reply.headers.get("Access-Control-Allow-Origin"), path
    script = next(u for u in statics if u.endswith("/js/Client.js"))
    page = world.context.new_page()
    try:
        response = page.goto(base + script)
        assert response is not None and response.ok
        assert page.evaluate("() => String(self.origin)") == "null"
        assert page.evaluate("() => typeof window.XpraClient") == "undefined"  # shown, not run
        tries = page.evaluate(TRY_JUPYTER, f"{base}{world.server.base_url}")
        assert tries == {"read": "refused", "write": "refused"}, tries
        assert not world.written_files()
        from_static = [c for c in world.api_calls if "/firefox-launcher/client/" in c["frame"]]
        assert all(not (isinstance(c["status"], int) and c["status"] < 400) for c in from_static), from_static
    finally:
        page.close()
    framing = world.context.new_page()
    refusals: list[str] = []
    framing.on("console", lambda m: refusals.append(m.text) if FRAME_REFUSED.search(m.text) else None)
    try:
        target = quote(base + script, safe="")
        response = framing.goto(f"{world.site.origin}/frame?src={target}", wait_until="load")
        assert response is not None and response.ok
        poll(framing, lambda: refusals, "Chromium to refuse the frame", 15)
    finally:
        framing.close()


def test_no_process_of_the_session_listens_on_the_network(world: World, direct_view: Page) -> None:
    # A page in Firefox (or another local user) reaches anything listening on 127.0.0.1: the
    # display, Xpra and Firefox's remote control must be reachable only through their sockets.
    main_pid = world.server.status(world.session["id"])["main_pid"]
    procs = process_tree(main_pid)
    assert any("firefox" in p.name() for p in procs), [p.name() for p in procs]
    # Each one inside the session's scope, none listening on TCP (a helper that ended meanwhile
    # is skipped).
    found = strays(procs, world.session["unit"])
    assert found == [], f"session processes outside the scope or listening on the network: {found}"
