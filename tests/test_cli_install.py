"""`ffsystemd install-units`: installing the shipped slice unit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ffsystemd import cli
from ffsystemd.cli import install

REPO_SLICE = Path(__file__).resolve().parents[1] / "units" / "app-ffsystemd.slice"


@pytest.fixture
def no_systemctl(monkeypatch):
    """Record subprocess.run calls made by the cli instead of running systemctl."""
    calls: list[list[str]] = []

    def fake_run(argv, *args, **kwargs):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(install.subprocess, "run", fake_run)
    return calls


def test_shipped_unit_is_the_source_slice():
    shipped = install.shipped_unit(install.SLICE)
    assert shipped.read_bytes() == REPO_SLICE.read_bytes()


def test_shipped_unit_unknown_name():
    with pytest.raises(FileNotFoundError):
        install.shipped_unit("no-such.slice")


def test_install_units_writes_shipped_slice(tmp_path, no_systemctl):
    dest = install.install_units(target=tmp_path, reload=False)
    assert dest == tmp_path / "app-ffsystemd.slice"
    content = dest.read_text()
    assert content == REPO_SLICE.read_text()
    assert "[Slice]" in content
    assert "MemoryMax=" in content
    assert no_systemctl == []


def test_install_units_creates_target_and_overwrites(tmp_path, no_systemctl):
    target = tmp_path / "config" / "systemd" / "user"
    (target).mkdir(parents=True)
    (target / "app-ffsystemd.slice").write_text("stale")
    dest = install.install_units(target=target, reload=False)
    assert dest.read_bytes() == REPO_SLICE.read_bytes()


def test_install_units_creates_missing_target(tmp_path, no_systemctl):
    target = tmp_path / "a" / "b"
    install.install_units(target=target, reload=False)
    assert (target / "app-ffsystemd.slice").is_file()


def test_install_units_reload_runs_daemon_reload(tmp_path, no_systemctl):
    install.install_units(target=tmp_path, reload=True)
    assert no_systemctl == [["systemctl", "--user", "daemon-reload"]]


def test_main_install_units_no_reload(tmp_path, no_systemctl, capsys):
    assert cli.main(["install-units", "--target", str(tmp_path), "--no-reload"]) == 0
    assert (tmp_path / "app-ffsystemd.slice").read_bytes() == REPO_SLICE.read_bytes()
    assert no_systemctl == []
    assert str(tmp_path / "app-ffsystemd.slice") in capsys.readouterr().out


def test_main_install_units_reloads_by_default(tmp_path, no_systemctl):
    assert cli.main(["install-units", "--target", str(tmp_path)]) == 0
    assert no_systemctl == [["systemctl", "--user", "daemon-reload"]]


def test_main_default_target_is_xdg_config_home(tmp_path, monkeypatch, no_systemctl):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert cli.main(["install-units", "--no-reload"]) == 0
    assert (tmp_path / "cfg" / "systemd" / "user" / "app-ffsystemd.slice").is_file()


def test_main_reload_failure_returns_1(tmp_path, monkeypatch, capsys):
    def failing_run(argv, *args, **kwargs):
        raise subprocess.CalledProcessError(1, argv)

    monkeypatch.setattr(install.subprocess, "run", failing_run)
    assert cli.main(["install-units", "--target", str(tmp_path)]) == 1
    assert "ffsystemd install-units" in capsys.readouterr().err


def test_main_unwritable_target_returns_1(tmp_path, no_systemctl, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli.main(["install-units", "--target", str(blocker / "sub"), "--no-reload"]) == 1
    assert "ffsystemd install-units" in capsys.readouterr().err


def test_main_requires_a_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_CONFIG_HOME": "/x/cfg"}, Path("/x/cfg/systemd/user")),
        ({"XDG_CONFIG_HOME": ""}, Path.home() / ".config" / "systemd" / "user"),
        ({}, Path.home() / ".config" / "systemd" / "user"),
    ],
)
def test_user_unit_dir(environ, expected):
    assert install.user_unit_dir(environ) == expected
