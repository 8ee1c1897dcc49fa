"""cpu_quota is enforced: a CPU-bound process in a 20% session gets about a fifth of a CPU."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import requests
from real.world import JupyterServer

from .guest import cgroup_dir, read_keyed, record_figure, spawn_in_scope

pytestmark = pytest.mark.vm

BURN = """
import time
end = time.monotonic() + SECONDS
while time.monotonic() < end:
    pass
"""
SECONDS = 20.0


def burn_outside(seconds: float) -> float:
    """CPU seconds a busy loop gets in `seconds` of wall time outside any session."""
    start_cpu, end = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return time.process_time() - start_cpu


def test_a_cpu_bound_process_in_a_20_percent_session_gets_a_fifth_of_a_cpu(
    servers: Callable[..., JupyterServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Everything in the session runs at a fifth of a CPU: emulated, Xvfb then needs longer
    # than Xpra's default 20 s to report its display, and Xpra longer to answer.
    monkeypatch.setenv("XPRA_DISPLAY_FD_TIMEOUT", "900")
    server = servers(cpu_quota="20%", ready_timeout=900, pass_environment=["XPRA_DISPLAY_FD_TIMEOUT"])
    # The launch takes minutes at a fifth of an emulated CPU: longer than launch()'s HTTP timeout.
    resp = requests.post(
        server.url + "firefox-launcher/api/firefox",
        data=json.dumps({"url": "about:blank"}),
        headers=server.headers(),
        timeout=1200,
    )
    assert resp.status_code == 201, resp.text
    session = resp.json()
    group = cgroup_dir(session["unit"])
    assert (group / "cpu.max").read_text().split() == ["20000", "100000"]

    before, t0 = read_keyed(group / "cpu.stat"), time.monotonic()
    burner = spawn_in_scope(session["unit"], f"SECONDS = {SECONDS}\n" + BURN)
    assert burner.returncode == 0, burner.stderr
    after, wall = read_keyed(group / "cpu.stat"), time.monotonic() - t0
    share = (after["usage_usec"] - before["usage_usec"]) / 1e6 / wall
    record_figure("cpu_share_at_20_percent_quota", share, " CPU")
    assert after["nr_throttled"] > before["nr_throttled"], (before, after)
    assert 0.05 < share <= 0.25, share  # the whole scope, the busy loop included

    free = burn_outside(5.0) / 5.0  # the same loop without a quota, for comparison
    record_figure("cpu_share_without_quota", free, " CPU")
    assert free > 1.5 * share, (free, share)
    assert server.cleanup(id=session["id"], force=True)["stopped"] == [session["id"]]
