"""What an admin reads from a real Jupyter server: its log lines and its /metrics, for real launches
(real systemd user manager, Xpra and Firefox)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .world import JupyterServer, wait_until

pytestmark = pytest.mark.real

SECRET_URL = "https://someone:pa55word@example.org/private/path?token=s3cret#frag"


def metric(server: JupyterServer, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (token-authenticated); 0 when absent."""
    text = server.get("metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name and ",".join(sorted((match[2] or "").split(","))) == want:
            return float(match[3])
    return 0.0


def test_launches_refusals_and_cleanups_are_logged_once_and_counted(server_factory: Any) -> None:
    server: JupyterServer = server_factory(max_sessions=1)
    session = server.launch(url=SECRET_URL)
    full = server.post("firefox-launcher/api/firefox", {})
    assert full.status_code == 429, full.text
    bad = server.post("firefox-launcher/api/firefox", {"url": "ftp://example.org/?token=s3cret"})
    assert bad.status_code == 400, bad.text
    assert metric(server, "ffsystemd_launches_refused_total", reason="max-sessions") == 1
    assert metric(server, "ffsystemd_launches_refused_total", reason="bad-request") == 1
    assert metric(server, "ffsystemd_launches_total", outcome="running", step="") == 1
    assert server.cleanup(ids=[session["id"]])["stopped"] == [session["id"]]
    assert metric(server, "ffsystemd_cleanups_total", forced="false", outcome="ok") == 1

    sid, unit = session["id"], session["unit"]
    lines = wait_until(
        lambda: (text := server.log_path.read_text()) and "cleaned up" in text and text.splitlines(),
        15,
        "the cleanup's log line",
    )
    ours = [line for line in lines if f"session {sid} ({unit})" in line]
    assert sum("launch requested, start page https://example.org/…" in line for line in ours) == 1, ours
    assert sum(" ready after " in line for line in ours) == 1, ours
    assert sum(" cleaned up" in line for line in ours) == 1, ours
    assert sum("launch request refused: max_sessions reached" in line for line in lines) == 1
    assert sum("launch request refused: bad request" in line for line in lines) == 1
    log = "\n".join(lines)
    for secret in ("pa55word", "s3cret", "private/path", "someone"):
        assert secret not in log, secret
