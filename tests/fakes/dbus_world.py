"""The fake systemd user manager (python-dbusmock) on a private bus of its own (fakes/private_bus.py).

    fake = start_fake_systemd()               # a bus of its own plus the fake manager
    try: ...fake.address..., fake.set_start_result("failed", times=1) ...
    finally: fake.stop()

Every process is started here and ended by its PID. Control calls go over a
blocking dbus-python connection to the test-only interface `org.ffsystemd.Fake`
(see systemd_template.py for what each fault does).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dbus
import dbus.bus
import dbus.exceptions

from fakes.polling import wait_until
from fakes.private_bus import PrivateBus, end_process

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "systemd_template.py"
FAKE_XPRA = HERE / "fake_xpra.py"
FAKE_XPRA_ENV = ("FAKE_XPRA_*", "FFS_*")
"""pass_environment of test sessions: the fake Xpra's knobs (FAKE_XPRA_*) and tests' own FFS_* flags."""

SYSTEMD_NAME = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
FAKE_IFACE = "org.ffsystemd.Fake"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"


def _plain(value: Any) -> Any:
    """dbus-python values -> plain Python (str, int, bool, float, list, tuple, dict)."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _to_dbus(value: Any, signature: str | None) -> Any:
    """A plain value for a `v` argument: bool -> b, int -> t, float -> d, str -> s unless signature says."""
    if signature is None:
        if isinstance(value, (dbus.String, dbus.UInt64, dbus.Boolean, dbus.Array, dbus.Struct)):
            return value
        if isinstance(value, bool):
            signature = "b"
        elif isinstance(value, int):
            signature = "t"
        elif isinstance(value, float):
            signature = "d"
        else:
            signature = "s"
    types = {
        "s": dbus.String,
        "t": dbus.UInt64,
        "u": dbus.UInt32,
        "i": dbus.Int32,
        "x": dbus.Int64,
        "b": dbus.Boolean,
        "d": dbus.Double,
        "o": dbus.ObjectPath,
    }
    if signature in types:
        return types[signature](value, variant_level=1)
    if signature.startswith("a"):
        return dbus.Array(value, signature=signature[1:], variant_level=1)
    raise ValueError(f"unsupported signature {signature!r}")


class FakeSystemd:
    """The fake systemd user manager (a dbusmock process) on its own private bus, plus its controls."""

    def __init__(self, parameters: dict[str, Any] | None = None) -> None:
        params: dict[str, Any] = {"protect_pids": sorted({os.getpid(), os.getpgrp()})}
        params.update(parameters or {})
        self.parameters = params
        self.bus = PrivateBus()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.bus.workdir / "fake-systemd.log"
        self._conn: Any = None

    @property
    def address(self) -> str:
        """The bus address to give SystemdClient."""
        return self.bus.address

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    # --- life cycle -------------------------------------------------------------
    def spawn_manager(self, address: str, log_mode: str = "ab") -> None:
        """Start the dbusmock process with our template on `address` and connect to that bus."""
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address)
        env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        argv = [
            sys.executable,
            "-m",
            "dbusmock",
            "--session",
            "--template",
            str(TEMPLATE),
            "--logfile",
            str(self.log_path),
            "--parameters",
            json.dumps(self.parameters),
        ]
        with open(self.bus.workdir / "fake-systemd.out", log_mode) as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._conn = dbus.bus.BusConnection(address)

    def start(self, timeout: float = 15.0) -> FakeSystemd:
        self.bus.start()
        try:
            self.spawn_manager(self.bus.address, "wb")
            wait_until(self._answers, timeout, "the fake systemd manager to answer", interval=0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the fake systemd manager exited ({self.process.returncode}):\n{self.output()}"
            )
        try:
            self._call("LoadedUnits", timeout=1.0)
        except dbus.exceptions.DBusException:
            return False
        return True

    def stop(self, keep_address: bool = False) -> None:
        """End the fake manager and the bus, by their PIDs; idempotent. keep_address keeps the
        bus's directory, so that a bus can be served on the same address again (faults.revive)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self.process is not None:
            end_process(self.process)
            self.process = None
        if keep_address:
            self.bus.stop_daemon()
        else:
            self.bus.stop()

    def kill_manager(self) -> None:
        """End only the fake manager (the bus stays up): org.freedesktop.systemd1 loses its owner."""
        if self.process is not None:
            end_process(self.process)

    def __enter__(self) -> FakeSystemd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self, lines: int = 60) -> str:
        """The last lines of the mock's call log and of its stdout/stderr (for failure reports)."""
        text = []
        for path in (self.log_path, self.bus.workdir / "fake-systemd.out"):
            with contextlib.suppress(OSError):
                text.append(
                    f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(text)

    def _call(self, method: str, signature: str = "", *args: Any, timeout: float = 10.0) -> Any:
        if self._conn is None:
            raise RuntimeError("the fake systemd manager is not running")
        reply = self._conn.call_blocking(
            SYSTEMD_NAME, MANAGER_PATH, FAKE_IFACE, method, signature, list(args), timeout=timeout
        )
        return _plain(reply)

    # --- faults -----------------------------------------------------------------
    def set_start_result(self, result: str, times: int = 0) -> None:
        """Start jobs finish with `result` (failed, timeout, canceled, ...): the next `times`, or all (0)."""
        self._call("SetStartResult", "si", result, times)

    def hang_start_jobs(self, hang: bool = True) -> None:
        """Start jobs never finish (no JobRemoved) while set."""
        self._call("SetStartHang", "b", hang)

    def job_removed_before_reply(self, on: bool = True) -> None:
        """StartTransientUnit emits JobRemoved before its reply while set."""
        self._call("SetJobRemovedBeforeReply", "b", on)

    def fail_method(
        self, method: str, error_name: str, message: str = "injected by the test", times: int = 0
    ) -> None:
        """Calls of `method` (StartTransientUnit, StopUnit, GetUnit, GetAll, ...) answer error_name."""
        self._call("SetMethodError", "sssi", method, error_name, message, times)

    def clear_method_error(self, method: str) -> None:
        self._call("SetMethodError", "sssi", method, "", "", 0)

    def set_getall_delay(self, seconds: float) -> None:
        """Properties.GetAll on unit objects answers only after `seconds`."""
        self._call("SetGetAllDelay", "d", float(seconds))

    def reset_faults(self) -> None:
        self._call("ResetFaults")

    def vanish_unit(self, name: str) -> bool:
        """Forget a unit silently (no signal); False if it was not loaded."""
        return bool(self._call("VanishUnit", "s", name))

    def fail_unit(self, name: str, result: str = "oom-kill", kill: bool = True) -> None:
        """Make a unit fail with Result=result, SIGKILLing its processes first when kill."""
        self._call("FailUnit", "ssb", name, result, kill)

    def set_unit_property(
        self, name: str, interface: str, prop: str, value: Any, signature: str | None = None
    ) -> None:
        """Set a unit property (signature guessed from the Python type unless given: int -> t)."""
        self._call("SetUnitProperty", "sssv", name, interface, prop, _to_dbus(value, signature))

    # --- queries ----------------------------------------------------------------
    def loaded_units(self) -> list[str]:
        return list(self._call("LoadedUnits"))

    def unit_pids(self, name: str) -> list[int]:
        """The PIDs the unit was started with (raises DBusException NoSuchUnit when not loaded)."""
        return list(self._call("UnitPIDs", "s", name))

    def unit_processes(self, name: str) -> list[int]:
        """The unit's live processes (its PIDs and the members of process groups they lead)."""
        return list(self._call("UnitProcesses", "s", name))

    def unit_state(self, name: str) -> tuple[str, str] | None:
        """(ActiveState, Result) of a loaded unit, None when it is not loaded."""
        state, result = self._call("UnitState", "s", name)
        return (state, result) if state else None

    def call_count(self, method: str) -> int:
        return int(self._call("CallCount", "s", method))

    def call_counts(self) -> dict[str, int]:
        return dict(self._call("CallCounts"))

    def start_scope(
        self,
        name: str,
        pid: int,
        *,
        description: str = "restored by the test",
        collect_mode: str | None = "inactive-or-failed",
        stop_timeout_usec: int | None = 2_000_000,
        extra: Sequence[tuple[str, Any]] = (),
        wait_active: bool = True,
    ) -> None:
        """StartTransientUnit of a scope holding pid (in app-ffsystemd.slice), through the control
        connection, as another program (or the systemd of an earlier server) would have started it.

        collect_mode / stop_timeout_usec None leave CollectMode= / TimeoutStopUSec= unset; extra
        adds (name, D-Bus typed value) properties. Returns once the unit is active (wait_active).
        """
        assert self._conn is not None, "the fake systemd manager is not running"
        props: list[tuple[str, Any]] = [
            ("Description", dbus.String(description, variant_level=1)),
            ("PIDs", dbus.Array([dbus.UInt32(pid)], signature="u", variant_level=1)),
            ("Slice", dbus.String("app-ffsystemd.slice", variant_level=1)),
        ]
        if collect_mode is not None:
            props.append(("CollectMode", dbus.String(collect_mode, variant_level=1)))
        if stop_timeout_usec is not None:
            props.append(("TimeoutStopUSec", dbus.UInt64(stop_timeout_usec, variant_level=1)))
        props.extend(extra)
        self._conn.call_blocking(
            SYSTEMD_NAME,
            MANAGER_PATH,
            MANAGER_IFACE,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [name, "fail", dbus.Array(props, signature="(sv)"), dbus.Array([], signature="(sa(sv))")],
            timeout=10,
        )
        if wait_active:
            wait_until(
                lambda: self.unit_state(name) == ("active", "success"), 10, what=f"{name} to be active"
            )

    def wait_unit_gone(self, name: str, timeout: float = 10.0) -> None:
        """Poll until the unit is no longer loaded."""
        wait_until(lambda: name not in self.loaded_units(), timeout, what=f"unit {name} to be collected")


@dataclass
class Sleepers:
    """Scopes of the fake around `sleep 300` processes of the test's own, as another program of
    the user (or an earlier server) would have started them; end() kills what is left, by PID."""

    fake: FakeSystemd
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, description: str, **scope: Any) -> int:
        """A new sleep in scope `name` (FakeSystemd.start_scope keywords); its PID once active."""
        proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
        self.processes.append(proc)
        self.fake.start_scope(name, proc.pid, description=description, **scope)
        return proc.pid

    def end(self) -> None:
        """SIGKILL every sleep still running (by its PID) and reap it."""
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def start_fake_systemd(parameters: dict[str, Any] | None = None) -> FakeSystemd:
    """Start a private bus and the fake manager on it; the caller must stop() it."""
    return FakeSystemd(parameters).start()
