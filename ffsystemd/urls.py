"""Start-page URLs a user may ask Firefox to open (pure checks)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_ABOUT_RE = re.compile(r"\Aabout:[a-z][a-z-]{0,40}\Z")


def check_start_url(value: object) -> str:
    """Return value if it is an http(s) URL or an about: page; else raise ValueError saying why."""
    if not isinstance(value, str):
        raise ValueError(f"url must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_URL_LENGTH:
        raise ValueError(f"url must be 1 to {MAX_URL_LENGTH} characters long")
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("url must not contain whitespace or control characters (nor lone surrogates)")
    if _ABOUT_RE.match(value):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The URL itself is not repeated: the answer is logged (Jupyter logs 4xx messages), and
        # a URL can carry a secret.
        if parts.scheme in ("http", "https"):
            kind = f"a {parts.scheme}: URL without a host"
        elif parts.scheme.isalnum() and len(parts.scheme) <= 16:
            kind = f"a {parts.scheme}: URL"
        else:
            kind = "something else"
        raise ValueError(f"url must be an http(s) URL or an about: page, got {kind}")
    return value
