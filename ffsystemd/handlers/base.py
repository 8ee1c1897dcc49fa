"""Shared base of our API handlers: auth resource, JSON bodies and typed errors as HTTP."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..errors import (
    FFSystemdError,
    LaunchError,
    SessionLimitReached,
    SystemdTimeout,
    SystemdUnavailable,
    UnknownSession,
)
from ..manager import SessionManager

MAX_BODY_BYTES = 64 * 1024


class FFSystemdAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Base of the REST handlers: resource `ffsystemd`, JSON errors with details."""

    auth_resource = "ffsystemd"

    @property
    def manager(self) -> SessionManager:
        return self.settings["ffsystemd_manager"]

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object ({} when empty); 400 for anything else."""
        raw = self.request.body or b""
        if len(raw) > MAX_BODY_BYTES:
            raise web.HTTPError(413, "request body too large")
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise web.HTTPError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        return data

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
            error.ffsystemd_details = {"step": exc.step, "log_tail": exc.log_tail}  # type: ignore[attr-defined]
            return error
        return web.HTTPError(500, str(exc))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON error: {"message", "reason"} plus launch details (step, log_tail) if any."""
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        details = getattr(exc, "ffsystemd_details", None)
        if not details:
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        reason = getattr(exc, "reason", None) or self._reason
        self.finish(json.dumps({"message": exc.log_message, "reason": reason, **details}))
