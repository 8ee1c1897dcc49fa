"""Unit tests for ffsystemd.limits (pure parsing of limits and screen sizes)."""

from __future__ import annotations

import pytest

from ffsystemd.limits import (
    UINT64_MAX,
    or_none,
    parse_cpu_quota,
    parse_memory_max,
    parse_screen_size,
    parse_tasks_max,
)

GiB = 1024**3
MiB = 1024**2


def test_uint64_max_is_systemd_infinity():
    assert UINT64_MAX == 18446744073709551615


# --- parse_memory_max --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2G", 2 * GiB),
        ("512M", 512 * MiB),
        ("1.5G", int(1.5 * GiB)),
        ("64K", 64 * 1024),
        ("1T", 1024**4),
        ("2g", 2 * GiB),
        (" 2G ", 2 * GiB),
        ("2GiB", 2 * GiB),
        ("2GB", 2 * GiB),
        ("1073741824", GiB),
        (1073741824, GiB),
        (1, 1),
    ],
)
def test_parse_memory_max_sizes(value, expected):
    assert parse_memory_max(value) == expected


def test_parse_memory_max_fraction_is_exact():
    assert parse_memory_max("1.5G") == 1610612736


@pytest.mark.parametrize("value", ["infinity", "INFINITY", " Infinity ", "unlimited", "max", "none"])
def test_parse_memory_max_infinity(value):
    assert parse_memory_max(value) == 2**64 - 1


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        "0",
        "0G",
        "-1",
        "-1G",
        "2X",
        "",
        "   ",
        "lots",
        "G",
        "2 G B extra",
        "1e9",
        True,
        False,
        2**64 - 1,
        2**64,
        2**70,
        "99999999T",
        "18446744073709551615",
        "0.1",
    ],
)
def test_parse_memory_max_rejects(value):
    with pytest.raises(ValueError):
        parse_memory_max(value)


def test_parse_memory_max_error_names_value():
    with pytest.raises(ValueError, match="'2X'"):
        parse_memory_max("2X")


def test_parse_memory_max_largest_int_accepted():
    assert parse_memory_max(2**64 - 2) == 2**64 - 2


def test_parse_memory_max_large_byte_string_is_exact():
    assert parse_memory_max("9007199254740993") == 9007199254740993


# --- parse_tasks_max ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1024, 1024), (1, 1), ("1024", 1024), (" 64 ", 64), ("infinity", UINT64_MAX), ("Max", UINT64_MAX)],
)
def test_parse_tasks_max(value, expected):
    assert parse_tasks_max(value) == expected


@pytest.mark.parametrize(
    "value",
    [0, -1, "0", "-1", "", "many", "1.5", "10%", True, False, 2**64 - 1, 2**64, "18446744073709551615"],
)
def test_parse_tasks_max_rejects(value):
    with pytest.raises(ValueError):
        parse_tasks_max(value)


# --- parse_cpu_quota ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("150%", 1_500_000),
        ("100%", 1_000_000),
        ("50%", 500_000),
        ("12.5%", 125_000),
        (" 200 % ", 2_000_000),
        ("400%", 4_000_000),
    ],
)
def test_parse_cpu_quota_percent_to_usec_per_sec(value, expected):
    assert parse_cpu_quota(value) == expected


@pytest.mark.parametrize("value", ["", "   ", None, "infinity", "none"])
def test_parse_cpu_quota_none_is_infinity(value):
    assert parse_cpu_quota(value) == UINT64_MAX


@pytest.mark.parametrize(
    "value", ["fast", "150", "1.5", "0%", "0.0%", "-50%", "%", "150%%", "1e3%", "150 percent"]
)
def test_parse_cpu_quota_rejects(value):
    with pytest.raises(ValueError):
        parse_cpu_quota(value)


def test_parse_cpu_quota_rejects_quota_rounding_to_zero():
    with pytest.raises(ValueError):
        parse_cpu_quota("0.00001%")


def test_parse_cpu_quota_rejects_quota_beyond_uint64():
    with pytest.raises(ValueError):
        parse_cpu_quota("2000000000000000%")


# --- parse_screen_size -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1920x1080", (1920, 1080)),
        ("1280X720", (1280, 720)),
        (" 800 x 600 ", (800, 600)),
        ("320x240", (320, 240)),
        ("8192x8192", (8192, 8192)),
    ],
)
def test_parse_screen_size(value, expected):
    assert parse_screen_size(value) == expected


@pytest.mark.parametrize(
    "value",
    ["big", "", None, "1920", "1920x", "x1080", "1920*1080", "319x240", "320x239", "8193x1080", "1920x8193",
     "99999x99999", "1920x1080x24", "-1920x1080", "1920.5x1080"],
)  # fmt: skip
def test_parse_screen_size_rejects(value):
    with pytest.raises(ValueError):
        parse_screen_size(value)


# --- or_none -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(UINT64_MAX, None), (2**64, None), (None, None), (0, 0), (1, 1), (UINT64_MAX - 1, UINT64_MAX - 1)],
)
def test_or_none(value, expected):
    assert or_none(value) == expected
