"""How a session ended, in words: the one place that turns what is known into state, result, message.

Pure. Every path that ends a session (Xpra exited, the unit failed or vanished, idle culling,
re-sync) describes what it saw as an `Ending` and asks `verdict()`; the rule of precedence is
the same everywhere: a unit result from systemd other than `success` (oom-kill, timeout, ...)
wins over anything we observed ourselves; then Firefox's recorded exit when Xpra left normally
(or in an unknown way); then Xpra's own exit status; then the cause's own message.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import Enum

from .commands import firefox_end
from .session import SessionState

RESULT_MESSAGES = {
    "oom-kill": "the session ran out of memory (memory_max) and was killed",
    "timeout": "the session reached its maximum age (max_age) and was stopped",
    "signal": "a process of the session was killed by a signal",
    "exit-code": "a process of the session exited with an error",
    "idle-timeout": "the session was stopped after being idle for idle_timeout",
    "resources": "systemd could not set up the session's resources",
}


class Cause(Enum):
    """Who noticed that the session ended."""

    XPRA_EXITED = "xpra-exited"  # our child, or a re-adopted Xpra's pidfd
    XPRA_GONE = "xpra-gone"  # a re-adopted session's Xpra could not be watched at all
    XPRA_MISSING = "xpra-missing"  # a re-adopted unit holds no Xpra server
    UNIT_STOPPED = "unit-stopped"  # ActiveState left active (PropertiesChanged or a read)
    UNIT_VANISHED = "unit-vanished"  # systemd no longer knows the unit
    UNIT_REMOVED = "unit-removed"  # UnitRemoved of a re-adopted session
    IDLE = "idle"  # idle culling


@dataclass(frozen=True)
class Ending:
    """What is known when a session ends.

    `xpra_exit` is Xpra's exit status (negative: killed by that signal), None when unknown
    (a re-adopted Xpra is not our child); `firefox_status` is the text Firefox's wrapper
    recorded, None when nothing was recorded; `unit_result` is systemd's Result, if known.
    """

    cause: Cause
    unit_result: str | None = None
    active_state: str | None = None
    xpra_exit: int | None = None
    firefox_status: str | None = None
    idle_timeout: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """The final state, result (systemd's word, or ours) and human message of an ended session."""

    state: SessionState
    result: str | None
    message: str


def exit_result(returncode: int | None) -> str | None:
    """systemd's vocabulary for a process exit: success, signal or exit-code (None: unknown)."""
    if returncode is None:
        return None
    if returncode == 0:
        return "success"
    return "signal" if returncode < 0 else "exit-code"


def exit_message(returncode: int | None) -> str:
    """A human sentence for Xpra's exit status."""
    if returncode is None:
        return "Xpra exited"
    if returncode == 0:
        return "Xpra exited normally (Firefox was closed)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"Xpra was killed by {name}"
    return f"Xpra exited with status {returncode}"


def _observed(ending: Ending) -> tuple[SessionState, str | None, str]:
    """The verdict from what we saw ourselves, before systemd's result is considered."""
    cause = ending.cause
    if cause is Cause.XPRA_EXITED:
        firefox = firefox_end(ending.firefox_status) if ending.xpra_exit in (0, None) else None
        if firefox is not None:
            result, message = firefox  # Xpra left because Firefox did: say how Firefox ended
        elif ending.xpra_exit is None:
            result, message = "exit-code", "Xpra exited"
        else:
            result, message = exit_result(ending.xpra_exit) or "exit-code", exit_message(ending.xpra_exit)
        return (SessionState.STOPPED if result == "success" else SessionState.FAILED), result, message
    if cause is Cause.XPRA_GONE:
        return SessionState.FAILED, "exit-code", "Xpra is gone"
    if cause is Cause.XPRA_MISSING:
        return SessionState.FAILED, None, "Xpra was no longer running"
    if cause is Cause.UNIT_VANISHED:
        return SessionState.FAILED, None, "the session's unit vanished"
    if cause is Cause.UNIT_REMOVED:
        return SessionState.STOPPED, None, "the session's unit was removed"
    if cause is Cause.IDLE:
        message = f"stopped after {ending.idle_timeout / 60:g} minutes without use (idle_timeout)"
        return SessionState.STOPPED, "idle-timeout", message
    state = SessionState.FAILED if ending.active_state == "failed" else SessionState.STOPPED
    return state, ending.unit_result or None, "the session's unit stopped"


def verdict(ending: Ending) -> Verdict:
    """The final state, result and message of an ending (see the module docstring for precedence)."""
    state, result, message = _observed(ending)
    unit_result = ending.unit_result or None
    if unit_result not in (None, "success"):
        return Verdict(SessionState.FAILED, unit_result, RESULT_MESSAGES.get(unit_result, message))
    return Verdict(state, result, message)
