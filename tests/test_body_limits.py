"""A real Jupyter server process answers a 100 MiB request body without buffering it.

The body is streamed from a raw socket (the test never holds it either), and the server's
peak resident memory (VmHWM, reset through /proc/<pid>/clear_refs before each request) is
read from /proc. Before bodies were streamed, an unauthenticated 100 MiB POST grew the
server by ~200 MiB before it was answered 403. No systemd is needed: the launcher points at
a bus that does not exist, and every request here is refused before the manager is asked.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from real.world import JupyterServer

HUNDRED_MIB = 100 * 1024 * 1024
PIECE = 256 * 1024
ROUTE = "firefox-launcher/api/firefox"
SESSION = "firefox-launcher/session/0123456789ab"
CAPABILITY = "A" * 43
GROWTH_ALLOWED = 24 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("body-limits")
    server = JupyterServer(Path(root), config={"bus_address": "unix:path=/nonexistent/ffsystemd-test-bus"})
    server.start()
    yield server
    server.stop()


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Reset the process's peak RSS to its current RSS; return that."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid, "VmHWM")


def _post_huge(
    server: JupyterServer, *, chunked: bool, token: bool, route: str = ROUTE, method: str = "POST"
) -> tuple[int, dict, int]:
    """Send 100 MiB (announced, or chunked) from a raw socket; (status, JSON answer, bytes sent)."""
    path = server.base_url + route
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Content-Type: application/json"]
    if token:
        head.append(f"Authorization: token {server.token}")
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUNDRED_MIB}")
    piece = b" " * PIECE
    if chunked:
        piece = b"%x\r\n" % PIECE + piece + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        sent = 0
        pending = b""
        answer = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            want_write = sent < HUNDRED_MIB
            readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    break
                answer += data
                if _complete(answer):
                    break
            if writable:
                if not pending:
                    pending = piece
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    want_write = False
                    sent = HUNDRED_MIB + 1  # the server closed its side: stop sending
                    continue
                pending = pending[n:]
                sent += n
        else:
            raise AssertionError("no answer within 30 s")
    finally:
        sock.close()
    header, _, body = answer.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(body), sent


def _complete(answer: bytes) -> bool:
    header, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@pytest.mark.parametrize(
    ("chunked", "token", "expected"),
    [
        (False, False, 413),  # announced size: refused before authentication
        (True, False, 403),  # chunked, no credentials: refused before the body is read
        (False, True, 413),
        (True, True, 413),  # chunked with credentials: refused once 64 KiB have arrived
    ],
    ids=["announced-anonymous", "chunked-anonymous", "announced-token", "chunked-token"],
)
def test_100_mib_body_is_answered_without_buffering(
    server: JupyterServer, chunked: bool, token: bool, expected: int
) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    before = _reset_peak(pid)
    started = time.monotonic()
    status, answer, sent = _post_huge(server, chunked=chunked, token=token)
    elapsed = time.monotonic() - started
    peak = _status(pid, "VmHWM")
    assert status == expected, answer
    assert isinstance(answer.get("message"), str) and answer["message"]
    grew = f"server grew by {(peak - before) / 2**20:.1f} MiB ({sent / 2**20:.1f} MiB sent)"
    assert peak - before < GROWTH_ALLOWED, grew
    assert elapsed < 10, f"answered after {elapsed:.1f} s"
    # The server is still well and answers the next request.
    assert server.get("api/status").status_code == 200


@pytest.mark.parametrize(
    ("route", "method", "token", "expected"),
    [
        (f"{SESSION}/", "POST", False, 403),  # the entry: refused before authentication's end
        (f"{SESSION}/", "POST", True, 405),
        (f"{SESSION}/", "GET", True, 413),  # a GET with a body
        (f"{SESSION}/index.html", "PUT", True, 405),
        (SESSION, "POST", False, 403),  # the slash redirect (XSRF)
        (f"{SESSION}/c/{CAPABILITY}/", "POST", False, 404),  # the capability path (no session)
        (f"{SESSION}/c/{CAPABILITY}/js/Client.js", "GET", False, 404),
        ("firefox-launcher/session/not-an-id/x", "POST", False, 403),
        ("firefox-launcher/session/not-an-id/x", "POST", True, 404),
    ],
    ids=[
        "entry-anonymous",
        "entry-token",
        "entry-get-token",
        "entry-put-token",
        "slash-anonymous",
        "capability-anonymous",
        "capability-get",
        "malformed-anonymous",
        "malformed-token",
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "chunked"])
def test_session_routes_never_buffer_a_body(
    server: JupyterServer, route: str, method: str, token: bool, expected: int, chunked: bool
) -> None:
    """Session URLs take no body: 100 MiB sent to any of them is answered without being read."""
    assert server.proc is not None
    pid = server.proc.pid
    before = _reset_peak(pid)
    started = time.monotonic()
    status, answer, sent = _post_huge(server, chunked=chunked, token=token, route=route, method=method)
    elapsed = time.monotonic() - started
    peak = _status(pid, "VmHWM")
    assert status == expected, answer
    assert isinstance(answer.get("message"), str) and answer["message"]
    grew = f"server grew by {(peak - before) / 2**20:.1f} MiB ({sent / 2**20:.1f} MiB sent)"
    assert peak - before < GROWTH_ALLOWED, grew
    assert elapsed < 10, f"answered after {elapsed:.1f} s"
    assert server.get("api/status").status_code == 200
