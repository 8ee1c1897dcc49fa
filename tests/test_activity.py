"""ffsystemd.activity: a session's last activity reaches its session.json, rate-limited and safely.

The file helpers are tested on a plain session directory; the recorder through a manager on the
in-memory systemd (tests/fakes/manager_world.py), whose world checks nothing is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fakes.manager_world import World
from fakes.polling import eventually

from ffsystemd.activity import read_last_activity, read_session_metadata, save_last_activity
from ffsystemd.session_dirs import (
    create_session_dirs,
    ensure_root,
    read_session_file,
    remove_session_dir,
    replace_session_file,
    session_paths,
)

SID = "abcdef012345"
MOMENT = datetime(2026, 12, 2, 1, 2, 3, 456000, tzinfo=timezone.utc)


@pytest.fixture
def paths(tmp_path: Path):
    paths = session_paths(ensure_root(tmp_path / "sessions"), SID)
    create_session_dirs(paths)
    (paths.base / "session.json").write_text(json.dumps({"id": SID, "server_id": "s1"}))
    return paths


def test_last_activity_is_added_keeping_every_other_key(paths) -> None:
    assert read_last_activity(paths) is None
    assert save_last_activity(paths, MOMENT)
    data = json.loads((paths.base / "session.json").read_text())
    assert data == {"id": SID, "server_id": "s1", "last_activity": "2026-12-02T01:02:03.456000Z"}
    assert read_last_activity(paths) == MOMENT
    assert (paths.base / "session.json").stat().st_mode & 0o777 == 0o600
    assert not (paths.base / ".session.json.tmp").exists()


def test_a_symlinked_session_json_is_neither_read_nor_written_through(paths, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"id": SID}))
    (paths.base / "session.json").unlink()
    (paths.base / "session.json").symlink_to(target)
    assert read_session_metadata(paths) is None
    assert not save_last_activity(paths, MOMENT)
    assert json.loads(target.read_text()) == {"id": SID}  # untouched


def test_something_planted_at_the_temporary_name_is_replaced_not_written_through(
    paths, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.link(victim, paths.base / ".session.json.tmp")  # a hard link to another file of ours
    assert save_last_activity(paths, MOMENT)
    assert victim.read_text() == "keep me"
    (paths.base / ".session.json.tmp").symlink_to(victim)
    assert save_last_activity(paths, MOMENT)
    assert victim.read_text() == "keep me"
    assert read_last_activity(paths) == MOMENT


def test_a_fifo_is_not_read_and_does_not_block(paths) -> None:
    os.mkfifo(paths.base / "pipe")
    assert read_session_file(paths, "pipe") is None


def test_nothing_is_written_when_the_session_directory_is_gone_or_a_symlink(paths, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    os.rename(paths.base, elsewhere)
    assert not replace_session_file(paths, "session.json", b"{}")
    assert not paths.base.exists()
    paths.base.symlink_to(elsewhere)
    assert not replace_session_file(paths, "x.json", b"{}")
    assert not (elsewhere / "x.json").exists()
    assert read_session_file(paths, "session.json") is None


def test_a_too_large_file_is_not_read(paths) -> None:
    (paths.base / "big").write_bytes(b"x" * 70000)
    assert read_session_file(paths, "big") is None


# --- through the manager -------------------------------------------------------------------------
def on_disk(world: World, sid: str) -> str | None:
    return json.loads((world.root / f"session-{sid}" / "session.json").read_text()).get("last_activity")


async def test_first_activity_is_written_at_once_later_ones_once_per_interval(
    memory_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = memory_world.make(activity_interval=0.5)
    session = await memory_world.launch(manager)
    sid = session["id"]
    assert on_disk(memory_world, sid) is None
    manager.record_activity(sid)
    first = (await manager.status(sid))["last_activity"]
    assert first is not None and on_disk(memory_world, sid) == first  # at once

    writes: list[str] = []
    rename = os.rename

    def counting_rename(src: str, dst: str, **kwargs: int) -> None:
        writes.append(dst)
        rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", counting_rename)
    for _ in range(50):  # a burst of websocket frames
        manager.connection_opened(sid)
        manager.record_activity(sid)
        manager.connection_closed(sid)
    latest = (await manager.status(sid))["last_activity"]
    assert latest > first
    assert on_disk(memory_world, sid) == first  # not per frame
    await eventually(lambda: on_disk(memory_world, sid) == latest, 5, "the deferred write")
    assert writes == ["session.json"]  # one write for the whole burst
    monkeypatch.undo()
    assert (await manager.cleanup([sid]))[0] == [sid]


async def test_a_session_being_ended_is_not_written_and_is_forgotten(memory_world: World) -> None:
    manager = memory_world.make(activity_interval=0.3, keep_profile=True)
    session = await memory_world.launch(manager)
    sid = session["id"]
    manager.record_activity(sid)
    written = on_disk(memory_world, sid)
    manager.record_activity(sid)  # deferred
    assert sid in manager.activity._timers
    stopped, errors = await manager.cleanup([sid])
    assert stopped == [sid] and not errors
    assert sid not in manager.activity._timers and sid not in manager.activity._saved
    await asyncio.sleep(0.5)  # past the interval: the deferred write must not come
    assert on_disk(memory_world, sid) == written  # kept profile: the file stays as it was
    manager.record_activity(sid)  # unknown now: nothing happens
    assert sid not in manager.activity._saved
    assert remove_session_dir(session_paths(memory_world.root, sid))  # the kept profile


async def test_a_re_adopting_server_starts_from_the_recorded_last_activity(memory_world: World) -> None:
    first = memory_world.make(activity_interval=60)
    session = await memory_world.launch(first)
    sid = session["id"]
    first.record_activity(sid)  # written at once
    await asyncio.sleep(0.01)
    first.record_activity(sid)  # deferred for a minute: the shutdown writes it
    recorded = (await first.status(sid))["last_activity"]
    assert on_disk(memory_world, sid) != recorded
    await first.shutdown(stop_sessions=False)
    assert on_disk(memory_world, sid) == recorded
    memory_world.retire(first)
    second = memory_world.make()
    await second.start()
    adopted = await second.status(sid)
    assert adopted["adopted"] is True
    assert adopted["last_activity"] == recorded
    assert (await second.cleanup([sid]))[0] == [sid]
