"""Shared fixtures; their machinery lives in tests/fakes/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.dbus_world import FakeSystemd, start_fake_systemd

# tests/vm runs only inside the VM tier's guest (scripts/test-vm), never in the host run.
collect_ignore = ["vm"]


@pytest.fixture
def fake_systemd(request: pytest.FixtureRequest) -> Iterator[FakeSystemd]:
    """A fresh private session bus with the fake systemd user manager on it (`.address`, fault controls).

    Template parameters (e.g. {"stop_timeout_cap": 1.0}) can be given by indirect parametrization.
    The fake's call log is printed at teardown (pytest shows it when the test failed).
    """
    fake = start_fake_systemd(getattr(request, "param", None))
    try:
        yield fake
    finally:
        print(fake.output())
        fake.stop()
