"""Parse the admin's resource-limit and screen settings into the numbers systemd and Xpra take.

Pure functions: each raises ValueError with a message fit to show after the trait name.
"""

from __future__ import annotations

import re

UINT64_MAX = 2**64 - 1
"""systemd's "infinity" for limits and its "not available" for counters."""

_SIZE_RE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_INFINITY = {"infinity", "none", "unlimited", "max"}


def parse_memory_max(value: str | int) -> int:
    """Return bytes for `2G`, `512M`, `1073741824`, ... and UINT64_MAX for `infinity`.

    Suffixes are base-1024 as in systemd. Zero and negative sizes are rejected.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 2G, 512M or infinity, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        if value.strip().lower() in _INFINITY:
            return UINT64_MAX
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"expected a size such as 2G, 512M or infinity, got {value!r}")
        digits, suffix = match.group(1), match.group(2).upper()
        factor = _SIZE_FACTORS[suffix]
        number = int(digits) * factor if digits.isdigit() else int(float(digits) * factor)
    if number <= 0:
        raise ValueError(f"a memory limit must be positive, got {value!r}")
    if number >= UINT64_MAX:
        raise ValueError(f"memory limit too large: {value!r}")
    return number


def parse_tasks_max(value: str | int) -> int:
    """Return the task limit (a positive integer) or UINT64_MAX for `infinity`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a positive integer or infinity, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _INFINITY:
            return UINT64_MAX
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"expected a positive integer or infinity, got {value!r}")
        value = int(text)
    if value <= 0 or value >= UINT64_MAX:
        raise ValueError(f"a task limit must be a positive integer, got {value!r}")
    return value


def parse_cpu_quota(value: str | None) -> int:
    """Return CPUQuotaPerSecUSec in microseconds for `150%` (1.5 CPUs); UINT64_MAX for none/empty."""
    if value is None or not str(value).strip() or str(value).strip().lower() in _INFINITY:
        return UINT64_MAX
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", str(value))
    if not match:
        raise ValueError(f"expected a percentage such as 150% (1.5 CPUs), got {value!r}")
    percent = float(match.group(1))
    if percent <= 0:
        raise ValueError(f"a CPU quota must be positive, got {value!r}")
    usec = round(percent * 10_000)
    if not 1 <= usec < UINT64_MAX:
        raise ValueError(f"CPU quota out of range: {value!r}")
    return usec


def parse_screen_size(value: str) -> tuple[int, int]:
    """Return (width, height) for `1920x1080`; both between 320 and 8192 pixels."""
    match = re.fullmatch(r"\s*(\d{3,5})\s*[xX]\s*(\d{3,5})\s*", value or "")
    if not match:
        raise ValueError(f"expected WIDTHxHEIGHT such as 1920x1080, got {value!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (320 <= width <= 8192 and 240 <= height <= 8192):
        raise ValueError(f"screen size out of range (320x240 to 8192x8192): {value!r}")
    return width, height


def or_none(value: int) -> int | None:
    """Map systemd's UINT64_MAX ("infinity" / "not available") to None for JSON."""
    return None if value is None or value >= UINT64_MAX else value
