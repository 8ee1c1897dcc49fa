"""Real tier: a session leaves no trace outside its own directory, and its X cookie is its own.

The Jupyter server runs with HOME pointing to a fresh, empty directory. A session loads a page
of a local test server, which sends Firefox on to a download; after the session is closed the
home directory holds only what the Jupyter server itself writes, and no file in the plausible
places (HOME, the user's home from the password database, /tmp, /var/tmp, XDG_RUNTIME_DIR,
the session root) is named after the session or mentions its id or directory.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from .world import JupyterServer, firefox_window, process_tree, unit_gone, wait_until

pytestmark = pytest.mark.real

DOWNLOAD_NAME = "ffsystemd-report.bin"
DOWNLOAD_BODY = b"downloaded by a session\n" * 200

# What the Jupyter server itself writes into a fresh HOME (not the sessions): its runtime
# files (connection file, browser-open page, cookie secret), IPython's profile directory
# (created when IPython is imported at start-up), the log of the `npm prefix -g` that
# jupyter_lsp (installed with JupyterLab) runs while looking for language servers, and
# ffsystemd's own liveness lock of the server (`~/.firefox-launcher/servers/<id>.lock`).
SERVER_WRITES = re.compile(
    r"\A(?:\.ipython(?:/.*)?|\.local|\.local/share|\.local/share/jupyter(?:/runtime(?:/.*)?)?"
    r"|\.npm|\.npm/_logs(?:/[^/]+\.log)?"
    r"|\.firefox-launcher|\.firefox-launcher/servers(?:/[^/]+\.lock)?)\Z"
)


class _Site(BaseHTTPRequestHandler):
    """`/page` (a page that sends the browser on to the download) and `/download` (an attachment)."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/page":
            body = b'<!doctype html><meta http-equiv="refresh" content="0;url=/download"><title>p</title>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
        elif self.path == "/download":
            body = DOWNLOAD_BODY
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f'attachment; filename="{DOWNLOAD_NAME}"')
        else:
            body = b"not found"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[tuple[str, list[str]]]:
    """A local web site on 127.0.0.1: (base URL, paths requested so far)."""
    seen: list[str] = []
    handler = type("Site", (_Site,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="ffs-home-", dir="/tmp"))
    yield home
    subprocess.run(["rm", "-rf", "--one-file-system", str(home)], check=False)


def snapshot(top: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under top: relative path -> (kind, mode, content hash or link target)."""
    found: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = str(path.relative_to(top))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", stat.S_IMODE(info.st_mode), "")
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = ("file", stat.S_IMODE(info.st_mode), digest)
            else:
                found[rel] = ("other", stat.S_IMODE(info.st_mode), "")
    return found


def not_from_the_server(entries: dict[str, tuple[str, int, str]]) -> list[str]:
    return sorted(rel for rel in entries if not SERVER_WRITES.match(rel))


def trace_places(server: JupyterServer, home: Path) -> list[Path]:
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    places = [home, Path(pwd.getpwuid(os.getuid()).pw_dir), Path("/tmp"), Path("/var/tmp"), Path(runtime)]
    return [*dict.fromkeys(p for p in places if p.is_dir()), server.session_root]


def find_traces(
    places: list[Path], needles: list[str], since: float, skip: Callable[[Path], bool]
) -> list[str]:
    """Paths under places named after a needle, or changed since `since` and mentioning one."""
    encoded = [n.encode() for n in needles]
    hits: list[str] = []
    for place in places:
        stack = [place]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                path = Path(entry.path)
                if skip(path):
                    continue
                if any(n in entry.path for n in needles):
                    hits.append(entry.path)
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(path)
                elif stat.S_ISLNK(info.st_mode):
                    with_target = os.readlink(path)
                    if any(n in with_target for n in needles):
                        hits.append(f"{entry.path} -> {with_target}")
                elif stat.S_ISREG(info.st_mode) and info.st_mtime >= since and info.st_size < 8 << 20:
                    try:
                        data = path.read_bytes()
                    except OSError:
                        continue
                    if any(n in data for n in encoded):
                        hits.append(entry.path)
    return sorted(set(hits))


def session_processes(main_pid: int) -> tuple[psutil.Process, psutil.Process]:
    """(Xvfb, Firefox's main process) of a running session."""
    procs = process_tree(main_pid)
    xvfb = next(p for p in procs if p.name().startswith("Xvfb"))
    firefox = next(p for p in procs if p.name().startswith("firefox") and "-contentproc" not in p.cmdline())
    return xvfb, firefox


def auth_argument(xvfb: psutil.Process) -> str:
    argv = xvfb.cmdline()
    return argv[argv.index("-auth") + 1]


def x_lock_pid(display: str) -> int | None:
    try:
        return int(Path(f"/tmp/.X{display.lstrip(':')}-lock").read_text().strip())
    except (OSError, ValueError):
        return None


def test_a_session_leaves_no_trace_outside_its_directory(
    server_factory: Callable[..., JupyterServer], fresh_home: Path, site: tuple[str, list[str]]
) -> None:
    base_url, seen = site
    started = time.time() - 1
    assert snapshot(fresh_home) == {}
    server = server_factory(downloads_dir="", env={"HOME": str(fresh_home)})  # downloads kept in the session
    session = server.launch(url=f"{base_url}/page")
    sid = session["id"]
    base = server.session_root / f"session-{sid}"
    wait_until(lambda: firefox_window(base / "sockets" / "xpra.sock"), 90, "Xpra to list a Firefox window")

    # The page loaded and sent Firefox on to the download, which lands in the session.
    download = base / "downloads" / DOWNLOAD_NAME
    wait_until(
        lambda: download.is_file() and download.read_bytes() == DOWNLOAD_BODY, 60, "the download to land"
    )
    assert "/page" in seen and "/download" in seen[seen.index("/page") :], seen
    assert not (fresh_home / "Downloads").exists()

    # Every program of the session was pointed into the session directory.
    xvfb, firefox = session_processes(session["main_pid"])
    cookie = base / "runtime" / "Xauthority"
    assert auth_argument(xvfb) == str(cookie)
    assert stat.S_IMODE(cookie.stat().st_mode) == 0o600 and cookie.stat().st_size > 0
    env = firefox.environ()
    assert env["HOME"] == str(base / "home")
    assert env["XAUTHORITY"] == str(cookie)
    display = env["DISPLAY"]
    # Firefox's per-user files (~/.mozilla or ~/.config/mozilla) are in the session's home.
    session_home = {p.name for p in (base / "home").iterdir()} | {
        p.name for p in (base / "home" / ".config").iterdir()
    }
    assert {".mozilla", "mozilla"} & session_home, session_home
    during = snapshot(fresh_home)
    assert not_from_the_server(during) == [], "the session wrote into HOME"

    server_log = server.root / "server.log"  # the Jupyter server's own log names its sessions
    places = trace_places(server, fresh_home)
    # The search sees a live session (its directory is named after it) ...
    assert str(base) in find_traces(places, [sid, str(base)], started, skip=lambda p: p == server_log)

    result = server.cleanup(id=sid)
    assert result["stopped"] == [sid], result
    wait_until(lambda: unit_gone(session["unit"]), 30, f"{session['unit']} to be unloaded")
    assert not base.exists()
    # Xvfb removed its display socket and lock (named by display number, not by session).
    wait_until(lambda: x_lock_pid(display) != xvfb.pid, 10, "Xvfb's lock file to go")
    if x_lock_pid(display) is None:
        assert not Path(f"/tmp/.X11-unix/X{display.lstrip(':')}").exists()
    server.stop()

    after = snapshot(fresh_home)
    assert not_from_the_server(after) == [], "HOME holds more than the Jupyter server's own files"
    for name in (".Xauthority", ".mozilla", ".config", ".cache", ".xpra", "Downloads", ".fakexinerama"):
        assert not (fresh_home / name).exists(), name

    # ... and finds nothing of it once it is closed.
    traces = find_traces(places, [sid, str(base)], started, skip=lambda p: p == server_log)
    assert traces == [], f"the session left traces: {traces}"


def _cookie_of(path: Path) -> str:
    out = subprocess.run(["xauth", "-f", str(path), "list"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


def _xdpyinfo(display: str, xauthority: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    argv = ["xdpyinfo", "-display", display]
    if as_nobody:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv]
    env = {"PATH": os.environ["PATH"], "XAUTHORITY": xauthority, "HOME": "/nonexistent"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)


def test_each_session_has_its_own_x_cookie_that_only_it_can_use(
    server_factory: Callable[..., JupyterServer], fresh_home: Path
) -> None:
    server = server_factory(env={"HOME": str(fresh_home)})
    sessions = [server.launch(url="about:blank") for _ in range(2)]
    facts = []
    for session in sessions:
        base = server.session_root / f"session-{session['id']}"
        wait_until(lambda b=base: firefox_window(b / "sockets" / "xpra.sock"), 90, "a Firefox window")
        xvfb, firefox = session_processes(session["main_pid"])
        cookie = base / "runtime" / "Xauthority"
        # Each Xvfb was started with its own session's cookie file ...
        assert auth_argument(xvfb) == str(cookie)
        assert firefox.environ()["XAUTHORITY"] == str(cookie)
        # ... which is the user's alone: 0600, owned by us, in 0700 directories.
        info = cookie.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
        for directory in (cookie.parent, base):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        facts.append((cookie, firefox.environ()["DISPLAY"], _cookie_of(cookie)))
    (cookie_a, display_a, secret_a), (cookie_b, display_b, secret_b) = facts
    assert cookie_a != cookie_b and display_a != display_b
    assert secret_a != secret_b

    # A display opens with its own cookie only: not with the other session's, not without one.
    assert _xdpyinfo(display_a, str(cookie_a)).returncode == 0
    assert _xdpyinfo(display_b, str(cookie_b)).returncode == 0
    assert _xdpyinfo(display_a, str(cookie_b)).returncode != 0
    assert _xdpyinfo(display_b, str(cookie_a)).returncode != 0
    assert _xdpyinfo(display_a, str(fresh_home / "none")).returncode != 0

    if os.getuid() == 0:
        # Another user can neither read a cookie nor use it to reach the display.
        for cookie, display in ((cookie_a, display_a), (cookie_b, display_b)):
            read = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat", str(cookie)],
                capture_output=True,
                timeout=30,
            )
            assert read.returncode != 0 and b"Permission denied" in read.stderr, read
            assert _xdpyinfo(display, str(cookie), as_nobody=True).returncode != 0

    server.cleanup(all=True)
    for cookie in (cookie_a, cookie_b):
        wait_until(lambda c=cookie: not c.exists(), 30, f"{cookie} to be removed")


def test_keep_profile_keeps_the_profile_but_not_the_x_cookie(
    server_factory: Callable[..., JupyterServer], fresh_home: Path
) -> None:
    server = server_factory(env={"HOME": str(fresh_home)}, keep_profile=True)
    session = server.launch(url="about:blank")
    base = server.session_root / f"session-{session['id']}"
    wait_until(lambda: firefox_window(base / "sockets" / "xpra.sock"), 90, "a Firefox window")
    assert (base / "runtime" / "Xauthority").stat().st_size > 0
    assert server.cleanup(id=session["id"])["stopped"] == [session["id"]]
    wait_until(lambda: unit_gone(session["unit"]), 30, f"{session['unit']} to be unloaded")
    assert (base / "profile" / "prefs.js").is_file()
    assert not (base / "runtime" / "Xauthority").exists()
    assert list((base / "sockets").iterdir()) == []
    assert [p.name for p in (base / "runtime").iterdir()] == ["xpra.log"]
