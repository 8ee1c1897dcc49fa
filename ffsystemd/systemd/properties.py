"""Unit and scope properties as systemd names them, turned into `UnitSnapshot` fields (pure)."""

from __future__ import annotations

from typing import Any

from ..limits import or_none

# The D-Bus properties behind each UnitSnapshot field (unit and scope interfaces).
_SNAPSHOT_PROPERTIES = {
    "LoadState": "load_state",
    "ActiveState": "active_state",
    "SubState": "sub_state",
    "Result": "result",
    "MemoryCurrent": "memory_current",
    "MemoryMax": "memory_max",
    "TasksCurrent": "tasks_current",
    "TasksMax": "tasks_max",
    "CPUQuotaPerSecUSec": "cpu_quota_per_sec_usec",
    "CPUUsageNSec": "cpu_usage_nsec",
    "ControlGroup": "control_group",
}


def snapshot_fields(props: dict[str, Any]) -> dict[str, Any]:
    """UnitSnapshot fields from unwrapped D-Bus properties: "" and UINT64_MAX become None."""
    fields: dict[str, Any] = {}
    for key, name in _SNAPSHOT_PROPERTIES.items():
        if key in props:
            value = props[key]
            fields[name] = (value or None) if isinstance(value, str) else or_none(value)
    return fields
