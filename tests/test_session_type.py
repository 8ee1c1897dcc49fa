"""The front end's session type (`ISession` in src/model.ts) names every field of the server's
session JSON, no more, with types that admit what the server sends (null included)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ffsystemd.session import Session, SessionState, session_json
from ffsystemd.session_dirs import SessionPaths
from ffsystemd.systemd_api import UnitSnapshot

MODEL_TS = Path(__file__).resolve().parents[1] / "src" / "model.ts"
SID = "0123456789ab"


def ts_interface(name: str, source: str) -> dict[str, set[str]]:
    """The fields of `export interface <name> { ... }` and the alternatives of each field's type."""
    match = re.search(rf"export interface {name} \{{(.*?)\n\}}", source, re.S)
    assert match, f"interface {name} not found in {MODEL_TS}"
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", match.group(1), flags=re.S)
    fields: dict[str, set[str]] = {}
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        field = re.fullmatch(r"(\w+)(\??):\s*([^;]+);", line)
        assert field, f"cannot read the field line {line!r} of {name}"
        fields[field.group(1)] = {t.strip() for t in field.group(3).split("|")}
    return fields


def ts_string_union(name: str, source: str) -> set[str]:
    """The members of `export type <name> = 'a' | 'b' ...;`."""
    match = re.search(rf"export type {name} =([^;]+);", source)
    assert match, f"type {name} not found"
    return set(re.findall(r"'([^']*)'", match.group(1)))


def rendered(filled: bool, failed: bool = False) -> dict[str, Any]:
    """Session JSON of a running session with every value set, or with every optional one unset;
    `failed`: a launch that failed while starting (its step and the Xpra log's tail set)."""
    snapshot = (
        UnitSnapshot(
            load_state="loaded",
            active_state="active",
            sub_state="running",
            result="success",
            memory_current=300 << 20,
            memory_max=2 << 30,
            tasks_current=40,
            tasks_max=512,
            cpu_quota_per_sec_usec=1_500_000,
            cpu_usage_nsec=123,
        )
        if filled
        else UnitSnapshot()
    )
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    session = Session(
        id=SID,
        unit=f"app-ffsystemd-firefox-{SID}.scope",
        paths=SessionPaths(Path("/nonexistent"), SID),
        start_url="about:blank",
        created=moment,
        state=SessionState.RUNNING,
        result="success" if filled else None,
        message="closed" if filled else None,
        main_pid=4242 if filled else None,
        adopted=filled,
        last_activity=moment if filled else None,
        connections=2 if filled else 0,
        unit_state=snapshot,
    )
    if failed:
        session.state = SessionState.FAILED
        session.step = "xpra-ready"
        session.log_tail = ["fake xpra: failing on purpose"]
    return session_json(session, f"/firefox-launcher/session/{SID}/", "srv-1" if filled else "")


def fits(value: Any, alternatives: set[str], states: set[str]) -> bool:
    """Whether a JSON value is admitted by a TypeScript type written as alternatives."""
    if value is None:
        return "null" in alternatives
    if isinstance(value, bool):
        return "boolean" in alternatives
    if isinstance(value, (int, float)):
        return "number" in alternatives
    if isinstance(value, str):
        return "string" in alternatives or ("SessionState" in alternatives and value in states)
    if isinstance(value, list):
        return "string[]" in alternatives and all(isinstance(item, str) for item in value)
    return False


@pytest.fixture(scope="module")
def source() -> str:
    return MODEL_TS.read_text()


@pytest.mark.parametrize(
    ("filled", "failed"), [(True, False), (False, False), (True, True)], ids=["values", "nulls", "failed"]
)
def test_the_front_end_type_has_exactly_the_server_fields(source: str, filled: bool, failed: bool) -> None:
    fields = ts_interface("ISession", source)
    json = rendered(filled, failed)
    missing = sorted(set(json) - set(fields))
    extra = sorted(set(fields) - set(json))
    assert not missing, f"ISession in src/model.ts lacks fields the server sends: {missing}"
    assert not extra, f"ISession in src/model.ts has fields the server never sends: {extra}"
    states = ts_string_union("SessionState", source)
    wrong = {k: v for k, v in json.items() if not fits(v, fields[k], states)}
    assert not wrong, f"ISession's types do not admit these server values: {wrong}"


def test_the_front_end_knows_every_session_state(source: str) -> None:
    assert ts_string_union("SessionState", source) == {s.value for s in SessionState}
