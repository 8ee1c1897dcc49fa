"""On a real systemd host the limits are enforced: real figures, the cgroup files hold the
configured values, fork fails at tasks_max, a page that eats memory is OOM-killed."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from real.world import JupyterServer, alive, firefox_window, process_tree, unit_gone, wait_until

from .guest import PageServer, Stopwatch, cgroup_dir, read_keyed, record_figure, spawn_in_scope

pytestmark = pytest.mark.vm

MEMORY_MAX = 1024**3
TASKS_MAX = 400


@pytest.fixture(scope="module")
def server(module_servers: Callable[..., JupyterServer]) -> JupyterServer:
    return module_servers(memory_max="1G", tasks_max=TASKS_MAX, cpu_quota="150%")


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    page_server = PageServer()
    yield page_server
    page_server.close()


def ended(server: JupyterServer, sid: str) -> dict | None:
    status = server.status(sid)
    return status if status["state"] in ("stopped", "failed") else None


def session_dir(server: JupyterServer, sid: str) -> Path:
    return server.session_root / f"session-{sid}"


def test_a_session_reports_real_figures_and_its_cgroup_holds_the_limits(server: JupyterServer) -> None:
    watch = Stopwatch()
    session = server.launch(url="about:blank")
    record_figure("launch_post_to_201", watch())
    sid, unit = session["id"], session["unit"]
    assert (session["memory_max"], session["tasks_max"], session["cpu_quota"]) == (MEMORY_MAX, TASKS_MAX, 150)

    def figures() -> dict | None:
        status = server.status(sid)
        numbers = [status[k] for k in ("memory_current", "tasks_current", "cpu_usage_nsec")]
        return status if all(isinstance(n, int) for n in numbers) else None

    status = wait_until(figures, 30, "memory, tasks and CPU figures to be numbers")
    assert 10 * 1024**2 < status["memory_current"] < MEMORY_MAX, status
    assert 3 <= status["tasks_current"] <= TASKS_MAX, status
    assert status["cpu_usage_nsec"] > 10**8, status  # Xpra and Xvfb took well over 0.1 s to start

    group = cgroup_dir(unit)
    assert group.parent.name == "app-ffsystemd.slice"
    assert "user@1000.service" in group.parts
    assert (group / "memory.max").read_text().strip() == str(MEMORY_MAX)
    assert (group / "pids.max").read_text().strip() == str(TASKS_MAX)
    assert (group / "cpu.max").read_text().split() == ["150000", "100000"]
    # The JSON's figures are the kernel's: they follow the cgroup's own counters.
    assert int((group / "pids.current").read_text()) >= 3
    assert read_keyed(group / "cpu.stat")["usage_usec"] * 1000 >= status["cpu_usage_nsec"] // 2

    sock = session_dir(server, sid) / "sockets" / "xpra.sock"
    wait_until(lambda: firefox_window(sock), 150, "Xpra to list a Firefox window")
    record_figure("launch_post_to_firefox_window", watch())
    status = wait_until(
        lambda: (s := server.status(sid))["tasks_current"] > status["tasks_current"] and s,
        30,
        "the task count to grow with Firefox",
    )
    record_figure("session_memory_current_mb", status["memory_current"] / 1024**2, "MB")
    record_figure("session_tasks_current", status["tasks_current"], "")
    assert server.cleanup(id=sid)["stopped"] == [sid]


FORK_PROBE = """
import errno, json, os, threading
threading.stack_size(64 * 1024)
stop = threading.Event()
threads = []
while True:  # fill the scope's task budget with sleeping threads...
    try:
        thread = threading.Thread(target=stop.wait)
        thread.start()
        threads.append(thread)
    except RuntimeError:
        break
pids_current = int(open(os.path.join(GROUP, "pids.current")).read())
try:  # ...then a fork must fail
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    fork_errno = 0
except OSError as exc:
    fork_errno = exc.errno
stop.set()
for thread in threads:
    thread.join()
print(json.dumps({"threads": len(threads), "pids_current": pids_current, "fork_errno": fork_errno}))
"""


def test_a_fork_beyond_tasks_max_fails_with_eagain_inside_the_session(server: JupyterServer) -> None:
    session = server.launch(url="about:blank")
    sock = session_dir(server, session["id"]) / "sockets" / "xpra.sock"
    wait_until(lambda: firefox_window(sock), 150, "Firefox to be up (it starts many threads)")
    group = cgroup_dir(session["unit"])
    events_before = read_keyed(group / "pids.events")["max"]
    probe = spawn_in_scope(session["unit"], f"GROUP = {str(group)!r}\n" + FORK_PROBE)
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert result["fork_errno"] == errno.EAGAIN, result
    assert TASKS_MAX - 5 <= result["pids_current"] <= TASKS_MAX, result  # Firefox's come and go
    assert result["threads"] > 10, result
    assert read_keyed(group / "pids.events")["max"] > events_before
    server.cleanup(id=session["id"], force=True)
    wait_until(lambda: unit_gone(session["unit"]), 30, "the unit to be gone")


def test_a_page_that_eats_memory_is_oom_killed_with_its_session_and_others_keep_running(
    server: JupyterServer, pages: PageServer
) -> None:
    bystander = server.launch(url="about:blank")
    slice_dir = cgroup_dir(bystander["unit"]).parent
    kills_before = read_keyed(slice_dir / "memory.events")["oom_kill"]

    hog = server.launch(url=pages.url())
    sid, unit = hog["id"], hog["unit"]
    group = cgroup_dir(unit)
    pids: set[int] = set()
    seen: dict[str, float] = {}
    scope_events: dict[str, int] = {}
    watch = Stopwatch()

    def killed() -> dict | None:
        # Poll the kernel's and the API's view together: the delay between them is a figure.
        if "oom" not in seen and read_keyed(slice_dir / "memory.events")["oom_kill"] > kills_before:
            seen["oom"] = watch()
        try:
            scope_events.update(read_keyed(group / "memory.events"))
            pids.update(p.pid for p in process_tree(hog["main_pid"]))
        except (OSError, psutil.Error):
            pass  # the scope is already gone
        status = ended(server, sid)
        if status is not None:
            seen["failed"] = watch()
        return status

    status = wait_until(killed, 300, "the memory-eating session to be OOM-killed", interval=0.02)
    assert status["state"] == "failed", status
    assert status["result"] == "oom-kill", status
    assert "memory" in status["message"], status
    assert status["main_pid"] is None
    assert read_keyed(slice_dir / "memory.events")["oom_kill"] > kills_before
    if scope_events:
        assert scope_events.get("max", 0) > 0, scope_events
    seen.setdefault("oom", seen["failed"])
    record_figure("oom_kill_to_api_failed", seen["failed"] - seen["oom"])
    record_figure("hog_launch_to_oom_kill", seen["oom"])

    wait_until(lambda: unit_gone(unit), 10, "the OOM-killed unit to be gone")
    wait_until(lambda: not alive(pids), 10, "every process of the OOM-killed session to end")
    wait_until(lambda: not session_dir(server, sid).exists(), 10, "its directory to be removed")
    # The other session was not touched.
    assert server.status(bystander["id"])["state"] == "running"
    assert psutil.pid_exists(bystander["main_pid"])
    assert sorted(server.cleanup(ids=[bystander["id"], sid])["stopped"]) == sorted([bystander["id"], sid])
