"""ffsystemd.errors: the one mapping of typed errors to HTTP answers (pure)."""

from __future__ import annotations

import pytest
from tornado import web

from ffsystemd.errors import (
    FFSystemdError,
    FFSystemdHTTPError,
    JobFailed,
    LaunchCancelled,
    LaunchError,
    NoSuchUnit,
    SessionLimitReached,
    StopFailed,
    SystemdTimeout,
    SystemdUnavailable,
    UnitExists,
    UnknownSession,
    http_error,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SessionLimitReached("4 sessions"), 429),
        (SystemdUnavailable("no bus"), 503),
        (SystemdTimeout("slow"), 503),
        (UnknownSession("no session 'x'"), 404),
        (LaunchCancelled(), 409),
        (LaunchError("xpra-ready", "Xpra exited"), 500),
        (StopFailed("AccessDenied: no"), 500),
        (JobFailed("u.scope", "failed"), 500),
        (NoSuchUnit("org.freedesktop.systemd1.NoSuchUnit", "gone"), 500),
        (UnitExists("org.freedesktop.systemd1.UnitExists", "taken"), 500),
        (FFSystemdError("anything else"), 500),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_each_error_has_its_status_and_its_message(error: FFSystemdError, status: int) -> None:
    answer = http_error(error)
    assert isinstance(answer, web.HTTPError) and isinstance(answer, FFSystemdHTTPError)
    assert answer.status_code == status
    expected = error.message if isinstance(error, LaunchError) else str(error)
    assert answer.message == expected


def test_a_failed_launch_carries_its_step_and_log_tail() -> None:
    answer = http_error(LaunchError("xpra-ready", "Xpra exited", ["line 1", "line 2"], result="oom-kill"))
    assert answer.details() == {"step": "xpra-ready", "result": "oom-kill", "log_tail": ["line 1", "line 2"]}
    cancelled = http_error(LaunchCancelled())
    assert cancelled.details() == {"step": "cancelled", "result": None, "log_tail": []}
    assert "cleanup" in cancelled.message
    assert http_error(SystemdUnavailable("no bus")).details() == {}


def test_a_percent_sign_in_a_message_survives_tornados_formatting() -> None:
    answer = http_error(LaunchError("xpra-ready", "disk 100% full"))
    assert answer.message == "disk 100% full"
    assert "disk 100% full" in str(answer)
