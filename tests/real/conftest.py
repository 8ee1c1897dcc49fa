"""Fixtures of the real tier: a real systemd user manager must answer (scripts/test boots one)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .served import InPageOrder, ServedPage
from .world import JupyterServer, stop_leaving_nothing

pytestmark = pytest.mark.real


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/real/" in str(item.fspath):
            item.add_marker(pytest.mark.real)


CHECKOUT = Path(__file__).resolve().parents[2]


def stale_front_end(checkout: Path = CHECKOUT) -> str | None:
    """Why the JupyterLab front end the server would load is older than its sources (a file of
    src/, style/ or schema/, or package.json, changed after the last build), or None when it is
    current or this is no checkout with sources (the VM guest gets the tests only)."""
    if not (checkout / "src").is_dir():
        return None
    built = checkout / "ffsystemd" / "labextension" / "package.json"
    if not built.is_file():
        return f"no front end is built ({built} is missing)"
    built_at = built.stat().st_mtime
    sources = [p for d in ("src", "style", "schema") for p in (checkout / d).rglob("*")]
    newer = (p for p in [*sources, checkout / "package.json"] if p.is_file() and p.stat().st_mtime > built_at)
    first = next(newer, None)
    return f"{first.relative_to(checkout)} changed after the front end was built" if first else None


@pytest.fixture(scope="session", autouse=True)
def current_front_end() -> None:
    """The real tests run the front end of this checkout: a stale build fails them at once."""
    why = stale_front_end()
    if why:
        pytest.fail(f"{why}: run scripts/setup (it rebuilds the front end) before the real tests")


@pytest.fixture(scope="session", autouse=True)
def real_user_manager() -> None:
    """The real systemd user manager; the real tests fail (not skip) without one."""
    # The manager's own SystemState over the bus: `is-system-running` says "offline" whenever
    # /run/systemd/system is missing here, e.g. outside the mount namespace of a private manager.
    proc = subprocess.run(
        ["systemctl", "--user", "show", "--property=SystemState", "--value"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    state = proc.stdout.strip()
    if state not in ("running", "degraded"):
        pytest.fail(
            f"no systemd user manager answers (systemctl --user: {state or proc.stderr.strip()});"
            " run the tests through scripts/test, which boots one when needed"
        )


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., JupyterServer]]:
    """Start real Jupyter servers with given FirefoxLauncher config (and extra server environment
    variables, `env=`); stops them and checks that none of their units is left (units of
    other servers sharing the user manager do not count)."""
    servers: list[JupyterServer] = []
    roots: list[Path] = []

    def start(env: dict[str, str] | None = None, **config: object) -> JupyterServer:
        # Short: the session sockets must fit in a unix socket address.
        root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
        roots.append(root)
        server = JupyterServer(root, config=dict(config), env=dict(env or {}))
        servers.append(server)
        return server.start()

    yield start
    leaked = stop_leaving_nothing(servers)
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
    assert not leaked, f"units left behind: {leaked}"


@pytest.fixture
def server(server_factory: Callable[..., JupyterServer]) -> JupyterServer:
    """One real Jupyter server with distinctive limits (1G memory, 512 tasks, 1280x800 screen)."""
    return server_factory(memory_max="1G", tasks_max=512, cpu_quota="150%", screen_size="1280x800")


# A page that is one focused text area and reports its value after every input (to /value, as
# [n, value], n counting its reports); a script that runs before its title is known (so before
# a client can list its window by that title) also reports every printable key the document
# saw, wherever its focus was (to /seen).
KEYS_PAGE = (
    b"<!doctype html><script>const seen = [];"
    b"addEventListener('keydown', e => { if (e.key.length !== 1) return; seen.push(e.key);"
    b" fetch('/seen', {method: 'POST', body: JSON.stringify(seen.join(''))}); }, true);</script>"
    b"<title>keys page</title>"
    b'<textarea id=t autofocus style="position:fixed;left:0;top:0;width:100vw;height:100vh"></textarea>'
    b"<script>const t = document.getElementById('t'); let n = 0;"
    b"t.addEventListener('input', () =>"
    b" fetch('/value', {method: 'POST', body: JSON.stringify([++n, t.value])}));"
    b"</script>"
)


@pytest.fixture
def keys_served() -> Iterator[ServedPage]:
    """The keys page served on 127.0.0.1: posts_to["/value"] holds every [n, value] its text
    area reported, posts_to["/seen"] every run of printable keys its document saw."""
    with ServedPage(KEYS_PAGE, on_post=json.loads) as served:
        yield served


@pytest.fixture
def keys_site(keys_served: ServedPage) -> tuple[str, InPageOrder]:
    """The keys page: (URL, every value its text area reported, in the page's order)."""
    return keys_served.url, InPageOrder(keys_served.posts_to["/value"])
