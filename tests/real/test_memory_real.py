"""Real tier: an idle session's Firefox runs only the content processes it needs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import psutil
import pytest

from .world import JupyterServer, firefox_window, process_tree, wait_until

pytestmark = pytest.mark.real


def content_processes(main_pid: int) -> Counter[str]:
    """Firefox's child processes of the session by kind (their process names)."""
    kinds: Counter[str] = Counter()
    for proc in process_tree(main_pid):
        try:
            if "-contentproc" in proc.cmdline():
                kinds[proc.name()] += 1
        except psutil.Error:
            continue
    return kinds


def settled(main_pid: int, quiet: float = 8.0, timeout: float = 90.0) -> Counter[str]:
    """The content processes once none has come or gone for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = content_processes(main_pid), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"Firefox's processes never settled: {last}"
        time.sleep(0.5)
        now = content_processes(main_pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_an_idle_session_has_no_spare_content_processes_beyond_one_and_no_preloaded_new_tab(
    server_factory: Callable[..., JupyterServer],
) -> None:
    lean = server_factory()
    firefox_default = server_factory(
        firefox_content_processes=8,
        firefox_prefs={"dom.ipc.processPrelaunch.fission.number": 3, "browser.newtab.preload": True},
    )
    found = {}
    for name, server in (("lean", lean), ("firefox_default", firefox_default)):
        session = server.launch(url="about:blank")
        sock = server.session_root / f"session-{session['id']}" / "sockets" / "xpra.sock"
        wait_until(lambda s=sock: firefox_window(s), 90, "Firefox's window")
        found[name] = settled(session["main_pid"])
        server.cleanup(id=session["id"])
    web = {name: kinds["Web Content"] + kinds["Isolated Web Co"] for name, kinds in found.items()}
    # Firefox's own defaults keep 3 spare content processes and a privileged new-tab page ...
    assert web["firefox_default"] >= 3 and found["firefox_default"]["Privileged Cont"] == 1, found
    # ... ours one spare (and the one showing about:blank) and no hidden new-tab page.
    assert web["lean"] <= 2 and found["lean"]["Privileged Cont"] == 0, found
