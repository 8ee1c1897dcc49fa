"""A private session dbus-daemon for the tests, on a socket in a fresh temporary directory.

    with PrivateBus() as bus:                 # only a bus, nobody owns org.freedesktop.systemd1
        ...bus.address...

Its process is started here and ended by its PID (end_process), never by name.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def end_process(proc: subprocess.Popen[Any], timeout: float = 3.0) -> None:
    """SIGTERM this one process (by its PID), SIGKILL it after timeout, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


class PrivateBus:
    """A private session dbus-daemon on a socket in a fresh temporary directory (no activation)."""

    def __init__(self) -> None:
        # A short path: unix socket paths are limited to 107 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="ffsd-bus-"))
        self.socket = self.workdir / "bus"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the bus is not running"
        return self.process.pid

    def start(self, timeout: float = 10.0) -> PrivateBus:
        config = self.workdir / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=self.socket))
        with open(self.workdir / "dbus-daemon.log", "wb") as log:
            self.process = subprocess.Popen(
                ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        self.process.stdout.close()
        if not line.startswith(b"unix:") or not self.socket.exists():
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start (printed {line!r})")
        return self

    def stop_daemon(self) -> None:
        """End the dbus-daemon (by its PID), keeping the directory of its address."""
        if self.process is not None:
            end_process(self.process)
            self.process = None

    def stop(self) -> None:
        """End the dbus-daemon and remove its directory."""
        self.stop_daemon()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrivateBus:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
