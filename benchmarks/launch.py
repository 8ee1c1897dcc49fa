"""Launch and cleanup cost of ffsystemd versus the same Xpra + Firefox started bare.

Run under a reachable systemd user manager, e.g.:

    scripts/with-user-manager .venv/bin/python benchmarks/launch.py --runs 5

In one run it alternates N launches through the REST API of a real Jupyter server
with N bare `systemd-run --user --scope xpra start ...` launches of the very same
command line, and prints medians and ratios of: time to Xpra answering HTTP, time to
a Firefox window, and time from the cleanup request to the last process gone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/real/world.py imports fakes.polling

from ffsystemd.commands import (  # noqa: E402
    XpraSettings,
    session_environment,
    user_js,
    xpra_argv,
    xpra_config_file,
)
from ffsystemd.config.browser import find_firefox  # noqa: E402
from ffsystemd.readiness import serves_html5_client  # noqa: E402
from ffsystemd.session_dirs import create_session_dirs, session_paths  # noqa: E402
from tests.real.world import JupyterServer, firefox_window, process_tree, wait_until  # noqa: E402


def until(predicate, timeout: float = 120.0) -> float:
    """Poll predicate (tight loop with a short pause); return the monotonic time it became true."""
    wait_until(predicate, timeout, "benchmark condition", interval=0.02)
    return time.monotonic()


def gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def api_run(server: JupyterServer) -> tuple[float, float, float]:
    t0 = time.monotonic()
    session = server.launch()
    t_ready = time.monotonic() - t0
    sock = server.session_root / f"session-{session['id']}" / "sockets" / "xpra.sock"
    t_window = until(lambda: firefox_window(sock)) - t0
    pids = [p.pid for p in process_tree(session["main_pid"])]
    t1 = time.monotonic()
    server.cleanup(id=session["id"])
    t_clean = until(lambda: gone(pids), 10) - t1
    return t_ready, t_window, t_clean


def bare_run(root: Path, index: int) -> tuple[float, float, float]:
    sid = f"{index:012x}"
    paths = session_paths(root, sid)
    create_session_dirs(paths)
    (paths.profile / "user.js").write_text(user_js("about:blank"))
    (paths.xdg_config / "xpra" / "xpra.conf").write_text(xpra_config_file())
    settings = XpraSettings(firefox_command=tuple(find_firefox()))
    unit = f"bench-bare-{os.getpid()}-{index}.scope"
    argv = [
        "systemd-run",
        "--user",
        "--scope",
        "--quiet",
        f"--unit={unit}",
        *xpra_argv(settings, paths, "about:blank"),
    ]
    # systemd-run needs the bus; the scope's command inherits it (the only difference).
    env = {
        **session_environment(os.environ, paths),
        "DBUS_SESSION_BUS_ADDRESS": os.environ["DBUS_SESSION_BUS_ADDRESS"],
    }
    t0 = time.monotonic()
    log = open(paths.xpra_log, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    t_ready = until(lambda: asyncio.run(serves_html5_client(paths.socket))) - t0
    t_window = until(lambda: firefox_window(paths.socket)) - t0
    pids = [p.pid for p in process_tree(proc.pid)]
    t1 = time.monotonic()
    subprocess.run(["systemctl", "--user", "stop", unit], check=True)
    t_clean = until(lambda: gone(pids), 10) - t1
    proc.wait()
    log.close()
    shutil.rmtree(paths.base)
    return t_ready, t_window, t_clean


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="launches of each kind (default 5)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ffs-bench-", dir="/tmp"))
    server = JupyterServer(root / "server", config={"ready_timeout": 60})
    (root / "server").mkdir()
    server.start()
    api, bare = [], []
    try:
        for i in range(args.runs):  # alternate, so drift on a shared machine hits both alike
            api.append(api_run(server))
            bare.append(bare_run(root, i))
            print(
                f"run {i + 1}: api ready/window/clean = {fmt(api[-1])}   bare = {fmt(bare[-1])}", flush=True
            )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    title = f"median over {args.runs} runs"
    print(f"{title:28} {'ffsystemd':>10} {'bare':>10} {'ratio':>7} {'added':>9}")
    for k, label in enumerate(
        ["request -> Xpra answers", "request -> Firefox window", "cleanup -> no process"]
    ):
        a = statistics.median(r[k] for r in api)
        b = statistics.median(r[k] for r in bare)
        print(f"{label:28} {a:9.3f}s {b:9.3f}s {a / b:7.2f} {1000 * (a - b):+8.0f}ms")
    return 0


def fmt(row: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}s" for v in row)


if __name__ == "__main__":
    sys.exit(main())
