"""Outages of the fake systemd world that outlast one process: the manager or the bus going and coming back.

    drop_bus(fake)                  # the dbus-daemon and the fake manager end; the address is kept
    revive(fake, prepare=...)       # a new bus on the same address, with a fresh fake manager (no units)
    respawn_manager(fake)           # after fake.kill_manager(): a fresh fake manager on the same bus
    fake.start_scope(name, pid)     # put a process into a unit of the (fresh) fake, as systemd had it

A fresh fake manager knows no units: `prepare` (or fake.start_scope after respawn_manager) re-creates the
ones a real systemd would have kept. `revive` serves the new bus on a side socket first and moves it
onto the address only after `prepare` ran, so no client of the address can connect in between.

Every process is started here and ended by its PID (the FakeSystemd object owns them afterwards, so
its stop() ends them).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
from collections.abc import Callable
from pathlib import Path

from fakes.dbus_world import FakeSystemd
from fakes.polling import wait_until
from fakes.private_bus import BUS_CONFIG, end_process


def drop_bus(fake: FakeSystemd) -> None:
    """End the fake manager and the bus daemon (by their PIDs), keeping the directory of the address."""
    fake.stop(keep_address=True)


def _start_daemon(socket: Path, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    workdir = socket.parent
    config = workdir / f"{socket.name}.conf"
    config.write_text(BUS_CONFIG.format(socket=socket))
    with open(workdir / "dbus-daemon.log", "ab") as log:
        proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if not line.startswith(b"unix:") or not socket.exists():
        end_process(proc)
        raise RuntimeError(f"dbus-daemon did not start (printed {line!r})")
    return proc


def respawn_manager(fake: FakeSystemd, address: str | None = None, timeout: float = 15.0) -> None:
    """Start a fresh fake manager (no units, no faults) on the fake's bus, or on `address`."""
    if fake.process is not None:
        end_process(fake.process)  # after kill_manager() it is already gone: this only reaps it
    if fake._conn is not None:
        with contextlib.suppress(Exception):
            fake._conn.close()
        fake._conn = None
    fake.spawn_manager(address or fake.address)
    wait_until(fake._answers, timeout, "the respawned fake systemd manager to answer", interval=0.05)


def revive(fake: FakeSystemd, prepare: Callable[[], None] | None = None) -> None:
    """After drop_bus(): serve the same address again with a new bus and a fresh fake manager.

    The new daemon listens on a side socket; the fake manager starts there, prepare() runs, and
    only then is the socket renamed onto the address (connecting follows the socket's inode).
    """
    assert fake.bus.process is None, "drop_bus() first"
    side = fake.bus.workdir / "bus.next"
    with contextlib.suppress(FileNotFoundError):
        side.unlink()
    fake.bus.process = _start_daemon(side)
    respawn_manager(fake, f"unix:path={side}")
    if prepare is not None:
        prepare()
    os.rename(side, fake.bus.socket)
