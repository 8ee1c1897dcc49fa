"""Two real Jupyter servers of one user on one user manager, default configuration.

Same HOME, same root_dir, same base_url: the second server takes the next slot of the derived
server id. Each lists, proxies and cleans up only its own sessions; a restart (keep, then
stop) re-adopts and stops only its own; a SIGKILLed server started again re-adopts its own;
SIGINT (how JupyterHub stops a server) stops the server's sessions.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .world import JupyterServer, stop_leaving_nothing, systemctl_show, unit_gone, wait_until

pytestmark = pytest.mark.real


@pytest.fixture
def user_servers() -> Iterator[Callable[..., JupyterServer]]:
    """start(**config): a server of the same user (shared HOME and root_dir), default session root.

    Afterwards no unit of a session these servers launched may be left (other tests may run
    sessions of their own on the same user manager meanwhile).
    """
    home = Path(tempfile.mkdtemp(prefix="ffh-", dir="/tmp"))
    (home / "work").mkdir()
    servers: list[JupyterServer] = []

    def start(**config: Any) -> JupyterServer:
        root = home / f"server-{len(servers)}"
        root.mkdir()
        server = JupyterServer(
            root, config=config, env={"HOME": str(home)}, root_dir=home / "work", default_session_root=True
        )
        servers.append(server)
        return server.start()

    yield start
    leaked = stop_leaving_nothing(servers)
    shutil.rmtree(home, ignore_errors=True)
    assert not leaked, f"units left behind: {leaked}"


def server_id(server: JupyterServer) -> str:
    health = server.get("firefox-launcher/api/health")
    assert health.status_code == 200, health.text
    return health.json()["server"]["server_id"]


def listed(server: JupyterServer) -> dict[str, dict[str, Any]]:
    resp = server.get("firefox-launcher/api/firefox")
    assert resp.status_code == 200, resp.text
    return {s["id"]: s for s in resp.json()["sessions"] if s["state"] == "running"}


def active(unit: str) -> bool:
    return systemctl_show(unit, "ActiveState")["ActiveState"] == "active"


def assert_not_reachable_from(server: JupyterServer, session: dict[str, Any]) -> None:
    assert server.get(f"firefox-launcher/api/firefox?id={session['id']}").status_code == 404
    path = session["url"][len(server.base_url) :]  # same base_url: the very same URL on this server
    assert server.get(path, allow_redirects=False).status_code == 404
    assert server.post("firefox-launcher/api/cleanup", {"id": session["id"]}).status_code == 404


def test_two_servers_of_one_user_own_only_their_sessions(user_servers) -> None:
    a = user_servers()
    b = user_servers(on_shutdown="keep")
    id_a, id_b = server_id(a), server_id(b)
    assert id_b == f"{id_a}-2"  # same root_dir and base_url: the next free slot
    a1, b1 = a.launch(), b.launch()
    assert set(listed(a)) == {a1["id"]} and set(listed(b)) == {b1["id"]}
    assert_not_reachable_from(b, a1)
    assert_not_reachable_from(a, b1)
    assert b.cleanup(all=True) == {"stopped": [b1["id"]], "errors": {}}
    assert active(a1["unit"]) and unit_gone(b1["unit"])

    # B restarts: keep, then a new B re-adopts only its own session; stopping it stops only that.
    b2 = b.launch()
    b.stop()
    assert active(b2["unit"]) and active(a1["unit"])
    b_again = user_servers()
    assert server_id(b_again) == id_b
    assert set(listed(b_again)) == {b2["id"]} and listed(b_again)[b2["id"]]["adopted"] is True
    assert set(listed(a)) == {a1["id"]}
    b_again.stop()
    wait_until(lambda: unit_gone(b2["unit"]), 30, "B's session to stop with B")
    assert active(a1["unit"]) and set(listed(a)) == {a1["id"]}

    # A is SIGKILLed: nothing stops its session; started again, A re-adopts it.
    a.stop(sig=signal.SIGKILL)
    assert active(a1["unit"])
    a_again = user_servers()
    assert server_id(a_again) == id_a
    assert set(listed(a_again)) == {a1["id"]} and listed(a_again)[a1["id"]]["adopted"] is True

    # SIGINT (JupyterHub's way of stopping a server) ends the server and its session.
    code = a_again.stop(sig=signal.SIGINT)

    def log_end() -> str:
        return f"A's log ends: {a_again.log_path.read_text()[-4000:]}"

    assert code == 0, f"A exited with {code} on SIGINT; {log_end()}"
    try:
        wait_until(lambda: unit_gone(a1["unit"]), 30, "A's session to stop when A is interrupted")
    except AssertionError as error:
        raise AssertionError(f"{error}; {log_end()}") from None
