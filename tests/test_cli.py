"""`ffsystemd list | status | logs | stop | doctor` against the fake systemd user manager.

Sessions here are scopes started in the fake around a `sleep` (as the server would start
them around Xpra) plus `session-<id>/` directories in a temporary session root; foreign
units have our name but no directory under that root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dbus
import pytest
from fakes.dbus_world import FAKE_XPRA, FakeSystemd, Sleepers
from fakes.polling import wait_until

from ffsystemd import cli
from ffsystemd.failed_logs import keep_failed_log
from ffsystemd.ids import new_session_id
from ffsystemd.session_dirs import create_session_dirs, session_paths
from ffsystemd.units import unit_name


class World:
    """A fake user manager, a session root, and the `ffsystemd` command pointed at both."""

    def __init__(self, fake: FakeSystemd, root: Path, config: Path) -> None:
        self.fake = fake
        self.root = root
        self.config = config
        self.sleepers = Sleepers(fake)

    def session(
        self, *, directory: bool = True, unit: bool = True, server: str | None = None, log: str = ""
    ) -> str:
        """A session id with (optionally) a directory under the root and a running scope."""
        sid = new_session_id()
        if directory:
            paths = session_paths(self.root, sid)
            create_session_dirs(paths)
            metadata = {"id": sid, "created": "2026-12-01T10:00:00Z", "start_url": "about:blank"}
            if server:
                metadata["server_id"] = server
            (paths.base / "session.json").write_text(json.dumps(metadata))
            paths.xpra_log.write_text(log)
        if unit:
            self.start_scope(unit_name(sid), f"Firefox session {sid} (ffsystemd)")
        return sid

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The sleeps in the scopes of this world's sessions, in the order they started."""
        return self.sleepers.processes

    def start_scope(self, name: str, description: str) -> int:
        """A running scope (1 GiB, 512 tasks) around a new sleep; its PID."""
        return self.sleepers.start(
            name,
            description,
            stop_timeout_usec=None,
            extra=(
                ("MemoryMax", dbus.UInt64(1024**3, variant_level=1)),
                ("TasksMax", dbus.UInt64(512, variant_level=1)),
            ),
        )

    def run(self, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        """Run `ffsystemd ARGV` against this world; (exit code, stdout, stderr)."""
        command, *rest = argv
        code = cli.main(
            [
                command,
                "--bus-address",
                self.fake.address,
                "--session-root",
                str(self.root),
                "--config",
                str(self.config),
                *rest,
            ]
        )
        out, err = capsys.readouterr()
        return code, out, err

    def run_json(self, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
        code, out, err = self.run(*argv, "--json", capsys=capsys)
        assert out, err
        return code, json.loads(out)


@pytest.fixture
def world(fake_systemd: FakeSystemd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # Liveness locks of (made-up) servers go to ~/.firefox-launcher/servers: a private home.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # Short: the session sockets under it must fit in a unix socket address.
    root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    config = tmp_path / "jupyter_server_config.json"
    config.write_text(json.dumps({"FirefoxLauncher": {"xpra_command": [sys.executable, str(FAKE_XPRA)]}}))
    w = World(fake_systemd, root, config)
    yield w
    w.sleepers.end()
    shutil.rmtree(root, ignore_errors=True)


Run = Callable[..., tuple[int, str, str]]


# --- list ---------------------------------------------------------------------------------------------
def test_list_json_shows_our_sessions_with_their_figures(world: World, capsys: Any) -> None:
    running = world.session(server="srv-a")
    leftover = world.session(unit=False)
    foreign = world.session(directory=False)
    code, body = world.run_json("list", capsys=capsys)
    assert code == cli.EXIT_OK
    assert body["session_roots"] == [str(world.root)]
    by_id = {s["id"]: s for s in body["sessions"]}
    assert set(by_id) == {running, leftover}  # the foreign unit is not listed by default
    one = by_id[running]
    assert one["unit"] == unit_name(running)
    assert (one["state"], one["server"], one["ours"]) == ("running", "srv-a", True)
    assert (one["memory_max"], one["tasks_max"]) == (1024**3, 512)
    assert one["memory_current"] == 12345678  # what the fake reports
    assert one["tasks_current"] == 1
    assert one["created"] == "2026-12-01T10:00:00Z"
    assert one["age_seconds"] > 0
    assert (by_id[leftover]["state"], by_id[leftover]["unit_loaded"]) == ("stopped", False)
    assert foreign not in by_id


def test_list_foreign_shows_units_of_other_roots_as_not_ours(world: World, capsys: Any) -> None:
    foreign = world.session(directory=False)
    _, body = world.run_json("list", "--foreign", capsys=capsys)
    (only,) = body["sessions"]
    assert (only["id"], only["ours"], only["session_dir"]) == (foreign, False, None)


def test_list_table(world: World, capsys: Any) -> None:
    sid = world.session(server="srv-a")
    code, out, _ = world.run("list", capsys=capsys)
    assert code == cli.EXIT_OK
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "SERVER", "STATE"]
    assert row.split()[:4] == [sid, "srv-a", "running", "success"]
    assert "11.8M/1G" in row and "1/512" in row


def test_list_without_sessions_says_so(world: World, capsys: Any) -> None:
    code, out, _ = world.run("list", capsys=capsys)
    assert code == cli.EXIT_OK and "no sessions" in out


def test_list_without_a_user_manager_exits_3(world: World, capsys: Any) -> None:
    world.fake.kill_manager()
    code, _, err = world.run("list", capsys=capsys)
    assert code == cli.EXIT_NO_MANAGER
    assert "no systemd user manager" in err and "ffsystemd doctor" in err


def test_list_on_a_dead_bus_exits_3(world: World, capsys: Any, tmp_path: Path) -> None:
    code = cli.main(["list", "--bus-address", f"unix:path={tmp_path}/no-bus", "--config", str(world.config)])
    assert code == cli.EXIT_NO_MANAGER
    assert "cannot connect to the user bus" in capsys.readouterr().err


# --- status and logs ------------------------------------------------------------------------------------
def test_status_shows_properties_processes_and_log_tail(world: World, capsys: Any) -> None:
    log = "".join(f"line {i}\n" for i in range(50))
    sid = world.session(log=log)
    code, body = world.run_json("status", sid, "--lines", "5", capsys=capsys)
    assert code == cli.EXIT_OK
    assert body["id"] == sid and body["state"] == "running"
    assert body["properties"]["MemoryMax"] == 1024**3
    assert body["properties"]["Slice"] == "app-ffsystemd.slice"
    assert [p["pid"] for p in body["processes"]] == [world.processes[-1].pid]
    assert body["log_tail"] == [f"line {i}" for i in range(45, 50)]
    code, out, _ = world.run("status", sid, capsys=capsys)
    assert code == cli.EXIT_OK
    assert f"unit: {unit_name(sid)}" in out and "  MemoryMax=1073741824" in out and "line 49" in out


def test_status_of_an_unknown_session_exits_4(world: World, capsys: Any) -> None:
    code, _, err = world.run("status", new_session_id(), capsys=capsys)
    assert code == cli.EXIT_NO_SESSION and "no session" in err


def test_status_and_logs_of_a_failed_launch_read_the_kept_log(
    world: World, capsys: Any, tmp_path: Path
) -> None:
    sid = new_session_id()
    source = tmp_path / "xpra.log"
    source.write_text("starting\nXvfb failed to start\n")
    keep_failed_log(world.root, sid, source)
    code, body = world.run_json("status", sid, capsys=capsys)
    assert code == cli.EXIT_OK
    assert body["launch_failed"] is True and body["log_tail"][-1] == "Xvfb failed to start"
    code, out, _ = world.run("logs", sid, capsys=capsys)
    assert (code, out) == (cli.EXIT_OK, "starting\nXvfb failed to start\n")
    code, out, _ = world.run("logs", sid, "--lines", "1", capsys=capsys)
    assert out == "Xvfb failed to start\n"
    code, _, _ = world.run("logs", new_session_id(), capsys=capsys)
    assert code == cli.EXIT_NO_SESSION


# --- stop -------------------------------------------------------------------------------------------------
def test_stop_ends_the_unit_and_removes_the_directory(world: World, capsys: Any) -> None:
    sid, other = world.session(), world.session()
    code, body = world.run_json("stop", sid, capsys=capsys)
    assert code == cli.EXIT_OK
    assert body["stopped"] == [sid] and body["errors"] == {}
    assert body["sessions"][0]["directory_removed"] is True
    world.fake.wait_unit_gone(unit_name(sid))
    assert not session_paths(world.root, sid).base.exists()
    wait_until(lambda: world.processes[0].poll() is not None, 5, what="the session's process to end")
    # the other session is untouched
    assert world.fake.unit_state(unit_name(other))[0] == "active"
    assert session_paths(world.root, other).base.is_dir()
    assert world.fake.call_count("KillUnit") == 0


def test_stop_never_touches_a_unit_that_is_not_ours(world: World, capsys: Any) -> None:
    foreign = world.session(directory=False)
    code, body = world.run_json("stop", foreign, capsys=capsys)
    assert code == cli.EXIT_NO_SESSION
    assert "not ours" in body["errors"][foreign]
    code, body = world.run_json("stop", "--all", capsys=capsys)
    assert (code, body["stopped"]) == (cli.EXIT_OK, [])
    assert world.fake.unit_state(unit_name(foreign))[0] == "active"
    assert world.fake.call_count("StopUnit") == 0 and world.fake.call_count("KillUnit") == 0


def test_stop_all_of_one_server_with_force(world: World, capsys: Any) -> None:
    mine = [world.session(server="s1"), world.session(server="s1")]
    theirs = world.session(server="s2")
    code, body = world.run_json("stop", "--all", "--server", "s1", "--force", capsys=capsys)
    assert code == cli.EXIT_OK
    assert sorted(body["stopped"]) == sorted(mine)
    assert world.fake.call_count("KillUnit") == 2
    assert world.fake.call_count("ResetFailedUnit") == 2
    for sid in mine:
        world.fake.wait_unit_gone(unit_name(sid))
    assert world.fake.unit_state(unit_name(theirs))[0] == "active"
    code, body = world.run_json("stop", theirs, "--server", "s1", capsys=capsys)
    assert code == cli.EXIT_NO_SESSION and "owned by server s2" in body["errors"][theirs]


def test_stop_keep_profile_keeps_the_directory(world: World, capsys: Any) -> None:
    sid = world.session()
    code, out, _ = world.run("stop", sid, "--keep-profile", capsys=capsys)
    assert code == cli.EXIT_OK and f"stopped {sid}" in out and "directory kept" in out
    world.fake.wait_unit_gone(unit_name(sid))
    assert session_paths(world.root, sid).base.is_dir()
    # ... but not the dead X server's cookie
    assert session_paths(world.root, sid).profile.is_dir()
    assert not session_paths(world.root, sid).xauthority.exists()
    # stopping the leftover directory then removes it
    code, _, _ = world.run("stop", sid, capsys=capsys)
    assert code == cli.EXIT_OK and not session_paths(world.root, sid).base.exists()


def test_stop_that_systemd_refuses_exits_1(world: World, capsys: Any) -> None:
    sid = world.session()
    world.fake.fail_method("StopUnit", "org.freedesktop.DBus.Error.AccessDenied", times=1)
    code, body = world.run_json("stop", sid, capsys=capsys)
    assert code == cli.EXIT_FAILED
    assert "AccessDenied" in body["errors"][sid]
    assert session_paths(world.root, sid).base.is_dir()  # not removed when the unit still runs
    assert world.run("stop", sid, capsys=capsys)[0] == cli.EXIT_OK


# --- doctor -----------------------------------------------------------------------------------------------
def test_doctor_on_a_working_setup(
    world: World, capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert cli.main(["install-units", "--no-reload"]) == cli.EXIT_OK
    assert "installed" in capsys.readouterr().out
    code, body = world.run_json("doctor", capsys=capsys)
    checks = {c["name"]: c for c in body["checks"]}
    assert list(checks)[:6] == [
        "user_bus",
        "user_manager",
        "delegated_controllers",
        "xpra",
        "xpra_html5",
        "firefox",
    ]
    assert checks["user_manager"]["verdict"] == "ok"
    assert checks["xpra"] == {
        "name": "xpra",
        "verdict": "ok",
        "detail": sys.executable,
        "hint": "",
        "fix": [],
    }
    assert checks["session_root"]["verdict"] == "ok"
    assert checks["aggregate_slice"]["detail"] == str(tmp_path / "xdg/systemd/user/app-ffsystemd.slice")
    assert body["config_files"] == [str(world.config)]
    for check in checks.values():
        if check["verdict"] != "ok" and check["name"] != "delegated_controllers":
            pytest.fail(f"unexpected failing check {check}")
    assert body["verdict"] in ("ok", "warning")
    assert code == cli.EXIT_OK
    code, out, _ = world.run("doctor", capsys=capsys)
    assert code == cli.EXIT_OK
    assert "OK       user_manager: systemd 252-fake answers" in out
    assert "verdict: " in out


def test_doctor_without_a_user_manager_fails_with_the_fix(world: World, capsys: Any, tmp_path: Path) -> None:
    code = cli.main(["doctor", "--bus-address", f"unix:path={tmp_path}/dead", "--config", str(world.config)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAILED
    assert "ERROR    user_bus: cannot connect to the user bus" in out
    assert f"fix:  sudo systemctl start user@{os.getuid()}.service" in out
    assert "verdict: error" in out


def test_doctor_without_xpra_fails_with_the_fix(world: World, capsys: Any, tmp_path: Path) -> None:
    config = tmp_path / "no-xpra.json"
    config.write_text(json.dumps({"FirefoxLauncher": {"xpra_command": ["ffsystemd-no-such-xpra"]}}))
    code = cli.main(["doctor", "--json", "--bus-address", world.fake.address, "--config", str(config)])
    body = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in body["checks"]}
    assert code == cli.EXIT_FAILED
    assert checks["xpra"]["verdict"] == "error"
    assert "ffsystemd-no-such-xpra" in checks["xpra"]["detail"]
    assert checks["xpra"]["fix"][0] == "sudo apt-get install xpra python3-pil"
    assert checks["user_manager"]["verdict"] == "ok"


# --- several servers, each with its own root ------------------------------------------------------
def test_without_a_configured_root_every_servers_root_is_listed(
    world: World, capsys: Any, tmp_path: Path
) -> None:
    """Roots come from the servers' liveness records; a held lock is a live server."""
    from ffsystemd.identity import state_dir
    from ffsystemd.liveness import try_lock

    other_root = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    try:
        live = try_lock(state_dir(), "live-1")
        assert live is not None
        live.write_record({"session_root": str(world.root)})
        dead = try_lock(state_dir(), "dead-1")
        assert dead is not None
        dead.write_record({"session_root": str(other_root)})
        dead.release()
        mine = world.session(server="live-1")
        other = World(world.fake, other_root, world.config)
        other.sleepers = world.sleepers
        orphan = other.session(server="dead-1")
        code = cli.main(
            ["list", "--json", "--bus-address", world.fake.address, "--config", str(world.config)]
        )
        body = json.loads(capsys.readouterr().out)
        assert code == cli.EXIT_OK
        assert {str(world.root), str(other_root)} <= set(body["session_roots"])
        by_id = {s["id"]: s for s in body["sessions"]}
        assert (by_id[mine]["server"], by_id[mine]["server_alive"]) == ("live-1", True)
        assert (by_id[orphan]["server"], by_id[orphan]["server_alive"]) == ("dead-1", False)
        assert by_id[orphan]["session_root"] == str(other_root)
        # Stopping the orphans of the dead server holds its lock meanwhile and frees it after.
        code = cli.main(
            [
                "stop",
                "--all",
                "--server",
                "dead-1",
                "--bus-address",
                world.fake.address,
                "--config",
                str(world.config),
            ]
        )
        assert code == cli.EXIT_OK, capsys.readouterr()
        world.fake.wait_unit_gone(unit_name(orphan))
        assert not session_paths(other_root, orphan).base.exists()
        assert world.fake.unit_state(unit_name(mine))[0] == "active"
        relock = try_lock(state_dir(), "dead-1", create=False)
        assert relock is not None
        relock.release()
        live.release()
    finally:
        shutil.rmtree(other_root, ignore_errors=True)


def test_a_server_without_a_lock_file_here_is_not_judged_dead(world: World, capsys: Any) -> None:
    """As the servers judge orphans: no lock file here = a server with another HOME; never stopped."""
    from ffsystemd.identity import state_dir
    from ffsystemd.liveness import try_lock

    live = try_lock(state_dir(), "live-1")  # a live server here whose root the CLI then reads
    assert live is not None
    live.write_record({"session_root": str(world.root)})
    elsewhere = world.session(server="elsewhere-1")  # no lock file for this server id here
    code = cli.main(["list", "--json", "--bus-address", world.fake.address, "--config", str(world.config)])
    body = json.loads(capsys.readouterr().out)
    assert code == cli.EXIT_OK
    record = {s["id"]: s for s in body["sessions"]}[elsewhere]
    assert (record["server"], record["server_alive"]) == ("elsewhere-1", None)
    code = cli.main(["stop", "--orphans", "--bus-address", world.fake.address, "--config", str(world.config)])
    capsys.readouterr()
    assert world.fake.unit_state(unit_name(elsewhere))[0] == "active"
    assert session_paths(world.root, elsewhere).base.exists()
    code = cli.main(["stop", elsewhere, "--bus-address", world.fake.address, "--config", str(world.config)])
    assert code == cli.EXIT_OK, capsys.readouterr()
    world.fake.wait_unit_gone(unit_name(elsewhere))


def test_doctor_warns_of_sessions_whose_server_is_gone(world: World, capsys: Any) -> None:
    from ffsystemd.identity import state_dir
    from ffsystemd.liveness import try_lock

    dead = try_lock(state_dir(), "dead-2")
    assert dead is not None
    dead.release()  # its lock file is here and free: that server is gone
    orphan = world.session(server="dead-2")
    code, body = world.run_json("doctor", capsys=capsys)
    check = {c["name"]: c for c in body["checks"]}["orphans"]
    assert check["verdict"] == "warning" and f"{orphan} (server dead-2)" in check["detail"]
    assert check["fix"][0] == "ffsystemd stop --orphans"
    assert code == cli.EXIT_OK  # launches still work
    code, out, _ = world.run("doctor", capsys=capsys)
    assert "WARNING  orphans: 1 session(s) of servers that are gone" in out
    assert "fix:  ffsystemd stop --orphans" in out
    assert world.run("stop", "--orphans", capsys=capsys)[0] == cli.EXIT_OK
    world.fake.wait_unit_gone(unit_name(orphan))
    code, body = world.run_json("doctor", capsys=capsys)
    assert {c["name"]: c for c in body["checks"]}["orphans"]["verdict"] == "ok"
