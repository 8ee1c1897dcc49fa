"""Plain-text rendering for the `ffsystemd` command: tables, sizes, ages (pure functions)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def size(value: int | None) -> str:
    """Bytes as a short base-1024 size (`512M`, `1.5G`); `-` for unknown."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if amount < 1024 or unit == "T":
            text = f"{amount:.1f}".rstrip("0").rstrip(".") if unit != "B" else str(int(amount))
            return f"{text}{unit}"
        amount /= 1024
    return str(value)  # pragma: no cover


def duration(seconds: float | None) -> str:
    """Seconds as `42s`, `5m`, `3h12m`, `2d4h`; `-` for unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(whole // 3600, 24)
    return f"{days}d{hours}h"


def pair(current: int | None, maximum: int | None, fmt: Any = str) -> str:
    """`current/max` with `-` for unknown parts and `inf` for no limit."""
    left = "-" if current is None else fmt(current)
    right = "inf" if maximum is None else fmt(maximum)
    return f"{left}/{right}"


def cpu(record: Mapping[str, Any]) -> str:
    """CPU time used (seconds) and the quota, e.g. `12.3s (150%)`."""
    used = record.get("cpu_usage_nsec")
    text = "-" if used is None else f"{used / 1e9:.1f}s"
    quota = record.get("cpu_quota")
    return text if quota is None else f"{text} ({quota:g}%)"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, a header line first."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines)


SESSION_HEADERS = ("ID", "SERVER", "STATE", "RESULT", "AGE", "MEMORY", "TASKS", "CPU", "LAST ACTIVITY")


def session_row(record: Mapping[str, Any]) -> list[str]:
    """One `ffsystemd list` row."""
    state = record["state"] if record["ours"] else f"{record['state']} (not ours)"
    if record.get("pooled"):
        state = f"{state} (pool)"
    return [
        record["id"],
        record.get("server") or "-",
        state,
        record.get("result") or "-",
        duration(record.get("age_seconds")),
        pair(record.get("memory_current"), record.get("memory_max"), size),
        pair(record.get("tasks_current"), record.get("tasks_max")),
        cpu(record),
        "-" if record.get("idle_seconds") is None else f"{duration(record['idle_seconds'])} ago",
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def to_json(data: Any) -> str:
    """JSON for --json output (D-Bus values such as byte arrays made plain)."""
    return json.dumps(data, indent=2, sort_keys=False, default=_jsonable)
