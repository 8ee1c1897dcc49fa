"""Unit tests for ffsystemd.app: configuration validation and ManagerSettings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from ffsystemd.app import FORBIDDEN_XPRA_ARGS, FirefoxLauncher, find_firefox
from ffsystemd.identity import derived_server_id, hub_server_id
from ffsystemd.limits import UINT64_MAX
from ffsystemd.liveness import try_lock
from ffsystemd.manager import ManagerSettings


def _launcher(**traits) -> FirefoxLauncher:
    cfg = Config()
    for name, value in traits.items():
        cfg.FirefoxLauncher[name] = value
    return FirefoxLauncher(config=cfg)


BAD_VALUES = [
    ("memory_max", "lots"),
    ("memory_max", "0"),
    ("memory_max", "2X"),
    ("tasks_max", -1),
    ("tasks_max", 0),
    ("tasks_max", "many"),
    ("cpu_quota", "fast"),
    ("cpu_quota", "0%"),
    ("max_sessions", 0),
    ("max_sessions", 1001),
    ("screen_size", "big"),
    ("firefox_content_processes", 0),
    ("firefox_content_processes", 65),
    ("screen_size", "100x100"),
    ("ready_timeout", 0),
    ("ready_timeout", -1.0),
    ("ready_timeout", 3601),
    ("stop_timeout", 0),
    ("dbus_timeout", 0),
    ("start_url", "javascript:alert(1)"),
    ("start_url", "file:///etc/passwd"),
    ("slice", "foo"),
    ("slice", "app-ffsystemd.service"),
    ("extra_xpra_args", ["--bind-tcp=0.0.0.0:1"]),
    ("extra_xpra_args", ["--bind-ws=0.0.0.0:1"]),
    ("extra_xpra_args", ["--dpi=96", "--bind-tcp", "0.0.0.0:1"]),
    ("extra_xpra_args", ["--bind=/tmp/other.sock"]),
    ("extra_xpra_args", ["--daemon=yes"]),
    ("extra_xpra_args", ["--systemd-run=yes"]),
    ("extra_xpra_args", ["--exit-with-children=no"]),
    ("extra_xpra_args", ["--start-child=xterm"]),
    ("extra_xpra_args", ["--socket-dirs=/tmp"]),
    ("xpra_command", ["/nonexistent/xpra"]),
    ("xpra_command", []),
    ("firefox_command", ["/nonexistent/firefox"]),
    ("firefox_prefs", {"a": [1]}),
    ("firefox_prefs", {"a": 1.5}),
    ("firefox_prefs", {"a": None}),
    ("session_root", "/" + "a" * 200),
    ("pass_environment", ["*"]),
    ("pass_environment", ["A=B"]),
    ("pass_environment", ["OK", "not ok"]),
    ("server_id", "Bad/Id"),
    ("server_id", "sessions"),
    ("server_id", "x" * 33),
]


@pytest.mark.parametrize(("trait", "value"), BAD_VALUES)
def test_bad_config_value_raises_naming_trait(trait, value):
    with pytest.raises(TraitError) as exc:
        _launcher(**{trait: value})
    message = str(exc.value)
    assert f"c.FirefoxLauncher.{trait}" in message
    shown = repr(float(value)) if trait.endswith("_timeout") else repr(value)
    assert shown in message


@pytest.mark.parametrize(("trait", "value"), BAD_VALUES)
def test_bad_value_set_as_attribute_raises_and_keeps_old_value(trait, value):
    app = FirefoxLauncher()
    before = getattr(app, trait)
    with pytest.raises(TraitError, match=rf"c\.FirefoxLauncher\.{trait}\b"):
        setattr(app, trait, value)
    assert getattr(app, trait) == before


def test_all_forbidden_xpra_args_are_refused():
    for option in FORBIDDEN_XPRA_ARGS:
        for arg in (option, f"{option}=x"):
            with pytest.raises(TraitError, match=option):
                _launcher(extra_xpra_args=[arg])


def test_bind_udp_is_refused():
    with pytest.raises(TraitError):
        _launcher(extra_xpra_args=["--bind-udp=0.0.0.0:10000"])


def test_abbreviated_forbidden_option_is_refused():
    with pytest.raises(TraitError):
        _launcher(extra_xpra_args=["--bind-tc=0.0.0.0:10000"])


def test_legacy_no_form_of_forbidden_option_is_refused():
    with pytest.raises(TraitError):
        _launcher(extra_xpra_args=["--no-exit-with-children"])


def test_harmless_extra_xpra_args_accepted():
    app = _launcher(extra_xpra_args=["--dpi=120", "--bell=no"])
    assert app.manager_settings().xpra.extra_xpra_args == ("--dpi=120", "--bell=no")


def test_clipboard_trait_reaches_xpra_settings_and_refuses_other_values():
    assert _launcher().manager_settings().xpra.clipboard == "both"
    assert _launcher(clipboard="off").manager_settings().xpra.clipboard == "off"
    with pytest.raises(TraitError):
        _launcher(clipboard="sideways")


# --- defaults -------------------------------------------------------------------------


def test_defaults_produce_manager_settings():
    settings = FirefoxLauncher().manager_settings()
    assert isinstance(settings, ManagerSettings)
    assert settings.limits.memory_max == 2 * 1024**3
    assert settings.limits.tasks_max == 1024
    assert settings.limits.cpu_quota_per_sec_usec == UINT64_MAX
    assert settings.limits.stop_timeout_usec == 5_000_000
    assert settings.slice_name == "app-ffsystemd.slice"
    assert settings.start_url == "about:blank"
    assert settings.max_sessions == 4
    assert settings.ready_timeout == 30.0
    assert settings.keep_profile is False
    assert settings.job_timeout >= 30.0
    server_id = derived_server_id(os.getcwd(), "/")  # no Jupyter server: cwd and "/"
    assert settings.session_root == Path("~/.firefox-launcher").expanduser() / server_id
    assert settings.xpra.xpra_command == ("xpra",)
    assert settings.xpra.screen_size == (3840, 2160)  # room for a 2x tab of 1920x1080 CSS px
    assert settings.xpra.extra_prefs == {
        "dom.ipc.processCount": 2,  # firefox_content_processes
        "dom.ipc.processPrelaunch.fission.number": 1,
        "dom.input.fallbackUploadDir": os.getcwd(),  # the upload dialog
    }
    assert settings.downloads_dir is None  # checked and passed in at start-up


def test_default_firefox_command_found_on_path():
    assert shutil.which("firefox-esr"), "firefox-esr is expected to be installed in this environment"
    command = FirefoxLauncher().manager_settings().xpra.firefox_command
    assert len(command) == 1
    assert Path(command[0]).name in ("firefox", "firefox-esr")
    assert Path(command[0]).is_absolute()
    assert list(command) == find_firefox()


def test_find_firefox_prefers_firefox_then_esr(tmp_path, monkeypatch):
    esr = tmp_path / "firefox-esr"
    esr.write_text("#!/bin/sh\n")
    esr.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_firefox() == [str(esr)]
    plain = tmp_path / "firefox"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o755)
    assert find_firefox() == [str(plain)]


def test_no_firefox_on_path_fails_naming_trait(tmp_path, monkeypatch):
    app = FirefoxLauncher()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TraitError, match=r"c\.FirefoxLauncher\.firefox_command"):
        app.manager_settings()


def test_explicit_firefox_command_is_used():
    app = _launcher(firefox_command=["firefox-esr", "--safe-mode"])
    assert app.manager_settings().xpra.firefox_command == ("firefox-esr", "--safe-mode")


# --- good non-default values ---------------------------------------------------------------


def test_good_values_reach_manager_settings(tmp_path):
    app = _launcher(
        memory_max="infinity",
        tasks_max="infinity",
        cpu_quota="150%",
        max_sessions=2,
        screen_size="1280x720",
        firefox_content_processes=4,
        ready_timeout=12.5,
        stop_timeout=2.5,
        start_url="https://example.com/",
        slice="my-sessions.slice",
        session_root=str(tmp_path / "s"),
        keep_profile=True,
        firefox_prefs={"b": True, "i": 3, "s": "x"},
        extra_firefox_args=["--kiosk"],
    )
    settings = app.manager_settings()
    assert settings.limits.memory_max == UINT64_MAX
    assert settings.limits.tasks_max == UINT64_MAX
    assert settings.limits.cpu_quota_per_sec_usec == 1_500_000
    assert settings.limits.stop_timeout_usec == 2_500_000
    assert settings.max_sessions == 2
    assert settings.xpra.screen_size == (1280, 720)
    assert settings.ready_timeout == 12.5
    assert settings.start_url == "https://example.com/"
    assert settings.slice_name == "my-sessions.slice"
    assert settings.session_root == tmp_path / "s"
    assert settings.keep_profile is True
    assert settings.xpra.extra_prefs == {
        "dom.ipc.processCount": 4,
        "dom.ipc.processPrelaunch.fission.number": 1,
        "dom.input.fallbackUploadDir": os.getcwd(),
        "b": True,
        "i": 3,
        "s": "x",
    }
    assert settings.xpra.extra_firefox_args == ("--kiosk",)


@pytest.mark.parametrize(("value", "expected"), [(512, 512), ("2048", 2048)])
def test_tasks_max_int_or_string(value, expected):
    assert _launcher(tasks_max=value).manager_settings().limits.tasks_max == expected


def test_memory_max_sizes():
    assert _launcher(memory_max="512M").manager_settings().limits.memory_max == 512 * 1024**2


def test_pass_environment_reaches_the_xpra_settings():
    app = _launcher(pass_environment=["MOZ_*", "MY_VAR"])
    assert app.manager_settings().xpra.pass_environment == ("MOZ_*", "MY_VAR")


# --- server identity ----------------------------------------------------------------------


def test_server_identity_from_trait_hub_or_config(monkeypatch):
    assert _launcher(server_id="lab-a").resolve_identity({}).server_id == "lab-a"
    hub_env = {"JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "work", "JUPYTERHUB_SERVICE_PREFIX": "/"}
    hub = FirefoxLauncher().resolve_identity(hub_env)  # no serverapp: base_url "/"
    assert (hub.server_id, hub.source) == (hub_server_id("alice", "work"), "jupyterhub")
    assert FirefoxLauncher().resolve_identity({}).source == "derived"


def test_default_session_root_is_per_server_and_explicit_root_wins(tmp_path):
    app = FirefoxLauncher()
    assert app.resolved_session_root("lab-a") == Path.home() / ".firefox-launcher" / "lab-a"
    assert app.resolved_session_root("lab-a") != app.resolved_session_root("lab-b")
    assert _launcher(session_root=str(tmp_path)).resolved_session_root("lab-a") == tmp_path


def test_a_server_id_held_by_a_live_server_stops_the_extension_naming_the_trait(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    other = try_lock(tmp_path / ".firefox-launcher", "lab-a")  # another live server
    assert other is not None
    other.write_record({"pid": 4242})
    app = _launcher(server_id="lab-a")
    monkeypatch.setattr("ffsystemd.liveness.CLAIM_WAIT", 0.2)
    with pytest.raises(TraitError, match=r"c\.FirefoxLauncher\.server_id = 'lab-a'.*pid 4242"):
        app.claim_identity(app.resolve_identity({}))
    other.release()
    lock = app.claim_identity(app.resolve_identity({}))
    assert lock.server_id == "lab-a"
    lock.release()
