"""GET <base_url>metrics (jupyter_server's Prometheus endpoint) shows ffsystemd's counts.

The registry is process-wide (every in-process server of the test run shares it), so the
tests compare the values before and after what they do.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Api
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


async def test_metrics_show_running_sessions_and_their_limits(api: Api) -> None:
    first, second = await launched(api), await launched(api)
    during = await scrape(api)
    assert value(during, "ffsystemd_sessions", state="running") >= 2
    assert value(during, "ffsystemd_session_memory_max_bytes", session=first["id"]) == 2 * 1024**3
    assert value(during, "ffsystemd_session_tasks_max", session=second["id"]) == 1024
    assert value(during, "ffsystemd_session_memory_bytes", session=first["id"]) == 12345678  # the fake's
    assert (await api.cleanup(all=True)).code == 200
    after = await scrape(api)
    # ended sessions carry no per-session series
    assert not any(dict(labels).get("session") in (first["id"], second["id"]) for _, labels in after)


async def test_unauthenticated_scrape_is_refused(http_server_client: Any, jp_base_url: str) -> None:
    response = await http_server_client.fetch(jp_base_url + "metrics", raise_error=False)
    assert response.code == 403
    assert b"ffsystemd_" not in (response.body or b"")


@pytest.mark.serverapp(authenticate_prometheus=False)
async def test_unauthenticated_scrape_when_configured(http_server_client: Any, jp_base_url: str) -> None:
    response = await http_server_client.fetch(jp_base_url + "metrics", raise_error=False)
    assert response.code == 200
    assert b"ffsystemd_websocket_bytes_total" in response.body
