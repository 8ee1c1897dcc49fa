"""The real tier's leak check counts a test's own units only (the user manager may be shared).

A workstation's own sessions or a parallel test run put units of other servers on the same
user manager; `JupyterServer.units()` (used by server_factory's "units left behind" check)
must ignore those and still see every unit of its own server.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest

from .world import JupyterServer, our_units, unit_gone, wait_until

pytestmark = pytest.mark.real


@pytest.fixture
def foreign_unit() -> Iterator[str]:
    """A unit named like a session of another ffsystemd server (as a parallel run leaves one)."""
    name = f"app-ffsystemd-firefox-{secrets.token_hex(6)}.service"
    subprocess.run(
        [
            "systemd-run",
            "--user",
            "--quiet",
            f"--unit={name}",
            "--description=Firefox session other (ffsystemd server someone-elses-server)",
            "sleep",
            "600",
        ],
        check=True,
        timeout=30,
    )
    wait_until(lambda: name in our_units(), 10, "the foreign unit to be listed")
    yield name
    subprocess.run(["systemctl", "--user", "stop", name], timeout=30, check=False)
    wait_until(lambda: unit_gone(name), 10, "the foreign unit to go")


def test_units_of_a_server_are_its_own_only(
    server_factory: Callable[..., JupyterServer], foreign_unit: str
) -> None:
    server = server_factory()
    assert server.server_id
    session = server.launch()
    assert foreign_unit in our_units()  # what a check of every unit would have counted
    assert server.units() == [session["unit"]]  # ours is seen, the foreign one is not
    server.cleanup(id=session["id"])
    assert server.units() == []  # server_factory's check then passes despite the foreign unit
