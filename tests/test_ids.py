"""Unit tests for ffsystemd.ids (session id generation and validation)."""

from __future__ import annotations

import re

import pytest

from ffsystemd.ids import SESSION_ID_PATTERN, is_valid_session_id, new_session_id


def test_new_session_id_matches_pattern():
    for _ in range(200):
        sid = new_session_id()
        assert isinstance(sid, str)
        assert re.fullmatch(r"[0-9a-f]{12}", sid), sid
        assert re.fullmatch(SESSION_ID_PATTERN, sid)
        assert is_valid_session_id(sid)


def test_new_session_id_is_unique_over_many_draws():
    draws = [new_session_id() for _ in range(20_000)]
    assert len(set(draws)) == len(draws)


def test_new_session_id_uses_all_hex_digits():
    seen = set("".join(new_session_id() for _ in range(500)))
    assert seen == set("0123456789abcdef")


@pytest.mark.parametrize("value", ["abcdef012345", "000000000000", "ffffffffffff", "0123456789ab"])
def test_is_valid_session_id_accepts(value):
    assert is_valid_session_id(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "",
        "../",
        "../abcdef0123",
        "abcdef/12345",
        "abcdef01234",  # 11 chars
        "abcdef0123456",  # 13 chars
        "ABCDEF012345",
        "abcdeF012345",
        "abcdefg12345",
        "abcdef012345\n",
        "\nabcdef012345",
        " abcdef012345",
        "abcdef012345 ",
        "abcdef01234\x00",
        "１２３４５６７８９０１２",  # fullwidth digits  # noqa: RUF001
        "٠١٢٣٤٥٦٧٨٩٠١",  # Arabic-Indic digits
        "a" * 10_000,
        "abcdef012345" * 2,
    ],
)
def test_is_valid_session_id_rejects_strings(value):
    assert is_valid_session_id(value) is False


@pytest.mark.parametrize(
    "value", [None, 123456789012, 0xABCDEF012345, b"abcdef012345", ["abcdef012345"], object()]
)
def test_is_valid_session_id_rejects_non_strings(value):
    assert is_valid_session_id(value) is False
