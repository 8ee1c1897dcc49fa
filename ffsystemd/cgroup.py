"""Read a unit's cgroup v2 event counters (`pids.events`, `memory.events`): they tell why a
session's processes failed when systemd's own Result does not (e.g. fork at `tasks_max`)."""

from __future__ import annotations

from pathlib import Path

from .health import unified_cgroup_mount


def parse_events(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file (`key value` lines) as a dict; malformed lines are skipped."""
    events: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            events[fields[0]] = int(fields[1])
    return events


def read_events(control_group: str, name: str) -> dict[str, int] | None:
    """The counters of `<unified mount>/<control_group>/<name>`, or None when unreadable."""
    try:
        mount = unified_cgroup_mount(Path("/proc/self/mounts").read_text())
        if mount is None or not control_group:
            return None
        return parse_events((mount / control_group.lstrip("/") / name).read_text())
    except OSError:
        return None
