"""Helpers of the VM tier's tests: the guest's cgroup v2 tree seen from alice, processes
placed into a session's scope, the second user bob, and the figures the README quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from real.world import systemctl_show

CGROUP_ROOT = Path("/sys/fs/cgroup")
USER_MANAGER = CGROUP_ROOT / "user.slice" / "user-1000.slice" / "user@1000.service"  # alice's
OUT = Path(os.environ.get("FFSYSTEMD_VM_OUT", "."))


def cgroup_dir(unit: str) -> Path:
    """The cgroup v2 directory of a (loaded) user unit of ours."""
    group = systemctl_show(unit, "ControlGroup")["ControlGroup"]
    assert group, f"{unit} has no control group"
    return CGROUP_ROOT / group.lstrip("/")


def read_keyed(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (memory.events, cpu.stat, pids.events) as a dict."""
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def record_figure(name: str, value: float, unit: str = "s") -> None:
    """Append a measured figure for the run's report (and the README)."""
    with open(OUT / "figures.jsonl", "a") as fh:
        fh.write(json.dumps({"name": name, "value": round(value, 2), "unit": unit}) + "\n")


class Stopwatch:
    """Seconds since it was made."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0


def spawn_in_scope(unit: str, code: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -c code` as a process of the session's scope and wait for it.

    The child writes its own pid into the scope's cgroup.procs before running `code`:
    alice owns her delegated subtree, so she may move her processes between its cgroups,
    which puts the child under exactly the limits the session has.
    """
    procs = cgroup_dir(unit) / "cgroup.procs"
    prologue = f"import os\nopen({str(procs)!r}, 'w').write(str(os.getpid()))\n"
    return subprocess.run(
        [sys.executable, "-c", prologue + code], capture_output=True, text=True, timeout=timeout
    )


def as_bob(
    *argv: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command as the second user bob (the guest's sudoers lets alice do exactly that)."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        ["sudo", "-n", "-u", "bob", "env", *extra, *argv], capture_output=True, text=True, timeout=timeout
    )


def session_json(resp: Any) -> dict[str, Any]:
    """The JSON of a 201 launch answer (assertion with the body otherwise)."""
    assert resp.status_code == 201, resp.text
    return resp.json()


HOG_PAGE = """<!doctype html>
<title>hog</title>
<script>
// Allocates memory in 32 MB steps (every page touched, so it is really used) up to ?mb=N
// (default: without end), then holds it.
const target = Number(new URLSearchParams(location.search).get("mb") || "1000000");
const chunks = [];
function grow() {
  if (chunks.length * 32 >= target) { document.title = "holding " + target + " MB"; return; }
  const chunk = new Uint8Array(32 * 1024 * 1024);
  for (let i = 0; i < chunk.length; i += 4096) chunk[i] = 1;
  chunks.push(chunk);
  document.title = "hog " + chunks.length * 32 + " MB";
  setTimeout(grow, 10);
}
grow();
</script>
"""


class PageServer:
    """A loopback HTTP server inside the guest serving the memory-eating page at /hog.html."""

    def __init__(self) -> None:
        import http.server
        import threading

        page = HOG_PAGE.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/hog.html":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mb: int | None = None) -> str:
        query = f"?mb={mb}" if mb is not None else ""
        return f"http://127.0.0.1:{self.httpd.server_port}/hog.html{query}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
