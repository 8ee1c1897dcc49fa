"""ffsystemd.metrics and ffsystemd.event_log: what each session event counts and logs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

from ffsystemd import metrics
from ffsystemd.event_log import log_event, session_line, url_for_log
from ffsystemd.events import (
    LaunchRefused,
    LaunchRequested,
    SessionCleanedUp,
    SessionEnded,
    SessionLaunched,
)

SID = "0123456789ab"


def sample(name: str, **labels: str) -> float:
    """The current value of one sample in the process-wide registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Sample values now, compared with later: metrics are process-wide, tests compare changes."""

    def __init__(self, *keys: tuple[str, dict[str, str]]) -> None:
        self.keys = keys
        self.before = [sample(n, **ls) for n, ls in keys]

    def __call__(self) -> list[float]:
        return [sample(n, **ls) - b for (n, ls), b in zip(self.keys, self.before, strict=True)]


def test_launches_are_counted_by_outcome_and_step() -> None:
    delta = Delta(
        ("ffsystemd_launches_total", {"outcome": "running", "step": ""}),
        ("ffsystemd_launches_total", {"outcome": "failed", "step": "xpra-ready"}),
        ("ffsystemd_launches_total", {"outcome": "failed", "step": "other"}),
        ("ffsystemd_launches_total", {"outcome": "cancelled", "step": "cancelled"}),
        ("ffsystemd_launch_duration_seconds_count", {"outcome": "running"}),
        ("ffsystemd_launch_duration_seconds_sum", {"outcome": "running"}),
        ("ffsystemd_launch_duration_seconds_bucket", {"outcome": "running", "le": "1.5"}),
    )
    metrics.observe(SessionLaunched(SID, 1.25, "running"))
    metrics.observe(SessionLaunched(SID, 2.0, "running", None))
    metrics.observe(SessionLaunched(SID, 30.0, "failed", "xpra-ready"))
    metrics.observe(SessionLaunched(SID, 0.1, "failed", "a step nobody knows"))
    metrics.observe(SessionLaunched(SID, 0.3, "cancelled", "cancelled"))
    assert delta() == [2, 1, 1, 1, 2, 3.25, 1]


def test_ended_sessions_are_counted_by_bounded_result() -> None:
    delta = Delta(
        ("ffsystemd_sessions_ended_total", {"result": "oom-kill"}),
        ("ffsystemd_sessions_ended_total", {"result": "idle-timeout"}),
        ("ffsystemd_sessions_ended_total", {"result": "unknown"}),
        ("ffsystemd_sessions_ended_total", {"result": "other"}),
    )
    metrics.observe(SessionEnded(SID, "failed", "oom-kill", "out of memory"))
    metrics.observe(SessionEnded(SID, "stopped", "idle-timeout", "idle"))
    metrics.observe(SessionEnded(SID, "failed", None, "the unit vanished"))
    metrics.observe(SessionEnded(SID, "failed", "made-up-result", "?"))
    assert delta() == [1, 1, 1, 1]


def test_cleanups_and_websocket_bytes() -> None:
    delta = Delta(
        ("ffsystemd_cleanups_total", {"forced": "false", "outcome": "ok"}),
        ("ffsystemd_cleanups_total", {"forced": "true", "outcome": "error"}),
        ("ffsystemd_websocket_bytes_total", {"direction": "to_session"}),
        ("ffsystemd_websocket_bytes_total", {"direction": "to_browser"}),
    )
    metrics.observe(SessionCleanedUp(SID, False))
    metrics.observe(SessionCleanedUp(SID, True, "systemd refused"))
    metrics.count_websocket_bytes("to_session", 100)
    metrics.count_websocket_bytes("to_browser", 4096)
    metrics.count_websocket_bytes("sideways", 5)  # unknown directions are not counted
    assert delta() == [1, 1, 100, 4096]


def test_names_follow_prometheus_conventions() -> None:
    text = generate_latest(REGISTRY).decode()
    ours = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ffsystemd_")}
    assert {
        "ffsystemd_sessions",
        "ffsystemd_launches_total",
        "ffsystemd_launch_duration_seconds",
        "ffsystemd_sessions_ended_total",
        "ffsystemd_cleanups_total",
        "ffsystemd_websocket_bytes_total",
        "ffsystemd_session_memory_bytes",
        "ffsystemd_session_tasks",
    } <= ours
    assert "ffsystemd_launches_total{" in text and "ffsystemd_websocket_bytes_total{" in text
    assert "session=" not in "".join(line for line in text.splitlines() if "_total" in line)


class StubManager:
    """What the collector reads from a session manager: ids, sessions as JSON, a refresh."""

    def __init__(self, sessions: list[dict[str, Any]]) -> None:
        self.sessions = {s["id"]: s for s in sessions}
        self.refreshes = 0
        self.observers = type("O", (), {"add": lambda self, f: None})()

    def session_ids(self) -> list[str]:
        return list(self.sessions)

    def get(self, sid: str) -> dict[str, Any]:
        return self.sessions[sid]

    def to_json(self, session: dict[str, Any]) -> dict[str, Any]:
        return session

    async def list_status(self) -> list[dict[str, Any]]:
        self.refreshes += 1
        return list(self.sessions.values())


def session(sid: str, state: str, memory: int | None = None, tasks: int | None = None) -> dict[str, Any]:
    return {
        "id": sid,
        "state": state,
        "memory_current": memory,
        "memory_max": 1024**3,
        "tasks_current": tasks,
        "tasks_max": None,
    }


async def test_collector_reports_states_and_figures_of_running_sessions_only() -> None:
    manager = StubManager(
        [
            session("aaaaaaaaaaaa", "running", 300_000_000, 42),
            session("bbbbbbbbbbbb", "running", None, 7),
            session("cccccccccccc", "failed", 5, 5),
            session("dddddddddddd", "starting"),
        ]
    )
    before = {s: sample("ffsystemd_sessions", state=s) for s in metrics.STATES}
    metrics.install(manager)
    try:
        after = {s: sample("ffsystemd_sessions", state=s) for s in metrics.STATES}
        assert {s: after[s] - before[s] for s in metrics.STATES} == {
            "starting": 1,
            "running": 2,
            "stopping": 0,
            "stopped": 0,
            "failed": 1,
        }
        assert sample("ffsystemd_session_memory_bytes", session="aaaaaaaaaaaa") == 300_000_000
        assert sample("ffsystemd_session_memory_max_bytes", session="aaaaaaaaaaaa") == 1024**3
        assert sample("ffsystemd_session_tasks", session="bbbbbbbbbbbb") == 7
        assert (
            REGISTRY.get_sample_value("ffsystemd_session_memory_bytes", {"session": "bbbbbbbbbbbb"}) is None
        )
        assert REGISTRY.get_sample_value("ffsystemd_session_tasks_max", {"session": "aaaaaaaaaaaa"}) is None
        assert REGISTRY.get_sample_value("ffsystemd_session_tasks", {"session": "cccccccccccc"}) is None
        # each scrape starts one refresh of the figures for the next
        for _ in range(20):
            if manager.refreshes:
                break
            await asyncio.sleep(0.01)
        assert manager.refreshes >= 1
    finally:
        metrics.SESSIONS.discard(manager)
    assert REGISTRY.get_sample_value("ffsystemd_session_tasks", {"session": "bbbbbbbbbbbb"}) is None


@pytest.mark.parametrize(
    ("event", "level", "words"),
    [
        (SessionLaunched(SID, 1.5, "running"), logging.INFO, ["ready after 1.50 s"]),
        (
            SessionLaunched(SID, 3, "failed", "xpra-ready"),
            logging.WARNING,
            ["launch failed at step xpra-ready"],
        ),
        (SessionLaunched(SID, 0.2, "cancelled", "cancelled"), logging.INFO, ["launch cancelled"]),
        (
            SessionEnded(SID, "failed", "oom-kill", "out of memory"),
            logging.WARNING,
            ["ended: failed", "oom-kill"],
        ),
        (SessionEnded(SID, "stopped", "idle-timeout", "idle"), logging.INFO, ["idle-timeout"]),
        (SessionCleanedUp(SID, True), logging.INFO, ["cleaned up (forced)"]),
        (SessionCleanedUp(SID, False, "refused"), logging.WARNING, ["cleanup failed: refused"]),
    ],
)
def test_every_event_is_logged_once_with_id_and_unit(
    event: Any, level: int, words: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ffsystemd.sessions"):
        log_event(event)
    (record,) = caplog.records
    assert record.levelno == level
    message = record.getMessage()
    assert SID in message and f"app-ffsystemd-firefox-{SID}.scope" in message
    for word in words:
        assert word in message


def test_refused_launches_are_counted_by_bounded_reason() -> None:
    delta = Delta(
        ("ffsystemd_launches_refused_total", {"reason": "max-sessions"}),
        ("ffsystemd_launches_refused_total", {"reason": "bad-request"}),
        ("ffsystemd_launches_refused_total", {"reason": "other"}),
        ("ffsystemd_launches_total", {"outcome": "failed", "step": "other"}),
    )
    metrics.observe(LaunchRefused("max-sessions", "4 sessions are already running"))
    metrics.observe(LaunchRefused("bad-request"))
    metrics.observe(LaunchRefused("bad-request"))
    metrics.observe(LaunchRefused("made-up"))  # type: ignore[arg-type]
    metrics.observe(LaunchRequested(SID, "https://example.org/"))  # counted when it finishes
    assert delta() == [1, 2, 1, 0]
    assert "# TYPE ffsystemd_launches_refused_total counter" in generate_latest(REGISTRY).decode()


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("https://example.org/", "https://example.org/"),
        ("https://example.org", "https://example.org/"),
        ("https://user:secret@Example.org:8443/reset?token=abc#x", "https://example.org:8443/…"),
        ("http://[::1]:8080/a", "http://[::1]:8080/…"),
        ("https://example.org/?q=private", "https://example.org/…"),
        ("about:blank", "about:blank"),
        ("about:x" + "y" * 60, "about:…"),
        ("ftp://example.org/", "<unparsable>"),
        ("https://example.org:notaport/", "<unparsable>"),
        (None, "-"),
    ],
)
def test_start_urls_are_logged_without_path_query_or_credentials(url: str | None, logged: str) -> None:
    assert url_for_log(url) == logged


def test_an_accepted_launch_request_is_logged_once_with_id_unit_and_host_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ffsystemd.sessions"):
        log_event(LaunchRequested(SID, "https://me:pw@example.org/private?token=s3cret"))
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.INFO
    assert f"session {SID} (app-ffsystemd-firefox-{SID}.scope): launch requested" in message
    assert "https://example.org/…" in message
    for secret in ("pw", "private", "s3cret", "me:"):
        assert secret not in message


def test_refused_launch_requests_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="ffsystemd.sessions"):
        log_event(LaunchRefused("max-sessions", "4 sessions are already running (max_sessions)"))
        log_event(LaunchRefused("bad-request", "url must be ..., got 'https://x/?token=1'"))
    limit, bad = caplog.records
    assert limit.levelno == logging.WARNING and "max_sessions reached" in limit.getMessage()
    assert bad.levelno == logging.INFO and bad.getMessage() == "launch request refused: bad request"


def test_session_line_is_the_shape_other_parts_log_with(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="ffsystemd.sessions"):
        session_line(logging.INFO, SID, " claimed from the pool after %.2f s", 0.25)
    (record,) = caplog.records
    assert (
        record.getMessage()
        == f"session {SID} (app-ffsystemd-firefox-{SID}.scope) claimed from the pool after 0.25 s"
    )


def test_package_logs_go_through_the_servers_handlers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from ffsystemd.event_log import route_package_logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s %(name)s] %(message)s"))
    target = logging.getLogger("test-serverapp")
    monkeypatch.setattr(target, "handlers", [handler])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a Jupyter server
    package = logging.getLogger("ffsystemd")
    monkeypatch.setattr(package, "handlers", [])
    old_level = package.level
    package.setLevel(logging.NOTSET)
    try:
        assert route_package_logs(target, logging.INFO)
        log_event(SessionLaunched(SID, 1.5, "running"))
        logging.getLogger("ffsystemd.manager").debug("below --log-level: not written")
        unit = f"app-ffsystemd-firefox-{SID}.scope"
        assert stream.getvalue() == f"[INFO ffsystemd.sessions] session {SID} ({unit}) ready after 1.50 s\n"
        assert not route_package_logs(target)  # a second server in the process: no second copy
    finally:
        package.setLevel(old_level)


def test_package_logs_are_left_to_a_logging_setup_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    from ffsystemd.event_log import route_package_logs

    target = logging.getLogger("test-serverapp-2")
    monkeypatch.setattr(target, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(logging.getLogger("ffsystemd"), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])  # root configured
    assert not route_package_logs(target)
    assert logging.getLogger("ffsystemd").handlers == []
