#!/usr/bin/env python3
"""A tiny fake Xpra for the tests (stdlib only).

Accepts the command line ffsystemd builds (`fake_xpra.py start --bind=PATH ... --start-child=...`;
unknown options are ignored), serves HTTP on the unix socket given by --bind
(GET/HEAD of any path: 200 text/html mentioning xpra) and runs until SIGTERM,
then removes its socket and exits 0. It does not run the start child.

Fault injection, read at start from the environment:
  FAKE_XPRA_EXIT_AT_START=<code>  print "fake xpra: failing on purpose" to stderr, exit <code>
  FAKE_XPRA_LOG_FLOOD=1           first log 30 lines of 1000 characters (a log of huge lines)
  FAKE_XPRA_NEVER_READY=1         never bind the socket; just wait for SIGTERM
  FAKE_XPRA_IGNORE_SIGTERM=1      ignore SIGTERM (only SIGKILL, or SIGINT, ends it)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

PAGE = b"<!DOCTYPE html><html><head><title>xpra html5 client</title></head><body>fake xpra</body></html>\n"
# A hand-made HTTP/1.1 responder rather than http.server: importing that (email, http.client,
# ssl) costs a loaded test machine a tenth of a second or more on every session's start.
MAX_HEAD = 65536


def log(message: str) -> None:
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def parse_options(argv: list[str]) -> tuple[str | None, dict[str, str]]:
    """Return (subcommand, {option: value}) for `--name=value` / `--name value`-less options."""
    command = None
    options: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            options[name] = value
        elif command is None:
            command = arg
    return command, options


def answer(method: str) -> bytes:
    """The response to one request: the page for GET (headers only for HEAD), 501 otherwise."""
    if method not in ("GET", "HEAD"):
        return b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nServer: fake-xpra/1.0\r\n\r\n"
    head = (
        "HTTP/1.1 200 OK\r\nServer: fake-xpra/1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(PAGE)}\r\n\r\n"
    ).encode()
    return head + (PAGE if method == "GET" else b"")


def serve_connection(conn: socket.socket) -> None:
    """Answer the requests of one connection (keep-alive unless the client says close)."""
    buffered = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65536)
                if not data or len(buffered) > MAX_HEAD:
                    return
                buffered += data
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            length = int(headers.get("content-length", "0") or 0)
            while len(buffered) < length:  # a body is read and ignored
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
            buffered = buffered[length:]
            log(f"fake xpra: http {lines[0]}")
            conn.sendall(answer(method))
            if headers.get("connection", "").lower() == "close" or rest.endswith("HTTP/1.0"):
                return


def serve_forever(server: socket.socket) -> None:
    """Accept connections until the socket is closed, one thread each."""
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


def main(argv: list[str]) -> int:
    command, options = parse_options(argv)
    log(f"fake xpra starting (pid {os.getpid()}, command {command!r})")
    bind = options.get("bind", "")
    log(f"fake xpra: bind path {bind or '(none)'}")
    if "start-child" in options:
        log(f"fake xpra: start child (not run): {options['start-child']}")

    if os.environ.get("FAKE_XPRA_LOG_FLOOD") == "1":
        for n in range(30):
            log(f"fake xpra: flood line {n} " + "x" * 1000)
    exit_code = os.environ.get("FAKE_XPRA_EXIT_AT_START")
    if exit_code:
        log("fake xpra: failing on purpose")
        return int(exit_code)

    if os.environ.get("FAKE_XPRA_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        wait_for = {signal.SIGINT}
        log("fake xpra: ignoring SIGTERM")
    else:
        wait_for = {signal.SIGTERM, signal.SIGINT}
    # Block the signals we wait for before any thread starts, so sigwait() gets them.
    signal.pthread_sigmask(signal.SIG_BLOCK, wait_for)

    server = None
    if os.environ.get("FAKE_XPRA_NEVER_READY") == "1":
        log("fake xpra: never getting ready (FAKE_XPRA_NEVER_READY)")
    elif bind:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(bind)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(bind)
        server.listen(16)
        threading.Thread(target=serve_forever, args=(server,), name="http", daemon=True).start()
        log(f"fake xpra: serving the html5 client on {bind}")
    else:
        log("fake xpra: no --bind given, serving nothing")

    received = signal.sigwait(wait_for)
    log(f"fake xpra: got signal {signal.Signals(received).name}, exiting")
    if server is not None:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(bind)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
