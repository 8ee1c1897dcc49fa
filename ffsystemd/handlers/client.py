"""`.../session/<id>/c/<capability>/...`: the session's Xpra client, served in an opaque origin.

No Jupyter credential works or is needed here (the page runs sandboxed, its requests carry
no cookies): a request is served only if its capability was minted for this session and is
still valid (ffsystemd.capability), and the session runs. Unknown or stopped sessions are
404, bad capabilities 403, both before any connection to Xpra. A session still starting is
served too: its page and the files we hold (ffsystemd.client_files) need no Xpra, and what
does need it (a websocket, a file only Xpra has) waits until the launch made the session
running, polling every WAIT_POLL_INTERVAL s up to the launch's own ready_timeout (then 504; a
launch that failed meanwhile is 502): the client connects the moment Xpra is ready, with none
of its reconnect delays. Requests from a foreign
origin are 403 (`Origin: null` is the client's own opaque origin; the capability is what
authorizes). Only GET and HEAD (405 otherwise) of the client's page and static files reach
Xpra, and websocket upgrades, which are tunnelled (at most `max_connections_per_session` at
once per session: 429 beyond). No request body is ever read (NoBodyMixin: 413). Every response
carries the session policy (ffsystemd.session_page); the page itself is Xpra's index.html
rewritten by us (read at start-up and built once: the scripts the client needs and its styles
inline, each allowed by its hash, its images and fonts pointing to the cacheable static route
ffsystemd.handlers.static; other paths are files of that allow-list or 404). Only when
the client's files could not be read at start-up are the page and files fetched from the
session's Xpra.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from tornado import web

from .. import backend_http
from ..client_files import ClientFiles
from ..client_options import client_options, client_query, is_canonical
from ..ids import SESSION_ID_PATTERN, is_valid_session_id
from ..manager import SessionManager
from ..metrics import count_websocket_bytes
from ..session_page import (
    LOCKED_DOWN_POLICY,
    OUR_SCRIPTS,
    PageError,
    content_security_policy,
    is_index,
    page_scripts_dropped,
    rewrite_index,
    security_headers,
    static_content_type,
    video_enabled,
)
from ..unix_socket import connect_unix
from ..ws_tunnel import tunnel, upgrade_request
from .proxy import PlainGetHandler, capabilities, session_prefix

CLIENT_ROUTE = (
    rf"/firefox-launcher/session/(?P<session_id>{SESSION_ID_PATTERN})"
    r"/c/(?P<capability>[^/]*)/(?P<proxied_path>.*)"
)
log = logging.getLogger(__name__)
DEFAULT_MAX_CONNECTIONS = 8
DEFAULT_WEBSOCKET_IDLE_TIMEOUT = 300.0
REDACTED = "<capability>"
WAIT_POLL_INTERVAL = 0.02
"""How often a request that needs Xpra checks whether its starting session runs yet (s)."""
WAIT_GRACE = 5.0
"""Beyond the launch's ready_timeout, how long such a request waits before its 504 (s)."""
SCREEN_WAIT = 3.0
"""How long a websocket waits for the session's first screen size (ffsystemd.screen) before it
goes on anyway (Xpra then resizes itself, 0.5 s slower) (s)."""


class SessionClientHandler(PlainGetHandler):
    """Serve one session's client under its capability: page, files, websocket (no request body)."""

    def initialize(self) -> None:
        self.session_id = ""
        self.capability = ""
        self.unix_socket = ""

    @property
    def manager(self) -> SessionManager:
        return self.settings["ffsystemd_manager"]

    @property
    def client_path(self) -> str:
        """The capability path of this client, as the browser asked for it (trailing slash)."""
        base_url = self.settings.get("base_url", "/")
        return f"{session_prefix(base_url, self.session_id)}/c/{self.capability}/"

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        for name, value in security_headers(LOCKED_DOWN_POLICY, same_origin_only=False).items():
            self.set_header(name, value)

    def prepare(self) -> None:
        """Check the session, the capability, the origin, then refuse bodies: 404/403/405/413
        before any connection and before a byte of a body is read."""
        kwargs = self.path_kwargs
        self.session_id, self.capability = kwargs["session_id"], kwargs["capability"]
        # Keep the capability out of Jupyter's access log (it logs failed requests' URIs).
        if self.capability and self.request.uri:
            self.request.uri = self.request.uri.replace(self.capability, REDACTED)
        valid = is_valid_session_id(self.session_id)
        socket_path = self.manager.socket_path(self.session_id) if valid else None
        store = capabilities(self.settings)
        if socket_path is None and not (valid and self.manager.is_starting(self.session_id)):
            store.forget(self.session_id)
            raise web.HTTPError(404, "no running session with this id")
        if not store.check(self.session_id, self.capability):
            raise web.HTTPError(
                403,
                "this capability is not valid for this session (expired, ended or forged):"
                " open the session page again",
            )
        origin = self.request.headers.get("Origin")
        if origin is not None and origin != "null" and not self._same_origin(origin):
            raise web.HTTPError(403, "requests from another origin are refused")
        self.refuse_body()
        self.unix_socket = "" if socket_path is None else str(socket_path)

    @property
    def client_files(self) -> ClientFiles | None:
        """The client's files read at start-up (None: Xpra serves them)."""
        return self.settings.get("ffsystemd_client_files")

    async def _until_running(self) -> None:
        """Wait (bounded) until the session runs and set unix_socket; 502/504 if it does not."""
        if self.unix_socket:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.manager.settings.ready_timeout + WAIT_GRACE
        while True:
            socket_path = self.manager.socket_path(self.session_id)
            if socket_path is not None:
                self.unix_socket = str(socket_path)
                return
            if not self.manager.is_starting(self.session_id):
                raise web.HTTPError(502, "the session did not start (its tab shows why)")
            if loop.time() >= deadline:
                raise web.HTTPError(504, "the session did not become ready in time")
            await asyncio.sleep(WAIT_POLL_INTERVAL)

    async def _until_screen_set(self) -> None:
        """A launch that asked for a first screen size: wait until the session set it, at most
        SCREEN_WAIT s, so that Xpra sees the client's size already there (ffsystemd.screen)."""
        marker = self.manager.screen_marker(self.session_id)
        if marker is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SCREEN_WAIT
        while not marker.exists():
            if loop.time() >= deadline:
                log.info("session %s: its first screen size was not set in time", self.session_id)
                return
            await asyncio.sleep(WAIT_POLL_INTERVAL)

    def _same_origin(self, origin: str) -> bool:
        """Origin names this server as the browser reached it (or one Jupyter is told to allow)."""
        allowed = self.settings.get("allow_origin", "")
        pattern = self.settings.get("allow_origin_pat")
        if allowed == "*" or origin == allowed or (pattern is not None and pattern.match(origin)):
            return True
        return urlsplit(origin).netloc.lower() == self.request.host.lower()

    def _record_activity(self) -> None:
        """Count traffic: the session's last_activity, its capability, Jupyter's own idle tracking."""
        self.manager.record_activity(self.session_id)
        capabilities(self.settings).touch(self.session_id, self.capability)
        self.settings.setdefault("last_activity_times", {})["ffsystemd"] = datetime.now(timezone.utc)

    # --- HTTP -----------------------------------------------------------------
    async def get(self, session_id: str, capability: str, proxied_path: str) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await self._tunnel_websocket(proxied_path)
            return
        await self._serve(proxied_path, with_body=True)

    async def head(self, session_id: str, capability: str, proxied_path: str) -> None:
        await self._serve(proxied_path, with_body=False)

    def _method_not_allowed(self, *args: Any, **kwargs: Any) -> None:
        raise web.HTTPError(405, "the session client answers only GET and HEAD")

    post = put = delete = patch = options = _method_not_allowed

    def check_xsrf_cookie(self) -> None:
        """Nothing but GET and HEAD does anything here."""

    async def _serve(self, path: str, with_body: bool) -> None:
        if path == "index.html":
            self.redirect(f"{self.client_path}?{client_query(self.request.query)}")
            return
        if is_index(path) and not is_canonical(self.request.query):
            self.redirect(f"{self.client_path}?{client_query(self.request.query)}")
            return
        if path in OUR_SCRIPTS:
            self._reply("text/javascript; charset=utf-8", OUR_SCRIPTS[path], with_body)
            return
        files = self.client_files
        if files is not None and is_index(path):
            self._reply_page(files, with_body)
            return
        if files is not None:  # Xpra's HTTP is not needed at all: its files are all here
            found = files.get(path)
            if found is None:
                raise web.HTTPError(404, "not a file of the session's client")
            self._reply(found.content_type, found.body, with_body)
            return
        content_type = "text/html; charset=utf-8" if is_index(path) else static_content_type(path)
        if content_type is None:
            raise web.HTTPError(404, "not a file of the session's client")
        await self._until_running()
        response = await self._fetch(path)  # GET even for HEAD: the length is the file's
        body = response.body or b""
        if response.code != 200:
            raise web.HTTPError(
                404 if response.code == 404 else 502, f"the session's Xpra answered {response.code}"
            )
        hashes: list[str] = []
        if is_index(path):
            try:
                video = video_enabled(client_options(self.request.query))
                body, hashes = rewrite_index(body, drop=page_scripts_dropped(video))
            except PageError as exc:
                raise web.HTTPError(502, str(exc)) from None
        try:
            policy = content_security_policy(
                self.request.protocol, self.request.host, self.client_path, hashes
            )
        except PageError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_header("Content-Security-Policy", policy)
        for name, value in backend_http.passed_response_headers(response.headers.get_all()):
            self.set_header(name, value)
        self._reply(content_type, body, with_body)

    def _reply_page(self, files: ClientFiles, with_body: bool) -> None:
        """The page built from Xpra's index.html (ClientFiles.page: scripts inline, no Xpra asked)."""
        static_path = files.url_path(self.settings.get("base_url", "/"))
        try:
            page = files.page(static_path, video_enabled(client_options(self.request.query)))
            policy = content_security_policy(
                self.request.protocol,
                self.request.host,
                self.client_path,
                page.script_hashes,
                static_path,
                page.style_hashes,
            )
        except PageError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_header("Content-Security-Policy", policy)
        self._reply("text/html; charset=utf-8", page.body, with_body)

    def _reply(self, content_type: str, body: bytes, with_body: bool) -> None:
        self.set_header("Content-Type", content_type)
        if with_body:
            self.write(body)
        else:
            self.set_header("Content-Length", str(len(body)))

    async def _fetch(self, path: str) -> backend_http.BackendResponse:
        headers = backend_http.backend_request_headers(
            self.request.headers.get_all(),
            session_prefix(self.settings.get("base_url", "/"), self.session_id),
        )
        self._record_activity()
        try:
            response = await backend_http.fetch(self.unix_socket, "GET", path, headers)
        except (OSError, asyncio.TimeoutError) as exc:
            raise web.HTTPError(502, f"the session's Xpra does not answer: {exc}") from None
        self._record_activity()
        return response

    # --- websocket ------------------------------------------------------------
    async def _tunnel_websocket(self, path: str) -> None:
        limit = self.settings.get("ffsystemd_max_connections", DEFAULT_MAX_CONNECTIONS)
        open_now = self.settings.setdefault("ffsystemd_open_tunnels", {})
        if open_now.get(self.session_id, 0) >= limit:
            raise web.HTTPError(
                429, f"this session already has {limit} open connections (max_connections_per_session)"
            )
        await self._until_running()
        await self._until_screen_set()
        try:
            backend = await connect_unix(self.unix_socket)
        except (OSError, asyncio.TimeoutError) as exc:
            raise web.HTTPError(502, f"the session's Xpra does not answer: {exc}") from None
        try:
            await asyncio.get_running_loop().sock_sendall(
                backend, upgrade_request(path, self.request.headers.get_all())
            )
        except OSError as exc:
            backend.close()
            raise web.HTTPError(502, f"the session's Xpra does not answer: {exc}") from None
        client = self.detach()  # the connection is ours now; Xpra answers the handshake
        session_id, manager = self.session_id, self.manager
        open_now[session_id] = open_now.get(session_id, 0) + 1
        manager.connection_opened(session_id)
        self._record_activity()
        idle = self.settings.get("ffsystemd_websocket_idle_timeout", DEFAULT_WEBSOCKET_IDLE_TIMEOUT)
        try:
            await tunnel(
                client, backend, self._record_activity, idle_timeout=idle, on_bytes=count_websocket_bytes
            )
        finally:
            open_now[session_id] -= 1
            if not open_now[session_id]:
                del open_now[session_id]
            manager.connection_closed(session_id)
