"""Shared base of our API handlers: auth resource, capped JSON bodies and typed errors as HTTP.

Bodies are streamed (`stream_request_body`), so nothing is buffered before `prepare()` has
checked the announced size and Jupyter has authenticated the request (an unauthenticated or
cross-site POST is answered 403 without its body being read); a body larger than
MAX_BODY_BYTES, announced or chunked, is answered 413 as soon as that is known.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..bodies import MAX_BODY_BYTES, content_length_too_large, parse_json_object
from ..errors import (
    FFSystemdError,
    LaunchError,
    SessionLimitReached,
    SystemdTimeout,
    SystemdUnavailable,
    UnknownSession,
)
from ..manager import SessionManager


@web.stream_request_body
class FFSystemdAPIHandler(ExtensionHandlerMixin, APIHandler):
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
        if self._finished:
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
        """Map a typed error to an HTTP error with the right status and a clear message."""
        if isinstance(exc, SessionLimitReached):
            return web.HTTPError(429, str(exc))
        if isinstance(exc, (SystemdUnavailable, SystemdTimeout)):
            return web.HTTPError(503, str(exc))
        if isinstance(exc, UnknownSession):
            return web.HTTPError(404, str(exc))
        if isinstance(exc, LaunchError):
            error = web.HTTPError(409 if exc.step == "cancelled" else 500, exc.message)
            details = {"step": exc.step, "result": exc.result, "log_tail": exc.log_tail}
            error.ffsystemd_details = details  # type: ignore[attr-defined]
            return error
        return web.HTTPError(500, str(exc))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON error: {"message", "reason"} plus launch details (step, result, log_tail) if any."""
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        details = getattr(exc, "ffsystemd_details", None)
        if not details:
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        reason = getattr(exc, "reason", None) or self._reason
        self.finish(json.dumps({"message": exc.log_message, "reason": reason, **details}))
