"""Unit tests for ffsystemd.bodies: the size check and the depth-bounded JSON parser."""

from __future__ import annotations

import json
import time

import pytest

from ffsystemd.bodies import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    announces_body,
    content_length_too_large,
    json_depth,
    parse_json_object,
)


@pytest.mark.parametrize(
    ("header", "too_large"),
    [
        (None, False),
        ("0", False),
        (str(MAX_BODY_BYTES), False),
        (str(MAX_BODY_BYTES + 1), True),
        ("104857600", True),
        ("9" * 40, True),
        ("-1", True),
        ("abc", True),
        ("", True),
        ("10, 10", False),
        ("10, 20", True),
        ("+5", True),
    ],
)
def test_content_length_too_large(header, too_large):
    assert content_length_too_large(header) is too_large


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ('{"a": [1, {"b": 2}]}', 3),
        ('"[[[["', 0),
        ('["\\"[[[", {"a": "]]]]"}]', 2),
        ("[" * 100 + "]" * 100, 100),
        ('"unterminated [[[', 0),
        ("", 0),
    ],
)
def test_json_depth_ignores_brackets_in_strings(text, depth):
    assert json_depth(text) == depth


def test_json_depth_stops_early_and_is_fast_on_the_largest_body():
    text = "[" * MAX_BODY_BYTES
    started = time.monotonic()
    assert json_depth(text, stop_above=MAX_JSON_DEPTH) == MAX_JSON_DEPTH + 1
    assert json_depth(text) == MAX_BODY_BYTES
    assert time.monotonic() - started < 2


def test_parse_accepts_objects_and_empty_bodies():
    assert parse_json_object(b"") == {}
    assert parse_json_object(b"  \n") == {}
    assert parse_json_object(b'{"url": "https://example.org/", "n": 1.5}') == {
        "url": "https://example.org/",
        "n": 1.5,
    }
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert parse_json_object(('{"a": ' + nested + "}").encode()) == {"a": json.loads(nested)}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 30000 + b"]" * 30000, "deeper than 32"),
        (b'{"a":' * 33 + b"1" + b"}" * 33, "deeper than 32"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'"x"', "must be a JSON object"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1e400}', "out of range"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"\xff{}", "not UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        ("\ufeff{}".encode(), "not valid JSON"),
    ],
)
def test_parse_refuses_with_a_reason(raw, words):
    with pytest.raises(ValueError, match=words):
        parse_json_object(raw)


@pytest.mark.parametrize(
    ("content_length", "transfer_encoding", "expected"),
    [
        (None, None, False),
        ("0", None, False),
        (" 0 ", None, False),
        ("1", None, True),
        ("0, 0", None, True),  # anything but a plain 0 says a body may follow
        (None, "chunked", True),
        ("0", "chunked", True),
    ],
)
def test_announces_body(content_length: str | None, transfer_encoding: str | None, expected: bool) -> None:
    assert announces_body(content_length, transfer_encoding) is expected
