"""Pure builders for our unit names and transient-scope properties (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from .ids import SESSION_ID_PATTERN, is_valid_session_id
from .limits import UINT64_MAX

UNIT_PREFIX = "app-ffsystemd-firefox-"
UNIT_SUFFIX = ".scope"
UNIT_GLOB = f"{UNIT_PREFIX}*{UNIT_SUFFIX}"
UNIT_NAME_PATTERN = rf"{UNIT_PREFIX}{SESSION_ID_PATTERN}\{UNIT_SUFFIX}"


class UnitProperty(NamedTuple):
    """One transient-unit property: its systemd name, its D-Bus signature and its value."""

    name: str
    signature: str
    value: Any


@dataclass(frozen=True)
class ScopeLimits:
    """Resource limits for one session scope, in systemd's units (UINT64_MAX = infinity)."""

    memory_max: int = UINT64_MAX
    tasks_max: int = UINT64_MAX
    cpu_quota_per_sec_usec: int = UINT64_MAX
    stop_timeout_usec: int = 5_000_000
    runtime_max_usec: int = UINT64_MAX


def unit_name(session_id: str) -> str:
    """Return the scope name for a session id; raises ValueError for an invalid id."""
    if not is_valid_session_id(session_id):
        raise ValueError(f"invalid session id {session_id!r}")
    return f"{UNIT_PREFIX}{session_id}{UNIT_SUFFIX}"


def unit_object_path(unit: str) -> str:
    """The D-Bus object path systemd gives a unit (bus-path escaping of its name)."""
    escaped = []
    for index, byte in enumerate(unit.encode()):
        char = chr(byte)
        if char.isascii() and (char.isalpha() or (char.isdigit() and index > 0)):
            escaped.append(char)
        else:
            escaped.append(f"_{byte:02x}")
    return "/org/freedesktop/systemd1/unit/" + "".join(escaped)


def session_id_of(unit: str) -> str | None:
    """Return the session id of one of our unit names, or None for any other name."""
    if not (unit.startswith(UNIT_PREFIX) and unit.endswith(UNIT_SUFFIX)):
        return None
    candidate = unit[len(UNIT_PREFIX) : -len(UNIT_SUFFIX)]
    return candidate if is_valid_session_id(candidate) else None


def scope_properties(
    *, pid: int, description: str, slice_name: str, limits: ScopeLimits
) -> list[UnitProperty]:
    """Return StartTransientUnit's `a(sv)` for a session scope holding `pid`.

    Limits at UINT64_MAX are left out (systemd's default is infinity), so a scope
    started without limits looks exactly like one started by `systemd-run --scope`.
    """
    props: list[UnitProperty] = [
        UnitProperty("Description", "s", description),
        UnitProperty("PIDs", "au", [pid]),
        UnitProperty("Slice", "s", slice_name),
        UnitProperty("CollectMode", "s", "inactive-or-failed"),
        UnitProperty("TimeoutStopUSec", "t", limits.stop_timeout_usec),
        UnitProperty("SendSIGKILL", "b", True),
    ]
    if limits.memory_max != UINT64_MAX:
        props.append(UnitProperty("MemoryAccounting", "b", True))
        props.append(UnitProperty("MemoryMax", "t", limits.memory_max))
    if limits.tasks_max != UINT64_MAX:
        props.append(UnitProperty("TasksAccounting", "b", True))
        props.append(UnitProperty("TasksMax", "t", limits.tasks_max))
    if limits.cpu_quota_per_sec_usec != UINT64_MAX:
        props.append(UnitProperty("CPUAccounting", "b", True))
        props.append(UnitProperty("CPUQuotaPerSecUSec", "t", limits.cpu_quota_per_sec_usec))
    if limits.runtime_max_usec != UINT64_MAX:
        props.append(UnitProperty("RuntimeMaxUSec", "t", limits.runtime_max_usec))
    return props


def is_valid_slice_name(name: str) -> bool:
    """True for a plausible slice unit name such as `app-ffsystemd.slice`."""
    return re.fullmatch(r"[A-Za-z0-9:_.\\-]{1,200}\.slice", name) is not None
