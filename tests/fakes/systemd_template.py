"""A fake systemd *user* manager: a python-dbusmock template for the tests.

Run it on a private session bus with

    python -m dbusmock --session -t /abs/path/systemd_template.py -p '{"version": "252-fake"}'

(`tests/fakes/dbus_world.py` does that). It owns `org.freedesktop.systemd1` and
answers the part of `org.freedesktop.systemd1.Manager` that `ffsystemd.systemd`
uses, for transient *scopes* only, the way systemd does:

* StartTransientUnit validates the name, the job mode and every property (name and
  D-Bus type) and answers InvalidArgs / UnitExists / UnixProcessIdUnknown like
  systemd; the unit object appears at /org/freedesktop/systemd1/unit/<escaped name>
  with the Unit and Scope interfaces; the start job's JobRemoved is emitted right
  after the reply (or before it, on request).
* A unit lives as long as one of its PIDs (or a process of the process group one of
  them leads) is alive; zombies count as gone. It then goes inactive and, being
  transient, is garbage-collected (UnitRemoved). A failed unit is collected only
  with CollectMode=inactive-or-failed; ResetFailedUnit collects it otherwise.
* StopUnit sends SIGTERM (+SIGCONT), SIGKILL after TimeoutStopUSec (capped by the
  `stop_timeout_cap` parameter), then emits JobRemoved "done" and collects the unit.
* KillUnit, GetUnit, GetUnitByPID, ListUnits, ListUnitsByPatterns, Subscribe.
* Not-loaded unit paths answer Properties.Get/GetAll with LoadState "not-found",
  as systemd does for any unit path.

Fault injection and inspection for the tests are on the test-only interface
`org.ffsystemd.Fake` of the manager object (see the FAKE_IFACE methods below).

Parameters (all optional): version, control_group, default_slice,
stop_timeout_cap (seconds), tick (liveness poll interval, seconds) and
protect_pids (PIDs, and process groups of these PIDs, never to signal).

The mock process has no PyGObject: deferred work uses libglib through ctypes on
the default main context that dbusmock iterates.
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import math
import os
import re
import signal
import sys
import time
import traceback

import dbus
import dbus.exceptions
import dbus.service
from dbusmock import mockobject

BUS_NAME = "org.freedesktop.systemd1"
MAIN_OBJ = "/org/freedesktop/systemd1"
MAIN_IFACE = "org.freedesktop.systemd1.Manager"
SYSTEM_BUS = False

UNIT_IFACE = "org.freedesktop.systemd1.Unit"
SCOPE_IFACE = "org.freedesktop.systemd1.Scope"
FAKE_IFACE = "org.ffsystemd.Fake"
UNIT_PATH_PREFIX = MAIN_OBJ + "/unit"
JOB_PATH_PREFIX = MAIN_OBJ + "/job"
UINT64_MAX = 2**64 - 1

ERR_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
ERR_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"
ERR_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
ERR_PID_UNKNOWN = "org.freedesktop.DBus.Error.UnixProcessIdUnknown"
ERR_NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
ERR_UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"
ERR_NO_SUCH_PROCESS = "org.freedesktop.systemd1.NoSuchProcess"
ERR_NO_UNIT_FOR_PID = "org.freedesktop.systemd1.NoUnitForPID"
ERR_BAD_SETTING = "org.freedesktop.systemd1.BadUnitSetting"

# Transient-scope properties the fake accepts, with their D-Bus types.
SETTABLE = {
    "Description": "s",
    "PIDs": "au",
    "Slice": "s",
    "CollectMode": "s",
    "TimeoutStopUSec": "t",
    "SendSIGKILL": "b",
    "MemoryAccounting": "b",
    "MemoryMax": "t",
    "TasksAccounting": "b",
    "TasksMax": "t",
    "CPUAccounting": "b",
    "CPUQuotaPerSecUSec": "t",
    "RuntimeMaxUSec": "t",
}
JOB_MODES = {
    "replace",
    "fail",
    "isolate",
    "ignore-dependencies",
    "ignore-requirements",
    "replace-irreversibly",
    "flush",
    "triggering",
}
COLLECT_MODES = {"inactive", "inactive-or-failed"}
_UNIT_NAME_RE = re.compile(r"[A-Za-z0-9:_.\\@-]{1,255}")
_SLICE_RE = re.compile(r"[A-Za-z0-9:_.\\-]+\.slice")
_SIMPLE_SIGNATURES = {
    dbus.String: "s",
    dbus.ObjectPath: "o",
    dbus.Signature: "g",
    dbus.Boolean: "b",
    dbus.Byte: "y",
    dbus.Int16: "n",
    dbus.UInt16: "q",
    dbus.Int32: "i",
    dbus.UInt32: "u",
    dbus.Int64: "x",
    dbus.UInt64: "t",
    dbus.Double: "d",
}

FAKE = None  # the _Fake of the loaded template (set by load())


def _error(name, message):
    return dbus.exceptions.DBusException(message, name=name)


def _log(message):
    sys.stderr.write(f"{time.time():.3f} fake-systemd: {message}\n")
    sys.stderr.flush()


def _now_usec():
    return dbus.UInt64(int(time.time() * 1_000_000))


def escape_label(label):
    """systemd's bus_label_escape(): every char but [A-Za-z0-9] (no leading digit) becomes _xx."""
    if not label:
        return "_"
    out = []
    for i, char in enumerate(label):
        if (char.isascii() and char.isalpha()) or (i > 0 and char.isascii() and char.isdigit()):
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def unescape_label(label):
    """Inverse of escape_label()."""
    if label == "_":
        return ""
    raw = re.sub(rb"_([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), label.encode())
    return raw.decode(errors="replace")


def unit_path(name):
    return f"{UNIT_PATH_PREFIX}/{escape_label(name)}"


def slice_path(slice_name):
    """`a-b-c.slice` -> `a.slice/a-b.slice/a-b-c.slice` (the cgroup path of a slice)."""
    if slice_name == "-.slice":
        return ""
    stem = slice_name[: -len(".slice")]
    parts = stem.split("-")
    return "/".join("-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))


def signature_of(value):
    """The D-Bus signature of a value unmarshalled by dbus-python ('?' when unknown)."""
    sig = _SIMPLE_SIGNATURES.get(type(value))
    if sig:
        return sig
    if isinstance(value, dbus.Array):
        return "a" + (value.signature or "?")
    if isinstance(value, dbus.Dictionary):
        return "a{" + (value.signature or "??") + "}"
    if isinstance(value, dbus.Struct):
        return "(" + (value.signature or "?") + ")"
    return "?"


# --- processes (not our children: liveness is read from /proc) -------------------
def proc_stat(pid):
    """(state, pgrp, utime+stime ticks) of a process, or None when there is none."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as stat:
            data = stat.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return fields[0].decode(), int(fields[2]), int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid):
    """True for a running process; zombies (of any parent) and dead PIDs are gone."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x")


def group_members(pgids):
    """pgid -> live PIDs of that process group, for the given groups (one /proc scan)."""
    members = {pgid: set() for pgid in pgids}
    if not members:
        return members
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = proc_stat(entry)
        if stat is not None and stat[1] in members and stat[0] not in ("Z", "X", "x"):
            members[stat[1]].add(int(entry))
    return members


# --- GLib main loop via ctypes ---------------------------------------------------
_GSourceFunc = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _Scheduler:
    """call_later()/every() on GLib's default main context, with one long-lived C callback."""

    def __init__(self, keepalive):
        self._glib = ctypes.CDLL("libglib-2.0.so.0")
        self._glib.g_timeout_add.argtypes = [ctypes.c_uint, _GSourceFunc, ctypes.c_void_p]
        self._glib.g_timeout_add.restype = ctypes.c_uint
        self._glib.g_idle_add.argtypes = [_GSourceFunc, ctypes.c_void_p]
        self._glib.g_idle_add.restype = ctypes.c_uint
        self._glib.g_source_remove.argtypes = [ctypes.c_uint]
        self._glib.g_source_remove.restype = ctypes.c_int
        self._tasks = {}  # key -> [function, repeat, source id]
        self._next_key = 1
        self._trampoline = _GSourceFunc(self._dispatch)
        # GLib keeps pointers to the trampoline: it must outlive this object.
        keepalive.append(self._trampoline)

    def call_later(self, delay, function, repeat=False):
        """Run function() after delay seconds (0: when idle); with repeat, while it returns True."""
        key = self._next_key
        self._next_key += 1
        milliseconds = max(0, min(int(delay * 1000), 2**31 - 1))
        if milliseconds == 0 and not repeat:
            source = self._glib.g_idle_add(self._trampoline, key)
        else:
            source = self._glib.g_timeout_add(max(milliseconds, 1), self._trampoline, key)
        self._tasks[key] = [function, repeat, source]
        return key

    def every(self, interval, function):
        return self.call_later(interval, function, repeat=True)

    def cancel(self, key):
        task = self._tasks.pop(key, None)
        if task is not None:
            self._glib.g_source_remove(task[2])

    def cancel_all(self):
        for key in list(self._tasks):
            self.cancel(key)

    def _dispatch(self, key):
        task = self._tasks.get(key or 0)
        if task is None:
            return 0
        try:
            again = task[0]()
        except Exception:
            traceback.print_exc()
            again = False
        if task[1] and again:
            return 1
        self._tasks.pop(key, None)
        return 0


# --- units -----------------------------------------------------------------------
class _Unit:
    def __init__(self, name, settings, pgids):
        self.name = name
        self.path = unit_path(name)
        self.settings = settings
        self.pids = list(dict.fromkeys(int(p) for p in settings["PIDs"]))
        self.pgids = set(pgids)
        self.state = "inactive"
        self.sub_state = "dead"
        self.result = "success"
        self.start_job = None  # (id, path) while the start job runs
        self.stop_jobs = []
        self.stopping = False
        self.stop_failure = None
        self.stop_deadline = 0.0
        self.kill_deadline = None
        self.runtime_timer = None
        self.pinned = set()  # properties set by the test: not refreshed

    @property
    def collect_mode(self):
        return str(self.settings.get("CollectMode", "inactive"))


class _UnitObject(mockobject.DBusMockObject):
    """A loaded unit's D-Bus object: Properties with live counters and an optional delay."""

    @dbus.service.method(
        dbus.PROPERTIES_IFACE,
        in_signature="s",
        out_signature="a{sv}",
        async_callbacks=("reply_cb", "error_cb"),
    )
    def GetAll(self, interface_name, reply_cb, error_cb):
        fake = FAKE
        fake.enter("GetAll")
        props = self._snapshot(str(interface_name))
        if fake.getall_delay > 0:
            fake.sched.call_later(fake.getall_delay, lambda: reply_cb(props))
        else:
            reply_cb(props)

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface_name, property_name):
        FAKE.enter("Get")
        props = self._snapshot(str(interface_name))
        if str(property_name) not in props:
            raise _error(ERR_UNKNOWN_PROPERTY, f"Unknown property {property_name}")
        return props[str(property_name)]

    def _snapshot(self, interface):
        if interface not in (UNIT_IFACE, SCOPE_IFACE):
            raise _error(ERR_UNKNOWN_INTERFACE, f"Unknown interface {interface}.")
        unit = FAKE.units.get(self.mock_data)
        if unit is not None:
            FAKE.refresh_counters(unit)
        return dbus.Dictionary(dict(self.props.get(interface, {})), signature="sv")


class _NotLoadedUnits(dbus.service.FallbackObject):
    """Unit paths of units that are not loaded: LoadState "not-found", as systemd answers."""

    methods = {}
    interface = UNIT_IFACE

    @dbus.service.method(
        dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}", rel_path_keyword="rel"
    )
    def GetAll(self, interface_name, rel=None):
        return self._props(str(interface_name), rel)

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v", rel_path_keyword="rel")
    def Get(self, interface_name, property_name, rel=None):
        props = self._props(str(interface_name), rel)
        if str(property_name) not in props:
            raise _error(ERR_UNKNOWN_PROPERTY, f"Unknown property {property_name}")
        return props[str(property_name)]

    @staticmethod
    def _props(interface, rel):
        label = (rel or "/").strip("/")
        if not label or "/" in label:
            raise _error("org.freedesktop.DBus.Error.UnknownObject", f"Unknown object {rel}.")
        name = unescape_label(label)
        if interface == UNIT_IFACE:
            props = {
                "Id": dbus.String(name),
                "Names": dbus.Array([name], signature="s"),
                "Description": dbus.String(name),
                "LoadState": dbus.String("not-found"),
                "ActiveState": dbus.String("inactive"),
                "SubState": dbus.String("dead"),
                "LoadError": dbus.Struct((ERR_NO_SUCH_UNIT, f"Unit {name} not found."), signature="ss"),
            }
        elif interface == SCOPE_IFACE:
            props = {
                "Result": dbus.String("success"),
                "Slice": dbus.String(""),
                "ControlGroup": dbus.String(""),
                "MemoryCurrent": dbus.UInt64(UINT64_MAX),
                "TasksCurrent": dbus.UInt64(UINT64_MAX),
                "MemoryMax": dbus.UInt64(UINT64_MAX),
                "TasksMax": dbus.UInt64(UINT64_MAX),
            }
        else:
            raise _error(ERR_UNKNOWN_INTERFACE, f"Unknown interface {interface}.")
        return dbus.Dictionary(props, signature="sv")


class _Fake:
    """All the state of the fake manager."""

    def __init__(self, mock, parameters):
        self.mock = mock
        self.keepalive = mock.__dict__.setdefault("_ffsystemd_keepalive", [])
        self.sched = _Scheduler(self.keepalive)
        uid = os.getuid()
        self.version = str(parameters.get("version", "252-fake"))
        self.control_group = str(
            parameters.get("control_group", f"/user.slice/user-{uid}.slice/user@{uid}.service")
        )
        self.default_slice = str(parameters.get("default_slice", "app.slice"))
        self.stop_timeout_cap = float(parameters.get("stop_timeout_cap", 3.0))
        self.tick = float(parameters.get("tick", 0.1))
        self.protected = {int(p) for p in parameters.get("protect_pids", [])}
        self.protected_groups = set()
        for pid in self.protected:
            with contextlib.suppress(OSError):
                self.protected_groups.add(os.getpgid(pid))
        self.protected_groups.add(os.getpgrp())
        self.protected.add(os.getpid())
        self.units = {}
        self.next_job = 1
        self.calls = {}
        self.reset_faults()
        self.fallback = _NotLoadedUnits(mock.connection, UNIT_PATH_PREFIX)
        self.sched.every(self.tick, self._tick)

    def shutdown(self):
        self.sched.cancel_all()
        with contextlib.suppress(LookupError):
            self.fallback.remove_from_connection()

    def reset_faults(self):
        self.start_result = "done"
        self.start_result_times = 0  # <= 0: for every start job
        self.start_hang = False
        self.before_reply = False
        self.method_errors = {}  # method -> [error name, message, times left (<= 0: forever)]
        self.getall_delay = 0.0

    # --- bookkeeping ------------------------------------------------------------
    def enter(self, method):
        """Count a call and raise the error injected for this method, if any."""
        self.calls[method] = self.calls.get(method, 0) + 1
        fault = self.method_errors.get(method)
        if fault is not None:
            name, message, times = fault
            if times > 0:
                fault[2] -= 1
                if fault[2] == 0:
                    del self.method_errors[method]
            raise _error(name, message)

    def take_start_result(self):
        result = self.start_result
        if self.start_result_times > 0:
            self.start_result_times -= 1
            if self.start_result_times == 0:
                self.start_result = "done"
        return result

    def new_job(self, unit_name):
        job_id = self.next_job
        self.next_job += 1
        job = (dbus.UInt32(job_id), dbus.ObjectPath(f"{JOB_PATH_PREFIX}/{job_id}"))
        self.mock.EmitSignal(MAIN_IFACE, "JobNew", "uos", [job[0], job[1], unit_name])
        return job

    def job_removed(self, job, unit_name, result):
        self.mock.EmitSignal(MAIN_IFACE, "JobRemoved", "uoss", [job[0], job[1], unit_name, result])

    def loaded(self, name):
        unit = self.units.get(str(name))
        if unit is None:
            raise _error(ERR_NO_SUCH_UNIT, f"Unit {name} not loaded.")
        return unit

    # --- processes --------------------------------------------------------------
    def processes(self, unit, groups=None):
        """Live PIDs of a unit: its PIDs plus the members of the process groups they led."""
        live = {pid for pid in unit.pids if pid_alive(pid)}
        if unit.pgids:
            if groups is None:
                groups = group_members(unit.pgids)
            for pgid in unit.pgids:
                live.update(groups.get(pgid, ()))
        return sorted(live)

    def signal_unit(self, unit, signum):
        """Send signum to every live process of the unit (and its process groups); return the count."""
        sent = 0
        for pid in self.processes(unit):
            if pid <= 1 or pid in self.protected:
                continue
            try:
                os.kill(pid, signum)
                sent += 1
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                _log(f"cannot signal {pid}: {exc}")
        for pgid in unit.pgids:
            if pgid <= 1 or pgid in self.protected_groups:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)
        return sent

    def refresh_counters(self, unit):
        live = self.processes(unit)
        obj = mockobject.objects.get(unit.path)
        if obj is None:
            return
        if "TasksCurrent" not in unit.pinned:
            obj.props[SCOPE_IFACE]["TasksCurrent"] = dbus.UInt64(len(live))
        if "CPUUsageNSec" not in unit.pinned:
            ticks = sum((proc_stat(pid) or ("", 0, 0))[2] for pid in live)
            nsec = ticks * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
            previous = int(obj.props[SCOPE_IFACE].get("CPUUsageNSec", 0))
            obj.props[SCOPE_IFACE]["CPUUsageNSec"] = dbus.UInt64(max(nsec, previous))

    # --- StartTransientUnit -----------------------------------------------------
    def parse_properties(self, properties, sender):
        settings = {"PIDs": []}
        for entry in properties:
            key, value = str(entry[0]), entry[1]
            expected = SETTABLE.get(key)
            if expected is None:
                raise _error(ERR_INVALID_ARGS, f"Cannot set property {key}, or unknown property.")
            got = signature_of(value)
            if got != expected:
                raise _error(
                    ERR_INVALID_ARGS,
                    f"Invalid type for property {key}: expected '{expected}', got '{got}'.",
                )
            if key == "PIDs":
                for pid in value:
                    pid = int(pid)
                    if pid == 0:
                        pid = self.sender_pid(sender)
                    if pid < 0 or proc_stat(pid) is None:
                        raise _error(ERR_PID_UNKNOWN, f"Process with ID {pid} does not exist.")
                    settings["PIDs"].append(pid)
                continue
            if key == "CollectMode" and str(value) not in COLLECT_MODES:
                raise _error(ERR_INVALID_ARGS, f"Invalid collect mode: {value}")
            if key == "Slice" and not _SLICE_RE.fullmatch(str(value)):
                raise _error(ERR_INVALID_ARGS, f"Unit name '{value}' is not a valid slice name.")
            if key == "CPUQuotaPerSecUSec" and int(value) == 0:
                raise _error(ERR_INVALID_ARGS, "CPUQuotaPerSecUSec= value out of range")
            settings[key] = value
        return settings

    def sender_pid(self, sender):
        if not sender:
            raise _error(ERR_INVALID_ARGS, "PID 0 needs the caller's credentials.")
        bus = self.mock.connection
        return int(
            bus.call_blocking(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetConnectionUnixProcessID",
                "s",
                [sender],
            )
        )

    def start_transient_unit(self, name, mode, properties, aux, sender):
        if mode not in JOB_MODES:
            raise _error(ERR_INVALID_ARGS, f"Job mode {mode} invalid.")
        if not _UNIT_NAME_RE.fullmatch(name) or "." not in name:
            raise _error(ERR_INVALID_ARGS, f"Unit name {name} is not valid.")
        if not name.endswith(".scope"):
            raise _error(
                ERR_INVALID_ARGS, f"Unit {name} is not a scope: the fake only makes transient scopes."
            )
        if name in self.units:
            raise _error(ERR_UNIT_EXISTS, f"Unit {name} was already loaded or has a fragment file.")
        settings = self.parse_properties(properties, sender)
        if len(aux) > 0:
            raise _error(ERR_INVALID_ARGS, "Auxiliary units are not supported.")
        if not settings["PIDs"]:
            raise _error(ERR_BAD_SETTING, f"Unit {name} has a bad unit file setting. (Scope has no PIDs.)")
        pgids = set()
        for pid in settings["PIDs"]:
            try:
                if os.getpgid(pid) == pid and pid not in self.protected_groups:
                    pgids.add(pid)
            except OSError:
                pass
        unit = _Unit(name, settings, pgids)
        self.units[name] = unit
        self.add_unit_object(unit)
        self.mock.EmitSignal(MAIN_IFACE, "UnitNew", "so", [name, dbus.ObjectPath(unit.path)])
        job = self.new_job(name)
        unit.start_job = job
        if self.start_hang:
            self.set_state(unit, "activating", "start-chown")
        elif self.before_reply:
            self.finish_start(unit, job, self.take_start_result())
        else:
            result = self.take_start_result()
            self.sched.call_later(0, lambda: self.finish_start(unit, job, result))
        return job[1]

    def add_unit_object(self, unit):
        s = unit.settings
        now = _now_usec()
        unit_props = {
            "Id": dbus.String(unit.name),
            "Names": dbus.Array([unit.name], signature="s"),
            "Description": dbus.String(s.get("Description", unit.name)),
            "LoadState": dbus.String("loaded"),
            "ActiveState": dbus.String(unit.state),
            "SubState": dbus.String(unit.sub_state),
            "FreezerState": dbus.String("running"),
            "FragmentPath": dbus.String(""),
            "Transient": dbus.Boolean(True),
            "CollectMode": dbus.String(unit.collect_mode),
            "CanStart": dbus.Boolean(False),
            "CanStop": dbus.Boolean(True),
            "Following": dbus.String(""),
            "StateChangeTimestamp": now,
            "ActiveEnterTimestamp": dbus.UInt64(0),
            "InactiveEnterTimestamp": dbus.UInt64(0),
        }
        slice_name = str(s.get("Slice", self.default_slice))
        cgroup = "/".join(p for p in (self.control_group, slice_path(slice_name), unit.name) if p)
        scope_props = {
            "Result": dbus.String(unit.result),
            "Slice": dbus.String(slice_name),
            "ControlGroup": dbus.String(cgroup),
            "Controller": dbus.String(""),
            "MemoryCurrent": dbus.UInt64(12345678),
            "MemoryAccounting": dbus.Boolean(bool(s.get("MemoryAccounting", True))),
            "MemoryMax": dbus.UInt64(s.get("MemoryMax", UINT64_MAX)),
            "TasksCurrent": dbus.UInt64(len(unit.pids)),
            "TasksAccounting": dbus.Boolean(bool(s.get("TasksAccounting", True))),
            "TasksMax": dbus.UInt64(s.get("TasksMax", UINT64_MAX)),
            "CPUUsageNSec": dbus.UInt64(0),
            "CPUAccounting": dbus.Boolean(bool(s.get("CPUAccounting", True))),
            "CPUQuotaPerSecUSec": dbus.UInt64(s.get("CPUQuotaPerSecUSec", UINT64_MAX)),
            "TimeoutStopUSec": dbus.UInt64(s.get("TimeoutStopUSec", 90_000_000)),
            "RuntimeMaxUSec": dbus.UInt64(s.get("RuntimeMaxUSec", UINT64_MAX)),
            "SendSIGKILL": dbus.Boolean(bool(s.get("SendSIGKILL", True))),
            "KillMode": dbus.String("control-group"),
            "KillSignal": dbus.Int32(signal.SIGTERM),
        }
        self.mock.AddObject(
            unit.path, UNIT_IFACE, unit_props, [], mock_class=_UnitObject, mock_data=unit.name
        )
        mockobject.objects[unit.path].AddProperties(SCOPE_IFACE, scope_props)

    def finish_start(self, unit, job, result):
        if self.units.get(unit.name) is not unit or unit.start_job != job:
            return  # collected, vanished or stopped meanwhile
        unit.start_job = None
        if result == "done":
            self.set_state(unit, "active", "running")
            runtime = int(unit.settings.get("RuntimeMaxUSec", UINT64_MAX))
            if runtime not in (0, UINT64_MAX):
                unit.runtime_timer = self.sched.call_later(runtime / 1e6, lambda: self.runtime_expired(unit))
            self.job_removed(job, unit.name, result)
            return
        unit.result = "timeout" if result == "timeout" else "resources"
        self.set_state(unit, "failed", "failed")
        self.job_removed(job, unit.name, result)
        self.collect(unit)

    def runtime_expired(self, unit):
        unit.runtime_timer = None
        if self.units.get(unit.name) is unit and unit.state == "active" and not unit.stopping:
            self.begin_stop(unit, "timeout")

    # --- state ------------------------------------------------------------------
    def set_state(self, unit, state, sub_state):
        unit.state, unit.sub_state = state, sub_state
        obj = mockobject.objects.get(unit.path)
        if obj is None:
            return
        changes = {"ActiveState": dbus.String(state), "SubState": dbus.String(sub_state)}
        changes["StateChangeTimestamp"] = _now_usec()
        if state == "active":
            changes["ActiveEnterTimestamp"] = changes["StateChangeTimestamp"]
        elif state in ("inactive", "failed"):
            changes["InactiveEnterTimestamp"] = changes["StateChangeTimestamp"]
        # systemd announces the type-specific interface (Result) before the Unit one.
        if obj.props[SCOPE_IFACE].get("Result") != unit.result:
            obj.UpdateProperties(SCOPE_IFACE, {"Result": dbus.String(unit.result)})
        obj.UpdateProperties(UNIT_IFACE, changes)

    def enter_dead(self, unit, failure):
        """The unit's processes are gone (or abandoned): inactive or failed, then maybe collected."""
        unit.stopping = False
        if unit.runtime_timer is not None:
            self.sched.cancel(unit.runtime_timer)
            unit.runtime_timer = None
        if failure:
            unit.result = failure
            self.set_state(unit, "failed", "failed")
        else:
            unit.result = "success"
            self.set_state(unit, "inactive", "dead")
        jobs, unit.stop_jobs = unit.stop_jobs, []
        for job in jobs:
            self.job_removed(job, unit.name, "done")
        self.collect(unit)

    def collect(self, unit):
        """Garbage-collect a transient unit as systemd does for its CollectMode."""
        if unit.state == "inactive" or (unit.state == "failed" and unit.collect_mode == "inactive-or-failed"):
            self.remove_unit(unit, emit=True)

    def remove_unit(self, unit, emit):
        if self.units.get(unit.name) is unit:
            del self.units[unit.name]
        if unit.runtime_timer is not None:
            self.sched.cancel(unit.runtime_timer)
            unit.runtime_timer = None
        obj = mockobject.objects.pop(unit.path, None)
        if obj is not None:
            obj.remove_from_connection()
        if emit:
            self.mock.EmitSignal(MAIN_IFACE, "UnitRemoved", "so", [unit.name, dbus.ObjectPath(unit.path)])

    def _tick(self):
        watched = [u for u in self.units.values() if u.state in ("active", "activating") and not u.stopping]
        if watched:
            groups = group_members(set().union(*(u.pgids for u in watched)))
            for unit in watched:
                if not self.processes(unit, groups):
                    self.enter_dead(unit, None)
        return True

    # --- stop -------------------------------------------------------------------
    def stop_unit(self, name, mode):
        unit = self.loaded(name)
        if mode not in JOB_MODES:
            raise _error(ERR_INVALID_ARGS, f"Job mode {mode} invalid.")
        job = self.new_job(unit.name)
        if unit.start_job is not None:
            start_job, unit.start_job = unit.start_job, None
            self.sched.call_later(0, lambda: self.job_removed(start_job, unit.name, "canceled"))
        if unit.state in ("failed", "inactive") and not unit.stopping and not self.processes(unit):
            self.sched.call_later(0, lambda: self.job_removed(job, unit.name, "done"))
            return job[1]
        unit.stop_jobs.append(job)
        if not unit.stopping:
            self.begin_stop(unit, None)
        return job[1]

    def begin_stop(self, unit, failure):
        unit.stopping = True
        unit.stop_failure = failure
        if failure:  # systemd records the result when the stop begins
            unit.result = failure
        if unit.runtime_timer is not None:
            self.sched.cancel(unit.runtime_timer)
            unit.runtime_timer = None
        self.set_state(unit, "deactivating", "stop-sigterm")
        self.signal_unit(unit, signal.SIGTERM)
        self.signal_unit(unit, signal.SIGCONT)
        timeout = int(unit.settings.get("TimeoutStopUSec", 90_000_000))
        seconds = math.inf if timeout in (0, UINT64_MAX) else timeout / 1e6
        unit.stop_deadline = time.monotonic() + min(seconds, self.stop_timeout_cap)
        unit.kill_deadline = None
        self.sched.every(0.02, lambda: self.poll_stop(unit))

    def poll_stop(self, unit):
        if self.units.get(unit.name) is not unit or not unit.stopping:
            return False
        if not self.processes(unit):
            self.enter_dead(unit, unit.stop_failure)
            return False
        now = time.monotonic()
        if unit.kill_deadline is None and now >= unit.stop_deadline:
            unit.stop_failure = unit.stop_failure or "timeout"
            if not bool(unit.settings.get("SendSIGKILL", True)):
                self.enter_dead(unit, unit.stop_failure)
                return False
            _log(f"{unit.name}: stop timed out, sending SIGKILL")
            self.set_state(unit, "deactivating", "stop-sigkill")
            self.signal_unit(unit, signal.SIGKILL)
            unit.kill_deadline = now + self.stop_timeout_cap
        elif unit.kill_deadline is not None and now >= unit.kill_deadline:
            _log(f"{unit.name}: processes still around after SIGKILL, ignoring")
            self.enter_dead(unit, unit.stop_failure)
            return False
        return True

    # --- queries ----------------------------------------------------------------
    def unit_row(self, unit):
        job_id, job_type, job_path = 0, "", "/"
        if unit.start_job is not None:
            job_id, job_type, job_path = int(unit.start_job[0]), "start", str(unit.start_job[1])
        elif unit.stop_jobs:
            job_id, job_type, job_path = int(unit.stop_jobs[0][0]), "stop", str(unit.stop_jobs[0][1])
        obj = mockobject.objects.get(unit.path)
        description = str(obj.props[UNIT_IFACE]["Description"]) if obj is not None else unit.name
        return (
            unit.name,
            description,
            "loaded",
            unit.state,
            unit.sub_state,
            "",
            dbus.ObjectPath(unit.path),
            dbus.UInt32(job_id),
            job_type,
            dbus.ObjectPath(job_path),
        )


def load(mock, parameters):
    global FAKE
    previous = getattr(mock, "_ffsystemd_fake", None)
    if previous is not None:  # dbusmock's Reset() loads the template again
        previous.shutdown()
    FAKE = _Fake(mock, dict(parameters or {}))
    mock._ffsystemd_fake = FAKE
    mock.AddProperties(
        MAIN_IFACE,
        {
            "Version": dbus.String(FAKE.version),
            "ControlGroup": dbus.String(FAKE.control_group),
            "SystemState": dbus.String("running"),
            "Architecture": dbus.String("x86-64"),
            "Virtualization": dbus.String(""),
            "DefaultTimeoutStopUSec": dbus.UInt64(90_000_000),
        },
    )


# --- org.freedesktop.systemd1.Manager ----------------------------------------------
@dbus.service.method(MAIN_IFACE, in_signature="", out_signature="")
def Subscribe(self):
    FAKE.enter("Subscribe")


@dbus.service.method(MAIN_IFACE, in_signature="", out_signature="")
def Unsubscribe(self):
    FAKE.enter("Unsubscribe")


@dbus.service.method(MAIN_IFACE, in_signature="ssa(sv)a(sa(sv))", out_signature="o", sender_keyword="sender")
def StartTransientUnit(self, name, mode, properties, aux, sender=None):
    FAKE.enter("StartTransientUnit")
    return FAKE.start_transient_unit(str(name), str(mode), properties, aux, sender)


@dbus.service.method(MAIN_IFACE, in_signature="ss", out_signature="o")
def StopUnit(self, name, mode):
    FAKE.enter("StopUnit")
    return FAKE.stop_unit(str(name), str(mode))


@dbus.service.method(MAIN_IFACE, in_signature="ssi", out_signature="")
def KillUnit(self, name, who, signum):
    FAKE.enter("KillUnit")
    unit = FAKE.loaded(name)
    who = str(who)
    if who not in ("all", "main", "control", "all-fail", "main-fail", "control-fail"):
        raise _error(ERR_INVALID_ARGS, f"Invalid who argument {who}")
    if not 1 <= int(signum) < 65:
        raise _error(ERR_INVALID_ARGS, "Signal number out of range.")
    if who.startswith(("main", "control")):
        raise _error(ERR_NO_SUCH_PROCESS, f"Unit {unit.name} has no {who.split('-')[0]} process.")
    sent = FAKE.signal_unit(unit, int(signum))
    if sent == 0 and who == "all-fail":
        raise _error(ERR_NO_SUCH_PROCESS, "No matching processes to kill")


@dbus.service.method(MAIN_IFACE, in_signature="s", out_signature="")
def ResetFailedUnit(self, name):
    FAKE.enter("ResetFailedUnit")
    unit = FAKE.loaded(name)
    if unit.state == "failed":
        unit.result = "success"
        FAKE.remove_unit(unit, emit=True)


@dbus.service.method(MAIN_IFACE, in_signature="s", out_signature="o")
def GetUnit(self, name):
    FAKE.enter("GetUnit")
    return dbus.ObjectPath(FAKE.loaded(name).path)


@dbus.service.method(MAIN_IFACE, in_signature="u", out_signature="o")
def GetUnitByPID(self, pid):
    FAKE.enter("GetUnitByPID")
    for unit in FAKE.units.values():
        if int(pid) in FAKE.processes(unit):
            return dbus.ObjectPath(unit.path)
    raise _error(ERR_NO_UNIT_FOR_PID, f"PID {int(pid)} does not belong to any loaded unit.")


@dbus.service.method(MAIN_IFACE, in_signature="s", out_signature="a(sus)")
def GetUnitProcesses(self, name):
    FAKE.enter("GetUnitProcesses")
    unit = FAKE.loaded(name)
    rows = []
    for pid in sorted(FAKE.processes(unit)):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rows.append((dbus.String("/"), dbus.UInt32(pid), dbus.String(cmdline)))
    return rows


@dbus.service.method(MAIN_IFACE, in_signature="", out_signature="a(ssssssouso)")
def ListUnits(self):
    FAKE.enter("ListUnits")
    return [FAKE.unit_row(unit) for unit in sorted(FAKE.units.values(), key=lambda u: u.name)]


@dbus.service.method(MAIN_IFACE, in_signature="asas", out_signature="a(ssssssouso)")
def ListUnitsByPatterns(self, states, patterns):
    FAKE.enter("ListUnitsByPatterns")
    states = {str(s) for s in states}
    patterns = [str(p) for p in patterns]
    rows = []
    for unit in sorted(FAKE.units.values(), key=lambda u: u.name):
        if states and not states & {"loaded", unit.state, unit.sub_state}:
            continue
        if patterns and not any(fnmatch.fnmatchcase(unit.name, p) for p in patterns):
            continue
        rows.append(FAKE.unit_row(unit))
    return rows


# --- org.ffsystemd.Fake: fault injection and inspection for the tests -------------
@dbus.service.method(FAKE_IFACE, in_signature="si", out_signature="")
def SetStartResult(self, result, times):
    """Result of the next `times` start jobs (times <= 0: of all); "" or "done" resets."""
    FAKE.start_result = str(result) or "done"
    FAKE.start_result_times = int(times) if FAKE.start_result != "done" else 0


@dbus.service.method(FAKE_IFACE, in_signature="b", out_signature="")
def SetStartHang(self, hang):
    """While set, start jobs never finish (no JobRemoved; the unit stays activating)."""
    FAKE.start_hang = bool(hang)


@dbus.service.method(FAKE_IFACE, in_signature="b", out_signature="")
def SetJobRemovedBeforeReply(self, on):
    """While set, StartTransientUnit emits the start job's JobRemoved before its reply."""
    FAKE.before_reply = bool(on)


@dbus.service.method(FAKE_IFACE, in_signature="sssi", out_signature="")
def SetMethodError(self, method, error_name, message, times):
    """Make calls of a Manager method (or GetAll/Get) fail with error_name; "" clears.

    times: the next `times` calls only (<= 0: until cleared). The call is still counted.
    """
    if not str(error_name):
        FAKE.method_errors.pop(str(method), None)
    else:
        FAKE.method_errors[str(method)] = [str(error_name), str(message), int(times)]


@dbus.service.method(FAKE_IFACE, in_signature="d", out_signature="")
def SetGetAllDelay(self, seconds):
    """Answer Properties.GetAll on unit objects only after `seconds` (without blocking)."""
    FAKE.getall_delay = max(0.0, float(seconds))


@dbus.service.method(FAKE_IFACE, in_signature="", out_signature="")
def ResetFaults(self):
    """Clear every injected fault."""
    FAKE.reset_faults()


@dbus.service.method(FAKE_IFACE, in_signature="s", out_signature="b")
def VanishUnit(self, name):
    """Forget a unit without any signal, as if systemd had lost it; False if not loaded."""
    unit = FAKE.units.get(str(name))
    if unit is None:
        return False
    FAKE.remove_unit(unit, emit=False)
    return True


@dbus.service.method(FAKE_IFACE, in_signature="ssb", out_signature="")
def FailUnit(self, name, result, kill):
    """Make an active unit fail with Result=result (SIGKILL its processes first when kill)."""
    unit = FAKE.loaded(name)
    if kill:
        FAKE.signal_unit(unit, signal.SIGKILL)
    FAKE.enter_dead(unit, str(result) or "resources")


@dbus.service.method(FAKE_IFACE, in_signature="sssv", out_signature="")
def SetUnitProperty(self, name, interface, prop, value):
    """Set (or add) a property of a loaded unit and emit PropertiesChanged; it is no longer refreshed."""
    unit = FAKE.loaded(name)
    obj = mockobject.objects[unit.path]
    obj._set_property(str(interface), str(prop), value)
    unit.pinned.add(str(prop))
    obj.EmitSignal(
        dbus.PROPERTIES_IFACE,
        "PropertiesChanged",
        "sa{sv}as",
        [str(interface), dbus.Dictionary({str(prop): value}, signature="sv"), dbus.Array([], signature="s")],
    )


@dbus.service.method(FAKE_IFACE, in_signature="", out_signature="as")
def LoadedUnits(self):
    """Names of the loaded units, sorted."""
    return sorted(FAKE.units)


@dbus.service.method(FAKE_IFACE, in_signature="s", out_signature="au")
def UnitPIDs(self, name):
    """The PIDs the unit was started with."""
    return dbus.Array([dbus.UInt32(p) for p in FAKE.loaded(name).pids], signature="u")


@dbus.service.method(FAKE_IFACE, in_signature="s", out_signature="au")
def UnitProcesses(self, name):
    """The live processes of the unit (its PIDs and the members of their process groups)."""
    return dbus.Array([dbus.UInt32(p) for p in FAKE.processes(FAKE.loaded(name))], signature="u")


@dbus.service.method(FAKE_IFACE, in_signature="s", out_signature="ss")
def UnitState(self, name):
    """(ActiveState, Result) of a unit; ("", "") when it is not loaded."""
    unit = FAKE.units.get(str(name))
    if unit is None:
        return ("", "")
    return (unit.state, unit.result)


@dbus.service.method(FAKE_IFACE, in_signature="s", out_signature="u")
def CallCount(self, method):
    """How often a Manager method (or GetAll/Get on units) was called."""
    return dbus.UInt32(FAKE.calls.get(str(method), 0))


@dbus.service.method(FAKE_IFACE, in_signature="", out_signature="a{su}")
def CallCounts(self):
    """Calls per method."""
    return dbus.Dictionary({k: dbus.UInt32(v) for k, v in FAKE.calls.items()}, signature="su")
