"""Prometheus metrics of ffsystemd, on the Jupyter server's own `/metrics` endpoint.

jupyter_server serves prometheus_client's default registry at `<base_url>metrics`; scraping
it needs Jupyter authentication unless `c.ServerApp.authenticate_prometheus = False`. Our
metrics join that registry when this module is imported (once per process):

    ffsystemd_sessions{state}                       gauge: sessions this server knows, by state
                                                    (starting running stopping stopped failed;
                                                    ended ones for `ended_retention` records)
    ffsystemd_launches_total{outcome,step}          counter: launches that finished: outcome
                                                    running, failed (step = the failed step) or
                                                    cancelled (a cleanup stopped it); step "" else
    ffsystemd_launch_duration_seconds{outcome}      histogram: request to that outcome
    ffsystemd_launches_refused_total{reason}        counter: launch requests refused before a
                                                    session existed: max-sessions (429) or
                                                    bad-request (400: body or url refused)
    ffsystemd_sessions_ended_total{result}          counter: sessions that ended by themselves,
                                                    by result (success, oom-kill, timeout,
                                                    signal, exit-code, idle-timeout, ...)
    ffsystemd_pool_claims_total{outcome}            counter: launches that asked the warm pool:
                                                    hit (claimed a pooled session), miss (none
                                                    ready: cold launch), failed (the pooled one
                                                    did not take its page: cold launch)
    ffsystemd_pool_starts_total{outcome}            counter: pooled sessions started ahead
                                                    (running, failed, cancelled); these are not
                                                    in ffsystemd_launches_total
    ffsystemd_pool_sessions{state}                  gauge: unclaimed pooled sessions, ready or
                                                    starting (not in ffsystemd_sessions)
    ffsystemd_cleanups_total{forced,outcome}        counter: cleanup requests per session
                                                    (outcome ok or error)
    ffsystemd_websocket_bytes_total{direction}      counter: bytes through the websocket tunnel
                                                    (to_session, to_browser)
    ffsystemd_client_files_total{answer}            counter: requests for the client's static
                                                    files (`.../client/<version>/...`), by
                                                    answer: 200, 304, 404, other (a browser
                                                    that caches them asks once)
    ffsystemd_session_memory_bytes{session}         gauges of *running* sessions only (at most
    ffsystemd_session_memory_max_bytes{session}     max_sessions series per server, gone when the
    ffsystemd_session_tasks{session}                session ends): systemd's MemoryCurrent,
    ffsystemd_session_tasks_max{session}            MemoryMax, TasksCurrent, TasksMax (a series
                                                    is absent where systemd reports none)

Label values are bounded: counters never carry a session id, unknown steps and results are
counted as `other`. The per-session figures are the manager's cached ones; each scrape also
starts a refresh in the background, so they are at most one scrape (plus `stats_interval`)
old. Requests refused without authentication (403) or for the size of their body (413, which
can be answered before authentication) are not counted as refused launches.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .events import (
    LaunchRefused,
    PoolClaimed,
    SessionCleanedUp,
    SessionEnded,
    SessionEvent,
    SessionLaunched,
)

STATES = ("starting", "running", "stopping", "stopped", "failed")
LAUNCH_OUTCOMES = ("running", "failed", "cancelled")
LAUNCH_STEPS = frozenset(
    {"systemd", "directories", "spawn", "unit-start", "xpra-start", "xpra-ready", "cancelled", "cleanup"}
)
END_RESULTS = frozenset(
    {
        "success",
        "oom-kill",
        "timeout",
        "signal",
        "exit-code",
        "core-dump",
        "watchdog",
        "resources",
        "idle-timeout",
        "start-limit-hit",
        "unit-vanished",
    }
)
DURATION_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)

LAUNCHES = Counter(
    "ffsystemd_launches",
    "Launches that finished, by outcome (running, failed, cancelled) and failed step.",
    ["outcome", "step"],
)
LAUNCH_DURATION = Histogram(
    "ffsystemd_launch_duration_seconds",
    "Seconds from a launch request to its outcome (Xpra answering, or the failure).",
    ["outcome"],
    buckets=DURATION_BUCKETS,
)
LAUNCHES_REFUSED = Counter(
    "ffsystemd_launches_refused",
    "Launch requests refused before a session existed: max-sessions (429) or bad-request (400).",
    ["reason"],
)
REFUSAL_REASONS = ("max-sessions", "bad-request")
SESSIONS_ENDED = Counter(
    "ffsystemd_sessions_ended",
    "Sessions that ended without a cleanup request, by result (oom-kill, timeout, signal, ...).",
    ["result"],
)
CLEANUPS = Counter(
    "ffsystemd_cleanups",
    "Sessions a cleanup request stopped (outcome ok) or could not stop (error).",
    ["forced", "outcome"],
)
WEBSOCKET_BYTES = Counter(
    "ffsystemd_websocket_bytes",
    "Bytes proxied through the sessions' websocket tunnels, by direction.",
    ["direction"],
)
WEBSOCKET_DIRECTIONS = ("to_session", "to_browser")
CLIENT_FILE_ANSWERS = ("200", "304", "404")
CLIENT_FILES = Counter(
    "ffsystemd_client_files",
    "Requests for the Xpra client's static files, by answer (200, 304, 404, other).",
    ["answer"],
)
POOL_OUTCOMES = ("hit", "miss", "failed")
POOL_CLAIMS = Counter(
    "ffsystemd_pool_claims",
    "Launches that asked the warm pool: hit, miss (cold launch) or failed (cold launch).",
    ["outcome"],
)
POOL_STARTS = Counter(
    "ffsystemd_pool_starts",
    "Pooled sessions started ahead of any request, by outcome (running, failed, cancelled).",
    ["outcome"],
)
for _outcome in POOL_OUTCOMES:
    POOL_CLAIMS.labels(outcome=_outcome)
for _outcome in LAUNCH_OUTCOMES:  # the series exist (at 0) before the first launch
    LAUNCHES.labels(outcome=_outcome, step="")
    LAUNCH_DURATION.labels(outcome=_outcome)
for _reason in REFUSAL_REASONS:
    LAUNCHES_REFUSED.labels(reason=_reason)
for _direction in WEBSOCKET_DIRECTIONS:
    WEBSOCKET_BYTES.labels(direction=_direction)
for _answer in CLIENT_FILE_ANSWERS:
    CLIENT_FILES.labels(answer=_answer)


def _bounded(value: str | None, known: frozenset[str], none: str = "") -> str:
    if value is None or value == "":
        return none
    return value if value in known else "other"


def observe(event: SessionEvent) -> None:
    """Count one session event (a manager observer: synchronous, never blocks)."""
    if isinstance(event, PoolClaimed):
        POOL_CLAIMS.labels(outcome=event.outcome if event.outcome in POOL_OUTCOMES else "other").inc()
    elif isinstance(event, SessionLaunched) and event.pooled:
        POOL_STARTS.labels(outcome=event.outcome if event.outcome in LAUNCH_OUTCOMES else "other").inc()
    elif isinstance(event, SessionLaunched):
        outcome = event.outcome if event.outcome in LAUNCH_OUTCOMES else "other"
        step = "" if outcome == "running" else _bounded(event.failed_step, LAUNCH_STEPS)
        LAUNCHES.labels(outcome=outcome, step=step).inc()
        LAUNCH_DURATION.labels(outcome=outcome).observe(max(0.0, event.seconds))
    elif isinstance(event, LaunchRefused):
        LAUNCHES_REFUSED.labels(reason=event.reason if event.reason in REFUSAL_REASONS else "other").inc()
    elif isinstance(event, SessionEnded):
        SESSIONS_ENDED.labels(result=_bounded(event.result, END_RESULTS, none="unknown")).inc()
    elif isinstance(event, SessionCleanedUp):
        outcome = "ok" if event.error is None else "error"
        CLEANUPS.labels(forced="true" if event.forced else "false", outcome=outcome).inc()


def count_websocket_bytes(direction: str, count: int) -> None:
    """Add proxied websocket bytes (`to_session` or `to_browser`); for the tunnel's callback."""
    if direction in WEBSOCKET_DIRECTIONS and count > 0:
        WEBSOCKET_BYTES.labels(direction=direction).inc(count)


def count_client_file(status: int) -> None:
    """Count one answer of the static client route (its HTTP status, bounded)."""
    answer = str(status)
    CLIENT_FILES.labels(answer=answer if answer in CLIENT_FILE_ANSWERS else "other").inc()


class SessionCollector(Collector):
    """Reads the live state of every registered session manager when Prometheus scrapes."""

    def __init__(self) -> None:
        self._managers: weakref.WeakSet[Any] = weakref.WeakSet()
        # One refresh in flight per manager, on the loop that started it (a task of a loop that
        # has closed never finishes and must not block refreshes forever).
        self._refreshing: weakref.WeakKeyDictionary[Any, asyncio.Future[Any]] = weakref.WeakKeyDictionary()

    def add(self, manager: Any) -> None:
        """Report this manager's sessions (kept weakly: a stopped server's manager drops out)."""
        self._managers.add(manager)

    def discard(self, manager: Any) -> None:
        self._managers.discard(manager)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "ffsystemd_sessions", "Sessions the server knows, by state.", labels=["state"]
        )
        gauges = {
            "memory_current": GaugeMetricFamily(
                "ffsystemd_session_memory_bytes",
                "Memory use of a running session (MemoryCurrent).",
                labels=["session"],
            ),
            "memory_max": GaugeMetricFamily(
                "ffsystemd_session_memory_max_bytes",
                "Memory limit of a running session (MemoryMax).",
                labels=["session"],
            ),
            "tasks_current": GaugeMetricFamily(
                "ffsystemd_session_tasks", "Tasks of a running session (TasksCurrent).", labels=["session"]
            ),
            "tasks_max": GaugeMetricFamily(
                "ffsystemd_session_tasks_max",
                "Task limit of a running session (TasksMax).",
                labels=["session"],
            ),
        }
        pool = GaugeMetricFamily(
            "ffsystemd_pool_sessions", "Unclaimed warm-pool sessions, ready or starting.", labels=["state"]
        )
        pooled = {"ready": 0, "starting": 0}
        counts = dict.fromkeys(STATES, 0)
        for manager in list(self._managers):
            with contextlib.suppress(Exception):
                for key, value in manager.pool.counts().items():
                    pooled[key] += value
            for sid in manager.session_ids():
                with contextlib.suppress(Exception):  # ended and dropped meanwhile
                    session = manager.to_json(manager.get(sid))
                    state = session["state"]
                    counts[state] = counts.get(state, 0) + 1
                    if state != "running":
                        continue
                    for key, family in gauges.items():
                        if session.get(key) is not None:
                            family.add_metric([sid], float(session[key]))
            self._refresh(manager)
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        for key, value in pooled.items():
            pool.add_metric([key], value)
        yield pool
        yield from gauges.values()

    def _refresh(self, manager: Any) -> None:
        """Start re-reading the figures for the next scrape (no loop running: nothing to do)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pending = self._refreshing.get(manager)
        if pending is not None and not pending.done() and pending.get_loop() is loop:
            return
        task = loop.create_task(manager.list_status())
        self._refreshing[manager] = task
        task.add_done_callback(self._refresh_done)

    def _refresh_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled():
            task.exception()  # a failed refresh (outage) is the manager's to log, not ours


SESSIONS = SessionCollector()
REGISTRY.register(SESSIONS)


def install(manager: Any) -> None:
    """Publish a session manager's sessions, count and log its events (called once per server)."""
    from .event_log import log_event

    SESSIONS.add(manager)
    manager.observers.add(observe)
    manager.observers.add(log_event)
