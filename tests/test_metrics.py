"""ffsystemd.metrics: the sessions collector and the websocket byte counter."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from ffsystemd import metrics


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


def test_websocket_bytes() -> None:
    delta = Delta(
        ("ffsystemd_websocket_bytes_total", {"direction": "to_session"}),
        ("ffsystemd_websocket_bytes_total", {"direction": "to_browser"}),
    )
    metrics.count_websocket_bytes("to_session", 100)
    metrics.count_websocket_bytes("to_browser", 4096)
    metrics.count_websocket_bytes("sideways", 5)  # unknown directions are not counted
    assert delta() == [100, 4096]


def test_names_follow_prometheus_conventions() -> None:
    text = generate_latest(REGISTRY).decode()
    ours = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ffsystemd_")}
    assert {
        "ffsystemd_sessions",
        "ffsystemd_websocket_bytes_total",
        "ffsystemd_session_memory_bytes",
        "ffsystemd_session_tasks",
    } <= ours
    assert "ffsystemd_websocket_bytes_total{" in text
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
