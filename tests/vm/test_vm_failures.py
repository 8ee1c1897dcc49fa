"""Limits too small for Xpra and Firefox to even start: the launch fails, says why, and
leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from real.world import JupyterServer, our_units

from .guest import USER_MANAGER, Stopwatch, read_keyed, record_figure

pytestmark = pytest.mark.vm


def assert_nothing_left(server: JupyterServer) -> None:
    assert server.get("firefox-launcher/api/firefox").json() == {"sessions": []}
    # only the failed launch's Xpra log is kept (bounded), for `ffsystemd logs ID`
    assert [p.name for p in server.session_root.iterdir() if p.name != "failed"] == []
    assert our_units() == []


def test_a_launch_with_too_little_memory_fails_with_the_step_oom_kill_and_the_log(
    servers: Callable[..., JupyterServer],
) -> None:
    server = servers(memory_max="8M")
    # Counted over alice's whole manager (memory.events is hierarchical): did the kernel kill?
    kills_before = read_keyed(USER_MANAGER / "memory.events")["oom_kill"]
    watch = Stopwatch()
    resp = server.post("firefox-launcher/api/firefox", {"url": "about:blank"})
    record_figure("oom_launch_post_to_error", watch())
    assert resp.status_code == 500, resp.text
    body = resp.json()
    assert body["step"] == "xpra-ready", body
    assert isinstance(body["log_tail"], list), body
    # At 8M the kernel either OOM-kills Xpra or Xvfb at once, or (file pages still reclaimable)
    # lets them crawl until Xpra gives up on Xvfb's display; both are reported as memory_max.
    if read_keyed(USER_MANAGER / "memory.events")["oom_kill"] > kills_before:
        assert body["result"] == "oom-kill", body
        assert "ran out of memory (memory_max)" in body["message"], body
    else:
        assert body["result"] is None, body
        assert "the session reached its memory limit (memory_max=8 MiB)" in body["message"], body
    assert_nothing_left(server)


def test_a_launch_with_too_few_tasks_fails_cleanly_with_a_clear_message(
    servers: Callable[..., JupyterServer],
) -> None:
    server = servers(tasks_max=4)
    resp = server.post("firefox-launcher/api/firefox", {"url": "about:blank"})
    assert resp.status_code == 500, resp.text
    body = resp.json()
    assert body["step"] in ("xpra-start", "xpra-ready"), body
    assert "tasks_max" in body["message"], body
    assert body["log_tail"], body  # Xpra said what it could not do
    assert_nothing_left(server)
