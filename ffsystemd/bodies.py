"""Request bodies of the REST API: a small size cap and a JSON parser that cannot be made to recurse.

Pure functions (no HTTP): the handlers turn the ValueError into a 400 and the size checks
into a 413.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_BODY_BYTES = 64 * 1024
"""The largest request body an API route reads; larger ones are refused before they are read."""

MAX_JSON_DEPTH = 32
"""How deeply arrays and objects may nest in a request body (ours need 2)."""

# A JSON string (with its escapes) or one bracket: brackets inside strings do not count.
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def content_length_too_large(header: str | None, limit: int = MAX_BODY_BYTES) -> bool:
    """True when a Content-Length header announces more than limit bytes (or is not a number).

    None (no header, e.g. a chunked body) is not too large: the streamed bytes are counted.
    """
    if header is None:
        return False
    values = {part.strip() for part in header.split(",")}
    if len(values) != 1:
        return True
    (value,) = values
    return not value.isdigit() or len(value) > 12 or int(value) > limit


def json_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in text (brackets inside strings ignored).

    With stop_above, counting stops as soon as the depth passes it.
    """
    depth = deepest = 0
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def parse_json_object(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a request body as one JSON object ({} for an empty body); ValueError saying why not.

    The body must be UTF-8; nesting deeper than max_depth, NaN/Infinity, numbers out of
    range and anything but an object at the top are refused.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"request body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if not text.strip():
        return {}
    if json_depth(text, stop_above=max_depth) > max_depth:
        raise ValueError(f"request body nests deeper than {max_depth} levels")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:  # belt and braces: json_depth bounds the nesting first
        raise ValueError(f"request body nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise ValueError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data


def announces_body(content_length: str | None, transfer_encoding: str | None) -> bool:
    """True when a request says a body follows: any Transfer-Encoding, or a Content-Length but 0.

    For routes that take no body at all (the session pages): such a request is refused before
    a byte of the body is read.
    """
    if transfer_encoding is not None:
        return True
    return content_length is not None and content_length.strip() != "0"


class AnswerTracking:
    """Handler mixin: `answered` turns true once the response is finished (tornado's public
    `on_finish` hook), so a streamed body's later chunks can be ignored without reading
    tornado's private `_finished`."""

    answered = False

    def on_finish(self) -> None:
        self.answered = True
        super().on_finish()  # type: ignore[misc]
