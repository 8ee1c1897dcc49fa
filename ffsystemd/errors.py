"""Typed errors shared by the session layers, and the one place they become HTTP answers.

    FFSystemdError                      every error this package raises on purpose   HTTP
     ├── SystemdError (name, message)   a D-Bus error the user manager answered       500
     │    ├── NoSuchUnit                  the unit is not loaded                       500
     │    └── UnitExists                  a unit of that name is loaded already        500
     ├── JobFailed (unit, result)       a job ended other than `done`                 500
     ├── SystemdUnavailable             no bus, or no manager on it                   503
     ├── SystemdTimeout                 a call or a job did not finish in time        503
     ├── SessionLimitReached            max_sessions are starting or running          429
     ├── UnknownSession                 no such session of this server                404
     ├── LaunchError (step, result,     a launch failed at `step` (systemd's verdict  500
     │    log_tail)                     in `result`, e.g. oom-kill)
     │    └── LaunchCancelled           a cleanup stopped it while it started         409
     └── StopFailed                     systemd refused to stop a session's unit      500

    tornado.web.HTTPError
     └── FFSystemdHTTPError (step, result, log_tail)   what `http_error(exc)` makes of any of the above

Handlers let these errors propagate: the API handlers' base class answers them through
`http_error` (status and message, plus `step`, `result` and `log_tail` for a launch).
"""

from __future__ import annotations

from typing import Any

from tornado import web


class FFSystemdError(Exception):
    """Base class of every error this package raises on purpose."""


class SystemdError(FFSystemdError):
    """A D-Bus error answered by the systemd user manager; `name` is systemd's error name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class NoSuchUnit(SystemdError):
    """org.freedesktop.systemd1.NoSuchUnit: the unit is not loaded."""


class UnitExists(SystemdError):
    """org.freedesktop.systemd1.UnitExists: a unit of that name is already loaded."""


class JobFailed(FFSystemdError):
    """A systemd job finished with a result other than `done`."""

    def __init__(self, unit: str, result: str) -> None:
        super().__init__(f"job for {unit} finished with result {result!r}")
        self.unit = unit
        self.result = result


class SystemdUnavailable(FFSystemdError):
    """No systemd user manager can be reached (no bus, or nobody owns org.freedesktop.systemd1)."""


class SystemdTimeout(FFSystemdError):
    """A call to the user manager, or a job it runs, did not finish in time."""


class SessionLimitReached(FFSystemdError):
    """max_sessions sessions are already starting or running."""


class UnknownSession(FFSystemdError):
    """No session with this id was created by this launcher."""


class LaunchError(FFSystemdError):
    """A launch failed at `step`; `log_tail` holds the last lines of the Xpra log and `result`
    systemd's verdict on the session's unit (e.g. `oom-kill`) when it gave one."""

    def __init__(
        self, step: str, message: str, log_tail: list[str] | None = None, result: str | None = None
    ) -> None:
        super().__init__(f"launch failed at step {step!r}: {message}")
        self.step = step
        self.message = message
        self.log_tail = log_tail or []
        self.result = result


class LaunchCancelled(LaunchError):
    """A cleanup stopped the session while it was starting (step `cancelled` in the error JSON)."""

    def __init__(self, message: str = "the session was stopped (cleanup) while it was starting") -> None:
        super().__init__("cancelled", message)


class StopFailed(FFSystemdError):
    """Stopping a session's unit failed; the session stays known so a cleanup can be retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_SYSTEMD_ERRORS: dict[str, type[SystemdError]] = {
    "org.freedesktop.systemd1.NoSuchUnit": NoSuchUnit,
    "org.freedesktop.systemd1.UnitExists": UnitExists,
}


def systemd_error(name: str, message: str) -> SystemdError:
    """Return the typed exception for a D-Bus error name (SystemdError for names we do not type)."""
    return _SYSTEMD_ERRORS.get(name, SystemdError)(name, message)


class FFSystemdHTTPError(web.HTTPError):
    """An HTTP error answer; a failed launch's also carries its `step`, systemd's `result` and the
    Xpra log's tail."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        step: str | None = None,
        result: str | None = None,
        log_tail: list[str] | None = None,
    ) -> None:
        super().__init__(status_code, message)
        self.message = message
        self.step = step
        self.result = result
        self.log_tail = log_tail

    def details(self) -> dict[str, Any]:
        """The extra fields of the JSON error body (empty unless a launch failed)."""
        if self.step is None:
            return {}
        return {"step": self.step, "result": self.result, "log_tail": list(self.log_tail or [])}


_HTTP_STATUS: tuple[tuple[type[FFSystemdError] | tuple[type[FFSystemdError], ...], int], ...] = (
    (SessionLimitReached, 429),
    ((SystemdUnavailable, SystemdTimeout), 503),
    (UnknownSession, 404),
    (LaunchCancelled, 409),
)


def http_error(exc: FFSystemdError) -> FFSystemdHTTPError:
    """The HTTP answer to a typed error (see the table at the top of this module)."""
    status = next((code for kinds, code in _HTTP_STATUS if isinstance(exc, kinds)), 500)
    if isinstance(exc, LaunchError):
        return FFSystemdHTTPError(
            status, exc.message, step=exc.step, result=exc.result, log_tail=exc.log_tail
        )
    return FFSystemdHTTPError(status, str(exc))
