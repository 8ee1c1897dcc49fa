"""Every malformed request to every API route is a 4xx JSON error (never a 500); bodies are capped.

These tests need no systemd: the launcher points at a bus that does not exist, and every
request here is refused before the manager would use it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from ffsystemd.bodies import MAX_BODY_BYTES

from .conftest import CLEANUP_ROUTE, FIREFOX_ROUTE, HEALTH_ROUTE, Api

pytestmark = pytest.mark.launcher(bus_address="unix:path=/nonexistent/ffsystemd-test-bus")

VALID_ID = "0123456789ab"
DEEP = "[" * 30_000 + "]" * 30_000
DEEP_OBJECT = '{"a":' * 40 + "1" + "}" * 40
HUGE_INT = "1" * 5000
BIG = "x" * (MAX_BODY_BYTES + 1)

# Malformed bodies that are wrong for any route that reads a JSON object.
COMMON_BAD_BODIES: list[bytes | str] = [
    "{",
    "[]",
    "null",
    "42",
    '"a string"',
    "{'single': 'quotes'}",
    DEEP,
    DEEP_OBJECT,
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": 1e999}',
    '{"a": ' + HUGE_INT + "}",
    b"\xff\xfe{\x00",
    '{"url": "x"}'.encode("utf-16"),
    b'{"a": "\xc3\x28"}',
    "\ufeff{}",
    '{"a": 1}' + "x",
    BIG,
]

FIREFOX_BAD_BODIES: list[bytes | str] = [
    json.dumps({"url": 5}),
    json.dumps({"url": 10**30}),
    json.dumps({"url": True}),
    json.dumps({"url": {"nested": "https://example.org/"}}),
    json.dumps({"url": "https://example.org/\ud800"}),
    json.dumps({"url": "https://example.org/\u0000"}),
    json.dumps({"url": "https://exa mple.org/"}),
    json.dumps({"url": "\u202ehttps://example.org/"}),
    json.dumps({"url": "javascript:alert(1)"}),
    json.dumps({"url": "about:" + "a" * 100}),
    json.dumps({"url": "https://example.org/" + "a" * 5000}),
    json.dumps({"unknown": 1}),
    json.dumps({"url": "https://example.org/", "extra": None}),
]

CLEANUP_BAD_BODIES: list[bytes | str] = [
    "",
    "{}",
    json.dumps({"id": 5}),
    json.dumps({"id": None}),
    json.dumps({"id": "ZZZZZZZZZZZZ"}),
    json.dumps({"id": "../../../etc"}),
    json.dumps({"id": VALID_ID.upper()}),
    json.dumps({"id": VALID_ID + "\n"}),
    json.dumps({"id": "".join(chr(0xFF10 + int(c, 16)) for c in "0123456789")}),  # fullwidth digits
    json.dumps({"id": [VALID_ID]}),
    json.dumps({"ids": VALID_ID}),
    json.dumps({"ids": []}),
    json.dumps({"ids": [1, 2]}),
    json.dumps({"ids": [[VALID_ID]]}),
    json.dumps({"ids": [VALID_ID] * 101}),
    json.dumps({"ids": {"a": VALID_ID}}),
    json.dumps({"all": 1}),
    json.dumps({"all": "true"}),
    json.dumps({"all": False}),
    json.dumps({"all": True, "id": VALID_ID}),
    json.dumps({"id": VALID_ID, "ids": [VALID_ID]}),
    json.dumps({"id": VALID_ID, "force": "yes"}),
    json.dumps({"id": VALID_ID, "force": 1}),
    json.dumps({"id": VALID_ID, "keep_profile": None}),
    json.dumps({"id": VALID_ID, "unknown": True}),
    json.dumps({"orphans": 1}),
    json.dumps({"orphans": "yes"}),
    json.dumps({"orphans": True, "force": True}),
    json.dumps({"orphans": True, "all": True}),
    json.dumps({"id": VALID_ID}),  # well formed, but no such session: 404
]

BAD_QUERIES: list[dict[str, str]] = [
    {"id": ""},
    {"id": "zz"},
    {"id": "x" * 5000},
    {"id": VALID_ID.upper()},
    {"id": "../" + VALID_ID},
    {"id": "\u0000"},
    {"id": "\ud7ff" * 3},
    {"id": VALID_ID},  # well formed, unknown: 404
    {"id": VALID_ID, "redirect": "1"},
]

# route name -> (method, route, list of (body, query) requests)
CASES: dict[str, tuple[str, tuple[str, ...], list[tuple[bytes | str | None, dict[str, str] | None]]]] = {
    "launch": ("POST", FIREFOX_ROUTE, [(b, None) for b in COMMON_BAD_BODIES + FIREFOX_BAD_BODIES]),
    "cleanup": ("POST", CLEANUP_ROUTE, [(b, None) for b in COMMON_BAD_BODIES + CLEANUP_BAD_BODIES]),
    "status": ("GET", FIREFOX_ROUTE, [(None, q) for q in BAD_QUERIES] + [(BIG, None)]),
    "probe": ("HEAD", FIREFOX_ROUTE, [(BIG, None)]),
    "health": ("GET", HEALTH_ROUTE, [(BIG, None)]),
}


def _shown(value: bytes | str | dict[str, str] | None) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:60] + f"...({len(text)} chars)"


@pytest.mark.parametrize("route_name", list(CASES))
async def test_every_malformed_request_is_a_4xx_json_error(
    jp_fetch: Callable[..., Any], route_name: str
) -> None:
    method, route, requests = CASES[route_name]
    failures = []
    for body, query in requests:
        response: HTTPResponse = await jp_fetch(
            *route,
            method=method,
            body=body,
            params=query,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        problem = None
        if not 400 <= response.code < 500:
            problem = f"status {response.code}"
        elif method != "HEAD":
            try:
                answer = json.loads(response.body)
            except ValueError:
                problem = f"{response.code} without a JSON body: {response.body[:100]!r}"
            else:
                message = answer.get("message") if isinstance(answer, dict) else None
                if not (isinstance(message, str) and message):
                    problem = f"{response.code} without a message: {answer!r}"
                elif "Traceback" in message or answer.get("traceback"):
                    problem = f"{response.code} with a traceback"
        if problem:
            failures.append(f"{method} body={_shown(body)} query={_shown(query)}: {problem}")
    assert failures == [], "\n".join(failures)


async def test_deep_json_is_400_saying_so(api: Api) -> None:
    reply = await api.call("POST", FIREFOX_ROUTE, raw=DEEP)
    assert reply.code == 400, reply.body
    assert "deeper than 32" in reply.json["message"]


async def test_body_of_exactly_the_limit_is_read(api: Api) -> None:
    # 64 KiB of valid JSON reaches the handler (which then refuses the unknown field, not the size).
    pad = "x" * (MAX_BODY_BYTES - len('{"pad": ""}'))
    raw = json.dumps({"pad": pad})
    assert len(raw) == MAX_BODY_BYTES
    reply = await api.call("POST", CLEANUP_ROUTE, raw=raw)
    assert reply.code == 400, reply.body
    assert "unknown field" in reply.json["message"]


async def _chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b" " * piece
        sent += piece


@pytest.mark.parametrize("route", [FIREFOX_ROUTE, CLEANUP_ROUTE], ids=["launch", "cleanup"])
async def test_chunked_body_over_the_limit_is_413(
    jp_fetch: Callable[..., Any], route: tuple[str, ...]
) -> None:
    produced = 0

    async def producer(write: Callable[[bytes], Any]) -> None:
        nonlocal produced
        async for piece in _chunks(4 * MAX_BODY_BYTES):
            produced += len(piece)
            await write(piece)

    response = await jp_fetch(*route, method="POST", body_producer=producer, raise_error=False)
    assert response.code == 413, (response.code, response.body)
    assert "too large" in json.loads(response.body)["message"]


async def test_chunked_body_under_the_limit_is_parsed(jp_fetch: Callable[..., Any]) -> None:
    raw = json.dumps({"id": VALID_ID, "bogus": 1}).encode()

    async def producer(write: Callable[[bytes], Any]) -> None:
        for i in range(0, len(raw), 5):
            await write(raw[i : i + 5])

    response = await jp_fetch(*CLEANUP_ROUTE, method="POST", body_producer=producer, raise_error=False)
    assert response.code == 400, (response.code, response.body)
    assert "unknown field" in json.loads(response.body)["message"]
