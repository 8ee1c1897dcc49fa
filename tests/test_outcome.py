"""ffsystemd.outcome (how an ending reads) and the lifecycle claims of ffsystemd.session: pure."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ffsystemd.outcome import RESULT_MESSAGES, Cause, Ending, Verdict, exit_message, exit_result, verdict
from ffsystemd.session import Owner, Session, SessionState
from ffsystemd.session_dirs import session_paths

STOPPED, FAILED = SessionState.STOPPED, SessionState.FAILED


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (Ending(Cause.XPRA_EXITED, xpra_exit=-9), Verdict(FAILED, "signal", "Xpra was killed by SIGKILL")),
        (Ending(Cause.XPRA_EXITED, xpra_exit=3), Verdict(FAILED, "exit-code", "Xpra exited with status 3")),
        (
            Ending(Cause.XPRA_EXITED, xpra_exit=0),
            Verdict(STOPPED, "success", "Xpra exited normally (Firefox was closed)"),
        ),
        # Xpra left because Firefox did: Firefox's recorded status says how.
        (
            Ending(Cause.XPRA_EXITED, xpra_exit=0, firefox_status="0\n"),
            Verdict(STOPPED, "success", "Firefox was closed"),
        ),
        (
            Ending(Cause.XPRA_EXITED, xpra_exit=0, firefox_status="139"),
            Verdict(FAILED, "signal", "Firefox crashed (SIGSEGV)"),
        ),
        # Firefox's record only counts when Xpra left normally (or in an unknown way).
        (
            Ending(Cause.XPRA_EXITED, xpra_exit=-9, firefox_status="0"),
            Verdict(FAILED, "signal", "Xpra was killed by SIGKILL"),
        ),
        (Ending(Cause.XPRA_EXITED), Verdict(FAILED, "exit-code", "Xpra exited")),  # a re-adopted Xpra's pidfd
        (Ending(Cause.XPRA_EXITED, firefox_status="0"), Verdict(STOPPED, "success", "Firefox was closed")),
        # systemd's verdict beats anything we saw.
        (
            Ending(Cause.XPRA_EXITED, xpra_exit=-9, unit_result="oom-kill"),
            Verdict(FAILED, "oom-kill", RESULT_MESSAGES["oom-kill"]),
        ),
        (
            Ending(Cause.IDLE, idle_timeout=90, unit_result="timeout"),
            Verdict(FAILED, "timeout", RESULT_MESSAGES["timeout"]),
        ),
        (
            Ending(Cause.UNIT_STOPPED, active_state="failed", unit_result="core-dump"),
            Verdict(FAILED, "core-dump", "the session's unit stopped"),
        ),
        (
            Ending(Cause.UNIT_STOPPED, active_state="inactive", unit_result="success"),
            Verdict(STOPPED, "success", "the session's unit stopped"),
        ),
        (
            Ending(Cause.UNIT_STOPPED, active_state="failed"),
            Verdict(FAILED, None, "the session's unit stopped"),
        ),
        (Ending(Cause.UNIT_VANISHED), Verdict(FAILED, None, "the session's unit vanished")),
        (
            Ending(Cause.UNIT_REMOVED, unit_result="success"),
            Verdict(STOPPED, None, "the session's unit was removed"),
        ),
        (Ending(Cause.XPRA_GONE), Verdict(FAILED, "exit-code", "Xpra is gone")),
        (Ending(Cause.XPRA_MISSING), Verdict(FAILED, None, "Xpra was no longer running")),
        (
            Ending(Cause.IDLE, idle_timeout=90),
            Verdict(STOPPED, "idle-timeout", "stopped after 1.5 minutes without use (idle_timeout)"),
        ),
    ],
)
def test_verdicts(ending: Ending, expected: Verdict) -> None:
    assert verdict(ending) == expected


def test_exit_words() -> None:
    assert [exit_result(c) for c in (None, 0, 1, -15)] == [None, "success", "exit-code", "signal"]
    assert exit_message(-15) == "Xpra was killed by SIGTERM"
    assert exit_message(-200) == "Xpra was killed by 200"


def _session() -> Session:
    sid = "0123456789ab"
    return Session(
        id=sid,
        unit=f"app-ffsystemd-firefox-{sid}.scope",
        paths=session_paths(Path("/nonexistent"), sid),
        start_url="about:blank",
        created=datetime.now(timezone.utc),
    )


def test_one_owner_at_a_time() -> None:
    session = _session()
    session.owner = Owner.LAUNCH
    assert not session.claim(Owner.END) and not session.claim(Owner.CLEANUP)
    assert session.take_over_launch() and session.owner is Owner.CLEANUP
    assert not session.take_over_launch()  # only a launch can be taken over
    session.release(Owner.LAUNCH)  # not the owner: nothing happens
    assert session.owner is Owner.CLEANUP
    session.release(Owner.CLEANUP)
    assert session.claim(Owner.END) and not session.claim(Owner.CLEANUP)


def test_endable_and_tracked_follow_state_and_owner() -> None:
    session = _session()
    assert session.active and not session.endable  # starting
    session.state = SessionState.RUNNING
    assert session.endable and session.tracked
    assert session.claim(Owner.CLEANUP)
    assert not session.endable and not session.tracked  # running, but a cleanup owns it
    session.state = SessionState.STOPPING
    assert session.tracked and session.active
    session.state = SessionState.STOPPED
    assert not session.active and not session.tracked
