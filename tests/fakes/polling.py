"""Polling with a deadline, the tests' only way to wait for something to happen.

`eventually` for async tests (the check may be a coroutine function), `wait_until` for sync
code (the real tier, the dbusmock world, threads). Both fail with a message naming what was
awaited. Every deadline is stretched by $FFSYSTEMD_TEST_TIME_SCALE (default 1; the VM tier's
emulated guest sets it); a loaded box only makes a passing test slower, never a failing one pass.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
TIME_SCALE = float(os.environ.get("FFSYSTEMD_TEST_TIME_SCALE", "1"))


async def eventually(check: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll check() (sync or async) until it returns something truthy; fail after timeout seconds."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or check}")
        await asyncio.sleep(0.02)


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> T:
    """Poll predicate() every interval seconds until it returns something truthy, and return that.

    Raises AssertionError naming `what` once timeout seconds have passed (so a caller can add
    evidence to it); blocks the calling thread, so never call it on a running event loop.
    """
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)
