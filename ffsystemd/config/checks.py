"""The error a rejected configuration value raises, and the range checks several traits share."""

from __future__ import annotations

from typing import Any

from traitlets import TraitError


def bad(trait: str, value: Any, why: str) -> TraitError:
    """The start-up error for a rejected value: it names `c.FirefoxLauncher.<trait>` and why."""
    return TraitError(f"c.FirefoxLauncher.{trait} = {value!r} is invalid: {why}")


def in_range(trait: str, value: Any, low: float, high: float, why: str) -> Any:
    """Return value if low <= value <= high, else raise bad(trait, value, why)."""
    if not low <= value <= high:
        raise bad(trait, value, why)
    return value


def optional_duration(trait: str, value: float) -> float:
    """A duration where 0 means off: 0 up to a year of seconds."""
    return in_range(trait, value, 0, 365 * 86400, "must be 0 (off) or a number of seconds up to a year")


def interval(trait: str, value: float) -> float:
    """A polling interval: 0.05 to 86400 seconds."""
    return in_range(trait, value, 0.05, 86400, "must be between 0.05 and 86400 seconds")


def timeout(trait: str, value: float) -> float:
    """A timeout: more than 0 and at most an hour."""
    if not 0 < value <= 3600:
        raise bad(trait, value, "must be more than 0 and at most 3600 seconds")
    return value


def parsed(trait: str, value: Any, parse: Any) -> Any:
    """Return value if parse(value) accepts it; a ValueError from parse becomes bad(trait, ...)."""
    try:
        parse(value)
    except ValueError as exc:
        raise bad(trait, value, str(exc)) from None
    return value
