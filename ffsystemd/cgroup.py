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


def limit_reached(
    pids_events: dict[str, int] | None,
    memory_events: dict[str, int] | None,
    tasks_max: int,
    memory_max: int,
) -> tuple[str | None, str | None]:
    """Which limit a failed launch's scope ran into, from its `pids.events` and `memory.events`.

    Returns (result, sentence): result "oom-kill" when the kernel's OOM killer killed a process
    of the scope (systemd's own Result may not say so yet when the launch gives up), else None;
    the sentence names the trait to raise (None when no limit was reached). A scope that only
    hit `memory.max` (the kernel reclaimed instead of killing, so Xpra or Xvfb crawled until a
    timeout) is named too: on a real host that is how a too small `memory_max` often shows.
    """
    memory = memory_events or {}
    if memory.get("oom_kill", 0) > 0:
        return "oom-kill", None
    if (pids_events or {}).get("max", 0) > 0:
        return None, f"the session reached its task limit (tasks_max={tasks_max})"
    if memory.get("max", 0) > 0 or memory.get("oom", 0) > 0:
        mib = memory_max / 1024**2
        return None, f"the session reached its memory limit (memory_max={mib:g} MiB)"
    return None, None
