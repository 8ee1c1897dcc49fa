"""Session capabilities (pure, with an injected clock)."""

from __future__ import annotations

import re

from ffsystemd.capability import CAPABILITY_PATTERN, CapabilityStore

A, B = "0123456789ab", "ba9876543210"


def store(**kwargs: object) -> tuple[CapabilityStore, list[float]]:
    now = [100.0]
    return CapabilityStore(clock=lambda: now[0], **kwargs), now  # type: ignore[arg-type]


def test_a_capability_is_256_random_url_safe_bits_and_opens_only_its_session() -> None:
    caps, _ = store()
    first, second = caps.mint(A), caps.mint(A)
    assert re.fullmatch(CAPABILITY_PATTERN, first) and len(first) == 43
    assert first != second
    assert caps.check(A, first) and caps.check(A, second)
    assert not caps.check(B, first)
    assert not caps.check(A, "A" * 43)
    assert not caps.check(A, first[:-1])
    assert not caps.check(A, first + "x")
    assert not caps.check(A, "")


def test_it_expires_after_going_unused_and_each_use_extends_it() -> None:
    caps, now = store(idle_lifetime=60)
    cap = caps.mint(A)
    for _ in range(5):
        now[0] += 59
        assert caps.check(A, cap)
    now[0] += 30
    caps.touch(A, cap)  # websocket traffic counts as a use
    now[0] += 59
    assert caps.check(A, cap)
    now[0] += 60
    assert not caps.check(A, cap)
    assert not caps.check(A, cap)  # and stays expired


def test_a_session_keeps_its_most_recently_used_capabilities() -> None:
    caps, now = store(per_session=3)
    minted = []
    for _ in range(3):
        minted.append(caps.mint(A))
        now[0] += 1
    assert caps.check(A, minted[0])  # used: now the most recent
    now[0] += 1
    newest = caps.mint(A)  # drops the least recently used: minted[1]
    assert not caps.check(A, minted[1])
    assert all(caps.check(A, c) for c in (minted[0], minted[2], newest))


def test_forget_and_prune_end_a_sessions_capabilities() -> None:
    caps, now = store(idle_lifetime=60)
    a, b = caps.mint(A), caps.mint(B)
    caps.forget(A)
    assert not caps.check(A, a)
    assert caps.check(B, b)
    c = caps.mint(A)
    caps.prune(lambda sid: sid == A)
    assert caps.sessions() == [A]
    assert caps.check(A, c) and not caps.check(B, b)
    now[0] += 61
    caps.prune(lambda sid: True)
    assert caps.sessions() == []
