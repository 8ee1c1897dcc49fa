"""Default options of Xpra's HTML5 client, passed in the page's query string (pure)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

DEFAULT_CLIENT_OPTIONS: dict[str, str] = {
    "sharing": "true",  # a second tab or a reload attaches instead of stealing
    "sound": "false",  # no audio forwarding (Xpra runs with --speaker=off)
    "floating_menu": "false",  # Xpra's menu must not cover Firefox's toolbar
    "clock": "false",
    "file_transfer": "false",
    "printing": "false",
    "reconnect": "true",
    "submit": "true",
}
"""keyboard_layout is left out on purpose: the client then takes the browser's layout."""


def with_default_options(query: str) -> str | None:
    """The query string with our defaults added for keys it lacks; None when nothing is missing.

    Keys the user gave win over the defaults.
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    present = {key for key, _ in pairs}
    missing = [(k, v) for k, v in DEFAULT_CLIENT_OPTIONS.items() if k not in present]
    if not missing:
        return None
    return urlencode(pairs + missing)
