"""Polling with a deadline, the tests' only way to wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def eventually(check: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll check() (sync or async) until it returns something truthy; fail after timeout seconds."""
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
