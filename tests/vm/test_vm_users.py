"""Isolation between users: bob cannot connect to alice's Xpra socket, list her session
directory, or reach her sessions through his own Jupyter server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from real.world import JupyterServer, wait_until

from .guest import as_bob

pytestmark = pytest.mark.vm

CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(type(exc).__name__)
    sys.exit(3)
print("connected")
"""


@pytest.fixture
def bob_server() -> Iterator[JupyterServer]:
    """A Jupyter server of bob's own (as bob, on his own user bus), with the extension."""
    config_dir = Path(tempfile.mkdtemp(prefix="ffs-bob-", dir="/tmp"))
    config_dir.chmod(0o755)  # bob reads his config from here; the files stay alice's
    bob_root = as_bob("mktemp", "-d", "/tmp/ffs-bob-root-XXXXXX").stdout.strip()
    assert bob_root, "bob could not make his own directory"
    env = {
        "HOME": "/home/bob",
        "USER": "bob",
        "XDG_RUNTIME_DIR": "/run/user/1001",
        "JUPYTER_CONFIG_DIR": f"{bob_root}/config",
        "PATH": os.environ["PATH"],
    }
    # His server serves his own directory: ffsystemd refuses a root_dir (where Downloads go)
    # that another user owns, as it did when this was alice's config directory.
    server = JupyterServer(
        config_dir,
        root_dir=Path(bob_root),
        config={"session_root": f"{bob_root}/sessions"},
        command_prefix=["sudo", "-n", "-u", "bob", "env", *(f"{k}={v}" for k, v in env.items())],
    )
    server.start()
    yield server
    server.stop()
    as_bob("rm", "-rf", bob_root)


def test_bob_cannot_reach_alice_sessions(
    servers: Callable[..., JupyterServer], bob_server: JupyterServer
) -> None:
    alice = servers()
    # Only the session directory's own mode protects it: the directories above it are open.
    alice.root.chmod(0o755)
    session = alice.launch(url="about:blank")
    sid = session["id"]
    alice.session_root.chmod(0o755)
    base = alice.session_root / f"session-{sid}"
    sock = base / "sockets" / "xpra.sock"
    assert sock.is_socket()
    assert base.stat().st_mode & 0o777 == 0o700
    assert (base / "sockets").stat().st_mode & 0o777 == 0o700

    listing = as_bob("ls", str(base))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
    connect = as_bob("python3", "-c", CONNECT, str(sock))
    assert connect.returncode == 3 and connect.stdout.strip() == "PermissionError", connect
    # Nor can he reach alice's user manager, which could stop her session's unit.
    bus = as_bob("python3", "-c", CONNECT, "/run/user/1000/bus")
    assert bus.returncode == 3 and bus.stdout.strip() == "PermissionError", bus

    # bob's own server runs on his own manager and knows nothing of alice's session.
    resp = bob_server.get("firefox-launcher/api/health")
    assert resp.status_code == 200, (resp.status_code, bob_server.log_path.read_text()[-3000:])
    health = {c["name"]: c for c in resp.json()["checks"]}
    assert health["user_bus"]["detail"] == "connected to unix:path=/run/user/1001/bus", health
    assert bob_server.get("firefox-launcher/api/firefox").json() == {"sessions": []}
    assert bob_server.get(f"firefox-launcher/api/firefox?id={sid}").status_code == 404
    assert bob_server.get(f"firefox-launcher/session/{sid}/").status_code == 404
    refused = bob_server.post("firefox-launcher/api/cleanup", {"id": sid})
    assert refused.status_code == 404, refused.text
    assert refused.json()["message"] == f"no such session of this launcher: {sid}", refused.text
    everything = bob_server.post("firefox-launcher/api/cleanup", {"all": True, "force": True}).json()
    assert everything["stopped"] == [], everything
    # ...and alice's session never noticed.
    assert alice.status(sid)["state"] == "running"
    assert alice.cleanup(id=sid)["stopped"] == [sid]
    wait_until(lambda: not base.exists(), 30, "alice's session directory to be removed")
