"""The world of the REST API tests: a real in-process Jupyter server with ffsystemd on a fake systemd.

Each test gets, fresh:

* ``fake_systemd`` (tests/conftest.py): a private dbus-daemon with the python-dbusmock fake
  systemd user manager on it (fault injection, call counts, a call log with arguments).
* ``session_root``: a short, empty directory ``/tmp/ffs-XXXX`` (unix socket paths under it
  must stay below 108 bytes), removed afterwards.
* ``jp_server_config``: ffsystemd enabled; the FirefoxLauncher talks to the fake's bus, runs
  ``tests/fakes/fake_xpra.py`` as Xpra (HTTP on its --bind socket) and ``/bin/true`` as
  Firefox, with ready_timeout 5 s and max_sessions 2.  A test changes FirefoxLauncher traits
  with ``@pytest.mark.launcher(trait=value, ...)`` (``bus_address=...`` there means the fake
  is not started at all) and ServerApp traits with ``@pytest.mark.serverapp(...)``.
* pytest-jupyter's in-process server (``jp_serverapp``, ``jp_fetch``; the base URL is
  pytest-jupyter's ``/a%40b/`` unless a test parametrizes ``jp_base_url``).
* ``api``: JSON calls of our routes that never raise on an HTTP error status.
* ``manager`` / ``launcher_app``: the extension's SessionManager and FirefoxLauncher.
* ``xpra_env``: sets FAKE_XPRA_* knobs for the sessions launched after the call.
* ``foreign_unit``: scopes started directly in the fake (not by the launcher), around a
  ``sleep`` process of ours.
* ``no_leftovers`` (autouse): after the test, stops whatever sessions are still known (and
  fails the test if it had to), then checks that nothing is left: no ffsystemd unit in the
  fake, no process the fake was asked to put in a scope, no session directory.

pytest-jupyter runs its fixtures on ``jp_asyncio_loop`` while pytest-asyncio (``asyncio_mode =
"auto"``) runs the async tests on its own runner's loop; ``jp_asyncio_loop`` is overridden here
to be that runner's loop, so the server, the fixtures and the tests share one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dbus
import dbus.bus
import dbus.exceptions
import psutil
import pytest
from fakes.dbus_world import FAKE_XPRA, FAKE_XPRA_ENV, FakeSystemd, Sleepers
from fakes.polling import wait_until
from jupyter_server.auth import Authorizer

# pytest-jupyter has no entry point: bring its server fixtures (jp_fetch, jp_serverapp, ...) here.
from pytest_jupyter.jupyter_server import *  # noqa: F403

from ffsystemd.failed_logs import FAILED_DIR
from ffsystemd.manager import SessionManager
from ffsystemd.units import UNIT_PREFIX

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
SCOPE_IFACE = "org.freedesktop.systemd1.Scope"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"

FIREFOX_ROUTE = ("firefox-launcher", "api", "firefox")
CLEANUP_ROUTE = ("firefox-launcher", "api", "cleanup")
HEALTH_ROUTE = ("firefox-launcher", "api", "health")

DEFAULT_TRAITS: dict[str, Any] = {
    "xpra_command": [sys.executable, str(FAKE_XPRA)],
    "firefox_command": ["/bin/true"],
    "pass_environment": list(FAKE_XPRA_ENV),
    "ready_timeout": 5,
    "max_sessions": 2,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "launcher(**traits): FirefoxLauncher traits for this test's server")
    config.addinivalue_line("markers", "serverapp(**traits): ServerApp traits for this test's server")


# --- one event loop for pytest-jupyter and pytest-asyncio ------------------------------------
@pytest.fixture(autouse=True)
def jp_asyncio_loop(_function_scoped_runner: asyncio.Runner) -> asyncio.AbstractEventLoop:
    """pytest-asyncio's loop for this test: the server lives on the loop the test runs on."""
    return _function_scoped_runner.get_loop()


# --- the server ---------------------------------------------------------------------------------
@pytest.fixture
def session_root() -> Iterator[Path]:
    """An empty, short session root under /tmp (unix socket paths must stay < 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _marker_kwargs(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(name))):
        kwargs.update(marker.kwargs)
    return kwargs


@pytest.fixture
def launcher_traits(request: pytest.FixtureRequest, session_root: Path) -> dict[str, Any]:
    """The FirefoxLauncher config of this test: DEFAULT_TRAITS, the fake's bus, and the marker's traits."""
    traits = dict(DEFAULT_TRAITS, session_root=str(session_root))
    overrides = _marker_kwargs(request, "launcher")
    if "bus_address" not in overrides:
        traits["bus_address"] = request.getfixturevalue("fake_systemd").address
    traits.update(overrides)
    return traits


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest, launcher_traits: dict[str, Any]) -> dict[str, Any]:
    """ffsystemd enabled with launcher_traits (plus ServerApp traits from @pytest.mark.serverapp)."""
    server = {"jpserver_extensions": {"ffsystemd": True}}
    server.update(_marker_kwargs(request, "serverapp"))
    return {"ServerApp": server, "FirefoxLauncher": dict(launcher_traits)}


@pytest.fixture
def manager(jp_serverapp: Any) -> SessionManager:
    """The extension's session manager (the one the handlers use)."""
    return jp_serverapp.web_app.settings["ffsystemd_manager"]


@pytest.fixture
def launcher_app(jp_serverapp: Any) -> Any:
    """The running FirefoxLauncher extension app."""
    (app,) = jp_serverapp.extension_manager.extension_apps["ffsystemd"]
    return app


@pytest.fixture
def xpra_env(manager: SessionManager, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """xpra_env(FAKE_XPRA_NEVER_READY="1"): knobs for the fake Xpra of sessions launched afterwards.

    The manager copied os.environ when the server started, so the knobs go into its copy.
    """

    def set_knobs(**knobs: str) -> None:
        for name, value in knobs.items():
            monkeypatch.setitem(manager._environ, name, value)

    return set_knobs


# --- HTTP -----------------------------------------------------------------------------------------
@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Our routes over jp_fetch (token-authenticated); HTTP errors are returned, not raised."""

    def __init__(self, fetch: Callable[..., Any]) -> None:
        self._fetch = fetch

    async def call(
        self,
        method: str,
        route: tuple[str, ...],
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        params: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        if raw is None and method == "POST":
            raw = "" if body is None else json.dumps(body)
        response = await self._fetch(
            *route, method=method, body=raw, params=params, raise_error=False, **kwargs
        )
        if response.code == 599:  # no HTTP answer at all
            raise response.error
        return Reply(response.code, response.headers, response.body or b"")

    async def launch(self, url: str | None = None) -> Reply:
        return await self.call("POST", FIREFOX_ROUTE, {"url": url} if url is not None else None)

    async def sessions(self) -> list[dict[str, Any]]:
        reply = await self.call("GET", FIREFOX_ROUTE)
        assert reply.code == 200, reply.body
        return reply.json["sessions"]

    async def session(self, session_id: str, redirect: str | None = None, **kwargs: Any) -> Reply:
        params = {"id": session_id} if redirect is None else {"id": session_id, "redirect": redirect}
        return await self.call("GET", FIREFOX_ROUTE, params=params, **kwargs)

    async def head(self) -> Reply:
        return await self.call("HEAD", FIREFOX_ROUTE)

    async def cleanup(self, body: Any = None, **fields: Any) -> Reply:
        return await self.call("POST", CLEANUP_ROUTE, fields if body is None else body)

    async def health(self) -> Reply:
        return await self.call("GET", HEALTH_ROUTE)


@pytest.fixture
def api(jp_fetch: Callable[..., Any]) -> Api:
    """JSON calls of the ffsystemd routes, authenticated with the server's token."""
    return Api(jp_fetch)


# --- looking into the fake --------------------------------------------------------------------------
@dataclass
class Call:
    method: str
    args: str


def fake_calls(fake: FakeSystemd, method: str | None = None) -> list[Call]:
    """The Manager method calls the fake answered, in order, from its dbusmock call log.

    Empty once the fake was stopped (its log went with its directory).
    """
    calls = []
    try:
        text = fake.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        _stamp, _, rest = line.partition(" ")
        name, _, args = rest.partition(" ")
        if name == "emit" or (method is not None and name != method):
            continue
        calls.append(Call(name, args))
    return calls


def started_units(fake: FakeSystemd) -> list[tuple[str, list[int]]]:
    """(unit name, PIDs) of every StartTransientUnit call the fake saw."""
    started = []
    for call in fake_calls(fake, "StartTransientUnit"):
        name = re.match(r'"([^"]+)"', call.args)
        pids = re.search(r"'PIDs'\), dbus\.Array\(\[([^\]]*)\]", call.args)
        started.append(
            (
                name.group(1) if name else "",
                [int(p) for p in re.findall(r"UInt32\((\d+)\)", pids.group(1))] if pids else [],
            )
        )
    return started


def our_units(fake: FakeSystemd) -> list[str]:
    """Loaded units in the fake whose names look like ours."""
    return [u for u in fake.loaded_units() if u.startswith(UNIT_PREFIX)]


def unit_properties(fake: FakeSystemd, unit: str) -> dict[str, Any]:
    """Unit and Scope properties of a loaded unit, read from the fake over D-Bus."""
    conn = dbus.bus.BusConnection(fake.address)
    try:
        path = conn.call_blocking(SYSTEMD, MANAGER_PATH, MANAGER_IFACE, "GetUnit", "s", [unit])
        props: dict[str, Any] = {}
        for iface in (UNIT_IFACE, SCOPE_IFACE):
            values = conn.call_blocking(
                SYSTEMD, path, "org.freedesktop.DBus.Properties", "GetAll", "s", [iface]
            )
            props.update({str(k): v for k, v in values.items()})
        return props
    finally:
        conn.close()


def process_alive(pid: int) -> bool:
    """True while pid is a live (not zombie) process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_dirs(root: Path) -> list[str]:
    """Entries of the session root, but the kept logs of failed launches (bounded, on purpose)."""
    return sorted(p.name for p in root.iterdir() if p.name != FAILED_DIR) if root.exists() else []


class ForeignUnits(Sleepers):
    """Scopes started in the fake by the test itself (as another program of the user would)."""

    def start(self, name: str, description: str = "not ffsystemd's", **scope: Any) -> int:
        """Start scope `name` around a new `sleep` process; return its PID once the unit is active."""
        return super().start(name, description, **{"collect_mode": None, "stop_timeout_usec": None, **scope})


@pytest.fixture
def foreign_unit(fake_systemd: FakeSystemd) -> Iterator[ForeignUnits]:
    """foreign_unit.start(name): a scope the launcher did not create; its sleep is ended afterwards."""
    units = ForeignUnits(fake_systemd)
    yield units
    units.end()


# --- nothing left behind --------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_leftovers(
    request: pytest.FixtureRequest,
    jp_server_cleanup: None,
    jp_serverapp: Any,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    launcher_traits: dict[str, Any],
    session_root: Path,
) -> Iterator[None]:
    """After the test: stop the sessions still known, then check no unit, process or directory is left.

    Runs before pytest-jupyter's server cleanup (whose stop_extension() would hide leaked sessions)
    and while the fake systemd still runs.
    """
    yield
    manager: SessionManager = jp_serverapp.web_app.settings["ffsystemd_manager"]
    problems = []
    leftover_sessions = manager.session_ids()
    if leftover_sessions:
        jp_asyncio_loop.run_until_complete(manager.cleanup(leftover_sessions, force=True))
        problems.append(f"sessions still known after the test (stopped now): {leftover_sessions}")
    fake: FakeSystemd | None = None
    if "fake_systemd" in request.fixturenames or "bus_address" not in _marker_kwargs(request, "launcher"):
        fake = request.getfixturevalue("fake_systemd")
    if fake is not None and fake.process is not None and fake.process.poll() is None:
        units = our_units(fake)
        foreign = {name for name in units if "not ffsystemd" in _description(fake, name)}
        if set(units) - foreign:
            problems.append(f"units left in the fake: {sorted(set(units) - foreign)}")
    if fake is not None:
        started = started_units(fake)
        alive = [pid for _name, pids in started for pid in pids if process_alive(pid)]
        with contextlib.suppress(AssertionError):  # a grace period: what still lives is reported
            wait_until(lambda: not [pid for pid in alive if process_alive(pid)], 5, "scope processes to end")
        alive = [pid for pid in alive if process_alive(pid)]
        alive = [pid for pid in alive if pid not in _foreign_pids(request)]
        for pid in alive:  # processes of our scopes: children of this test process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if alive:
            problems.append(f"processes of our scopes still alive (killed now): {alive}")
    dirs = session_dirs(session_root)
    if dirs:
        problems.append(f"session directories left: {dirs}")
    assert not problems, "; ".join(problems)


def _description(fake: FakeSystemd, unit: str) -> str:
    try:
        return str(unit_properties(fake, unit).get("Description", ""))
    except dbus.exceptions.DBusException:
        return ""


def _foreign_pids(request: pytest.FixtureRequest) -> set[int]:
    if "foreign_unit" not in request.fixturenames:
        return set()
    units: ForeignUnits = request.getfixturevalue("foreign_unit")
    return {p.pid for p in units.processes}


# --- a recording authorizer ------------------------------------------------------------------------
class RecordingAuthorizer(Authorizer):
    """Records every (action, resource) asked; allows only the actions in `allowed`."""

    seen: list[tuple[str, str]] = []
    allowed: set[str] = {"read"}

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        RecordingAuthorizer.seen.append((action, resource))
        return action in RecordingAuthorizer.allowed


@pytest.fixture
def recording_authorizer() -> Iterator[type[RecordingAuthorizer]]:
    """RecordingAuthorizer with a fresh record (use with @pytest.mark.serverapp(authorizer_class=...))."""
    RecordingAuthorizer.seen = []
    RecordingAuthorizer.allowed = {"read"}
    yield RecordingAuthorizer
    RecordingAuthorizer.seen = []
