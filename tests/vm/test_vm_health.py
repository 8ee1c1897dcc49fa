"""On a real systemd host every precondition of a launch holds, delegation included."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from real.world import JupyterServer

from .guest import Stopwatch, record_figure

pytestmark = pytest.mark.vm


def test_health_is_ok_everywhere_including_delegated_controllers(
    servers: Callable[..., JupyterServer],
) -> None:
    watch = Stopwatch()
    server = servers(cpu_quota="50%")
    record_figure("jupyter_server_start", watch())
    report = server.get("firefox-launcher/api/health").json()
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["uid"] == 1000
    for check in report["checks"]:
        assert check["verdict"] == "ok", check
    assert report["verdict"] == "ok"
    detail = by_name["delegated_controllers"]["detail"]
    for controller in ("cpu", "memory", "pids"):
        assert controller in detail, detail
    assert "user@1000.service" in detail, detail
    assert by_name["user_bus"]["detail"] == "connected to unix:path=/run/user/1000/bus"
