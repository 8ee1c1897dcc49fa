"""The pure parts of the `ffsystemd` command: records, ownership, selection, rendering, config, fixes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ffsystemd import cli
from ffsystemd.cli import config as cli_config
from ffsystemd.cli.doctor import SLICE_DIRS, fix_commands, session_root_check, slice_check, xrandr_check
from ffsystemd.cli.inventory import is_own_directory, owning_server, session_record
from ffsystemd.cli.render import duration, pair, session_row, size, table
from ffsystemd.cli.stop import select_targets
from ffsystemd.failed_logs import failed_log_path, failed_logs, keep_failed_log
from ffsystemd.systemd import UnitInfo, UnitSnapshot

SID = "0123456789ab"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def info(state: str = "active", description: str = "Firefox session (ffsystemd)") -> UnitInfo:
    return UnitInfo(f"app-ffsystemd-firefox-{SID}.scope", description, "loaded", state, "running", "/p")


# --- records --------------------------------------------------------------------------------------
def test_record_of_a_running_session_reads_limits_and_counters(tmp_path: Path) -> None:
    unit = UnitSnapshot(
        load_state="loaded",
        active_state="active",
        sub_state="running",
        result="success",
        memory_current=300 * 1024**2,
        memory_max=1024**3,
        tasks_current=42,
        tasks_max=512,
        cpu_quota_per_sec_usec=1_500_000,
        cpu_usage_nsec=2_500_000_000,
    )
    created = (NOW - timedelta(minutes=5)).isoformat()
    described = info(description="Firefox session 0123456789ab (ffsystemd server s1)")
    record = session_record(
        SID, info=described, unit=unit, session_dir=tmp_path, metadata={"created": created}, now=NOW
    )
    assert record["unit"] == f"app-ffsystemd-firefox-{SID}.scope"
    assert (record["state"], record["sub_state"], record["result"]) == ("running", "running", "success")
    assert (record["memory_current"], record["memory_max"]) == (300 * 1024**2, 1024**3)
    assert (record["tasks_current"], record["tasks_max"]) == (42, 512)
    assert record["cpu_quota"] == 150
    assert record["age_seconds"] == 300
    assert record["created"] == "2026-12-01T11:55:00Z"
    assert record["server"] == "s1"
    assert record["ours"] is True and record["unit_loaded"] is True


def test_record_maps_not_available_to_none_and_hides_counters_of_dead_units(tmp_path: Path) -> None:
    # as the client decodes it: systemd's "infinity" (UINT64_MAX) arrives as None
    unit = UnitSnapshot(active_state="failed", result="oom-kill", memory_current=5, memory_max=None)
    record = session_record(SID, info=info("failed"), unit=unit, session_dir=tmp_path, metadata={}, now=NOW)
    assert (record["state"], record["result"]) == ("failed", "oom-kill")
    assert record["memory_current"] is None  # not live: no current figures
    assert record["memory_max"] is None
    assert record["created"] is not None  # from the directory's mtime


def test_record_of_a_directory_without_unit_is_stopped(tmp_path: Path) -> None:
    record = session_record(SID, info=None, unit=None, session_dir=tmp_path, metadata={}, now=NOW)
    assert (record["state"], record["result"], record["unit_loaded"]) == ("stopped", None, False)


def test_record_of_a_foreign_unit_is_not_ours() -> None:
    record = session_record(SID, info=info(), unit=None, session_dir=None, metadata={}, now=NOW)
    assert record["ours"] is False
    assert record["state"] == "running"
    assert record["created"] is None and record["age_seconds"] is None


@pytest.mark.parametrize(
    ("metadata", "description", "expected"),
    [
        ({"server_id": "abc"}, "", "abc"),
        ({"server_id": "x1"}, "Firefox session 0123456789ab (ffsystemd server zz)", "x1"),
        ({}, "Firefox session 0123456789ab (ffsystemd server zz)", "zz"),
        ({}, "Firefox session 0123456789ab (ffsystemd)", None),
        ({"server_id": 3}, "", None),
        ({"server_id": "../x"}, "", None),
    ],
)
def test_owning_server(metadata: dict, description: str, expected: str | None) -> None:
    assert owning_server(metadata, description) == expected


def test_own_directory_refuses_symlinks_and_files(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("")
    assert is_own_directory(tmp_path / "real")
    assert not is_own_directory(tmp_path / "link")
    assert not is_own_directory(tmp_path / "file")
    assert not is_own_directory(tmp_path / "missing")


# --- selecting what to stop -----------------------------------------------------------------------
RECORDS = [
    {"id": "aaaaaaaaaaaa", "ours": True, "server": "s1", "server_alive": True},
    {"id": "bbbbbbbbbbbb", "ours": True, "server": None, "server_alive": None},
    {"id": "cccccccccccc", "ours": False, "server": "s1", "server_alive": True},
    {"id": "eeeeeeeeeeee", "ours": True, "server": "gone", "server_alive": False},
    {"id": "ffffffffffff", "ours": False, "server": "gone", "server_alive": False},
]


def test_select_all_takes_only_ours() -> None:
    chosen, refused = select_targets(RECORDS, [], all_sessions=True, server=None)
    assert [r["id"] for r in chosen] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "eeeeeeeeeeee"]
    assert refused == {}


def test_select_orphans_takes_ours_of_dead_servers_only() -> None:
    chosen, _ = select_targets(RECORDS, [], all_sessions=False, server=None, orphans=True)
    assert [r["id"] for r in chosen] == ["eeeeeeeeeeee"]


def test_select_all_of_one_server() -> None:
    chosen, _ = select_targets(RECORDS, [], all_sessions=True, server="s1")
    assert [r["id"] for r in chosen] == ["aaaaaaaaaaaa"]


def test_select_ids_refuses_unknown_foreign_and_other_servers() -> None:
    ids = ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "dddddddddddd"]
    chosen, refused = select_targets(RECORDS, ids, all_sessions=False, server="s1")
    assert [r["id"] for r in chosen] == ["aaaaaaaaaaaa"]
    assert set(refused) == {"bbbbbbbbbbbb", "cccccccccccc", "dddddddddddd"}
    assert "not ours" in refused["cccccccccccc"]
    assert "owned by server -" in refused["bbbbbbbbbbbb"]
    assert "no such session" in refused["dddddddddddd"]


# --- rendering ------------------------------------------------------------------------------------
def test_sizes_durations_pairs() -> None:
    assert size(None) == "-"
    assert size(512) == "512B"
    assert size(1536 * 1024) == "1.5M"
    assert size(2 * 1024**3) == "2G"
    assert [duration(s) for s in (None, 5, 300, 3 * 3600 + 720, 2 * 86400 + 4 * 3600)] == [
        "-",
        "5s",
        "5m",
        "3h12m",
        "2d4h",
    ]
    assert pair(None, None) == "-/inf"
    assert pair(3, 512) == "3/512"


def test_table_aligns_columns() -> None:
    text = table(["A", "BB"], [["xxx", "y"], ["z", "wwww"]])
    assert text.splitlines() == ["A    BB", "xxx  y", "z    wwww"]


def test_session_row_marks_foreign_units() -> None:
    record = session_record(SID, info=info(), unit=None, session_dir=None, metadata={}, now=NOW)
    row = session_row(record)
    assert row[0] == SID and row[2] == "running (not ours)" and row[1] == "-"


def test_an_unclaimed_pooled_session_is_listed_as_pool(tmp_path: Path) -> None:
    described = info(description="Firefox session 0123456789ab (ffsystemd server s1)")
    record = session_record(
        SID, info=described, unit=None, session_dir=tmp_path, metadata={"pooled": True}, now=NOW
    )
    assert record["pooled"] is True and session_row(record)[2] == "running (pool)"
    claimed = session_record(SID, info=described, unit=None, session_dir=tmp_path, metadata={}, now=NOW)
    assert claimed["pooled"] is False and session_row(claimed)[2] == "running"


# --- config ------------------------------------------------------------------------------------------
@pytest.fixture
def jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated Jupyter config path: JUPYTER_CONFIG_DIR=tmp/cfg, nothing else."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    monkeypatch.setattr(cli_config, "jupyter_config_path", lambda: [str(cfg)])
    return cfg


def test_config_defaults_are_the_traits_defaults(jupyter_dirs: Path) -> None:
    config = cli_config.resolve(environ={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x/bus"})
    assert config.explicit_root is False
    assert config.session_roots[-1] == Path("~/.firefox-launcher/sessions").expanduser()
    assert config.bus_address == "unix:path=/x/bus"
    assert config.keep_profile is False
    assert config.xpra_command == ["xpra"]
    assert config.needs_cpu is False
    assert config.sources == ()


def test_config_is_read_from_the_jupyter_config_path(jupyter_dirs: Path) -> None:
    (jupyter_dirs / "jupyter_server_config.json").write_text(
        json.dumps({"FirefoxLauncher": {"session_root": "/tmp/r1", "keep_profile": True, "cpu_quota": "50%"}})
    )
    (jupyter_dirs / "jupyter_server_config.py").write_text(
        "c.FirefoxLauncher.bus_address = 'unix:path=/y/bus'\nc.FirefoxLauncher.xpra_command = ['/bin/xp']\n"
    )
    config = cli_config.resolve(environ={})
    assert config.session_roots == (Path("/tmp/r1"),)
    assert config.keep_profile is True
    assert config.needs_cpu is True
    assert config.bus_address == "unix:path=/y/bus"
    assert config.xpra_command == ["/bin/xp"]
    assert len(config.sources) == 2


def test_options_win_over_the_config(jupyter_dirs: Path) -> None:
    (jupyter_dirs / "jupyter_server_config.json").write_text(
        json.dumps({"FirefoxLauncher": {"session_root": "/tmp/r1", "bus_address": "unix:path=/y"}})
    )
    config = cli_config.resolve(session_root="/tmp/r2", bus_address="unix:path=/z", environ={})
    assert (config.session_roots, config.bus_address) == ((Path("/tmp/r2"),), "unix:path=/z")


def test_explicit_config_file_is_the_only_one_read(jupyter_dirs: Path, tmp_path: Path) -> None:
    (jupyter_dirs / "jupyter_server_config.json").write_text(
        json.dumps({"FirefoxLauncher": {"session_root": "/tmp/r1"}})
    )
    explicit = tmp_path / "server.json"
    explicit.write_text(json.dumps({"FirefoxLauncher": {"keep_profile": True}}))
    config = cli_config.resolve(explicit, environ={})
    assert config.keep_profile is True
    assert config.explicit_root is False
    with pytest.raises(FileNotFoundError):
        cli_config.resolve(tmp_path / "missing.json", environ={})


def test_broken_config_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("c.FirefoxLauncher.session_root = (\n")
    assert cli.main(["list", "--config", str(broken)]) == cli.EXIT_USAGE
    assert "cannot read the Jupyter config" in capsys.readouterr().err


# --- doctor's fixes ---------------------------------------------------------------------------------
def test_fix_commands_for_each_failing_check() -> None:
    def fix(name: str, detail: str = "x") -> list[str]:
        return fix_commands({"name": name, "verdict": "error", "detail": detail}, 1000, "alice")

    assert "sudo loginctl enable-linger alice" in fix("user_bus")
    assert "sudo systemctl start user@1000.service" in fix("user_manager")
    delegate = fix("delegated_controllers", "controllers memory are not delegated")
    assert any("Delegate=memory pids cpu" in c for c in delegate)
    assert any("user@1000.service/cgroup.controllers" in c for c in delegate)
    hybrid = fix("delegated_controllers", "not delegated (hybrid cgroup layout)")
    assert any("systemd.unified_cgroup_hierarchy=1" in c for c in hybrid)
    assert fix("delegated_controllers", "unknown: no user manager") == []
    assert fix("xpra")[0] == "sudo apt-get install xpra python3-pil"
    assert fix("xpra_html5", "found, but Xpra's Python lacks PIL") == ["sudo apt-get install python3-pil"]
    assert fix("firefox")[0] == "sudo apt-get install firefox-esr"
    assert fix("aggregate_slice")[0] == "ffsystemd install-units"
    assert fix_commands({"name": "xpra", "verdict": "ok", "detail": ""}, 1, "a") == []


def test_session_root_check(tmp_path: Path) -> None:
    assert session_root_check(tmp_path).verdict == "ok"
    assert session_root_check(tmp_path / "new" / "root").verdict == "ok"
    (tmp_path / "file").write_text("")
    assert session_root_check(tmp_path / "file").verdict == "error"
    long = tmp_path / ("x" * 90)
    assert session_root_check(long).verdict == "error"


def test_slice_check(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    if not any((d / "app-ffsystemd.slice").is_file() for d in SLICE_DIRS):
        assert slice_check(env).verdict == "warning"
    (tmp_path / "systemd" / "user").mkdir(parents=True)
    (tmp_path / "systemd" / "user" / "app-ffsystemd.slice").write_text("[Slice]\n")
    assert slice_check(env).verdict == "ok"


# --- failed-launch logs -------------------------------------------------------------------------------
def test_failed_logs_are_kept_bounded_and_private(tmp_path: Path) -> None:
    log = tmp_path / "xpra.log"
    log.write_bytes(b"x" * 1000 + b"\nthe last line\n")
    ids = [f"{i:012x}" for i in range(5)]
    for n, sid in enumerate(ids):
        kept = keep_failed_log(tmp_path, sid, log, max_logs=3, max_bytes=100)
        assert kept == failed_log_path(tmp_path, sid)
        os.utime(kept, (1000 + n, 1000 + n))
    assert [sid for sid, _ in failed_logs(tmp_path)] == ids[::-1][:3]
    newest = failed_log_path(tmp_path, ids[-1])
    assert newest.read_bytes().endswith(b"the last line\n")
    assert len(newest.read_bytes()) == 100
    assert newest.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "failed").stat().st_mode & 0o777 == 0o700


def test_failed_log_without_a_log_is_nothing(tmp_path: Path) -> None:
    assert keep_failed_log(tmp_path, SID, tmp_path / "missing.log") is None
    assert failed_logs(tmp_path) == []
    with pytest.raises(ValueError):
        failed_log_path(tmp_path, "../x")


# --- arguments ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "NOT-AN-ID"],
        ["stop"],
        ["stop", "--all", SID],
        ["stop", "--all", "--orphans"],
        ["stop", "../../etc"],
        ["logs", "0123456789AB"],
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == cli.EXIT_USAGE


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for code in range(5):
        assert f"  {code}  " in out


def test_the_command_names_no_d_bus_property_or_interface() -> None:
    """Only ffsystemd/systemd/ speaks D-Bus: the CLI reads typed snapshots (issue #9)."""
    from ffsystemd.systemd.properties import _SNAPSHOT_PROPERTIES

    cli_dir = Path(cli.__file__).parent
    for source in sorted(cli_dir.glob("*.py")):
        text = source.read_text()
        assert "get_all(" not in text and "_IFACE" not in text, source.name
        for name in _SNAPSHOT_PROPERTIES:
            assert f'"{name}"' not in text, (source.name, name)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory under /tmp short enough for session roots (socket paths must fit)."""
    path = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_a_refused_session_root_gets_the_exact_fix(short_dir: Path) -> None:
    from ffsystemd.cli.doctor import CHOOSE_ROOT

    tmp_path = short_dir

    def fix(root: Path) -> list[str]:
        check = session_root_check(root)
        assert check.verdict == "error", check
        return fix_commands({"name": "session_root", "verdict": "error", "detail": check.detail}, 1, "a")

    open_root = tmp_path / "open"
    open_root.mkdir(mode=0o700)
    open_root.chmod(0o777)
    assert fix(open_root) == [
        f"ls -la {open_root}   # check that nobody planted anything in it",
        f"chmod 700 {open_root}",
    ]
    under = tmp_path / "shared"
    under.mkdir(mode=0o700)
    under.chmod(0o777)  # no sticky bit
    assert fix(under / "root")[0] == f"chmod go-w {under}   # sudo if it is not yours"
    link = tmp_path / "link"
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link.symlink_to(real)
    assert fix(link) == [
        f"c.FirefoxLauncher.session_root = {str(real)!r}   # the real directory, in the Jupyter config"
    ]
    (tmp_path / "file").write_text("")
    assert fix(tmp_path / "file") == [CHOOSE_ROOT]


def test_orphans_check_names_the_sessions_of_servers_that_are_gone() -> None:
    from ffsystemd.cli.doctor import orphans_check

    assert orphans_check(RECORDS[:2]).verdict == "ok"
    check = orphans_check(RECORDS)
    assert check.verdict == "warning"
    assert "1 session(s)" in check.detail and "eeeeeeeeeeee (server gone)" in check.detail
    assert "ffffffffffff" not in check.detail  # not ours


def test_the_table_shows_how_long_ago_the_last_activity_was(tmp_path: Path) -> None:
    seen = (NOW - timedelta(minutes=7, seconds=5)).isoformat().replace("+00:00", "Z")
    record = session_record(
        SID, info=info(), unit=None, session_dir=tmp_path, metadata={"last_activity": seen}, now=NOW
    )
    assert record["last_activity"] == seen and record["idle_seconds"] == 425
    assert session_row(record)[-1] == "7m ago"
    quiet = session_record(SID, info=info(), unit=None, session_dir=tmp_path, metadata={}, now=NOW)
    assert (quiet["last_activity"], quiet["idle_seconds"], session_row(quiet)[-1]) == (None, None, "-")


def test_xrandr_check_warns_with_the_package_that_brings_it() -> None:
    missing = xrandr_check(lambda name: None)
    assert missing.verdict == "warning" and "0.5 s" in missing.detail
    assert fix_commands({"name": "xrandr", "verdict": "warning"}, 1000, "u") == [
        "sudo apt-get install x11-xserver-utils"
    ]
    found = xrandr_check(lambda name: f"/usr/bin/{name}")
    assert found.verdict == "ok" and found.detail == "/usr/bin/xrandr"
