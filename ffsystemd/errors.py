"""Typed errors shared by the session layers; handlers turn them into HTTP answers."""

from __future__ import annotations


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
