"""Unit tests for ffsystemd.units (unit names and StartTransientUnit properties)."""

from __future__ import annotations

import dataclasses
import fnmatch
import re

import pytest

from ffsystemd.ids import new_session_id
from ffsystemd.limits import UINT64_MAX
from ffsystemd.units import (
    UNIT_GLOB,
    UNIT_NAME_PATTERN,
    ScopeLimits,
    UnitProperty,
    is_valid_slice_name,
    scope_properties,
    session_id_of,
    unit_name,
)

SID = "abcdef012345"


# --- unit names ----------------------------------------------------------------


def test_unit_name():
    assert unit_name(SID) == "app-ffsystemd-firefox-abcdef012345.scope"


def test_unit_name_round_trip():
    for _ in range(100):
        sid = new_session_id()
        name = unit_name(sid)
        assert session_id_of(name) == sid
        assert re.fullmatch(UNIT_NAME_PATTERN, name)
        assert fnmatch.fnmatchcase(name, UNIT_GLOB)


@pytest.mark.parametrize(
    "bad", ["", "../x", "ABCDEF012345", "abcdef01234", "abcdef0123456", "abcdef012345\n", None, 12]
)
def test_unit_name_rejects_invalid_ids(bad):
    with pytest.raises(ValueError):
        unit_name(bad)


@pytest.mark.parametrize(
    "name",
    [
        "app-ffsystemd.slice",
        "app-ffsystemd-firefox-.scope",
        "app-ffsystemd-firefox-ABCDEF012345.scope",
        "app-ffsystemd-firefox-abcdef01234.scope",
        "app-ffsystemd-firefox-abcdef0123456.scope",
        "app-ffsystemd-firefox-abcdef012345.service",
        "app-ffsystemd-firefox-abcdef012345.scope.scope",
        "app-ffsystemd-firefox-abcdef012345.scope\n",
        "app-ffsystemd-firefox-../../x.scope",
        "app-ffsystemd-firefox-abcdef012345-x.scope",
        "xapp-ffsystemd-firefox-abcdef012345.scope",
        "app-other-firefox-abcdef012345.scope",
        "run-u123.scope",
        "session-2.scope",
        "",
    ],
)
def test_session_id_of_rejects_foreign_names(name):
    assert session_id_of(name) is None


def test_unit_name_pattern_rejects_foreign_names():
    assert re.fullmatch(UNIT_NAME_PATTERN, "app-ffsystemd-firefox-abcdef012345xscope") is None
    assert re.fullmatch(UNIT_NAME_PATTERN, "app-ffsystemd-firefox-ABCDEF012345.scope") is None


# --- scope_properties ------------------------------------------------------------


def _props(limits: ScopeLimits, **kwargs) -> dict[str, UnitProperty]:
    args = {"pid": 4242, "description": "Firefox session abcdef012345", "slice_name": "app-ffsystemd.slice"}
    args.update(kwargs)
    props = scope_properties(limits=limits, **args)
    names = [prop.name for prop in props]
    assert len(names) == len(set(names)), f"duplicate properties: {names}"
    for prop in props:
        assert isinstance(prop, UnitProperty) and isinstance(prop.name, str) and prop.signature, prop
    return {prop.name: prop for prop in props}


FULL_LIMITS = ScopeLimits(
    memory_max=2 * 1024**3,
    tasks_max=1024,
    cpu_quota_per_sec_usec=1_500_000,
    stop_timeout_usec=7_000_000,
    runtime_max_usec=3_600_000_000,
)


def test_scope_properties_signatures_and_values():
    props = _props(FULL_LIMITS)
    expected = {
        "Description": ("s", "Firefox session abcdef012345"),
        "PIDs": ("au", [4242]),
        "Slice": ("s", "app-ffsystemd.slice"),
        "CollectMode": ("s", "inactive-or-failed"),
        "TimeoutStopUSec": ("t", 7_000_000),
        "SendSIGKILL": ("b", True),
        "MemoryAccounting": ("b", True),
        "MemoryMax": ("t", 2 * 1024**3),
        "TasksAccounting": ("b", True),
        "TasksMax": ("t", 1024),
        "CPUAccounting": ("b", True),
        "CPUQuotaPerSecUSec": ("t", 1_500_000),
        "RuntimeMaxUSec": ("t", 3_600_000_000),
    }
    assert set(props) == set(expected)
    for name, (signature, value) in expected.items():
        assert props[name].signature == signature, name
        assert props[name].value == value, name


def test_scope_properties_without_limits_omits_them():
    props = _props(ScopeLimits())
    assert set(props) == {"Description", "PIDs", "Slice", "CollectMode", "TimeoutStopUSec", "SendSIGKILL"}
    assert props["TimeoutStopUSec"].value == 5_000_000


@pytest.mark.parametrize(
    ("field", "omitted"),
    [
        ("memory_max", {"MemoryMax", "MemoryAccounting"}),
        ("tasks_max", {"TasksMax", "TasksAccounting"}),
        ("cpu_quota_per_sec_usec", {"CPUQuotaPerSecUSec", "CPUAccounting"}),
        ("runtime_max_usec", {"RuntimeMaxUSec"}),
    ],
)
def test_scope_properties_omits_each_infinite_limit(field, omitted):
    limits = dataclasses.replace(FULL_LIMITS, **{field: UINT64_MAX})
    props = _props(limits)
    assert not omitted & set(props)
    # every other limit is still there
    full = set(_props(FULL_LIMITS))
    assert set(props) == full - omitted


def test_scope_properties_values_never_exceed_uint64():
    for _name, variant in _props(FULL_LIMITS).items():
        if variant.signature == "t":
            assert 0 <= variant.value < UINT64_MAX


def test_scope_properties_description_and_slice_are_passed_through():
    props = _props(ScopeLimits(), description="x y 'z'", slice_name="custom-a.slice", pid=1)
    assert props["Description"].value == "x y 'z'"
    assert props["Slice"].value == "custom-a.slice"
    assert props["PIDs"].value == [1]


# --- slice names -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["app-ffsystemd.slice", "app.slice", "user-1000.slice", "a_b:c.slice", "x" * 200 + ".slice"]
)
def test_is_valid_slice_name_accepts(name):
    assert is_valid_slice_name(name) is True


@pytest.mark.parametrize(
    "name",
    [
        "foo",
        "",
        ".slice",
        "app-ffsystemd.scope",
        "app-ffsystemd.service",
        "app-ffsystemd.slice\n",
        "app ffsystemd.slice",
        "../app.slice",
        "a/b.slice",
        "app-ffsystemd.slice.d",
        "x" * 201 + ".slice",
        "ä.slice",
    ],
)
def test_is_valid_slice_name_rejects(name):
    assert is_valid_slice_name(name) is False
