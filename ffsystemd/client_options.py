"""Options of Xpra's HTML5 client, which it reads from its page's query string (pure).

The server decides every option that changes where the client connects or how it
authenticates: those are never taken from a URL (a link with `?server=evil&port=...` would
otherwise make the client connect to a server of its sender's choice). Left out, the client
derives them from its own page's location, i.e. the session's capability path on the server
it was served from. PINNED_OPTIONS are always set to our values; a user may choose only the
cosmetic options of COSMETIC_OPTIONS (each value checked); everything else is dropped.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

PINNED_OPTIONS: dict[str, str] = {
    "sharing": "true",  # a second tab or a reload attaches instead of stealing
    "sound": "false",  # no audio forwarding (Xpra runs with --speaker=off)
    "file_transfer": "false",
    "printing": "false",
    "reconnect": "true",  # Xpra's own reconnects reuse the page's capability path
    "submit": "false",  # never navigate to connect.html (a form that asks for a server)
}
"""Set by the server whatever the URL says."""

COSMETIC_DEFAULTS: dict[str, str] = {
    "floating_menu": "false",  # Xpra's menu must not cover Firefox's toolbar
    "clock": "false",
}
"""Defaults of cosmetic options; a user's valid value wins."""

_BOOL = re.compile(r"\A(true|false|on|off|yes|no|1|0)\Z")
COSMETIC_OPTIONS: dict[str, re.Pattern[str]] = {
    "floating_menu": _BOOL,
    "autohide": _BOOL,
    "clock": _BOOL,
    "swap_keys": _BOOL,
    "clipboard": _BOOL,
    "video": _BOOL,
    "keyboard_layout": re.compile(r"\A[a-z]{2,8}([_-][A-Za-z0-9]{1,8})?\Z"),
    "touchaction": re.compile(r"\A(scroll|zoom)\Z"),
    "encoding": re.compile(r"\A[a-z0-9+]{1,16}\Z"),
    "bandwidth_limit": re.compile(r"\A[0-9]{1,12}\Z"),
}
"""Options a URL may set (keyboard, display and performance choices), with their valid values.

keyboard_layout has no default on purpose: the client then takes the browser's layout.
"""

DEFAULT_CLIENT_OPTIONS: dict[str, str] = {**PINNED_OPTIONS, **COSMETIC_DEFAULTS}
"""What a page without any user option gets."""


def client_options(query: str) -> dict[str, str]:
    """The client's options for a page asked for with `query`: pinned, defaults, valid cosmetic ones.

    Connection and authentication options (server, port, path, ssl, password, encryption, key,
    insecure, ...), Jupyter's token and any unknown key are dropped; the first valid value of a
    repeated key wins.
    """
    chosen: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        pattern = COSMETIC_OPTIONS.get(key)
        if pattern is not None and key not in chosen and pattern.match(value):
            chosen[key] = value
    return {**COSMETIC_DEFAULTS, **chosen, **PINNED_OPTIONS}


def client_query(query: str) -> str:
    """client_options(query) as a query string, in a stable order."""
    return urlencode(sorted(client_options(query).items()))


def is_canonical(query: str) -> bool:
    """True if query is exactly what client_query() makes of it (nothing to drop or add)."""
    return parse_qsl(query, keep_blank_values=True) == sorted(client_options(query).items())
