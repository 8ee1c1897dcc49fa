"""Session ids: made by the server, checked against one pattern wherever they enter."""

from __future__ import annotations

import re
import secrets

SESSION_ID_PATTERN = r"[0-9a-f]{12}"
_SESSION_ID_RE = re.compile(rf"\A{SESSION_ID_PATTERN}\Z")


def new_session_id() -> str:
    """Return a fresh random session id (12 lowercase hex digits, 48 bits)."""
    return secrets.token_hex(6)


def is_valid_session_id(value: object) -> bool:
    """True only for a string that is exactly a session id as made by new_session_id()."""
    return isinstance(value, str) and _SESSION_ID_RE.match(value) is not None
