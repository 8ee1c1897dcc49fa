"""The Xpra client's options: pinned by the server, cosmetic ones checked (pure)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

from ffsystemd.client_options import (
    COSMETIC_DEFAULTS,
    DEFAULT_CLIENT_OPTIONS,
    PINNED_OPTIONS,
    client_options,
    client_query,
    is_canonical,
)

CONNECTION = {
    "server": "evil.example",
    "port": "4444",
    "path": "/elsewhere/",
    "ssl": "true",
    "password": "p",
    "username": "u",
    "encryption": "AES",
    "key": "k",
    "insecure": "true",
    "action": "shadow",
    "display": ":9",
    "shadow_display": ":9",
    "start": "xterm",
    "exit_with_children": "true",
    "exit_with_client": "true",
    "token": "secret",
}


def test_no_query_gives_the_defaults() -> None:
    assert client_options("") == DEFAULT_CLIENT_OPTIONS
    assert DEFAULT_CLIENT_OPTIONS["submit"] == "false"  # never a form asking for a server
    assert DEFAULT_CLIENT_OPTIONS["sharing"] == "true"


@pytest.mark.parametrize("name", sorted(CONNECTION))
def test_connection_and_authentication_options_are_dropped(name: str) -> None:
    assert name not in client_options(urlencode({name: CONNECTION[name]}))


def test_pinned_options_win_over_the_url() -> None:
    flipped = {k: ("true" if v == "false" else "false") for k, v in PINNED_OPTIONS.items()}
    assert client_options(urlencode(flipped)) == DEFAULT_CLIENT_OPTIONS


def test_valid_cosmetic_options_pass_and_the_first_valid_value_wins() -> None:
    options = client_options(
        "keyboard_layout=de&keyboard_layout=fr&floating_menu=true&encoding=bad%20x&encoding=jpeg"
    )
    assert options["keyboard_layout"] == "de"
    assert options["floating_menu"] == "true"
    assert options["encoding"] == "jpeg"


@pytest.mark.parametrize(
    "query",
    [
        "keyboard_layout=%22%3E%3Cscript%3E",
        "touchaction=javascript:1",
        "clock=maybe",
        "bandwidth_limit=-5",
        "keyboard_layout=",
        "serv%65r=evil",
        "=port=1",
    ],
)
def test_bad_values_and_disguised_names_are_dropped(query: str) -> None:
    assert client_options(query) == {**COSMETIC_DEFAULTS, **PINNED_OPTIONS}


def test_client_query_is_stable_and_canonical() -> None:
    query = client_query("keyboard_layout=de&server=x")
    assert query == client_query("server=x&keyboard_layout=de")
    assert is_canonical(query)
    assert dict(parse_qsl(query))["keyboard_layout"] == "de"
    assert not is_canonical("server=x")
    assert not is_canonical("")
    assert not is_canonical(query + "&port=1")
