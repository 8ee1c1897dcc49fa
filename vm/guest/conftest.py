"""Top-level conftest of the guest run (copied to tests/conftest.py inside the VM).

It records every JSON answer of the product's API that a test saw (sessions, launch errors,
cleanup results) in $FFSYSTEMD_VM_OUT/sessions.jsonl, so the host can print them, gives
launches without an explicit `ready_timeout` one scaled for the guest's speed, and starts
the Jupyter servers with the ffsystemd server extension only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from real import world

OUT = Path(os.environ.get("FFSYSTEMD_VM_OUT", "."))
# Emulated, a Jupyter server starts 2-3x faster without the extensions the REST API does not
# need (JupyterLab's own front end is tested on the host, in the browser tier).
OTHER_EXTENSIONS = (
    "jupyterlab",
    "jupyter_lsp",
    "jupyter_server_terminals",
    "notebook_shim",
    "jupyter_server_proxy",
)
SCALE = float(os.environ.get("FFSYSTEMD_TEST_TIME_SCALE", "1"))
_current = {"test": ""}
_last_seen: dict[tuple[str, str], str] = {}


def _record(method: str, url: str, response: Any) -> None:
    if "firefox-launcher/api/" not in url or "json" not in response.headers.get("Content-Type", ""):
        return
    try:
        body = response.json()
    except ValueError:
        return
    path = url.split("firefox-launcher/", 1)[1]
    text = json.dumps(body, sort_keys=True)
    key = (_current["test"], f"{method} {path}")
    if _last_seen.get(key) == text:  # polls repeat the same answer; keep the changes
        return
    _last_seen[key] = text
    line = {"test": _current["test"], "request": f"{method} {path}", "status": response.status_code}
    with open(OUT / "sessions.jsonl", "a") as fh:
        fh.write(json.dumps({**line, "body": body}, sort_keys=True) + "\n")


_get, _post, _start = world.JupyterServer.get, world.JupyterServer.post, world.JupyterServer.start


def _recorded_get(self: world.JupyterServer, path: str, **kw: Any) -> Any:
    response = _get(self, path, **kw)
    _record("GET", self.url + path, response)
    return response


def _recorded_post(self: world.JupyterServer, path: str, body: Any = None, **kw: Any) -> Any:
    response = _post(self, path, body, **kw)
    _record("POST", self.url + path, response)
    return response


def _scaled_start(self: world.JupyterServer) -> world.JupyterServer:
    self.config.setdefault("ready_timeout", 30.0 * SCALE)
    self.server_extensions = {**dict.fromkeys(OTHER_EXTENSIONS, False), **self.server_extensions}
    return _start(self)


world.JupyterServer.get = _recorded_get  # type: ignore[method-assign]
world.JupyterServer.post = _recorded_post  # type: ignore[method-assign]
world.JupyterServer.start = _scaled_start  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _name_the_current_test(request: pytest.FixtureRequest) -> None:
    _current["test"] = request.node.nodeid
