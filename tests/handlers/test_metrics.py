"""GET <base_url>metrics (jupyter_server's Prometheus endpoint) shows ffsystemd's counts.

The registry is process-wide (every in-process server of the test run shares it), so the
tests compare the values before and after what they do.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fakes.dbus_world import FakeSystemd
from fakes.polling import eventually
from prometheus_client.parser import text_string_to_metric_families

from .conftest import FIREFOX_ROUTE, Api
from .test_firefox import launched


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of every ffsystemd_ sample, token-authenticated."""
    reply = await api.call("GET", ("metrics",))
    assert reply.code == 200, reply.body
    samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for s in family.samples:
            if s.name.startswith("ffsystemd_"):
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_metrics_count_launches_failures_cleanups_and_crashes(
    api: Api, fake_systemd: FakeSystemd, xpra_env: Any
) -> None:
    before = await scrape(api)
    first, second = await launched(api), await launched(api)
    during = await scrape(api)
    assert value(during, "ffsystemd_sessions", state="running") == 2
    assert delta(before, during, "ffsystemd_launches_total", outcome="running", step="") == 2
    assert delta(before, during, "ffsystemd_launch_duration_seconds_count", outcome="running") == 2
    assert delta(before, during, "ffsystemd_launch_duration_seconds_sum", outcome="running") > 0
    assert value(during, "ffsystemd_session_memory_max_bytes", session=first["id"]) == 2 * 1024**3
    assert value(during, "ffsystemd_session_tasks_max", session=first["id"]) == 1024

    # a crash: the kernel OOM-kills the second session
    fake_systemd.fail_unit(second["unit"], "oom-kill")

    async def crashed() -> bool:
        reply = await api.session(second["id"])
        return reply.json["state"] == "failed"

    await eventually(crashed, 10, "the OOM kill to be reported")
    # a cleanup of the first
    assert (await api.cleanup(id=first["id"])).code == 200
    # a failed launch: Xpra exits at once
    xpra_env(FAKE_XPRA_EXIT_AT_START="3")
    assert (await api.launch()).code == 500
    assert (await api.cleanup(id=second["id"])).code == 200

    after = await scrape(api)
    assert delta(before, after, "ffsystemd_launches_total", outcome="running", step="") == 2
    assert delta(before, after, "ffsystemd_launches_total", outcome="failed", step="xpra-ready") == 1
    assert delta(before, after, "ffsystemd_launch_duration_seconds_count", outcome="failed") == 1
    assert delta(before, after, "ffsystemd_sessions_ended_total", result="oom-kill") == 1
    assert delta(before, after, "ffsystemd_cleanups_total", forced="false", outcome="ok") == 2
    for state in ("starting", "running", "stopping"):
        assert value(after, "ffsystemd_sessions", state=state) == 0, state
    # ended sessions carry no per-session series; counters never carry a session id
    assert not any(dict(labels).get("session") in (first["id"], second["id"]) for _, labels in after)


async def test_unauthenticated_scrape_is_refused(http_server_client: Any, jp_base_url: str) -> None:
    response = await http_server_client.fetch(jp_base_url + "metrics", raise_error=False)
    assert response.code == 403
    assert b"ffsystemd_" not in (response.body or b"")


@pytest.mark.serverapp(authenticate_prometheus=False)
async def test_unauthenticated_scrape_when_configured(http_server_client: Any, jp_base_url: str) -> None:
    response = await http_server_client.fetch(jp_base_url + "metrics", raise_error=False)
    assert response.code == 200
    assert b"ffsystemd_launches_total" in response.body


async def test_refused_launches_are_counted_and_logged(
    api: Api, xpra_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    before = await scrape(api)
    with caplog.at_level(logging.INFO, logger="ffsystemd.sessions"):
        assert (await api.call("POST", FIREFOX_ROUTE, raw="{nope")).code == 400
        assert (await api.launch("ftp://x/?token=secret")).code == 400
        sessions = [await launched(api, "https://user:pw@example.org/secret?t=1"), await launched(api)]
        assert (await api.launch()).code == 429  # max_sessions is 2
    after = await scrape(api)
    assert delta(before, after, "ffsystemd_launches_refused_total", reason="bad-request") == 2
    assert delta(before, after, "ffsystemd_launches_refused_total", reason="max-sessions") == 1
    assert delta(before, after, "ffsystemd_launches_total", outcome="running", step="") == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "ffsystemd.sessions"]
    requested = [line for line in lines if "launch requested" in line]
    assert len(requested) == 2
    assert f"session {sessions[0]['id']} ({sessions[0]['unit']}): launch requested" in requested[0]
    assert "https://example.org/…" in requested[0]
    assert not any("pw" in line or "secret" in line for line in lines)
    assert sum("ready after" in line for line in lines) == 2
    assert sum("refused: max_sessions reached" in line for line in lines) == 1
    assert sum(line == "launch request refused: bad request" for line in lines) == 2
    assert (await api.cleanup(all=True)).code == 200
