"""/firefox-launcher/session/<id>/...: the session's Xpra HTML5 client, proxied to its unix socket.

A subclass of jupyter-server-proxy's ProxyHandler (HTTP and websockets over a unix
socket). Every request, websocket included, is authenticated and authorized
(resource `ffsystemd`); only GET, HEAD and websocket upgrades are forwarded; the
socket comes from the session registry, never from the request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import ProxyHandler
from tornado import web

from ..client_options import with_default_options
from ..ids import SESSION_ID_PATTERN, is_valid_session_id
from ..manager import SessionManager
from ..ws_tunnel import connect_unix, tunnel, upgrade_request

SESSION_ROUTE = rf"/firefox-launcher/session/(?P<session_id>{SESSION_ID_PATTERN})/(?P<proxied_path>.*)"
SESSION_ROOT_ROUTE = r"/firefox-launcher/session/(?P<session_id>[^/]*)"
ANY_SESSION_ROUTE = r"/firefox-launcher/session/(?P<session_id>[^/]*)/(?P<proxied_path>.*)"
UNIX_PORT = 80  # ignored: the UnixResolver connects to the session socket whatever the port


def _manager(handler: JupyterHandler) -> SessionManager:
    return handler.settings["ffsystemd_manager"]


class SessionProxyHandler(ExtensionHandlerMixin, ProxyHandler):
    """Proxy HTTP GET/HEAD and websockets to one running session's Xpra socket."""

    auth_resource = "ffsystemd"

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self.session_id: str | None = None
        self.unix_socket: str | None = None

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate (403 for websockets), authorize, then resolve the session or 404."""
        await super().prepare(*args, **kwargs)
        if self._finished:  # ProxyHandler already answered (e.g. the login redirect)
            return
        is_ws = self.request.headers.get("Upgrade", "").lower() == "websocket"
        method = "WEBSOCKET" if is_ws else self.request.method or "GET"
        action = HTTP_METHOD_TO_AUTH_ACTION.get(method, "write")
        if not self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource):
            raise web.HTTPError(403, f"not authorized to {action} on {self.auth_resource}")
        if self.request.method not in ("GET", "HEAD"):
            return  # answered with 405 by the method itself, before any lookup
        session_id = self.path_kwargs.get("session_id", "")
        socket = _manager(self).socket_path(session_id) if is_valid_session_id(session_id) else None
        if socket is None:
            raise web.HTTPError(404, "no running session with this id")
        self.session_id = session_id
        self.unix_socket = str(socket)

    # --- HTTP -----------------------------------------------------------------
    async def http_get(self, session_id: str, proxied_path: str) -> None:
        if proxied_path in ("", "index.html"):
            query = with_default_options(self.request.query)
            if query is not None:
                self.redirect(f"{self.request.path}?{query}")
                return
        await self.proxy("localhost", UNIX_PORT, proxied_path)

    async def head(self, session_id: str, proxied_path: str) -> None:
        await self.proxy("localhost", UNIX_PORT, proxied_path)

    def _method_not_allowed(self, *args: Any, **kwargs: Any) -> None:
        raise web.HTTPError(405, "the session proxy forwards only GET, HEAD and websockets")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD")  # after send_error() cleared the headers
        super().write_error(status_code, **kwargs)

    def proxy_request_headers(self) -> Any:
        """The browser's headers for Xpra, minus Jupyter's credentials (token, cookies)."""
        headers = super().proxy_request_headers()
        for name in ("Authorization", "Cookie", "X-XSRFToken"):
            headers.pop(name, None)
        return headers

    post = put = delete = patch = options = _method_not_allowed

    def check_xsrf_cookie(self) -> None:
        """Only GET/HEAD (safe) and websocket upgrades reach the backend; others are 405."""

    def _get_context_path(self, host: str, port: int) -> str:
        assert self.session_id is not None
        return url_path_join(self.base_url, "firefox-launcher", "session", self.session_id)

    # --- websocket ------------------------------------------------------------
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Plain GETs go through ProxyHandler; websocket upgrades through the byte tunnel."""
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            await self.http_get(*args, **kwargs)
            return
        await self._tunnel_websocket(kwargs.get("proxied_path", ""))

    async def _tunnel_websocket(self, proxied_path: str) -> None:
        origin = self.request.headers.get("Origin")
        if origin and not self.check_origin(origin):
            raise web.HTTPError(403, "cross-origin websocket refused")
        assert self.session_id is not None and self.unix_socket is not None
        try:
            backend = await connect_unix(self.unix_socket)
        except (OSError, asyncio.TimeoutError) as exc:
            raise web.HTTPError(502, f"the session's Xpra does not answer: {exc}") from None
        headers = [(k, v) for k, v in self.request.headers.get_all()]
        request = upgrade_request(proxied_path, self.request.query, headers)
        try:
            await asyncio.get_running_loop().sock_sendall(backend, request)
        except OSError as exc:
            backend.close()
            raise web.HTTPError(502, f"the session's Xpra does not answer: {exc}") from None
        client = self.detach()  # the connection is ours now; Xpra answers the handshake
        session_id, manager = self.session_id, _manager(self)
        manager.connection_opened(session_id)
        self._record_activity()
        try:
            await tunnel(client, backend, self._record_activity)
        finally:
            manager.connection_closed(session_id)

    def _record_activity(self) -> None:
        """Record traffic for this session and for Jupyter's idle tracking (JupyterHub culler)."""
        super()._record_activity()
        if self.session_id:
            _manager(self).record_activity(self.session_id)


class SessionSlashHandler(ExtensionHandlerMixin, JupyterHandler):
    """`.../session/<id>` → `.../session/<id>/` (authenticated; 404 for a malformed id)."""

    auth_resource = "ffsystemd"

    @web.authenticated
    def get(self, session_id: str) -> None:
        if not is_valid_session_id(session_id):
            raise web.HTTPError(404, "no running session with this id")
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(f"{self.request.path}/{query}")


class UnknownSessionHandler(ExtensionHandlerMixin, JupyterHandler):
    """Any session path with a malformed id: 404 (after authentication), never a connection."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if not self.current_user:
            raise web.HTTPError(403)
        raise web.HTTPError(404, "no running session with this id")
