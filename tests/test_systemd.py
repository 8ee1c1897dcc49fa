"""ffsystemd.systemd.SystemdClient against the fake systemd user manager (tests/fakes/systemd_template.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from fakes.dbus_world import FAKE_XPRA, FakeSystemd
from fakes.polling import eventually as _eventually
from fakes.private_bus import PrivateBus

from ffsystemd.errors import (
    JobFailed,
    NoSuchUnit,
    SystemdError,
    SystemdTimeout,
    SystemdUnavailable,
    UnitExists,
)
from ffsystemd.ids import new_session_id
from ffsystemd.limits import UINT64_MAX
from ffsystemd.readiness import serves_html5_client
from ffsystemd.systemd import SCOPE_IFACE, UNIT_IFACE, SystemdClient
from ffsystemd.units import UNIT_GLOB, ScopeLimits, UnitProperty, scope_properties, unit_name

pytestmark = pytest.mark.asyncio

INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
SLICE = "app-ffsystemd.slice"
T = TypeVar("T")


# --- helpers -----------------------------------------------------------------------
async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Like fakes.polling.eventually, with this module's shorter default deadline."""
    return await _eventually(check, timeout, what)


def exited(proc: subprocess.Popen[Any]) -> bool:
    return proc.poll() is not None


def new_unit() -> str:
    return unit_name(new_session_id())


def props_for(pid: int, limits: ScopeLimits | None = None, **override: tuple[str, Any]) -> list[UnitProperty]:
    """scope_properties() for pid, with single properties replaced or added: name=(signature, value)."""
    props = scope_properties(
        pid=pid,
        description="test scope",
        slice_name=SLICE,
        limits=limits or ScopeLimits(stop_timeout_usec=2_000_000),
    )
    props = [prop for prop in props if prop.name not in override]
    props.extend(UnitProperty(name, sig, value) for name, (sig, value) in override.items())
    return props


def unit_path(name: str) -> str:
    """systemd's object path of a unit: [^A-Za-z0-9] becomes _xx (our names start with a letter)."""
    return "/org/freedesktop/systemd1/unit/" + "".join(
        c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name
    )


def pid_gone(pid: int) -> bool:
    """True when pid does not run any more (gone, or a zombie of some other parent)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start processes to put into scopes (each leads its own process group); killed by PID afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(list(argv or ("sleep", "60")), start_new_session=True, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:  # not reaped yet, so its PID (and group id) is still ours
            # Its own process group (start_new_session): this also ends what it started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest_asyncio.fixture
async def client(fake_systemd: FakeSystemd) -> AsyncIterator[SystemdClient]:
    systemd = SystemdClient(fake_systemd.address, call_timeout=5.0)
    try:
        yield systemd
    finally:
        await systemd.close()


# --- connection ----------------------------------------------------------------------
async def test_connect_reads_version_and_subscribes(client: SystemdClient, fake_systemd: FakeSystemd) -> None:
    await client.connect()
    assert client.connected
    assert await client.version() == "252-fake"
    assert str(await client.manager_property("ControlGroup")).startswith("/user.slice/")
    await client.connect()  # no-op when connected
    assert fake_systemd.call_count("Subscribe") == 1


async def test_bus_without_manager_is_unavailable() -> None:
    with PrivateBus() as bus:
        systemd = SystemdClient(bus.address, call_timeout=5.0)
        with pytest.raises(SystemdUnavailable, match="no systemd user manager"):
            await systemd.connect()
        assert not systemd.connected
        with pytest.raises(SystemdUnavailable):
            await systemd.version()
        await systemd.close()


async def test_bogus_bus_address_is_unavailable() -> None:
    systemd = SystemdClient("unix:path=/nonexistent/bus", call_timeout=5.0)
    with pytest.raises(SystemdUnavailable, match="/nonexistent/bus"):
        await systemd.connect()
    assert not systemd.connected


async def test_manager_gone_after_connect_is_unavailable(
    client: SystemdClient, fake_systemd: FakeSystemd
) -> None:
    await client.connect()
    fake_systemd.kill_manager()
    with pytest.raises(SystemdUnavailable):
        await client.get_unit(new_unit())


async def test_injected_unavailable_error_is_unavailable(
    client: SystemdClient, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.fail_method("GetUnit", "org.freedesktop.DBus.Error.NameHasNoOwner", times=1)
    with pytest.raises(SystemdUnavailable):
        await client.get_unit(new_unit())
    with pytest.raises(NoSuchUnit):  # the fault was for one call only
        await client.get_unit(new_unit())


# --- start -----------------------------------------------------------------------------
async def test_start_scope_reads_back_limits(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    proc = spawn()
    name = new_unit()
    limits = ScopeLimits(
        memory_max=512 * 1024**2, tasks_max=64, cpu_quota_per_sec_usec=1_500_000, stop_timeout_usec=2_000_000
    )
    await client.start_transient_unit(
        name,
        scope_properties(pid=proc.pid, description="Firefox session (test)", slice_name=SLICE, limits=limits),
        job_timeout=5,
    )
    props = await client.unit_properties(name)
    assert props["Id"] == name
    assert props["ActiveState"] == "active"
    assert props["Description"] == "Firefox session (test)"
    assert props["MemoryMax"] == 512 * 1024**2
    assert props["TasksMax"] == 64
    assert props["CPUQuotaPerSecUSec"] == 1_500_000
    assert props["TimeoutStopUSec"] == 2_000_000
    assert props["Slice"] == SLICE
    assert props["ControlGroup"].endswith(f"/app.slice/{SLICE}/{name}")
    assert props["TasksCurrent"] == 1
    assert fake_systemd.unit_pids(name) == [proc.pid]
    assert await client.get_unit(name) == unit_path(name)


async def test_start_scope_without_limits_reads_infinity(
    client: SystemdClient, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    name = new_unit()
    await client.start_transient_unit(name, props_for(spawn().pid, ScopeLimits()), job_timeout=5)
    props = await client.unit_properties(name, SCOPE_IFACE)
    assert props["MemoryMax"] == UINT64_MAX
    assert props["TasksMax"] == UINT64_MAX
    assert props["CPUQuotaPerSecUSec"] == UINT64_MAX
    assert props["Result"] == "success"


async def test_duplicate_name_raises_unit_exists(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    name = new_unit()
    first, second = spawn(), spawn()
    await client.start_transient_unit(name, props_for(first.pid), job_timeout=5)
    with pytest.raises(UnitExists) as info:
        await client.start_transient_unit(name, props_for(second.pid), job_timeout=5)
    assert info.value.name == "org.freedesktop.systemd1.UnitExists"
    assert fake_systemd.unit_pids(name) == [first.pid]


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"MemoryMax": ("s", "1G")}, INVALID_ARGS),
        ({"TasksMax": ("u", 64)}, INVALID_ARGS),
        ({"SendSIGKILL": ("s", "yes")}, INVALID_ARGS),
        ({"NoSuchProperty": ("s", "x")}, INVALID_ARGS),
        ({"CollectMode": ("s", "sometimes")}, INVALID_ARGS),
        ({"PIDs": ("au", [2**31 - 2])}, "org.freedesktop.DBus.Error.UnixProcessIdUnknown"),
    ],
    ids=["MemoryMax-as-s", "TasksMax-as-u", "SendSIGKILL-as-s", "unknown", "bad-collect-mode", "dead-pid"],
)
async def test_invalid_property_is_rejected(
    client: SystemdClient,
    fake_systemd: FakeSystemd,
    spawn: Callable[..., subprocess.Popen[bytes]],
    override: dict[str, tuple[str, Any]],
    error: str,
) -> None:
    with pytest.raises(SystemdError) as info:
        await client.start_transient_unit(new_unit(), props_for(spawn().pid, **override), job_timeout=5)
    assert type(info.value) is SystemdError
    assert info.value.name == error
    assert fake_systemd.loaded_units() == []


async def test_name_that_is_not_a_scope_is_rejected(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    with pytest.raises(SystemdError) as info:
        await client.start_transient_unit(
            "app-ffsystemd-firefox-x.service", props_for(spawn().pid), job_timeout=5
        )
    assert info.value.name == INVALID_ARGS
    assert fake_systemd.loaded_units() == []


async def test_injected_start_error_is_a_systemd_error(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    fake_systemd.fail_method("StartTransientUnit", "org.freedesktop.DBus.Error.AccessDenied", "nope", times=1)
    pid = spawn().pid
    with pytest.raises(SystemdError) as info:
        await client.start_transient_unit(new_unit(), props_for(pid), job_timeout=5)
    assert info.value.name == "org.freedesktop.DBus.Error.AccessDenied"
    assert info.value.message == "nope"
    name = new_unit()
    await client.start_transient_unit(name, props_for(pid), job_timeout=5)
    assert fake_systemd.loaded_units() == [name]


async def test_failed_start_job_raises_job_failed(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    fake_systemd.set_start_result("failed", times=1)
    name = new_unit()
    proc = spawn()
    with pytest.raises(JobFailed) as info:
        await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    assert info.value.unit == name
    assert info.value.result == "failed"
    # CollectMode=inactive-or-failed: the failed unit is gone, its process was left alone.
    assert fake_systemd.loaded_units() == []
    with pytest.raises(NoSuchUnit):
        await client.get_unit(name)
    assert proc.poll() is None
    # The fault was for one job only.
    await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    assert fake_systemd.unit_state(name) == ("active", "success")


async def test_hanging_start_job_times_out(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    fake_systemd.hang_start_jobs()
    name = new_unit()
    started = time.monotonic()
    with pytest.raises(SystemdTimeout, match=name):
        await client.start_transient_unit(name, props_for(spawn().pid), job_timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3.0
    assert fake_systemd.unit_state(name) == ("activating", "success")
    # Stopping cancels the hung start job and ends the scope.
    assert await client.stop_unit(name, job_timeout=5)
    assert fake_systemd.loaded_units() == []


async def test_job_removed_before_reply_is_not_lost(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    fake_systemd.job_removed_before_reply()
    pid = spawn().pid
    name = new_unit()
    # Were the early JobRemoved lost, this would wait for the job timeout.
    await client.start_transient_unit(name, props_for(pid), job_timeout=1.0)
    assert await client.get_unit(name)
    fake_systemd.set_start_result("failed", times=1)
    with pytest.raises(JobFailed):
        await client.start_transient_unit(new_unit(), props_for(pid), job_timeout=1.0)


# --- queries ------------------------------------------------------------------------------
async def test_get_unit_unknown_raises_no_such_unit(client: SystemdClient) -> None:
    name = new_unit()
    with pytest.raises(NoSuchUnit, match=f"Unit {name} not loaded"):
        await client.get_unit(name)
    with pytest.raises(NoSuchUnit):
        await client.unit_properties(name)


async def test_vanished_unit_is_no_such_unit(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    name = new_unit()
    await client.start_transient_unit(name, props_for(spawn().pid), job_timeout=5)
    path = await client.get_unit(name)
    assert fake_systemd.vanish_unit(name)
    with pytest.raises(NoSuchUnit):
        await client.get_unit(name)
    assert await client.stop_unit(name) is False
    # Like systemd, a unit path of a unit that is not loaded answers "not-found".
    assert (await client.get_all(path, UNIT_IFACE))["LoadState"] == "not-found"


async def test_list_units_by_patterns_filters_by_glob_and_state(
    client: SystemdClient, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    ours = sorted(new_unit() for _ in range(2))
    for name in ours:
        await client.start_transient_unit(name, props_for(spawn().pid), job_timeout=5)
    await client.start_transient_unit("other-thing.scope", props_for(spawn().pid), job_timeout=5)

    rows = await client.list_units_by_patterns([UNIT_GLOB])
    assert [row.name for row in rows] == ours
    assert {(row.load_state, row.active_state, row.sub_state) for row in rows} == {
        ("loaded", "active", "running")
    }
    assert [row.path for row in rows] == [await client.get_unit(name) for name in ours]
    assert rows[0].description == "test scope"
    assert [row.name for row in await client.list_units_by_patterns([UNIT_GLOB], ["active"])] == ours
    assert await client.list_units_by_patterns([UNIT_GLOB], ["failed"]) == []
    assert len(await client.list_units_by_patterns([])) == 3


async def test_slow_get_all_times_out(
    fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    systemd = SystemdClient(fake_systemd.address, call_timeout=0.3)
    try:
        name = new_unit()
        await systemd.start_transient_unit(name, props_for(spawn().pid), job_timeout=5)
        fake_systemd.set_getall_delay(2.0)
        started = time.monotonic()
        with pytest.raises(SystemdTimeout, match="GetAll"):
            await systemd.unit_properties(name)
        assert time.monotonic() - started < 1.5
        fake_systemd.set_getall_delay(0)
        assert (await systemd.unit_properties(name))["ActiveState"] == "active"  # still usable
    finally:
        await systemd.close()


# --- stop, kill, reset ------------------------------------------------------------------------
async def test_stop_unit_ends_the_process_and_the_unit(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    proc = spawn()
    name = new_unit()
    await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    assert await client.stop_unit(name, job_timeout=5) is True
    await eventually(lambda: exited(proc), what="the scope's process to exit")
    assert proc.returncode == -signal.SIGTERM
    with pytest.raises(NoSuchUnit):
        await client.get_unit(name)
    assert fake_systemd.loaded_units() == []


async def test_stop_unit_escalates_to_sigkill(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ready', flush=True); time.sleep(60)"
    )
    proc = spawn(sys.executable, "-c", code, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    name = new_unit()
    await client.start_transient_unit(
        name, props_for(proc.pid, ScopeLimits(stop_timeout_usec=200_000)), job_timeout=5
    )
    started = time.monotonic()
    assert await client.stop_unit(name, job_timeout=5) is True
    assert time.monotonic() - started >= 0.2
    await eventually(lambda: exited(proc), what="the scope's process to be killed")
    assert proc.returncode == -signal.SIGKILL
    assert fake_systemd.loaded_units() == []


async def test_stop_unit_ends_the_whole_process_group(
    client: SystemdClient, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    proc = spawn("/bin/sh", "-c", "sleep 60 & echo $!; wait", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    name = new_unit()
    await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    assert await client.stop_unit(name, job_timeout=5)
    await eventually(lambda: pid_gone(grandchild), what="the grandchild to be gone")
    await eventually(lambda: exited(proc), what="the shell to exit")


async def test_stop_unit_ends_a_fake_xpra(
    client: SystemdClient, spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket = tmp_path / "xpra.sock"
    proc = spawn(
        str(FAKE_XPRA), "start", "--daemon=no", f"--bind={socket}", "--start-child=firefox-esr about:blank"
    )
    name = new_unit()
    await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    await eventually(lambda: serves_html5_client(socket), what="the fake xpra to serve")
    assert await client.stop_unit(name, job_timeout=5)
    await eventually(lambda: exited(proc), what="the fake xpra to exit")
    assert proc.returncode == 0
    assert not socket.exists()


async def test_stop_unit_unknown_returns_false(client: SystemdClient, fake_systemd: FakeSystemd) -> None:
    assert await client.stop_unit(new_unit()) is False
    assert fake_systemd.call_count("StopUnit") == 1


async def test_unit_is_collected_when_its_process_exits(
    client: SystemdClient, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    proc = spawn()
    name = new_unit()
    await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    proc.kill()
    proc.wait(5)

    async def collected() -> bool:
        try:
            await client.get_unit(name)
        except NoSuchUnit:
            return True
        return False

    await eventually(collected, what="the unit to be collected")


async def test_kill_unit_signals_the_processes(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    proc = spawn()
    name = new_unit()
    await client.start_transient_unit(name, props_for(proc.pid), job_timeout=5)
    await client.kill_unit(name, signal.SIGUSR1)
    await eventually(lambda: exited(proc), what="the process to die of SIGUSR1")
    assert proc.returncode == -signal.SIGUSR1
    await eventually(lambda: name not in fake_systemd.loaded_units(), what="the unit to be collected")
    with pytest.raises(NoSuchUnit):
        await client.kill_unit(name, signal.SIGKILL)


async def test_reset_failed_unit(
    client: SystemdClient, fake_systemd: FakeSystemd, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    with pytest.raises(NoSuchUnit):
        await client.reset_failed_unit(new_unit())
    # With CollectMode=inactive a failed unit stays loaded until reset.
    proc = spawn()
    name = new_unit()
    await client.start_transient_unit(name, props_for(proc.pid, CollectMode=("s", "inactive")), job_timeout=5)
    await client.reset_failed_unit(name)  # not failed: nothing happens
    assert fake_systemd.unit_state(name) == ("active", "success")
    fake_systemd.fail_unit(name, "oom-kill")
    await eventually(lambda: exited(proc), what="the OOM-killed process to exit")
    props = await client.unit_properties(name)
    assert (props["ActiveState"], props["Result"]) == ("failed", "oom-kill")
    await client.reset_failed_unit(name)
    with pytest.raises(NoSuchUnit):
        await client.get_unit(name)


async def test_bus_drop_during_a_job_wait_fails_at_once(fake_systemd, spawn) -> None:
    """A dropped bus fails a pending start job with SystemdUnavailable, not a late timeout."""
    import time as _time

    from ffsystemd.errors import SystemdUnavailable
    from ffsystemd.systemd import SystemdClient
    from ffsystemd.units import ScopeLimits, scope_properties

    client = SystemdClient(fake_systemd.address, call_timeout=5)
    await client.connect()
    fake_systemd.hang_start_jobs()
    proc = spawn()
    props = scope_properties(
        pid=proc.pid, description="d", slice_name="app-ffsystemd.slice", limits=ScopeLimits()
    )
    task = asyncio.ensure_future(
        client.start_transient_unit("app-ffsystemd-firefox-0123456789ab.scope", props, 30)
    )
    await eventually(lambda: fake_systemd.call_count("StartTransientUnit") == 1, 5, "the start call")
    started = _time.monotonic()
    fake_systemd.bus.stop()
    with pytest.raises(SystemdUnavailable):
        await task
    assert _time.monotonic() - started < 5
    assert not client.connected
    await client.close()
