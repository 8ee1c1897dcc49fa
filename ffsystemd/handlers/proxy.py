"""`<base_url>firefox-launcher/session/<id>/`: the cookie-authenticated entry to a session's page.

This is the only session URL Jupyter's credentials open. A GET of the session's page (the
directory or `index.html`), authenticated and authorized (`execute` on resource `ffsystemd`:
what it hands out drives the session), mints a capability for that session and redirects
to `.../session/<id>/c/<capability>/?<client options>`, where ffsystemd.handlers.client
serves the Xpra client in an opaque origin. Nothing else is served here: other paths and
websockets are 404 (the client's files and websocket live under the capability path), other
methods 405. Unknown, stopped and malformed ids are 404 before anything else happens; a
session still starting has its page already (its client connects once Xpra is ready).

No session route takes a request body: bodies are streamed (NoBodyMixin), never buffered, and a
request with one is answered (403 unauthenticated, 405 for another method, 413 for a GET or HEAD
with a body) before its body is read.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..bodies import AnswerTracking, announces_body
from ..capability import CapabilityStore
from ..client_options import client_query
from ..ids import SESSION_ID_PATTERN, is_valid_session_id
from ..manager import SessionManager
from ..session_page import LOCKED_DOWN_POLICY, is_index, security_headers

SESSION_ROUTE = rf"/firefox-launcher/session/(?P<session_id>{SESSION_ID_PATTERN})/(?P<proxied_path>.*)"
SESSION_ROOT_ROUTE = r"/firefox-launcher/session/(?P<session_id>[^/]*)"
ANY_SESSION_ROUTE = r"/firefox-launcher/session/(?P<session_id>[^/]*)/(?P<proxied_path>.*)"


def capabilities(settings: dict[str, Any]) -> CapabilityStore:
    """The server's capability store (made on first use)."""
    store = settings.get("ffsystemd_capabilities")
    if store is None:
        store = settings["ffsystemd_capabilities"] = CapabilityStore()
    return store


def session_prefix(base_url: str, session_id: str) -> str:
    """`<base_url>firefox-launcher/session/<id>` (no trailing slash)."""
    return url_path_join(base_url, "firefox-launcher", "session", session_id)


@web.stream_request_body
class NoBodyMixin(AnswerTracking, web.RequestHandler):
    """Routes that serve only GET, HEAD and websockets: a request body is refused, never read.

    Streaming mode keeps tornado from buffering a body before prepare(); the route's prepare()
    calls `refuse_body()` after its own checks (authentication, session, capability), which
    answers 405 for another method and 413 for a body announced on GET or HEAD. A body that
    still arrives (none was announced) is answered 413 and dropped.
    """

    def refuse_body(self) -> None:
        """405 for methods other than GET and HEAD, 413 if the request announces a body."""
        if self.request.method not in ("GET", "HEAD"):
            raise web.HTTPError(405, "session URLs answer only GET and HEAD")
        headers = self.request.headers
        if announces_body(headers.get("Content-Length"), headers.get("Transfer-Encoding")):
            raise web.HTTPError(413, "session URLs take no request body")

    def data_received(self, chunk: bytes) -> None:
        """Drop body bytes; the first ones end the request with 413 (tornado reads no more)."""
        if chunk and not self.answered:
            error = web.HTTPError(413, "session URLs take no request body")
            self.send_error(413, exc_info=(web.HTTPError, error, None))


class PlainGetHandler(NoBodyMixin):
    """A GET/HEAD route outside Jupyter's handler bases (no Jupyter credential works there),
    answering errors as Jupyter does: JSON {"message", "reason"}, and `Allow` on a 405."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON errors like Jupyter's: {"message", "reason"}."""
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD")
        exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        message = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": self._reason}))


class _SessionHandler(NoBodyMixin, ExtensionHandlerMixin, JupyterHandler):
    """Base of the cookie-authenticated session routes: locked-down headers, JSON errors, no body."""

    auth_resource = "ffsystemd"

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate, then check the request before any of its body is read."""
        await super().prepare()
        self.check_request()

    def check_request(self) -> None:
        """Refuse other methods and bodies (routes add their own checks)."""
        self.refuse_body()

    def set_default_headers(self) -> None:
        super().set_default_headers()
        for name, value in security_headers(LOCKED_DOWN_POLICY, same_origin_only=True).items():
            self.set_header(name, value)

    def set_cors_headers(self) -> None:
        """No CORS headers on session URLs (Jupyter adds them to token-authenticated answers)."""

    def set_cookie(self, *args: Any, **kwargs: Any) -> None:
        """Session URLs set no cookie, not even Jupyter's login cookie for a `?token=` link:
        nothing served under them needs one, and no answer here may carry Set-Cookie."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD")  # after send_error() cleared the headers
        self.set_header("Content-Type", "application/json")
        exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        message = getattr(exc, "log_message", None) or self._reason
        self.finish({"message": message, "reason": self._reason})

    @property
    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"


class SessionEntryHandler(_SessionHandler):
    """The session page for Jupyter's users: a fresh capability URL, or 404/405."""

    def check_request(self) -> None:
        """Authenticated (websockets get 403, pages the login redirect) before anything else."""
        if self.current_user:
            self.refuse_body()
            return
        if self._is_websocket or self.request.method not in ("GET", "HEAD"):
            raise web.HTTPError(403)
        self.refuse_body()
        web.authenticated(lambda handler: None)(self)

    def _running_session(self, session_id: str, action: str) -> str:
        if not self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource):
            raise web.HTTPError(403, f"not authorized to {action} on {self.auth_resource}")
        manager: SessionManager = self.settings["ffsystemd_manager"]
        if manager.socket_path(session_id) is None and not manager.is_starting(session_id):
            capabilities(self.settings).forget(session_id)
            raise web.HTTPError(404, "no running session with this id")
        return session_id

    def get(self, session_id: str, proxied_path: str) -> None:
        """Mint a capability and redirect to the client under it (with the options we allow)."""
        self._running_session(session_id, "execute")
        if self._is_websocket or not is_index(proxied_path):
            raise web.HTTPError(404, "not found: open the session page itself (the client lives under it)")
        manager: SessionManager = self.settings["ffsystemd_manager"]
        store = capabilities(self.settings)
        store.prune(lambda sid: manager.socket_path(sid) is not None or manager.is_starting(sid))
        capability = store.mint(session_id)
        target = (
            f"{session_prefix(self.base_url, session_id)}/c/{capability}/?{client_query(self.request.query)}"
        )
        self.redirect(target)

    def head(self, session_id: str, proxied_path: str) -> None:
        """200 if the session's page exists (no capability is minted)."""
        self._running_session(session_id, "read")
        if not is_index(proxied_path):
            raise web.HTTPError(404, "not found: open the session page itself (the client lives under it)")
        self.set_header("Content-Type", "text/html; charset=utf-8")

    def _method_not_allowed(self, *args: Any, **kwargs: Any) -> None:
        raise web.HTTPError(405, "the session page answers only GET and HEAD")

    post = put = delete = patch = options = _method_not_allowed

    def check_xsrf_cookie(self) -> None:
        """Only GET and HEAD do anything here; the other methods are 405 whatever their token."""


class SessionSlashHandler(_SessionHandler):
    """`.../session/<id>` → `.../session/<id>/` (authenticated; 404 for a malformed id)."""

    @web.authenticated
    def get(self, session_id: str) -> None:
        if not is_valid_session_id(session_id):
            raise web.HTTPError(404, "no running session with this id")
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(f"{self.request.path}/{query}")


class UnknownSessionHandler(_SessionHandler):
    """Any session path with a malformed id: 404 (after authentication), never a connection."""

    def check_request(self) -> None:
        if not self.current_user:
            raise web.HTTPError(403)
        raise web.HTTPError(404, "no running session with this id")
