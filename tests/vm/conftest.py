"""Fixtures of the VM tier: they run only inside the guest that scripts/test-vm boots, as
alice, against her real systemd user manager (systemd is PID 1 there, cgroup v2)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from real.world import JupyterServer, our_units, wait_until


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session", autouse=True)
def in_the_guest() -> None:
    """The VM tests make claims about the guest world; anywhere else they must not run."""
    if os.environ.get("FFSYSTEMD_VM_GUEST") != "1":
        pytest.fail("the vm tests run only inside the guest of scripts/test-vm")
    assert os.getuid() == 1000, "the vm tests run as alice (uid 1000)"
    assert Path("/run/systemd/system").is_dir(), "systemd is PID 1 in the guest"


def _start_servers() -> tuple[Callable[..., JupyterServer], Callable[[], None]]:
    servers: list[JupyterServer] = []
    roots: list[Path] = []

    def start(**config: object) -> JupyterServer:
        root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
        roots.append(root)
        server = JupyterServer(root, config=dict(config))
        servers.append(server)
        return server.start()

    def stop() -> None:
        for server in servers:
            server.stop()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
        wait_until(lambda: not our_units(), 30, "every session unit to be gone")

    return start, stop


@pytest.fixture(scope="module")
def module_servers() -> Iterator[Callable[..., JupyterServer]]:
    """Start Jupyter servers (as alice) that live for one test module; nothing may be left."""
    start, stop = _start_servers()
    yield start
    stop()


@pytest.fixture
def servers() -> Iterator[Callable[..., JupyterServer]]:
    """Start Jupyter servers (as alice) for one test; nothing may be left."""
    start, stop = _start_servers()
    yield start
    stop()
