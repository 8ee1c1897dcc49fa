#!/usr/bin/env python3
"""A tiny fake Xpra for the tests (stdlib only).

Accepts the command line ffsystemd builds (`fake_xpra.py start --bind=PATH ... --start-child=...`;
unknown options are ignored), serves HTTP on the unix socket given by --bind
(GET/HEAD of any path: 200 text/html mentioning xpra) and runs until SIGTERM,
then removes its socket and exits 0. It does not run the start child.

Fault injection, read at start from the environment:
  FAKE_XPRA_EXIT_AT_START=<code>  print "fake xpra: failing on purpose" to stderr, exit <code>
  FAKE_XPRA_NEVER_READY=1         never bind the socket; just wait for SIGTERM
  FAKE_XPRA_IGNORE_SIGTERM=1      ignore SIGTERM (only SIGKILL, or SIGINT, ends it)
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socketserver
import sys
import threading

PAGE = b"<!DOCTYPE html><html><head><title>xpra html5 client</title></head><body>fake xpra</body></html>\n"


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


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-xpra/1.0"

    def _answer(self, with_body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        if with_body:
            self.wfile.write(PAGE)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def address_string(self) -> str:  # a unix socket has no peer address
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        log("fake xpra: http " + (format % args))


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main(argv: list[str]) -> int:
    command, options = parse_options(argv)
    log(f"fake xpra starting (pid {os.getpid()}, command {command!r})")
    bind = options.get("bind", "")
    log(f"fake xpra: bind path {bind or '(none)'}")
    if "start-child" in options:
        log(f"fake xpra: start child (not run): {options['start-child']}")

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
        server = Server(bind, Handler)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http", daemon=True
        ).start()
        log(f"fake xpra: serving the html5 client on {bind}")
    else:
        log("fake xpra: no --bind given, serving nothing")

    received = signal.sigwait(wait_for)
    log(f"fake xpra: got signal {signal.Signals(received).name}, exiting")
    if server is not None:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(bind)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
