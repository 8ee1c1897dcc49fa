"""Real sessions, hardening: what of the server's environment reaches Xpra, Xvfb and Firefox."""

from __future__ import annotations

from collections.abc import Callable

import psutil
import pytest

from .world import JupyterServer, firefox_window, process_tree, wait_until

pytestmark = pytest.mark.real

CANARY = "ffsystemd-canary-3f9c1a"


def test_only_allowed_environment_reaches_xpra_xvfb_and_firefox(
    server_factory: Callable[..., JupyterServer],
) -> None:
    server = server_factory(
        env={
            "FFS_SECRET_CANARY": CANARY,
            "AWS_SECRET_ACCESS_KEY": CANARY,
            "JUPYTER_TOKEN": CANARY,
            "JPY_API_TOKEN": CANARY,
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "FFS_PASSED": "passed-on-purpose",
        },
        pass_environment=["FFS_PASSED"],
    )
    session = server.launch()
    sock = server.session_root / f"session-{session['id']}" / "sockets" / "xpra.sock"
    wait_until(lambda: firefox_window(sock), 90, "Xpra to list a Firefox window")
    procs = process_tree(session["main_pid"])
    by_role: dict[str, psutil.Process] = {}
    for proc in procs:
        try:
            name, cmdline = proc.name(), proc.cmdline()
        except psutil.NoSuchProcess:
            continue  # a short-lived helper that ended after the listing
        if name.startswith("Xvfb"):
            by_role.setdefault("xvfb", proc)
        elif name.startswith("firefox") and "-contentproc" not in cmdline:
            by_role.setdefault("firefox", proc)
        elif any(arg.endswith("xpra") for arg in cmdline[:2]) and "start" in cmdline:
            by_role.setdefault("xpra", proc)
    assert set(by_role) == {"xpra", "xvfb", "firefox"}, [(p.name(), p.cmdline()[:3]) for p in procs]

    server_env = psutil.Process(server.proc.pid).environ()
    assert server_env["FFS_SECRET_CANARY"] == CANARY  # the server itself has them
    assert "JUPYTER_CONFIG_DIR" in server_env
    for role, proc in by_role.items():
        env = proc.environ()  # /proc/<pid>/environ
        assert CANARY not in env.values(), (role, sorted(env))
        leaked = [k for k in env if k.startswith(("JUPYTER", "JPY_", "AWS_", "FFS_SECRET"))]
        assert leaked == [], (role, leaked)
        assert "DBUS_SESSION_BUS_ADDRESS" not in env, role
        assert env["PATH"].endswith(server_env["PATH"]), role  # Xpra prepends its own dir
        assert env["LANG"] == "C.UTF-8" and env["TZ"] == "UTC", role
        assert env["FFS_PASSED"] == "passed-on-purpose", role
        assert env["TMPDIR"].startswith(str(server.session_root)), role
    assert server.cleanup(id=session["id"])["stopped"] == [session["id"]]
