"""Click to Firefox: what a user waits for, measured in real JupyterLab in headless Chromium.

Run under a reachable systemd user manager, e.g.:

    scripts/with-user-manager .venv/bin/python benchmarks/click.py --runs 5

Each run opens JupyterLab (a fresh workspace) in Debian's headless Chromium, clicks the
Firefox launcher tile and times, from the click: the tab's launch POST answered, the Xpra
client in the tab's iframe connected, Firefox's window listed by the client, the window
painted (its canvas shows more than a blank screen), and the start page shown (Firefox's
window title is the title of the page the benchmark serves as start_url). After each run it
measures the idle session's memory (PSS of every process of its scope, by program, once no
process has come or gone for --settle seconds), then closes the session.

Modes: `cold` launches a new session per click; `warm` has a pool of one pre-started session
(`pool_size = 1`), which the click claims. Each mode has its own server; clicks alternate
between the modes, and before every click each pool is full and its session idle (no process
came or went for a few seconds), so no refill runs while a click is timed. The warm mode also
reports the PSS of its pooled session while it waits, idle. Each click opens a new browser
context (nothing cached) unless `--reuse-context` (a returning user: the client's files
cached). `--variant` compares cold launches of configs instead (paired the same way), e.g.
before/after a memory setting:

    benchmarks/click.py --runs 3 --variant 'old:screen_size="1920x1080"' --variant new

`--baseline` adds each mode once more with the tab's `screen` taken out of its launch POST
(Xpra resizes its screen at the client's hello, as before ffsystemd.screen), paired the same way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from playwright.sync_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/real/world.py imports fakes.polling

from ffsystemd.app import FirefoxLauncher  # noqa: E402
from tests.real.browser import RecordingPage, chromium, save_artifact  # noqa: E402
from tests.real.world import JupyterServer, process_tree, wait_until  # noqa: E402

STEPS = ("POST answered", "client connected", "window listed", "painted", "page shown")
PAGE_TITLE = "ffsystemd test page"  # what tests.real.browser.RecordingPage serves
PROGRAMS = ("Firefox", "Xpra", "Xvfb", "other")
TILE = ".jp-LauncherCard"
VIEWPORT = {"width": 1400, "height": 900}
FRAME = ".jp-FFSystemd-frame"
# Predicates evaluated in the session's iframe; each returns the page's clock (ms) once true.
CONNECTED_JS = "() => window.client && window.client.connected === true && Date.now()"
LISTED_JS = (
    "() => window.client && Object.values(client.id_to_window)"
    ".some(w => /Firefox/.test(w.title || '')) && Date.now()"
)
# Painted: the Firefox window's canvas holds more than 16 colours (a blank one has one or two; the
# toolbar and a plain page of text, sampled, have a few dozen).
PAINTED_JS = """() => {
  if (!window.client) return false;
  const win = Object.values(client.id_to_window).find(w => /Firefox/.test(w.title || ''));
  const canvas = win && win.canvas;
  if (!canvas || !canvas.width || !canvas.height) return false;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  const step = 4 * 97;  // a sample of the pixels is enough to tell a page from a blank screen
  for (let i = 0; i < data.length && seen.size <= 16; i += step) {
    seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return seen.size > 16 && Date.now();
}"""
TITLES_JS = """() => window.client ? Object.values(client.id_to_window).map(w => {
  const c = w.canvas;
  let colours = null;
  try {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4 * 97) {
      seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    colours = seen.size;
  } catch (e) { colours = String(e); }
  return [w.title || '', c ? c.width + 'x' + c.height : null, colours];
}) : null"""
SHOWN_JS = (
    "() => window.client && Object.values(client.id_to_window)"
    f".some(w => (w.title || '').includes({PAGE_TITLE!r})) && Date.now()"
)


@dataclass(frozen=True)
class Mode:
    """A way of launching: the server config it needs, or why it cannot run (then reported n/a)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    unavailable: str | None = None
    prepare: Callable[[JupyterServer], int] | None = None  # wait for the pool: its session's pid
    unsized: bool = False  # the launch POST goes without the tab's `screen` (Xpra resizes itself)


def pooled_xpra(server: JupyterServer) -> int | None:
    """The Xpra pid of the server's ready pooled session (not in the API: found by its socket)."""
    listed = {s["id"] for s in sessions(server)}
    for ready in sorted(server.session_root.glob("session-*/runtime/warm-ready")):
        base = ready.parent.parent
        if base.name.removeprefix("session-") in listed:
            continue
        bind = f"--bind={base / 'sockets' / 'xpra.sock'}"
        for proc in psutil.process_iter(["cmdline"]):
            if bind in (proc.info["cmdline"] or []):
                return proc.pid
    return None


POOL_PSS: list[dict[str, float]] = []  # PSS by program of each pooled session measured idle


def pool_ready(server: JupyterServer) -> int:
    """Wait until the server's pooled session is ready and idle; return its Xpra pid."""
    xpra = wait_until(lambda: pooled_xpra(server), 180, "a ready pooled session")
    settled(xpra, 4.0)
    return xpra


MODES = (
    Mode("cold"),
    Mode(
        "warm",
        config={"pool_size": 1},
        unavailable=None if FirefoxLauncher.class_traits().get("pool_size") else "no pool_size trait yet",
        prepare=pool_ready,
    ),
)


@dataclass
class Run:
    steps: list[float]  # seconds after the click, in the order of STEPS
    pss: dict[str, float]  # MiB by program
    uss: dict[str, float]  # MiB by program: pages of the session's alone (what stopping it frees)


def program_of(proc: psutil.Process) -> str:
    """Which of PROGRAMS a process of the scope is."""
    try:
        cmd = proc.cmdline()
        name = proc.name()
    except psutil.Error:
        return "other"
    if name == "Xvfb":
        return "Xvfb"
    if any("xpra" in Path(part).name for part in cmd[:2]):
        return "Xpra"
    if "firefox" in name.lower() or any("firefox" in part for part in cmd[:1]):
        return "Firefox"
    return "other"


def session_memory(main_pid: int) -> tuple[dict[str, float], dict[str, float]]:
    """(PSS, USS) in MiB of every process of the session's tree, summed by program.

    PSS shares each shared page among all processes mapping it, so it moves with whatever else
    runs on the machine (other sessions' Firefox and Xpra share libraries); USS does not.
    """
    pss = dict.fromkeys(PROGRAMS, 0.0)
    uss = dict.fromkeys(PROGRAMS, 0.0)
    for proc in process_tree(main_pid):
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        pss[program_of(proc)] += info.pss / 2**20
        uss[program_of(proc)] += info.uss / 2**20
    return pss, uss


def settled(main_pid: int, quiet: float, timeout: float = 120.0) -> None:
    """Wait until the session's set of processes has not changed for `quiet` seconds (Firefox
    starts its spare and helper processes a while after its window appears), or timeout."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = frozenset(p.pid for p in process_tree(main_pid))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)


def sessions(server: JupyterServer) -> list[dict[str, Any]]:
    return server.get("firefox-launcher/api/firefox").json()["sessions"]


def is_launch_url(url: str) -> bool:
    """The launch route's URL (any query)."""
    return url.split("?")[0].endswith("/firefox-launcher/api/firefox")


def without_screen(route: Any) -> None:
    """Pass the launch POST on without its `screen` (the baseline of the first screen size)."""
    body = json.loads(route.request.post_data or "{}")
    body.pop("screen", None)
    route.continue_(post_data=json.dumps(body))


def one_click(server: JupyterServer, browser: Any, index: int, settle: float, unsized: bool = False) -> Run:
    """Open Lab, click the tile, time each step; then measure memory idle and close the session.

    `browser` is a Browser (each click a new context: nothing cached) or one BrowserContext.
    """
    page = browser.new_page(**({"viewport": VIEWPORT} if hasattr(browser, "new_context") else {}))
    if unsized:
        page.route(
            is_launch_url,
            lambda route: without_screen(route) if route.request.method == "POST" else route.continue_(),
        )
    try:
        page.goto(f"{server.url}lab/workspaces/bench-{index}?reset&token={server.token}")
        tile = page.locator(TILE, has_text="Firefox").first
        tile.wait_for(timeout=120_000)
        is_launch = lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith("api/firefox")  # noqa: E731
        with page.expect_response(is_launch, timeout=120_000) as posted:
            t_click = time.time()
            tile.click()
        response = posted.value
        t_seen = time.time()  # when Playwright told us; the browser's own timing is finer
        assert response.status in (201, 202), response.text()  # 202: answered while it starts
        response.finished()
        timing = response.request.timing
        end = timing["responseEnd"] if timing["responseEnd"] >= 0 else timing["responseStart"]
        t_post = (timing["startTime"] + end) / 1000 if end >= 0 else t_seen
        handle = page.wait_for_selector(FRAME, timeout=120_000)
        assert handle is not None
        frame = handle.content_frame()
        assert frame is not None
        marks = [t_post]
        for step, predicate in zip(STEPS[1:], (CONNECTED_JS, LISTED_JS, PAINTED_JS, SHOWN_JS), strict=True):
            try:
                mark = frame.wait_for_function(predicate, polling=10, timeout=120_000).json_value()
            except PlaywrightTimeout:
                shot = save_artifact(f"click-timeout-{index}.png", page.screenshot())
                titles = frame.evaluate(TITLES_JS)
                why = f"click {index + 1}: no '{step}' within 120 s (window titles {titles}; {shot})"
                raise SystemExit(why) from None
            marks.append(mark / 1000)
        steps = [m - t_click for m in marks]
        (session,) = sessions(server)
        settled(session["main_pid"], settle)
        pss, uss = session_memory(session["main_pid"])
        server.cleanup(id=session["id"])
        wait_until(lambda: sessions(server) == [], 60, "the session to be closed")
        return Run(steps, pss, uss)
    finally:
        page.close()


def run_modes(
    modes: list[Mode], runs: int, settle: float, extra: dict[str, Any], reuse_context: bool = False
) -> dict[str, list[Run]]:
    """One server per mode, all started first; the clicks alternate between modes (paired runs,
    so drift on a shared machine hits every mode alike)."""
    servers: dict[str, JupyterServer] = {}
    results: dict[str, list[Run]] = {mode.name: [] for mode in modes}
    try:
        with RecordingPage() as site, chromium() as browser:
            start_url = f"http://127.0.0.1:{site.port}/start"
            # One context for every click: the client's files are in Chromium's cache from the
            # second click on (each mode's server is its own origin, so its own cache entries).
            context = browser.new_context(viewport=VIEWPORT) if reuse_context else None
            for mode in modes:
                root = Path(tempfile.mkdtemp(prefix="ffs-click-", dir="/tmp"))
                config = {"ready_timeout": 60, "start_url": start_url, **extra, **mode.config}
                servers[mode.name] = JupyterServer(root, config=config)
                servers[mode.name].start()
            for i in range(runs):
                for mode in modes:
                    server = servers[mode.name]
                    # Every pool full and idle: no refill runs during the click.
                    pooled = {o.name: o.prepare(servers[o.name]) for o in modes if o.prepare is not None}
                    if mode.name in pooled:
                        POOL_PSS.append(session_memory(pooled[mode.name])[0])
                    run = one_click(server, context or browser, i, settle, mode.unsized)
                    results[mode.name].append(run)
                    steps = "  ".join(f"{s:.2f}" for s in run.steps)
                    print(
                        f"{mode.name} run {i + 1}: {steps}  PSS {sum(run.pss.values()):.0f} MiB"
                        f" USS {sum(run.uss.values()):.0f} MiB",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
    return results


def spread(values: list[float]) -> str:
    """median (min-max)"""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def table(results: dict[str, list[Run] | str], runs: int) -> str:
    """The step table: one column per mode, median (min-max) seconds after the click."""
    width = 22
    lines = [f"{'seconds after click':20} " + " ".join(f"{name:>{width}}" for name in results)]
    for k, step in enumerate(STEPS):
        cells = []
        for value in results.values():
            cell = "n/a" if isinstance(value, str) else spread([r.steps[k] for r in value])
            cells.append(f"{cell:>{width}}")
        lines.append(f"{step:20} " + " ".join(cells))
    lines.append(f"(median and min-max over {runs} clicks per mode)")
    lines.append("")
    for kind in ("pss", "uss"):
        lines.append(f"{kind.upper()} of an idle session, MiB (median)")
        for name, value in results.items():
            if isinstance(value, str):
                lines.append(f"  {name}: n/a ({value})")
                continue
            parts = {p: statistics.median(getattr(r, kind)[p] for r in value) for p in PROGRAMS}
            total = statistics.median(sum(getattr(r, kind).values()) for r in value)
            lines.append(
                f"  {name}: total {total:.0f} = " + ", ".join(f"{p} {v:.0f}" for p, v in parts.items())
            )
    if POOL_PSS:
        parts = {p: statistics.median(m[p] for m in POOL_PSS) for p in PROGRAMS}
        total = statistics.median(sum(m.values()) for m in POOL_PSS)
        lines.append(f"PSS of a pooled session waiting idle (blank page), MiB (median of {len(POOL_PSS)})")
        lines.append(f"  total {total:.0f} = " + ", ".join(f"{p} {v:.0f}" for p, v in parts.items()))
    return "\n".join(lines)


def parse_config(items: list[str]) -> dict[str, Any]:
    """`trait=value` pairs for the server's FirefoxLauncher config (a value is JSON, else a string)."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--config wants trait=value, got {item!r}")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


def parse_variant(text: str) -> Mode:
    """`NAME` or `NAME:trait=value;trait=value`: a cold mode with its own config."""
    name, _sep, rest = text.partition(":")
    return Mode(name, config=parse_config([part for part in rest.split(";") if part]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="clicks per mode (default 5)")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds with no new process before memory is read"
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="FirefoxLauncher trait=value, all modes",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="compare cold launches of configs instead of cold/warm: NAME:trait=value;trait=value (repeat)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time cold and warm launches whose POST has no `screen` (Xpra resizes at the hello)",
    )
    parser.add_argument(
        "--reuse-context",
        action="store_true",
        help="one browser context for all clicks (a returning user: the client's files cached)",
    )
    args = parser.parse_args()
    extra = parse_config(args.config)
    modes = [parse_variant(v) for v in args.variant] or list(MODES)
    if args.baseline:
        modes += [replace(m, name=f"{m.name} unsized", unsized=True) for m in modes]
    results: dict[str, list[Run] | str] = {m.name: m.unavailable for m in modes if m.unavailable}
    chosen = [m for m in modes if not m.unavailable]
    measured = run_modes(chosen, args.runs, args.settle, extra, reuse_context=args.reuse_context)
    results = {m.name: results.get(m.name) or measured[m.name] for m in modes}
    print()
    print(table(results, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
