"""Unit tests for ffsystemd.commands (command lines, environment and config files)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from ffsystemd.commands import (
    DEFAULT_PREFS,
    FIREFOX_EXIT_SCRIPT,
    GATE_SCRIPT,
    XpraSettings,
    check_env_pattern,
    env_allowed,
    firefox_argv,
    firefox_child_argv,
    firefox_end,
    firefox_exit_file,
    gate_command,
    launcher_environment,
    session_environment,
    user_js,
    xpra_argv,
    xpra_config_file,
    xvfb_command,
)
from ffsystemd.session_dirs import SessionPaths

PATHS = SessionPaths(Path("/srv/ff/sessions"), "abcdef012345")
SETTINGS = XpraSettings(
    xpra_command=("/usr/bin/xpra",),
    firefox_command=("/usr/bin/firefox-esr",),
    screen_size=(1280, 720),
)
URL = "https://example.com/"


def _option(arg: str) -> str:
    return arg.split("=", 1)[0]


def _one(argv: list[str], prefix: str) -> str:
    values = [a[len(prefix) :] for a in argv if a.startswith(prefix)]
    assert len(values) == 1, f"{prefix!r} appears {len(values)} times in {argv}"
    return values[0]


# --- xpra_argv ------------------------------------------------------------------


def test_xpra_argv_starts_with_command_and_start():
    argv = xpra_argv(SETTINGS, PATHS, URL)
    assert argv[:2] == ["/usr/bin/xpra", "start"]
    assert all(isinstance(a, str) for a in argv)


def test_xpra_argv_multi_word_xpra_command():
    argv = xpra_argv(XpraSettings(xpra_command=("python3", "-m", "xpra")), PATHS, URL)
    assert argv[:4] == ["python3", "-m", "xpra", "start"]


@pytest.mark.parametrize(
    "required",
    ["--daemon=no", "--systemd-run=no", "--html=on", "--exit-with-children=yes", "--mdns=no"],
)
def test_xpra_argv_required_options(required):
    argv = xpra_argv(SETTINGS, PATHS, URL)
    assert required in argv
    # and never contradicted by a second occurrence of the same option
    assert [a for a in argv if _option(a) == _option(required)] == [required]


def test_xpra_argv_binds_only_the_session_socket():
    argv = xpra_argv(SETTINGS, PATHS, URL)
    binds = [a for a in argv if a.startswith("--bind")]
    assert binds == [f"--bind={PATHS.socket}"]
    assert PATHS.socket == Path("/srv/ff/sessions/session-abcdef012345/sockets/xpra.sock")
    assert _one(argv, "--socket-dirs=") == str(PATHS.sockets)


def test_xpra_argv_opens_no_network_listener():
    argv = xpra_argv(SETTINGS, PATHS, URL)
    for arg in argv:
        option = _option(arg)
        assert not option.startswith("--bind-"), arg
        assert "tcp" not in option, arg
        assert "tcp://" not in arg and "ws://" not in arg and "0.0.0.0" not in arg, arg


def test_xpra_argv_xvfb_uses_screen_size_and_no_tcp():
    argv = xpra_argv(SETTINGS, PATHS, URL)
    xvfb = _one(argv, "--xvfb=")
    assert xvfb == xvfb_command(SETTINGS)
    assert "-screen 0 1280x720x24" in xvfb
    assert "5760x2560" not in xvfb
    assert "-nolisten tcp" in xvfb


def test_xvfb_command_default_screen():
    xvfb = xvfb_command(XpraSettings())
    assert "-screen 0 3840x2160x24" in xvfb
    # The builders' default is the screen_size trait's.
    from ffsystemd.app import FirefoxLauncher
    from ffsystemd.limits import parse_screen_size

    trait = FirefoxLauncher.class_traits()["screen_size"].default_value
    assert parse_screen_size(trait) == XpraSettings().screen_size
    assert "5760x2560" not in xvfb
    assert shlex.split(xvfb)[0] == "Xvfb"


def test_xpra_argv_forwards_the_clipboard_both_ways_by_default():
    argv = xpra_argv(SETTINGS, PATHS, URL)
    assert _one(argv, "--clipboard=") == "yes"
    assert _one(argv, "--clipboard-direction=") == "both"


@pytest.mark.parametrize(
    ("clipboard", "enabled", "direction"),
    [("to-firefox", "yes", "to-server"), ("to-browser", "yes", "to-client"), ("off", "no", None)],
)
def test_xpra_argv_clipboard_setting_picks_xpra_direction(clipboard, enabled, direction):
    argv = xpra_argv(XpraSettings(clipboard=clipboard), PATHS, URL)
    assert _one(argv, "--clipboard=") == enabled
    assert [a for a in argv if a.startswith("--clipboard-direction=")] == (
        [f"--clipboard-direction={direction}"] if direction else []
    )


def test_xpra_argv_extra_args_appended():
    settings = XpraSettings(extra_xpra_args=("--dpi=120", "--bell=no"))
    argv = xpra_argv(settings, PATHS, URL)
    assert argv[-2:] == ["--dpi=120", "--bell=no"]


# --- start-child / firefox_argv ------------------------------------------------


def test_firefox_argv_shape():
    settings = XpraSettings(firefox_command=("/usr/bin/firefox-esr",), extra_firefox_args=("--kiosk",))
    argv = firefox_argv(settings, PATHS, URL)
    assert argv[0] == "/usr/bin/firefox-esr"
    assert "--no-remote" in argv
    assert "--new-instance" in argv
    i = argv.index("--profile")
    assert argv[i + 1] == str(PATHS.profile) == "/srv/ff/sessions/session-abcdef012345/profile"
    assert argv[-1] == URL
    assert argv[-2] == "--kiosk"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "about:blank",
        "https://example.com/?a=1&b=2",
        "https://example.com/it's;rm -rf ~",
        "https://example.com/a b\tc",
        'https://example.com/"quoted"\\back',
        "https://example.com/$(touch /tmp/pwned)`id`|cat>x",
        "https://example.com/#frag?x=$HOME",
        "https://example.com/--profile",
    ],
)
def test_start_child_round_trips_through_shlex(url):
    settings = XpraSettings(
        firefox_command=("/opt/my firefox/firefox", "-P x"), extra_firefox_args=("--x=1 2",)
    )
    argv = xpra_argv(settings, PATHS, url)
    child = _one(argv, "--start-child=")
    wrapper = shlex.split(child)
    assert wrapper == firefox_child_argv(settings, PATHS, url)
    # /bin/sh -c SCRIPT EXIT_FILE FIREFOX...: the shell records how Firefox ended.
    assert wrapper[:2] == ["/bin/sh", "-c"] and wrapper[3] == str(firefox_exit_file(PATHS))
    parsed = wrapper[4:]
    assert parsed == firefox_argv(settings, PATHS, url)
    assert parsed[-1] == url
    assert parsed[:2] == ["/opt/my firefox/firefox", "-P x"]
    assert "--no-remote" in parsed
    assert parsed[parsed.index("--profile") + 1] == str(PATHS.profile)


@pytest.mark.parametrize(
    ("command", "recorded", "end"),
    [
        ("exit 0", "0", ("success", "Firefox was closed")),
        ("exit 3", "3", ("exit-code", "Firefox exited with status 3")),
        ("kill -KILL $$", "137", ("signal", "Firefox was killed (SIGKILL)")),
        ("kill -SEGV $$", "139", ("signal", "Firefox crashed (SIGSEGV)")),
    ],
)
def test_the_start_child_records_how_firefox_ended(tmp_path, command, recorded, end) -> None:
    exit_file = tmp_path / "firefox.exit"
    argv = ["/bin/sh", "-c", FIREFOX_EXIT_SCRIPT, str(exit_file), "/bin/sh", "-c", command]
    status = subprocess.run(argv, timeout=30).returncode
    assert exit_file.read_text().strip() == recorded
    assert status == int(recorded)
    assert firefox_end(exit_file.read_text()) == end


def test_nothing_recorded_means_no_verdict() -> None:
    assert firefox_end(None) is None
    assert firefox_end("") is None
    assert firefox_end("garbage") is None


# --- gate -------------------------------------------------------------------------


def test_gate_command_wraps_argv():
    cmd = gate_command(["xpra", "start", "--x=a b"])
    assert cmd[:3] == ["/bin/sh", "-c", GATE_SCRIPT]
    assert cmd[-3:] == ["xpra", "start", "--x=a b"]
    assert len(cmd) == 7  # $0 name + argv


def _run_gate(argv: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gate_command(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )


def test_gate_go_runs_the_command():
    result = _run_gate(["echo", "hi"], "go\n")
    assert result.returncode == 0
    assert result.stdout == "hi\n"


def test_gate_closed_stdin_exits_125_without_running():
    result = _run_gate(["echo", "hi"], "")
    assert result.returncode == 125
    assert result.stdout == ""


@pytest.mark.parametrize("stdin", ["nope\n", "go \n", "GO\n", "\n", "gogo\n", " go\n", "go"])
def test_gate_anything_but_go_exits_125_without_running(stdin):
    result = _run_gate(["echo", "hi"], stdin)
    assert result.returncode == 125
    assert result.stdout == ""


def test_gate_passes_arguments_verbatim():
    result = _run_gate(["printf", "%s|", "a b", "$HOME", "*", "'q'", ""], "go\n")
    assert result.returncode == 0
    assert result.stdout == "a b|$HOME|*|'q'||"


def test_gate_command_gets_devnull_stdin():
    # whatever follows "go" on the pipe must not reach the command
    result = _run_gate(["cat"], "go\nsecret\n")
    assert result.returncode == 0
    assert result.stdout == ""


def test_gate_propagates_exit_status():
    result = _run_gate(["sh", "-c", "exit 7"], "go\n")
    assert result.returncode == 7


# --- session_environment -----------------------------------------------------------

DROPPED = [
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "DBUS_SESSION_BUS_ADDRESS",
    "JUPYTER_TOKEN",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTER_CONFIG_DIR",
    "JPY_API_TOKEN",
    "JPY_SESSION_NAME",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "XPRA_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "GITHUB_TOKEN",
    "SSH_AUTH_SOCK",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "MOZ_HEADLESS",
    "SECRET_CANARY",
]
KEPT = {
    "PATH": "/usr/bin:/bin",
    "USER": "u",
    "LOGNAME": "u",
    "LANG": "de_DE.UTF-8",
    "LANGUAGE": "de",
    "LC_ALL": "de_DE.UTF-8",
    "LC_TIME": "C",
    "TZ": "Europe/Berlin",
    "FONTCONFIG_PATH": "/etc/fonts",
    "XDG_DATA_DIRS": "/usr/share",
    "https_proxy": "http://proxy:3128",
    "NO_PROXY": "localhost",
}


def test_session_environment_keeps_only_the_allow_list():
    base = {name: "leak" for name in DROPPED}
    base.update(KEPT)
    env = session_environment(base, PATHS)
    for name in DROPPED:
        assert name not in env, name
    assert "leak" not in env.values()
    assert {k: env[k] for k in KEPT} == KEPT
    assert set(env) == set(KEPT) | set(launcher_environment(PATHS))


def test_session_environment_pass_environment_adds_names_and_prefixes():
    base = {"MOZ_ENABLE_X": "1", "MOZ_LOG": "x", "MYVAR": "v", "MYVAR2": "w", "OTHER": "o"}
    env = session_environment(base, PATHS, ["MOZ_*", "MYVAR"])
    assert env["MOZ_ENABLE_X"] == "1" and env["MOZ_LOG"] == "x" and env["MYVAR"] == "v"
    assert "MYVAR2" not in env and "OTHER" not in env


def test_launcher_variables_win_over_passed_ones():
    base = {"XAUTHORITY": "/home/u/.Xauthority", "TMPDIR": "/tmp", "XDG_RUNTIME_DIR": "/run/user/1"}
    env = session_environment(base, PATHS, ["XAUTHORITY", "TMPDIR", "XDG_*"])
    assert env["XAUTHORITY"] == str(PATHS.runtime / "Xauthority")
    assert env["TMPDIR"] == str(PATHS.temp)
    assert env["XDG_RUNTIME_DIR"] == str(PATHS.runtime)


@pytest.mark.parametrize(
    ("name", "patterns", "allowed"),
    [
        ("LC_ALL", ["LC_*"], True),
        ("LC", ["LC_*"], False),
        ("PATH", ["PATH"], True),
        ("PATHX", ["PATH"], False),
        ("XPATH", ["PATH"], False),
        ("ANY", [], False),
    ],
)
def test_env_allowed(name, patterns, allowed):
    assert env_allowed(name, patterns) is allowed


@pytest.mark.parametrize("pattern", ["PATH", "MOZ_*", "_X", "lower_case"])
def test_check_env_pattern_accepts_names_and_prefixes(pattern):
    assert check_env_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["", "*", "1ABC", "A B", "A=B", "MOZ*X", "A**", "A-B", "*A", "Ä"])
def test_check_env_pattern_refuses_other_strings(pattern):
    with pytest.raises(ValueError, match="environment variable name"):
        check_env_pattern(pattern)


def test_session_environment_points_into_the_session():
    base = {
        "XDG_CACHE_HOME": "/home/u/.cache",
        "TMPDIR": "/tmp",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "XDG_CONFIG_DIRS": "/etc/xdg",
    }
    env = session_environment(base, PATHS)
    assert env["XDG_CACHE_HOME"] == str(PATHS.cache)
    assert env["TMPDIR"] == str(PATHS.temp)
    assert env["XDG_RUNTIME_DIR"] == str(PATHS.runtime)
    assert env["XDG_CONFIG_DIRS"] == str(PATHS.xdg_config)
    base_dir = str(PATHS.base) + "/"
    for name in ("XDG_CACHE_HOME", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_DIRS", "XAUTHORITY"):
        assert env[name].startswith(base_dir), name
    assert env["MOZ_NO_REMOTE"] == "1"
    assert env["MOZ_CRASHREPORTER_DISABLE"] == "1"


def test_session_has_its_own_home_and_x_cookie():
    base = {
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/home/u/.config",
        "XDG_DATA_HOME": "/home/u/.local/share",
        "XDG_STATE_HOME": "/home/u/.local/state",
        "XAUTHORITY": "/home/u/.Xauthority",
    }
    env = session_environment(base, PATHS, ["HOME", "XDG_*", "XAUTHORITY"])
    assert env["HOME"] == str(PATHS.home)
    assert env["XDG_CONFIG_HOME"] == str(PATHS.home / ".config")
    assert env["XDG_DATA_HOME"] == str(PATHS.home / ".local" / "share")
    assert env["XDG_STATE_HOME"] == str(PATHS.home / ".local" / "state")
    assert env["XPRA_USER_CONF_DIRS"] == str(PATHS.home / ".config" / "xpra")
    assert env["XAUTHORITY"] == str(PATHS.xauthority)
    assert env["XPRA_PRIVATE_XAUTH"] == "1"
    # Nothing the launcher sets points outside the session directory.
    base_dir = str(PATHS.base) + "/"
    for name, value in launcher_environment(PATHS).items():
        if value.startswith("/"):
            assert value.startswith(base_dir), name
    assert "/home/u" not in " ".join(env.values())


def test_session_environment_does_not_mutate_base():
    base = {"DISPLAY": ":0", "PATH": "/bin"}
    session_environment(base, PATHS)
    assert base == {"DISPLAY": ":0", "PATH": "/bin"}


def test_session_environment_values_are_strings():
    env = session_environment({"PATH": "/bin"}, PATHS)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


# --- xpra.conf ----------------------------------------------------------------------


def test_xpra_config_file():
    lines = xpra_config_file().splitlines()
    assert "start = /bin/true" in lines
    assert "mdns = no" in lines
    assert xpra_config_file().endswith("\n")


# --- user.js -------------------------------------------------------------------------

_PREF_RE = re.compile(r"\Auser_pref\((.*)\);\Z")


def _parse_user_js(text: str) -> dict[str, object]:
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith("//")
    prefs: dict[str, object] = {}
    for line in lines[1:]:
        match = _PREF_RE.match(line)
        assert match, line
        name, value = json.loads(f"[{match.group(1)}]")
        assert isinstance(name, str)
        assert isinstance(value, (bool, int, str)), line
        assert name not in prefs, f"duplicate pref {name}"
        prefs[name] = value
    return prefs


def test_user_js_every_line_is_a_pref():
    prefs = _parse_user_js(user_js("https://example.com/"))
    assert set(DEFAULT_PREFS) <= set(prefs)
    for name, value in DEFAULT_PREFS.items():
        assert prefs[name] == value


def test_user_js_saves_downloads_in_the_given_directory_without_asking():
    prefs = _parse_user_js(user_js("about:blank", downloads=PATHS.downloads))
    assert prefs["browser.download.dir"] == str(PATHS.downloads)
    assert prefs["browser.download.folderList"] == 2
    assert prefs["browser.download.useDownloadDir"] is True
    assert prefs["browser.download.always_ask_before_handling_new_types"] is False
    assert "browser.download.dir" not in _parse_user_js(user_js("about:blank"))


def test_user_js_extra_prefs_win_over_the_download_prefs():
    text = user_js("about:blank", {"browser.download.useDownloadDir": False}, PATHS.downloads)
    assert _parse_user_js(text)["browser.download.useDownloadDir"] is False


def test_user_js_start_url_is_homepage():
    prefs = _parse_user_js(user_js("https://example.com/?a=1&b=2"))
    assert prefs["browser.startup.homepage"] == "https://example.com/?a=1&b=2"
    assert prefs["browser.startup.page"] == 1


@pytest.mark.parametrize(
    "url",
    [
        'https://example.com/");user_pref("x", 1);//',
        "https://example.com/\\",
        "about:blank",
        "https://é.example/",
    ],
)
def test_user_js_escapes_hostile_urls(url):
    text = user_js(url)
    prefs = _parse_user_js(text)
    assert prefs["browser.startup.homepage"] == url
    assert "x" not in prefs
    assert "\u2028" not in text and "\u2029" not in text


def test_user_js_line_separators_are_escaped():
    text = user_js("about:blank", {"x.y": "a\u2028b\nc"})
    assert "\u2028" not in text
    assert _parse_user_js(text)["x.y"] == "a\u2028b\nc"


def test_user_js_extra_prefs_override_defaults():
    extra = {
        "browser.shell.checkDefaultBrowser": True,
        "signon.rememberSignons": True,
        "my.custom.pref": 42,
        "my.string": "v",
    }
    prefs = _parse_user_js(user_js("about:blank", extra))
    assert prefs["browser.shell.checkDefaultBrowser"] is True
    assert prefs["signon.rememberSignons"] is True
    assert prefs["my.custom.pref"] == 42
    assert prefs["my.string"] == "v"
    assert prefs["browser.startup.homepage"] == "about:blank"


def test_user_js_extra_prefs_do_not_change_defaults_dict():
    before = dict(DEFAULT_PREFS)
    user_js("about:blank", {"browser.shell.checkDefaultBrowser": True})
    assert before == DEFAULT_PREFS


def test_user_js_disables_data_reporting_and_default_browser_check():
    prefs = _parse_user_js(user_js("about:blank"))
    assert prefs["browser.shell.checkDefaultBrowser"] is False
    assert prefs["datareporting.policy.dataSubmissionEnabled"] is False
    assert prefs["datareporting.healthreport.uploadEnabled"] is False
    assert prefs["toolkit.telemetry.enabled"] is False
    assert prefs["app.update.enabled"] is False
    assert prefs["app.normandy.enabled"] is False


def test_content_process_prefs_bound_shared_processes_and_spares():
    from ffsystemd.commands import content_process_prefs

    prefs = _parse_user_js(user_js("about:blank", content_process_prefs(3)))
    assert prefs["dom.ipc.processCount"] == 3
    assert prefs["dom.ipc.processPrelaunch.fission.number"] == 1
    assert prefs["browser.newtab.preload"] is False
    assert "fission.autostart" not in prefs  # site isolation is left on
