"""Configuration of what each session's transient systemd scope may use and how it stops."""

from __future__ import annotations

from typing import Any

from traitlets import Float, HasTraits, Int, Unicode, Union, validate

from ..limits import parse_cpu_quota, parse_memory_max, parse_tasks_max
from ..units import is_valid_slice_name
from .checks import bad, optional_duration, parsed, timeout


class ScopeConfig(HasTraits):
    """Limits of each session's scope (MemoryMax=, TasksMax=, CPUQuota=, RuntimeMaxUSec=), slice, stop."""

    memory_max = Unicode(
        "2G",
        config=True,
        help="Memory limit of each session (MemoryMax= of its scope): bytes, or a size with"
        " K/M/G/T suffix (base 1024) such as 512M or 2G, or 'infinity'.",
    )
    tasks_max = Union(
        [Int(), Unicode()],
        default_value=1024,
        config=True,
        help="Maximum number of tasks (processes and threads) of each session (TasksMax=), or 'infinity'.",
    )
    cpu_quota = Unicode(
        "",
        config=True,
        help="CPU quota of each session (CPUQuota=) as a percentage of one CPU, e.g. '150%'"
        " for one and a half CPUs; empty for no quota.",
    )
    max_age = Float(
        0.0,
        config=True,
        help="Stop a session this many seconds after it started, whatever it is doing"
        " (RuntimeMaxUSec= of its scope); 0 for no limit.",
    )
    slice = Unicode(
        "app-ffsystemd.slice",
        config=True,
        help="systemd slice the session scopes are placed in; 'ffsystemd install-units' installs"
        " app-ffsystemd.slice with aggregate limits for all sessions together.",
    )
    stop_timeout = Float(
        5.0,
        config=True,
        help="Seconds systemd waits after SIGTERM before it SIGKILLs what is left of a"
        " stopping session (TimeoutStopUSec=).",
    )

    @validate("memory_max")
    def _check_memory_max(self, proposal: Any) -> str:
        return parsed("memory_max", proposal["value"], parse_memory_max)

    @validate("tasks_max")
    def _check_tasks_max(self, proposal: Any) -> Any:
        return parsed("tasks_max", proposal["value"], parse_tasks_max)

    @validate("cpu_quota")
    def _check_cpu_quota(self, proposal: Any) -> str:
        return parsed("cpu_quota", proposal["value"], parse_cpu_quota)

    @validate("max_age")
    def _check_max_age(self, proposal: Any) -> float:
        return optional_duration("max_age", proposal["value"])

    @validate("slice")
    def _check_slice(self, proposal: Any) -> str:
        if not is_valid_slice_name(proposal["value"]):
            raise bad("slice", proposal["value"], "must be a slice unit name ending in .slice")
        return proposal["value"]

    @validate("stop_timeout")
    def _check_stop_timeout(self, proposal: Any) -> float:
        return timeout("stop_timeout", proposal["value"])
