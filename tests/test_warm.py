"""ffsystemd.warm: the start script of a pooled session, run for real with a stand-in Firefox.

The script runs under /bin/sh with the real dbus-daemon and dbus-send; "Firefox" is a small
Python program (FAKE_FIREFOX) that, started with --new-instance, owns an org.mozilla name on
the session bus and writes Firefox's start-up checkpoints, and, started as a remote client,
records the URL it was given. Real Firefox is in tests/real/test_pool_real.py.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.polling import eventually

from ffsystemd.commands import XpraSettings, firefox_exit_file, launcher_environment, xpra_argv
from ffsystemd.screen import screen_set_file
from ffsystemd.session_dirs import create_session_dirs, ensure_root, session_paths
from ffsystemd.warm import (
    BLANK_PAGES,
    WAITING_PAGE,
    OpenFailed,
    bus_address,
    bus_config,
    claimed_file,
    first_page,
    is_ready,
    open_url,
    warm_child,
    warm_script,
    write_warm_files,
)

FAKE_FIREFOX = r"""
import os, sys, time
import dbus
args = sys.argv[1:]
profile = args[args.index("--profile") + 1]
if "--new-instance" in args:
    bus = dbus.SessionBus()
    name = "org.mozilla.firefox." + "fake" + str(os.getpid())
    bus.request_name(name)
    with open(os.path.join(profile, "sessionCheckpoints.json"), "w") as f:
        f.write('{"final-ui-startup":true,"sessionstore-windows-restored":true}')
    with open(os.path.join(profile, "instance-env"), "w") as f:
        f.write(os.environ.get("MOZ_NO_REMOTE", "-") + " " + os.environ["DBUS_SESSION_BUS_ADDRESS"])
    while not os.path.exists(os.path.join(profile, "quit")):
        time.sleep(0.02)
    sys.exit(3)
with open(os.path.join(profile, "opened"), "a") as f:
    f.write(args[-1] + "\n")
"""

FAKE_XRANDR = """#!/bin/sh
opened=$([ -e "$(dirname {log})/opened" ] && echo after || echo before)
echo "$* ($opened the page)" >> {log}
"""


@pytest.fixture
def session(tmp_path_factory: pytest.TempPathFactory):
    root = Path(os.path.realpath(tmp_path_factory.mktemp("w", numbered=True)))
    ensure_root(root)
    paths = session_paths(root, "0123456789ab")
    create_session_dirs(paths)
    fake = root / "fake_firefox.py"
    fake.write_text(FAKE_FIREFOX)
    settings = XpraSettings(firefox_command=(sys.executable, str(fake)))
    write_warm_files(settings, paths)
    tools = root / "bin"  # an `xrandr` that records its arguments and whether a page was opened yet
    tools.mkdir()
    (tools / "xrandr").write_text(FAKE_XRANDR.format(log=shlex.quote(str(paths.profile / "xrandr.log"))))
    (tools / "xrandr").chmod(0o755)
    path = f"{tools}:{os.environ['PATH']}"
    env = dict(os.environ, **launcher_environment(paths), PATH=path)
    proc = subprocess.Popen(
        shlex.split(warm_child(paths)), env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    yield paths, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.asyncio
async def test_the_script_waits_warm_then_hands_over_one_url_and_records_firefox_s_exit(session) -> None:
    paths, proc = session
    await eventually(lambda: is_ready(paths), what="the warm-ready marker")
    env = (paths.profile / "instance-env").read_text()
    assert env == f"- {bus_address(paths)}"  # remoting on, on the session's own bus only
    await open_url(paths, "https://example.org/a?b=c&d", screen=(1070, 779))
    assert (paths.profile / "opened").read_text() == "https://example.org/a?b=c&d\n"
    assert claimed_file(paths).read_text().strip() == "0"
    # The X screen got the tab's size first (ffsystemd.screen), before the page was opened.
    assert (paths.profile / "xrandr.log").read_text().splitlines()[-1] == (
        "--output screen --mode ffs-1070x779 (before the page)"
    )
    assert screen_set_file(paths).read_text() == "set\n"
    with pytest.raises(OpenFailed, match="nobody waits"):  # one claim only
        await open_url(paths, "https://example.org/again")
    (paths.profile / "quit").touch()
    await eventually(lambda: proc.poll() is not None, what="the script to end with Firefox")
    assert proc.returncode == 3 and firefox_exit_file(paths).read_text().strip() == "3"
    await eventually(lambda: not (paths.runtime / "bus").exists() or _bus_gone(paths), what="the bus to stop")


def _bus_gone(paths) -> bool:
    result = subprocess.run(
        [
            "dbus-send",
            f"--bus={bus_address(paths)}",
            "--dest=org.freedesktop.DBus",
            "/",
            "org.freedesktop.DBus.Peer.Ping",
        ],
        capture_output=True,
    )
    return result.returncode != 0


@pytest.mark.asyncio
async def test_open_url_refuses_what_is_not_a_start_url_and_times_out_without_an_answer(
    tmp_path: Path,
) -> None:
    paths = session_paths(tmp_path, "0123456789ab")
    paths.runtime.mkdir(parents=True)
    with pytest.raises(ValueError):
        await open_url(paths, "file:///etc/passwd")
    with pytest.raises(OpenFailed, match="cannot write the claim FIFO"):  # no FIFO at all
        await open_url(paths, "https://example.org/")
    os.mkfifo(paths.runtime / "claim", 0o600)
    with pytest.raises(OpenFailed, match="nobody waits"):
        await open_url(paths, "https://example.org/")
    reader = os.open(paths.runtime / "claim", os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OpenFailed, match=r"did not take the URL within 0\.2 s"):
            await open_url(paths, "https://example.org/", timeout=0.2)
        assert os.read(reader, 100) == b"0 0 https://example.org/\n"
        claimed_file(paths).write_text("1\n")
        with pytest.raises(OpenFailed, match="remote client ended with 1"):
            await open_url(paths, "https://example.org/")
    finally:
        os.close(reader)


def test_the_warm_start_child_replaces_firefox_and_xpra_keeps_its_own_options() -> None:
    paths = session_paths(Path("/srv/ff"), "abcdef012345")
    cold = xpra_argv(XpraSettings(), paths, "https://example.org/")
    warm = xpra_argv(XpraSettings(), paths, "about:blank", warm_child(paths))
    assert [a for a in cold if not a.startswith("--start-child=")] == [
        a for a in warm if not a.startswith("--start-child=")
    ]
    assert f"--start-child=/bin/sh {paths.runtime}/warm.sh" in warm
    script = warm_script(XpraSettings(extra_firefox_args=("--kiosk",)), paths)
    assert "--no-remote" not in script and "unset MOZ_NO_REMOTE" in script
    assert "--new-instance --profile /srv/ff/session-abcdef012345/profile --kiosk about:blank" in script
    config = bus_config(paths)
    assert "<listen>unix:path=/srv/ff/session-abcdef012345/runtime/bus</listen>" in config
    assert "servicedir" not in config and "tcp:" not in config and "<auth>EXTERNAL</auth>" in config


def test_bus_addresses_escape_what_d_bus_requires() -> None:
    paths = session_paths(Path("/srv/a b,c;d"), "abcdef012345")
    assert bus_address(paths) == "unix:path=/srv/a%20b%2cc%3bd/session-abcdef012345/runtime/bus"


def test_the_options_the_warm_start_gives_firefox_are_refused_as_extra_arguments() -> None:
    from ffsystemd.admin_args import firefox_arg_refusal

    for option in ("--new-instance", "--profile", "--no-remote", "-remote", "--marionette"):
        assert firefox_arg_refusal(option) is not None, option
    assert firefox_arg_refusal("--kiosk") is None


def test_a_pool_waits_on_about_blank_for_a_blank_start_page_and_on_a_non_blank_one_otherwise() -> None:
    """Firefox focuses its address bar at start-up only on a blank page (keys then go there)."""
    for blank in BLANK_PAGES:
        assert first_page(blank) == "about:blank"
    assert first_page("https://example.org/") == WAITING_PAGE == "about:blank?warm"
    paths = session_paths(Path("/srv/ff"), "abcdef012345")
    script = warm_script(XpraSettings(), paths, WAITING_PAGE)
    assert "--new-instance --profile /srv/ff/session-abcdef012345/profile  'about:blank?warm' &" in script
    with pytest.raises(ValueError, match="about: page"):
        warm_script(XpraSettings(), paths, "https://example.org/")
