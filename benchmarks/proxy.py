"""Websocket cost of the session proxy: Jupyter's proxy versus the same Xpra socket used directly.

Run on demand (no systemd or Xpra needed):

    .venv/bin/python benchmarks/proxy.py [--rounds 5]

It starts its own world: a private dbus-daemon with the fake systemd user manager
(tests/fakes/dbus_world.py), a real `jupyter server` subprocess with ffsystemd pointed at that
bus and running tests/fakes/ws_xpra.py (a tornado echo server) as Xpra. It launches one session
through the REST API, then alternates rounds of the same measurements over a websocket opened
directly on the session's unix socket and one opened through
`ws://127.0.0.1:<port><session url>c/<capability>/` (the path the session page redirects to):

* throughput: binary messages of 64 KiB and 1 MiB echoed back, WINDOW in flight at once;
  MB/s = payload bytes sent (each comes back too) / elapsed seconds (1 MB = 10^6 bytes);
* latency: sequential round trips of 32-byte binary messages, median and p95;
* CPU time (user + system, from /proc) of the client, the Jupyter server and the fake Xpra per
  round trip and per MiB echoed, to tell which process the time goes to.

With --profile, the Jupyter server is profiled with cProfile during the proxied rounds only (a
sitecustomize shim on its PYTHONPATH turns it on and off + dump on SIGUSR2), and the
functions it spent most time in are printed after the run.

Everything it started is ended by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from tornado.httpclient import HTTPRequest
from tornado.netutil import Resolver
from tornado.websocket import WebSocketClientConnection, websocket_connect

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fakes.dbus_world import start_fake_systemd  # noqa: E402

from tests.real.world import JupyterServer  # noqa: E402

WS_XPRA = REPO / "tests" / "fakes" / "ws_xpra.py"
MAX_MESSAGE = 64 * 1024 * 1024
TIMEOUT = 60.0


class UnixResolver(Resolver):
    """Resolve every host to one unix socket."""

    def initialize(self, socket_path: str) -> None:  # type: ignore[override]
        self.socket_path = socket_path

    async def resolve(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self.socket_path)]


async def connect_direct(socket_path: Path) -> WebSocketClientConnection:
    request = HTTPRequest("ws://localhost/", connect_timeout=TIMEOUT)
    return await websocket_connect(
        request,
        resolver=UnixResolver(socket_path=str(socket_path)),
        subprotocols=["binary"],
        max_message_size=MAX_MESSAGE,
    )


async def connect_proxied(server: JupyterServer, session: dict[str, Any]) -> WebSocketClientConnection:
    """A websocket the way the browser's client opens one: on a capability path, no token."""
    path = server.client_path(session).split("?", 1)[0]
    request = HTTPRequest(
        f"ws://127.0.0.1:{server.port}{path}", headers={"Origin": "null"}, connect_timeout=TIMEOUT
    )
    return await websocket_connect(request, subprotocols=["binary"], max_message_size=MAX_MESSAGE)


async def echo(conn: WebSocketClientConnection, payload: bytes) -> None:
    await conn.write_message(payload, binary=True)
    reply = await asyncio.wait_for(conn.read_message(), TIMEOUT)
    if reply != payload:
        raise RuntimeError(f"echo mismatch: sent {len(payload)} bytes, got {len(reply or b'')}")


async def throughput(conn: WebSocketClientConnection, size: int, total: int, window: int) -> float:
    """MB/s of payload echoed with `window` messages in flight."""
    payload = os.urandom(size)
    count = max(window, total // size)
    await echo(conn, payload)  # warm up
    start = time.perf_counter()
    in_flight = 0
    sent = 0
    received = 0
    while received < count:
        while sent < count and in_flight < window:
            await conn.write_message(payload, binary=True)
            sent += 1
            in_flight += 1
        reply = await asyncio.wait_for(conn.read_message(), TIMEOUT)
        if reply is None or len(reply) != size:
            raise RuntimeError("connection closed or short message during the throughput run")
        received += 1
        in_flight -= 1
    elapsed = time.perf_counter() - start
    return count * size / elapsed / 1e6


async def latencies(conn: WebSocketClientConnection, count: int) -> list[float]:
    """Seconds per sequential round trip of a 32-byte binary message."""
    payload = b"x" * 32
    for _ in range(50):  # warm up
        await echo(conn, payload)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await conn.write_message(payload, binary=True)
        await conn.read_message()
        samples.append(time.perf_counter() - start)
    return samples


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


class CpuMeter:
    """CPU seconds (user + system) the processes on the path used between two snapshots."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}

    def snapshot(self) -> dict[str, float]:
        return {name: sum(proc.cpu_times()[:2]) for name, proc in self.processes.items()}

    def since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.snapshot()
        return {name: now[name] - before[name] for name in now}


Results = dict[str, dict[str, list[float]]]


async def measure(
    connectors: dict[str, Callable[[], Awaitable[WebSocketClientConnection]]],
    meter: CpuMeter,
    rounds: int,
    sizes: list[int],
    total: int,
    window: int,
    small: int,
    hooks: dict[str, tuple[Callable[[], None], Callable[[], None]]] | None = None,
) -> tuple[Results, dict[str, dict[str, dict[str, float]]]]:
    """Alternate the modes round by round; return (samples, CPU seconds per mode, phase and process)."""
    results: Results = {mode: {**{f"tp{size}": [] for size in sizes}, "lat": []} for mode in connectors}
    cpu = {
        mode: {phase: dict.fromkeys(meter.processes, 0.0) for phase in results[mode]} for mode in connectors
    }
    modes = list(connectors)
    for index in range(rounds):
        order = modes if index % 2 == 0 else modes[::-1]  # alternate who goes first
        for mode in order:
            before, after = (hooks or {}).get(mode, (lambda: None, lambda: None))
            conn = await connectors[mode]()
            before()
            try:
                for size in sizes:
                    mark = meter.snapshot()
                    results[mode][f"tp{size}"].append(await throughput(conn, size, total, window))
                    for name, used in meter.since(mark).items():
                        cpu[mode][f"tp{size}"][name] += used
                mark = meter.snapshot()
                results[mode]["lat"].extend(await latencies(conn, small))
                for name, used in meter.since(mark).items():
                    cpu[mode]["lat"][name] += used
            finally:
                after()
                conn.close()
        line = "  ".join(
            f"{mode}: "
            + " ".join(f"{results[mode][f'tp{size}'][-1]:7.1f}" for size in sizes)
            + f" MB/s, {1000 * statistics.median(results[mode]['lat'][-small:]):.3f} ms"
            for mode in modes
        )
        print(f"round {index + 1}/{rounds}  {line}", flush=True)
    return results, cpu


def report(
    results: Results,
    cpu: dict[str, dict[str, dict[str, float]]],
    sizes: list[int],
    rounds: int,
    total: int,
    window: int,
) -> None:
    direct, proxied = results["direct"], results["proxied"]
    print()
    print(f"websocket echo through the Jupyter proxy vs directly on the unix socket ({rounds} rounds)")
    print(f"{'':34} {'direct':>10} {'proxied':>10} {'ratio':>7}")
    for size in sizes:
        d = statistics.median(direct[f"tp{size}"])
        p = statistics.median(proxied[f"tp{size}"])
        label = f"throughput {size // 1024} KiB x{window} in flight"
        print(f"{label:34} {d:7.1f}MB/s {p:7.1f}MB/s {p / d:6.2f}x")
    n = len(direct["lat"])
    for name, func in (("median", statistics.median), ("p95", p95)):
        d = 1000 * func(direct["lat"])
        p = 1000 * func(proxied["lat"])
        label = f"round trip 32 B, {name} (n={n})"
        print(f"{label:34} {d:8.3f}ms {p:8.3f}ms {p / d:6.2f}x")
    added = 1000 * (statistics.median(proxied["lat"]) - statistics.median(direct["lat"]))
    print(f"{'added median round trip':34} {added:+8.3f}ms")
    print()
    print("CPU time (user+sys) of each process on the path")
    names = list(cpu["direct"]["lat"])
    print(f"{'':34} " + " ".join(f"{name:>10}" for name in names))
    for mode in ("direct", "proxied"):
        per_trip = [1e6 * cpu[mode]["lat"][name] / len(results[mode]["lat"]) for name in names]
        label = f"{mode}: us per 32 B round trip"
        print(f"{label:34} " + " ".join(f"{v:10.0f}" for v in per_trip))
    for size in sizes:
        mib = rounds * max(window, total // size) * size / 2**20
        for mode in ("direct", "proxied"):
            per_mib = [1e3 * cpu[mode][f"tp{size}"][name] / mib for name in names]
            label = f"{mode}: ms per MiB echoed, {size // 1024} KiB"
            print(f"{label:34} " + " ".join(f"{v:10.2f}" for v in per_mib))


PROFILE_SHIM = """\
import cProfile, os, signal
if os.environ.get("FFS_BENCH_PROFILE_DIR"):
    _profile = cProfile.Profile()
    _on = False

    def _toggle(signum, frame):  # SIGUSR2 (Jupyter takes SIGUSR1): on, then off + dump, ...
        global _on
        _on = not _on
        if _on:
            _profile.enable()
        else:
            _profile.disable()
            _profile.dump_stats(os.path.join(os.environ["FFS_BENCH_PROFILE_DIR"], f"{os.getpid()}.prof"))

    signal.signal(signal.SIGUSR2, _toggle)
"""


def profiled_env(root: Path) -> dict[str, str]:
    """Environment for a server profiled by the sitecustomize shim (its children inherit it)."""
    shim = root / "profile-shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(PROFILE_SHIM)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "FFS_BENCH_PROFILE_DIR": str(root)}


def print_profile(path: Path, lines: int) -> None:
    stats = pstats.Stats(str(path))
    print(f"\n--- the Jupyter server during the proxied rounds (cProfile, top {lines} by own time) ---")
    stats.sort_stats("tottime").print_stats(lines)
    print("--- of which the proxy code: ffsystemd ---")
    stats.sort_stats("tottime").print_stats("ffsystemd", lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each kind, alternated (default 5)")
    parser.add_argument("--mib", type=int, default=64, help="MiB echoed per size per round (default 64)")
    parser.add_argument("--window", type=int, default=4, help="messages in flight for throughput (default 4)")
    parser.add_argument("--small", type=int, default=2000, help="32-byte round trips a round (default 2000)")
    parser.add_argument("--profile", action="store_true", help="run the Jupyter server under cProfile")
    args = parser.parse_args()
    sizes = [64 * 1024, 1024 * 1024]

    root = Path(tempfile.mkdtemp(prefix="ffsb-", dir="/tmp"))  # short: session sockets live under it
    fake = None
    server = None
    try:
        fake = start_fake_systemd()
        server = JupyterServer(
            root,
            config={
                "bus_address": fake.address,
                "xpra_command": [sys.executable, str(WS_XPRA)],
                "firefox_command": ["/bin/true"],
            },
            base_url="/user/bench/",
        )
        saved = dict(os.environ)
        if args.profile:
            os.environ.update(profiled_env(root))
        try:
            server.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        session = server.launch()
        sock = server.session_root / f"session-{session['id']}" / "sockets" / "xpra.sock"
        print(f"session {session['id']}: proxied {session['url']}  direct {sock}", flush=True)
        connectors = {
            "direct": lambda: connect_direct(sock),
            "proxied": lambda: connect_proxied(server, session),
        }
        pid = server.proc.pid
        meter = CpuMeter({"client": os.getpid(), "jupyter": pid, "xpra-fake": session["main_pid"]})
        hooks = {"proxied": (lambda: os.kill(pid, signal.SIGUSR2), lambda: os.kill(pid, signal.SIGUSR2))}
        total = args.mib * 1024 * 1024
        results, cpu = asyncio.run(
            measure(
                connectors,
                meter,
                args.rounds,
                sizes,
                total,
                args.window,
                args.small,
                hooks if args.profile else None,
            )
        )
        report(results, cpu, sizes, args.rounds, total, args.window)
        server.cleanup(id=session["id"])
        server.stop()
        if args.profile:
            print_profile(root / f"{server.proc.pid}.prof", 25)
    finally:
        if server is not None and server.proc is not None:
            server.stop()
        if fake is not None:
            fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
