"""Unit tests for ffsystemd.admin_args: extra Xpra/Firefox arguments and prefs that are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from ffsystemd.admin_args import (
    XPRA_REFUSED_FAMILIES,
    firefox_arg_refusal,
    managed_firefox_options,
    managed_xpra_options,
    pref_refusal,
    xpra_arg_refusal,
)
from ffsystemd.app import FirefoxLauncher
from ffsystemd.commands import XpraSettings, xpra_argv
from ffsystemd.session_dirs import SessionPaths


def _launcher(**traits) -> FirefoxLauncher:
    cfg = Config()
    for name, value in traits.items():
        cfg.FirefoxLauncher[name] = value
    return FirefoxLauncher(config=cfg)


# --- Xpra ---------------------------------------------------------------------------------------
def test_every_option_the_builder_emits_is_refused_in_every_form():
    argv = xpra_argv(XpraSettings(), SessionPaths(Path("/r"), "abcdef012345"), "about:blank")
    emitted = {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}
    assert emitted == managed_xpra_options()
    assert {"bind", "xvfb", "start-child", "html", "daemon", "systemd-run", "socket-dirs"} <= emitted
    for name in emitted:
        for arg in (
            f"--{name}",
            f"--{name}=x",
            f"--no-{name}",
            f"--{name[:-1]}" if len(name) > 3 else f"--{name}",
        ):
            assert xpra_arg_refusal(arg) is not None, arg


@pytest.mark.parametrize(
    "arg",
    [
        "--start=xterm",
        "--start-child-on-connect=xterm",
        "--start-after-connect=xterm",
        "--start-on-last-client-exit=xterm",
        "--start-env=A=B",
        "--start-via-proxy=yes",
        "--exec-wrapper=strace",
        "--exec-wr=strace",
        "--html=/tmp/www",
        "--html=on",
        "--bind-tcp=0.0.0.0:10000",
        "--bind-ws=0.0.0.0:10000",
        "--bind-udp=0.0.0.0:10000",
        "--bind-ssh=0.0.0.0:22",
        "--bind-vsock=auto:1",
        "--bind-t=0.0.0.0:1",
        "--tcp-auth=none",
        "--ws-auth=none",
        "--auth=none",
        "--ssl=on",
        "--ssl-cert=/tmp/c",
        "--ssh=ssh",
        "--ssh-upgrade=yes",
        "--rfb-upgrade=5",
        "--tcp-proxy=host:80",
        "--socket-dir=/tmp",
        "--socket-permissions=666",
        "--system-proxy-socket=/tmp/s",
        "--password-file=/tmp/p",
        "--encryption=AES",
        "--tcp-encryption=AES",
        "--daemon=yes",
        "--no-daemon",
        "--systemd-run=yes",
        "--systemd-run-args=--user",
        "--xvfb=Xvfb :9 -listen tcp",
        "--use-display=yes",
        "--displayfd=3",
        "--env=LD_PRELOAD=/tmp/x.so",
        "--source=/tmp/evil.sh",
        "--source-start=/tmp/evil.sh",
        "--dbus-launch=/tmp/x",
        "--lpadmin=/tmp/x",
        "--pulseaudio-command=/tmp/x",
        "--remote-xpra=/tmp/x",
        "--uid=0",
        "--gid=0",
        "--chdir=/",
        "--pidfile=/tmp/p",
        "--log-file=/tmp/l",
        "--log-dir=/tmp",
        "--mdns=yes",
        "--exit-with-children=no",
        "--no-exit-with-children",
        "--exit-with-client=yes",
        "--mmap-group=users",
        "-d",
        "-dall",
        "-z9",
        "96",
        ":7",
        "ssh://host/",
        "--",
        "---bind=x",
    ],
)
def test_refused_xpra_args(arg):
    why = xpra_arg_refusal(arg)
    assert why is not None and repr(arg) in why


@pytest.mark.parametrize(
    "arg",
    [
        "--dpi=120",
        "--keyboard-layout=us",
        "--encodings=png,jpeg",
        "--quality=50",
        "--speed=80",
        "--sharing=no",
        "--system-tray=no",
        "--readonly=yes",
        "--bandwidth-limit=10M",
        "--desktop-scaling=off",
        "--speaker-codec=opus",
        "--cursors=yes",
        "--bell=no",
    ],
)
def test_harmless_xpra_args_pass(arg):
    assert xpra_arg_refusal(arg) is None


def test_two_token_forms_are_refused_by_their_value():
    assert xpra_arg_refusal("--dpi") is None
    assert xpra_arg_refusal("96") is not None
    assert xpra_arg_refusal("--bind") is not None


def test_families_cover_listeners_commands_and_auth():
    for family in (
        "bind",
        "tcp",
        "ws",
        "wss",
        "ssl",
        "ssh",
        "socket",
        "auth",
        "start",
        "exec-wrapper",
        "env",
    ):
        assert family in XPRA_REFUSED_FAMILIES


# --- Firefox --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arg",
    [
        "--remote-debugging-port",
        "--remote-debugging-port=9222",
        "-remote-debugging-port",
        "--REMOTE-DEBUGGING-PORT=9222",
        "--marionette",
        "-marionette",
        "--start-debugger-server",
        "-start-debugger-server=6000",
        "--remote-allow-hosts=evil",
        "--remote-allow-origins=*",
        "--remote-allow-system-access",
        "--jsdebugger",
        "-d",
        "-g",
        "--debugger=gdb",
        "--profile",
        "-profile",
        "-P",
        "-p",
        "--ProfileManager",
        "--new-instance",
        "--no-remote",
        "-remote",
        "--headless",
        "--screenshot",
        "--backgroundtask",
    ],
)
def test_refused_firefox_args(arg):
    why = firefox_arg_refusal(arg)
    assert why is not None and repr(arg) in why


@pytest.mark.parametrize(
    "arg", ["--kiosk", "--private-window", "--safe-mode", "-new-tab", "https://example.org/"]
)
def test_harmless_firefox_args_pass(arg):
    assert firefox_arg_refusal(arg) is None


def test_firefox_options_the_builder_emits_are_refused():
    assert managed_firefox_options() == {"no-remote", "new-instance", "profile"}
    for name in managed_firefox_options():
        assert firefox_arg_refusal(f"--{name}") is not None


# --- prefs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "devtools.debugger.remote-enabled",
        "devtools.debugger.remote-port",
        "devtools.debugger.remote-host",
        "devtools.debugger.prompt-connection",
        "devtools.chrome.enabled",
        "marionette.enabled",
        "marionette.port",
        "remote.active-protocols",
        "remote.force-local",
        "browser.cache.disk.parent_directory",
        "browser.download.dir",
        "browser.download.downloadDir",
        "browser.download.folderList",
    ],
)
def test_refused_prefs(name):
    why = pref_refusal(name)
    assert why is not None and repr(name) in why


@pytest.mark.parametrize(
    "name", ["browser.startup.homepage", "general.useragent.locale", "devtools.theme", "network.proxy.type"]
)
def test_harmless_prefs_pass(name):
    assert pref_refusal(name) is None


# --- at start-up: the extension stops, naming the trait and the value -------------------------------
@pytest.mark.parametrize(
    ("trait", "value", "words"),
    [
        ("extra_xpra_args", ["--dpi=96", "--start-child-on-connect=xterm"], "--start*"),
        ("extra_xpra_args", ["--bind-tcp", "0.0.0.0:1"], "--bind*"),
        ("extra_xpra_args", ["-d", "all"], "short options"),
        ("extra_xpra_args", ["--html=/srv/www"], "--html is set by ffsystemd"),
        ("extra_xpra_args", ["--clipboard=no"], "use c.FirefoxLauncher.clipboard"),
        ("extra_xpra_args", ["--clipboard-direction=to-client"], "use c.FirefoxLauncher.clipboard"),
        ("extra_firefox_args", ["--kiosk", "--remote-debugging-port=9222"], "remote control"),
        ("extra_firefox_args", ["-profile", "/tmp/p"], "profile"),
        ("firefox_prefs", {"devtools.debugger.remote-enabled": True}, "remote debugging"),
        ("firefox_prefs", {"marionette.port": 2828}, "Marionette"),
        ("firefox_prefs", {"browser.download.dir": "/tmp"}, "where"),
    ],
)
def test_a_refused_value_stops_the_extension_naming_trait_and_value(trait, value, words):
    with pytest.raises(TraitError) as exc:
        _launcher(**{trait: value})
    message = str(exc.value)
    assert f"c.FirefoxLauncher.{trait} = {value!r}" in message
    assert words in message
