"""Configuration of what runs in a session: Xpra and Firefox commands, arguments, prefs, environment."""

from __future__ import annotations

import shutil
from typing import Any

from traitlets import Bool, Dict, Enum, HasTraits, Int, List, Unicode, validate

from ..admin_args import firefox_arg_refusal, managed_xpra_options, pref_refusal, xpra_arg_refusal
from ..commands import check_env_pattern
from ..limits import parse_screen_size
from ..urls import check_start_url
from .checks import bad, in_range, parsed

FIREFOX_CANDIDATES = ("firefox", "firefox-esr")
FORBIDDEN_XPRA_ARGS = tuple(f"--{name}" for name in sorted(managed_xpra_options()))
"""The options ffsystemd gives `xpra start` itself (refused in extra_xpra_args, see ffsystemd.admin_args)."""


def find_firefox() -> list[str]:
    """Return the default Firefox command: the first of firefox, firefox-esr on PATH."""
    for name in FIREFOX_CANDIDATES:
        path = shutil.which(name)
        if path:
            return [path]
    return []


def forbidden_xpra_arg(arg: str) -> str | None:
    """Why an extra Xpra argument is refused (None if allowed); see ffsystemd.admin_args."""
    return xpra_arg_refusal(arg)


class BrowserConfig(HasTraits):
    """The Xpra and Firefox a session runs: commands, extra arguments, prefs, environment, screen, files."""

    firefox_command = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Command that starts Firefox (without the profile and URL arguments, which"
        " ffsystemd adds). Default: the first of 'firefox', 'firefox-esr' found on PATH.",
    )
    xpra_command = List(Unicode(), default_value=["xpra"], config=True, help="Command that runs Xpra.")
    extra_xpra_args = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Extra arguments appended to 'xpra start', each as --option=value. Refused: every"
        " option ffsystemd gives Xpra itself (--bind, --xvfb, --start-child, --html, --daemon,"
        " --systemd-run, --socket-dirs, --exit-with-children, --mdns, ...), their --no- forms"
        " and abbreviations, and whole families that open listeners, run commands or change"
        " authentication (--bind*, --tcp*, --ws*, --ssl*, --ssh*, --socket-*, --auth and"
        " *-auth, --start*, --exec-wrapper, --env, --source*, --password-file, --encryption*,"
        " --uid/--gid, ...); short options and separate values or positional arguments too.",
    )
    extra_firefox_args = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Extra arguments for Firefox, before the URL. Remote control and debugging"
        " (--remote-debugging-port, --marionette, --start-debugger-server, --remote-allow-*,"
        " --jsdebugger, -d/-g debuggers, --headless, ...) and the profile/instance options"
        " ffsystemd sets (--profile, -P, --new-instance, --no-remote) are refused, in any"
        " spelling Firefox accepts (-opt, --opt, any case).",
    )
    firefox_prefs = Dict(
        default_value={},
        config=True,
        help="Extra Firefox preferences written to each session profile's user.js"
        " (name -> bool, int or string); they override ffsystemd's quiet first-run defaults."
        " Refused: remote debugging (devtools.debugger.remote-*, devtools.debugger.prompt-connection,"
        " devtools.chrome.enabled), Marionette (marionette.*), the remote agent (remote.*) and"
        " where files go (browser.cache.disk.parent_directory, browser.download.dir, ...).",
    )
    pass_environment = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Names of the Jupyter server's environment variables that also reach Xpra, Xvfb"
        " and Firefox (a name ending in '*' is a prefix, e.g. 'MOZ_*'). Only an allow-list"
        " passes by default: PATH, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TZDIR,"
        " LOCPATH, FONTCONFIG_FILE, FONTCONFIG_PATH, XDG_DATA_DIRS and the proxy variables"
        " (http_proxy, https_proxy, ftp_proxy, all_proxy, no_proxy, in both cases); everything"
        " else (tokens, cloud keys, JUPYTER_*, JPY_*, DBUS_SESSION_BUS_ADDRESS, ...) is dropped."
        " The variables ffsystemd sets itself (HOME, XDG_CONFIG_HOME, XDG_RUNTIME_DIR, XDG_CACHE_HOME,"
        " XDG_CONFIG_DIRS, TMPDIR, XAUTHORITY, ...) always win: a session has its own HOME.",
    )
    start_url = Unicode(
        "about:blank",
        config=True,
        help="Page a new session opens when the launch request names none (http(s) URL or about: page).",
    )
    screen_size = Unicode(
        "3840x2160",
        config=True,
        help="Size WIDTHxHEIGHT of each session's virtual X screen: the most X pixels the Firefox"
        " view has. A tab needs its CSS size times the browser's device pixel ratio (a 2x screen:"
        " twice each way); a HiDPI tab that would not fit gets a lower ratio (a softer picture),"
        " a tab larger than it at ratio 1 is filled but not clickable beyond it. Xvfb keeps a"
        " framebuffer of this size for the session's whole life, also in a pooled session: Xvfb"
        " measured 57 MiB PSS at 3840x2160, 31 MiB at 1920x1080 (an idle session).",
    )
    firefox_content_processes = Int(
        2,
        config=True,
        help="Most shared web content processes each session's Firefox runs (Firefox's own default"
        " is 8; each costs memory, ~15-20 MiB PSS idle and more with pages in it). Site isolation"
        " stays on: a site still gets a process of its own. Firefox also keeps just one spare"
        " process started ahead of need (instead of 3), and no hidden new-tab page. Raise it for"
        " sessions that keep many tabs open; firefox_prefs can override each of these prefs"
        " (dom.ipc.processCount, dom.ipc.processPrelaunch.fission.number, browser.newtab.preload).",
    )
    downloads_dir = Unicode(
        "Downloads",
        config=True,
        help="Where Firefox saves downloads (without asking), so that the JupyterLab file browser"
        " shows them: a path relative to the server's root_dir (default 'Downloads', i.e."
        " <root_dir>/Downloads), or an absolute path. Created mode 0700 if missing. Checked at"
        " start-up: it must be a real directory (not a symlink) owned by the server's user, not"
        " writable by other users, under directories only root or that user control, and a"
        " relative path must stay inside root_dir. Downloads there outlive their session. ''"
        " keeps each session's downloads in its own directory (<session>/downloads), removed"
        " with the session unless keep_profile. A page's file-upload dialog opens in root_dir.",
    )
    clipboard = Enum(
        ["both", "to-firefox", "to-browser", "off"],
        default_value="both",
        config=True,
        help="Copy and paste between the user's browser and the session's Firefox: 'both',"
        " 'to-firefox' (the user may paste into Firefox, nothing copied there leaves it),"
        " 'to-browser' (only text copied in Firefox reaches the user's browser) or 'off'."
        " Enforced by Xpra's server (--clipboard, --clipboard-direction), whatever the page"
        " or the client does.",
    )
    keep_profile = Bool(
        False,
        config=True,
        help="Keep a session's directory (its Firefox profile, home and downloads) after cleanup"
        " instead of deleting it. The dead X server's cookie, the sockets and the runtime and"
        " temporary files are removed either way.",
    )

    @validate("xpra_command", "firefox_command")
    def _check_command(self, proposal: Any) -> list[str]:
        value = proposal["value"]
        name = proposal["trait"].name
        if name == "xpra_command" and not value:
            raise bad(name, value, "must name the xpra program")
        if value and shutil.which(value[0]) is None:
            raise bad(name, value, f"{value[0]!r} is not an executable on PATH")
        return value

    @validate("extra_xpra_args")
    def _check_extra_xpra_args(self, proposal: Any) -> list[str]:
        for arg in proposal["value"]:
            reason = forbidden_xpra_arg(arg)
            if reason:
                raise bad("extra_xpra_args", proposal["value"], reason)
        return proposal["value"]

    @validate("extra_firefox_args")
    def _check_extra_firefox_args(self, proposal: Any) -> list[str]:
        for arg in proposal["value"]:
            reason = firefox_arg_refusal(arg)
            if reason:
                raise bad("extra_firefox_args", proposal["value"], reason)
        return proposal["value"]

    @validate("firefox_prefs")
    def _check_prefs(self, proposal: Any) -> dict[str, Any]:
        for key, val in proposal["value"].items():
            if not isinstance(key, str) or not isinstance(val, (bool, int, str)):
                raise bad("firefox_prefs", proposal["value"], f"{key!r}: values must be bool, int or str")
            reason = pref_refusal(key)
            if reason:
                raise bad("firefox_prefs", proposal["value"], reason)
        return proposal["value"]

    @validate("pass_environment")
    def _check_pass_environment(self, proposal: Any) -> list[str]:
        for name in proposal["value"]:
            try:
                check_env_pattern(name)
            except ValueError as exc:
                raise bad("pass_environment", proposal["value"], str(exc)) from None
        return proposal["value"]

    @validate("start_url")
    def _check_start_url(self, proposal: Any) -> str:
        try:
            return check_start_url(proposal["value"])
        except ValueError as exc:
            raise bad("start_url", proposal["value"], str(exc)) from None

    @validate("screen_size")
    def _check_screen_size(self, proposal: Any) -> str:
        return parsed("screen_size", proposal["value"], parse_screen_size)

    @validate("firefox_content_processes")
    def _check_content_processes(self, proposal: Any) -> int:
        return in_range("firefox_content_processes", proposal["value"], 1, 64, "must be between 1 and 64")
