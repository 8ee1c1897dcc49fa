"""cpu_quota is enforced: a CPU-bound process in a 20% session gets about a fifth of a CPU.

The session is the product's own: its scope, its `CPUQuotaPerSecUSec` from `cpu_quota`, its
Xpra; only the program Xpra starts as its child (`firefox_command`) is a busy loop instead of
Firefox, so the launch does not have to start Firefox at a fifth of an emulated CPU (minutes
under TCG) and the only CPU-bound process in the scope is the one measured. The loop waits
for a file the test creates once the launch answered, so it does not slow the launch itself.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import pytest
import requests
from real.world import TIME_SCALE, JupyterServer, wait_until

from .guest import cgroup_dir, read_keyed, record_figure

pytestmark = pytest.mark.vm

# Xpra appends Firefox's arguments (--profile DIR ... URL); the loop finds its profile there.
BURNER = """
import os, sys, time
go = os.path.join(sys.argv[sys.argv.index("--profile") + 1], "burn")
while not os.path.exists(go):
    time.sleep(0.2)
open(go + "ing", "w").close()
while True:
    pass
"""
WINDOW = 20.0  # seconds of wall time the share is measured over
QUOTA = 0.20


def burn_outside(seconds: float) -> float:
    """CPU seconds a busy loop gets in `seconds` of wall time outside any session."""
    start_cpu, end = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return time.process_time() - start_cpu


def test_a_cpu_bound_process_in_a_20_percent_session_gets_a_fifth_of_a_cpu(
    servers: Callable[..., JupyterServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Xpra starts at a fifth of an emulated CPU: ~5x its usual time (up to ~10 min measured on
    # a busy host), and Xvfb may need longer than Xpra's 20 s to report its display.
    ready_timeout = 100 * TIME_SCALE
    monkeypatch.setenv("XPRA_DISPLAY_FD_TIMEOUT", str(int(ready_timeout)))
    server = servers(
        cpu_quota="20%",
        ready_timeout=ready_timeout,
        firefox_command=[sys.executable, "-c", BURNER],
        pass_environment=["XPRA_DISPLAY_FD_TIMEOUT"],
    )
    started = time.monotonic()
    resp = requests.post(
        server.url + "firefox-launcher/api/firefox",
        data=json.dumps({"url": "about:blank"}),
        headers=server.headers(),
        timeout=ready_timeout + 120,
    )
    assert resp.status_code == 201, resp.text
    record_figure("launch_post_to_201_at_20_percent_quota", time.monotonic() - started)
    session = resp.json()
    assert session["cpu_quota"] == 20, session
    group = cgroup_dir(session["unit"])
    assert (group / "cpu.max").read_text().split() == ["20000", "100000"]

    profile = server.session_root / f"session-{session['id']}" / "profile"
    (profile / "burn").touch()
    wait_until(lambda: (profile / "burning").exists(), 60, "the busy loop to start")
    before, t0 = read_keyed(group / "cpu.stat"), time.monotonic()
    time.sleep(WINDOW)  # the measurement window itself, not a wait for a condition
    after, wall = read_keyed(group / "cpu.stat"), time.monotonic() - t0
    share = (after["usage_usec"] - before["usage_usec"]) / 1e6 / wall
    throttled = after["nr_throttled"] - before["nr_throttled"]
    record_figure("cpu_share_at_20_percent_quota", share, " CPU")
    record_figure("cpu_periods_throttled_in_window", throttled, "")
    # The whole scope (the loop, an idle Xpra and Xvfb) stays at its quota: the kernel throttled
    # it in most of the window's 100 ms periods, and it got about a fifth of a CPU, not more.
    assert throttled >= 0.5 * wall / 0.1, (before, after)
    assert 0.7 * QUOTA <= share <= 1.15 * QUOTA, share

    free = burn_outside(5.0) / 5.0  # the same loop without a quota, for comparison
    record_figure("cpu_share_without_quota", free, " CPU")
    assert free > 2.5 * share, (free, share)
    assert server.status(session["id"])["state"] == "running"
    assert server.cleanup(id=session["id"], force=True)["stopped"] == [session["id"]]
