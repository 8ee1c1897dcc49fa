"""Tests of ffsystemd.liveness: the per-server lock that tells live servers from dead ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from fakes.polling import eventually

from ffsystemd.identity import ServerIdentity
from ffsystemd.liveness import (
    ServerIdInUse,
    claim,
    holding_dead,
    is_alive,
    known_servers,
    lock_path,
    read_record,
    try_lock,
)


def _holder(state_dir, server_id: str, spawn_child: bool = False) -> subprocess.Popen:
    """A separate process that claims server_id and then waits (optionally with a child)."""
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from pathlib import Path
        from ffsystemd.liveness import try_lock
        lock = try_lock(Path({str(state_dir)!r}), {server_id!r})
        assert lock is not None
        lock.write_record({{"pid": __import__("os").getpid()}})
        if {spawn_child!r}:
            child = subprocess.Popen(["sleep", "60"])
            print(child.pid, flush=True)
        else:
            print(0, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    proc.child_pid = int(proc.stdout.readline())  # type: ignore[attr-defined]
    return proc


def test_lock_held_means_alive_and_released_means_dead(tmp_path):
    assert not is_alive(tmp_path, "a")  # never ran
    lock = try_lock(tmp_path, "a")
    assert lock is not None
    lock.write_record({"pid": os.getpid(), "session_root": "/x"})
    assert is_alive(tmp_path, "a")
    assert try_lock(tmp_path, "a") is None  # a second holder is refused
    record = read_record(lock_path(tmp_path, "a"))
    assert record == {"server_id": "a", "pid": os.getpid(), "session_root": "/x"}
    lock.release()
    lock.release()  # idempotent
    assert not is_alive(tmp_path, "a")
    assert lock_path(tmp_path, "a").exists()  # the record stays for later cleanups


async def test_sigkilled_server_is_dead_and_its_children_do_not_keep_it_alive(tmp_path):
    proc = _holder(tmp_path, "lab-1", spawn_child=True)
    child = proc.child_pid  # type: ignore[attr-defined]
    try:
        assert is_alive(tmp_path, "lab-1")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        os.kill(child, 0)  # the server's child still runs, but does not hold the lock
        await eventually(lambda: not is_alive(tmp_path, "lab-1"), 5, "the lock to be free")
    finally:
        proc.kill()
        proc.wait()
        os.kill(child, signal.SIGKILL)


def test_derived_identity_takes_the_first_free_slot(tmp_path):
    ident = ServerIdentity("nb-1a2b3c4d", "derived")
    first = claim(tmp_path, ident, {"pid": 1})
    second = claim(tmp_path, ident, {"pid": 2})
    assert (first.server_id, second.server_id) == ("nb-1a2b3c4d", "nb-1a2b3c4d-2")
    first.release()
    again = claim(tmp_path, ident, {"pid": 3})  # a restart of the first gets its own id back
    assert again.server_id == "nb-1a2b3c4d"
    assert read_record(again.path)["pid"] == 3
    again.release()
    second.release()


def test_configured_identity_in_use_is_refused_naming_the_holder(tmp_path):
    proc = _holder(tmp_path, "mine")
    try:
        with pytest.raises(ServerIdInUse) as info:
            claim(tmp_path, ServerIdentity("mine", "config"), {"pid": 1}, wait=0.3)
        assert info.value.holder["pid"] == proc.pid
        assert "mine" in str(info.value) and str(proc.pid) in str(info.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_cleaner_holds_a_dead_servers_lock_and_a_live_one_is_refused(tmp_path):
    live = try_lock(tmp_path, "live")
    assert live is not None
    dead = try_lock(tmp_path, "dead")
    assert dead is not None
    dead.write_record({"session_root": "/somewhere"})
    dead.release()
    with holding_dead(tmp_path, "live") as held:
        assert held is None
    with holding_dead(tmp_path, "dead") as held:
        assert held is not None
        assert try_lock(tmp_path, "dead") is None  # the dead server cannot restart meanwhile
    assert not is_alive(tmp_path, "dead")
    records = {r.server_id: r for r in known_servers(tmp_path)}
    assert records["live"].alive and not records["dead"].alive
    assert str(records["dead"].session_root) == "/somewhere"  # the cleaner kept the record
    live.release()


def test_invalid_ids_never_become_paths(tmp_path):
    with pytest.raises(ValueError):
        lock_path(tmp_path, "../x")
    (tmp_path / "servers").mkdir()
    (tmp_path / "servers" / "..bad.lock").write_text("{}")
    (tmp_path / "servers" / "notes.txt").write_text("")
    assert known_servers(tmp_path) == []
