"""Shared base of our API handlers: auth resource, capped JSON bodies and typed errors as HTTP.

Bodies are streamed (`stream_request_body`), so nothing is buffered before `prepare()` has
checked the announced size and Jupyter has authenticated the request (an unauthenticated or
cross-site POST is answered 403 without its body being read); a body larger than
MAX_BODY_BYTES, announced or chunked, is answered 413 as soon as that is known.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import httputil, web

from ..bodies import MAX_BODY_BYTES, AnswerTracking, content_length_too_large, parse_json_object
from ..errors import FFSystemdError, FFSystemdHTTPError, http_error
from ..manager import SessionManager


@web.stream_request_body
class FFSystemdAPIHandler(AnswerTracking, ExtensionHandlerMixin, APIHandler):
    """Base of the REST handlers: resource `ffsystemd`, bodies of at most 64 KiB, JSON errors."""

    auth_resource = "ffsystemd"
    _body: bytearray

    async def prepare(self) -> None:  # type: ignore[override]
        """Refuse an announced oversized body (413) before authentication, then let Jupyter authenticate."""
        self._body = bytearray()
        if content_length_too_large(self.request.headers.get("Content-Length")):
            raise web.HTTPError(413, f"request body too large (at most {MAX_BODY_BYTES} bytes)")
        await super().prepare()

    def data_received(self, chunk: bytes) -> None:
        """Keep the streamed body; answer 413 (and read no more) once it passes MAX_BODY_BYTES."""
        if self.answered:
            return
        if len(self._body) + len(chunk) > MAX_BODY_BYTES:
            error = web.HTTPError(413, f"request body too large (at most {MAX_BODY_BYTES} bytes)")
            # Tornado stops handing us the rest and closes the connection after this answer.
            self.send_error(413, exc_info=(web.HTTPError, error, None))
            return
        self._body += chunk

    @property
    def manager(self) -> SessionManager:
        return self.settings["ffsystemd_manager"]

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object ({} when empty); 400 saying why for anything else."""
        try:
            return parse_json_object(bytes(self._body))
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None

    def reject_unknown_keys(self, body: dict[str, Any], allowed: set[str]) -> None:
        """400 when the body has keys we do not understand."""
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(map(str, unknown))}")

    def http_error_for(self, exc: FFSystemdError) -> web.HTTPError:
        """The HTTP answer to a typed error (ffsystemd.errors.http_error, the one mapping)."""
        return http_error(exc)

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        """A typed error that reached tornado is an answer, not a crash: log it as its HTTP error."""
        if isinstance(value, FFSystemdError):
            value = http_error(value)
            typ, tb = type(value), None
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON error {"message", "reason"}, plus `step`, `result` and `log_tail` for a failed launch.

        A typed error (FFSystemdError) raised by the manager gets its status here, so handlers
        need no try/except of their own.
        """
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, FFSystemdError):
            exc = http_error(exc)
            self.set_status(exc.status_code)
        if not isinstance(exc, FFSystemdHTTPError):
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        reason = exc.reason or httputil.responses.get(exc.status_code, "Unknown")
        self.finish(json.dumps({"message": exc.message, "reason": reason, **exc.details()}))
