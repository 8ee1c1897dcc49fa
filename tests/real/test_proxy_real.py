"""Real sessions, the proxy under load: many of the client's files at once from a real Xpra.

Xpra listens with a backlog of 5; a browser opening the client (or three tabs at once) asks for
dozens of files in parallel. Before connections were retried with a new socket, a connect
refused with EAGAIN was taken for one in progress and ~40% of such fetches were 502
"[Errno 22] Invalid argument" (scripts lost, the client never connected).

With Xpra's client directory read at start-up (ffsystemd.client_files, the default where it is
installed, as here) the files come from the server's memory and Xpra is not asked at all; the
retry against a full backlog is the fallback's, tested with a busy fake in
tests/handlers/test_session_client.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ffsystemd.session_page import static_content_type

from .world import JupyterServer, wait_until

pytestmark = pytest.mark.real

WWW = Path("/usr/share/xpra/www")
PARALLEL = 30


def client_files() -> list[str]:
    """The client's static files the proxy passes on, relative to Xpra's www directory."""
    files = sorted(
        str(path.relative_to(WWW))
        for path in WWW.rglob("*")
        if path.is_file() and static_content_type(str(path.relative_to(WWW))) is not None
    )
    assert len(files) >= 20, files
    return files


def test_thirty_parallel_fetches_of_the_clients_files_all_answer(
    server_factory: Callable[..., JupyterServer],
) -> None:
    server = server_factory()
    session = server.launch()
    base = f"http://127.0.0.1:{server.port}" + server.client_path(session).split("?", 1)[0]
    files = client_files()
    wanted = [files[n % len(files)] for n in range(PARALLEL)]
    wait_until(lambda: requests.get(base + wanted[0], timeout=30).status_code == 200, 60, "the client")

    def fetch(name: str) -> tuple[str, int, bytes]:
        resp = requests.get(base + name, timeout=60)
        return name, resp.status_code, resp.content

    for _round in range(3):  # three tabs opening at once
        with ThreadPoolExecutor(PARALLEL) as pool:
            results = list(pool.map(fetch, wanted))
        failed = [(name, status, body[:100]) for name, status, body in results if status != 200]
        assert failed == [], f"{len(failed)} of {PARALLEL} failed: {failed[:5]}"
        for name, _status, body in results:
            assert body == (WWW / name).read_bytes(), name
    server.cleanup(ids=[session["id"]])
