"""Unit tests for ffsystemd.identity: server ids, descriptions, default session roots (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffsystemd.identity import (
    MAX_SERVER_ID,
    check_server_id,
    default_session_root,
    derived_server_id,
    hub_server_id,
    is_valid_server_id,
    server_id_from_description,
    server_identity,
    under_jupyterhub,
    unit_description,
)
from ffsystemd.session_dirs import check_root_length

HUB_ENV = {
    "JUPYTERHUB_USER": "alice",
    "JUPYTERHUB_SERVER_NAME": "work",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/work/",
}


@pytest.mark.parametrize("value", ["a", "lab-1", "alice.work-81bd22ea", "x" * MAX_SERVER_ID, "0_x"])
def test_valid_server_ids(value):
    assert is_valid_server_id(value)
    assert check_server_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "-a", ".a", "..", "A", "a/b", "a b", "x" * (MAX_SERVER_ID + 1), "sessions", "servers", "é", "a\n"],
)
def test_invalid_server_ids(value):
    assert not is_valid_server_id(value)
    with pytest.raises(ValueError):
        check_server_id(value)


def test_hub_ids_are_stable_distinct_and_valid():
    assert hub_server_id("alice") == hub_server_id("alice")
    ids = {
        hub_server_id("alice"),
        hub_server_id("alice", "work"),
        hub_server_id("alice", "play"),
        hub_server_id("bob"),
        hub_server_id("a.b"),
        hub_server_id("a", "b"),
    }
    assert len(ids) == 6
    assert all(is_valid_server_id(i) for i in ids)
    assert hub_server_id("alice", "work").startswith("alice.work-")


@pytest.mark.parametrize(
    ("user", "server"),
    [("Alice@Example.COM", ""), ("ü" * 40, "ñ" * 40), ("-", "/"), ("a" * 200, "b" * 200)],
)
def test_hub_ids_of_odd_names_are_valid(user, server):
    assert is_valid_server_id(hub_server_id(user, server))


def test_derived_ids_depend_on_root_dir_and_base_url_only():
    a = derived_server_id("/home/alice/notebooks", "/")
    assert a.startswith("notebooks-")
    assert a == derived_server_id("/home/alice/notebooks/", "")
    assert a != derived_server_id("/home/alice/other", "/")
    assert a != derived_server_id("/home/alice/notebooks", "/lab/")
    assert is_valid_server_id(derived_server_id("/", "/"))


def test_identity_order_config_then_hub_then_derived():
    chosen = server_identity(configured="mine", environ=HUB_ENV, root_dir="/x", base_url="/user/alice/work/")
    assert (chosen.server_id, chosen.source, chosen.candidates()) == ("mine", "config", ["mine"])
    hub = server_identity(configured="", environ=HUB_ENV, root_dir="/x", base_url="/user/alice/work/")
    assert hub.source == "jupyterhub"
    assert (hub.hub_user, hub.hub_server_name) == ("alice", "work")
    assert hub.server_id == hub_server_id("alice", "work")
    assert hub.candidates() == [hub.server_id]
    local = server_identity(configured="", environ={}, root_dir="/x", base_url="/")
    assert local.source == "derived"
    slots = local.candidates()
    assert slots[0] == local.server_id and slots[1] == f"{local.server_id}-2"
    assert all(is_valid_server_id(s) for s in slots)


def test_a_server_started_inside_a_hub_server_is_not_the_hub_server():
    assert under_jupyterhub(HUB_ENV, "/user/alice/work")
    assert not under_jupyterhub(HUB_ENV, "/")  # `jupyter lab` run in the hub server's terminal
    assert not under_jupyterhub({"JUPYTERHUB_SERVICE_PREFIX": "/"}, "/")
    nested = server_identity(configured="", environ=HUB_ENV, root_dir="/x", base_url="/")
    assert nested.source == "derived"


def test_description_round_trip_and_foreign_descriptions():
    text = unit_description("0123456789ab", "alice.work-81bd22ea")
    assert "0123456789ab" in text
    assert server_id_from_description(text) == "alice.work-81bd22ea"
    assert server_id_from_description("Firefox session 0123456789ab (ffsystemd)") is None
    assert server_id_from_description("") is None
    assert server_id_from_description("x (ffsystemd server ../etc)") is None


def test_default_session_root_fits_socket_paths():
    home = Path("/home/alice")
    root = default_session_root("notebooks-1a2b3c4d", home)
    assert root == home / ".firefox-launcher" / "notebooks-1a2b3c4d"
    check_root_length(root)
    long_home = Path("/home/" + "x" * 30)
    short = default_session_root("alice.workworkwo-81bd22ea", long_home)
    assert short.parent == long_home / ".firefox-launcher"
    assert len(short.name) == 8
    check_root_length(short)
    assert short != default_session_root("alice.other-81bd22ea", long_home)


def test_session_metadata_names_its_owner(tmp_path):
    from ffsystemd.ownership import is_own_dir, is_own_unit, owner_of_dir, session_metadata

    base = tmp_path / "session-0123456789ab"
    base.mkdir()
    assert owner_of_dir(base) is None  # no session.json: nobody's
    meta = session_metadata(
        session_id="0123456789ab", server_id="lab-1", unit="u", start_url="about:blank", created="now"
    )
    (base / "session.json").write_text(json.dumps(meta))
    assert owner_of_dir(base) == "lab-1"
    assert is_own_dir(base, "lab-1") and not is_own_dir(base, "lab-2")
    (base / "session.json").write_text('{"server_id": "../x"}')
    assert owner_of_dir(base) is None
    (base / "session.json").write_text("[1]")
    assert owner_of_dir(base) is None
    assert is_own_unit(unit_description("0123456789ab", "lab-1"), "lab-1")
    assert not is_own_unit(unit_description("0123456789ab", "lab-1"), "lab-10")
