"""A real Jupyter server with a refused FirefoxLauncher value runs without the extension.

jupyter_server only logs a config error while it links an extension and then loads it
anyway, with that extension's whole config section rolled back to defaults; ffsystemd
re-applies the config when it loads, so the load fails instead: the log names the trait
and the value, and no ffsystemd route answers. No systemd is needed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from real.world import JupyterServer

NO_BUS = "unix:path=/nonexistent/ffsystemd-test-bus"


@pytest.fixture
def start_server() -> Iterator[Callable[..., JupyterServer]]:
    servers: list[JupyterServer] = []

    def start(**config: object) -> JupyterServer:
        root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
        server = JupyterServer(root, config={"bus_address": NO_BUS, **config})
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def _refused(server: JupyterServer, *words: str) -> None:
    assert server.get("firefox-launcher/api/health").status_code == 404
    assert server.get("api/status").status_code == 200  # Jupyter itself runs on
    log = server.log_path.read_text()
    assert "ffsystemd | extension failed loading" in log
    for word in words:
        assert word in log, word


def test_a_refused_extra_xpra_arg_stops_the_extension(start_server: Callable[..., JupyterServer]) -> None:
    server = start_server(extra_xpra_args=["--dpi=96", "--bind-tcp=0.0.0.0:14500"], memory_max="1G")
    _refused(
        server, "c.FirefoxLauncher.extra_xpra_args = ['--dpi=96', '--bind-tcp=0.0.0.0:14500']", "--bind*"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="plays another user with chown: needs root")
def test_a_session_root_of_another_user_stops_the_extension(
    start_server: Callable[..., JupyterServer],
) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    theirs = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    try:
        os.chown(theirs, nobody, nobody)
        server = start_server(session_root=str(theirs))
        _refused(server, "c.FirefoxLauncher.session_root", f"owned by nobody (uid {nobody})")
        assert list(theirs.iterdir()) == []
    finally:
        theirs.rmdir()


def test_a_downloads_dir_leaving_root_dir_stops_the_extension(
    start_server: Callable[..., JupyterServer],
) -> None:
    server = start_server(downloads_dir="../elsewhere")
    _refused(server, "c.FirefoxLauncher.downloads_dir = '../elsewhere'", "outside the server's root_dir")
