"""Pure builders of the session's command lines, environment and config files (no I/O)."""

from __future__ import annotations

import json
import re
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .screen import SCREEN_FUNCTION, presize_line
from .session_dirs import SessionPaths

GATE_SCRIPT = 'IFS= read -r go || exit 125; [ "$go" = go ] || exit 125; exec "$@" </dev/null'
"""Held on stdin until the launcher writes `go`: the scope holds this shell before Xpra runs."""

# What of the Jupyter server's environment reaches a session (Xpra, Xvfb, Firefox): only what
# a browser needs. A name ending in `*` is a prefix. Everything else (tokens, cloud keys,
# JUPYTER_*/JPY_*, the server's bus and display, its runtime dir) is dropped. HOME is not
# passed on: a session gets its own (launcher_environment), so it never writes to the user's.
ALLOWED_ENV = (
    "PATH",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TZDIR",
    "LOCPATH",
    "FONTCONFIG_FILE",
    "FONTCONFIG_PATH",
    "XDG_DATA_DIRS",
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)

_ENV_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")


def check_env_pattern(pattern: str) -> str:
    """Return pattern if it is a variable name, or a name prefix ending in `*`; else ValueError."""
    if not isinstance(pattern, str) or not _ENV_PATTERN.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not an environment variable name (or NAME_PREFIX*)")
    return pattern


def env_allowed(name: str, patterns: Iterable[str]) -> bool:
    """True if name is one of patterns, or starts with a pattern that ends in `*`."""
    for pattern in patterns:
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
        if name == pattern:
            return True
    return False


@dataclass(frozen=True)
class XpraSettings:
    """What the admin configured for Xpra and Firefox (already validated)."""

    xpra_command: Sequence[str] = ("xpra",)
    firefox_command: Sequence[str] = ("firefox-esr",)
    extra_xpra_args: Sequence[str] = ()
    extra_firefox_args: Sequence[str] = ()
    screen_size: tuple[int, int] = (3840, 2160)  # the screen_size trait's default
    extra_prefs: Mapping[str, object] = field(default_factory=dict)
    pass_environment: Sequence[str] = ()
    clipboard: str = "both"


CLIPBOARD_DIRECTIONS = {"both": "both", "to-firefox": "to-server", "to-browser": "to-client"}
"""The `clipboard` setting's values (besides "off") and Xpra's --clipboard-direction for each."""


def clipboard_args(clipboard: str) -> list[str]:
    """Xpra's clipboard options for the `clipboard` setting ("off" or a CLIPBOARD_DIRECTIONS key)."""
    if clipboard == "off":
        return ["--clipboard=no"]
    return ["--clipboard=yes", f"--clipboard-direction={CLIPBOARD_DIRECTIONS[clipboard]}"]


def gate_command(argv: Sequence[str]) -> list[str]:
    """Wrap argv so it execs only after the launcher writes `go` to its stdin."""
    return ["/bin/sh", "-c", GATE_SCRIPT, "ffsystemd-gate", *argv]


def firefox_argv(settings: XpraSettings, paths: SessionPaths, url: str) -> list[str]:
    """Firefox's own command line: a new, private instance on the session's profile."""
    return [
        *settings.firefox_command,
        "--no-remote",
        "--new-instance",
        "--profile",
        str(paths.profile),
        *settings.extra_firefox_args,
        url,
    ]


FIREFOX_EXIT_SCRIPT = '"$@"; code=$?; echo "$code" > "$0"; exit "$code"'
"""Runs Firefox and records its exit status (128+N: killed by signal N) for the manager."""


def firefox_exit_file(paths: SessionPaths) -> Path:
    """Where the start child records Firefox's exit status."""
    return paths.runtime / "firefox.exit"


def firefox_child_argv(
    settings: XpraSettings, paths: SessionPaths, url: str, screen: tuple[int, int] | None = None
) -> list[str]:
    """Xpra's start child: Firefox under a shell that records how Firefox ended.

    With `screen` (checked by ffsystemd.screen.check_screen), the shell first sets the X
    screen to that size, so Firefox starts at the tab's size and the client's hello needs no
    resize (ffsystemd.screen).
    """
    script = FIREFOX_EXIT_SCRIPT
    if screen is not None:
        script = SCREEN_FUNCTION + presize_line(screen, paths) + script
    return [
        "/bin/sh",
        "-c",
        script,
        str(firefox_exit_file(paths)),
        *firefox_argv(settings, paths, url),
    ]


def firefox_end(status_text: str | None) -> tuple[str, str] | None:
    """(result, message) for the recorded exit status of Firefox; None when nothing was recorded."""
    if status_text is None or not status_text.strip().isdigit():
        return None
    status = int(status_text.strip())
    if status == 0:
        return "success", "Firefox was closed"
    if status > 128:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = f"signal {status - 128}"
        verb = "crashed" if name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE") else "was killed"
        return "signal", f"Firefox {verb} ({name})"
    return "exit-code", f"Firefox exited with status {status}"


def xvfb_command(settings: XpraSettings) -> str:
    """The Xvfb command line for Xpra's `--xvfb`: a screen of screen_size, no TCP."""
    width, height = settings.screen_size
    return (
        "Xvfb +extension GLX +extension Composite +extension RANDR"
        f" -screen 0 {width}x{height}x24+32 -dpi 96 -nolisten tcp -noreset -auth $XAUTHORITY"
    )


def xpra_argv(
    settings: XpraSettings,
    paths: SessionPaths,
    url: str,
    child: str | None = None,
    screen: tuple[int, int] | None = None,
) -> list[str]:
    """Xpra's command line: a unix socket only, HTML5 client on, Firefox as its start child.

    `--daemon=no --systemd-run=no` keep Xpra (and so everything it starts) in the
    caller's scope; `--exit-with-children` ends the session with Firefox. `child` replaces
    the start child (a pooled session's script, ffsystemd.warm), which must run Firefox;
    `screen` is the cold start child's first screen size (firefox_child_argv).
    """
    if child is None:
        child = shlex.join(firefox_child_argv(settings, paths, url, screen))
    return [
        *settings.xpra_command,
        "start",
        "--daemon=no",
        "--systemd-run=no",
        f"--bind={paths.socket}",
        f"--socket-dirs={paths.sockets}",
        f"--log-dir={paths.runtime}",
        "--html=on",
        "--mdns=no",
        "--pulseaudio=no",
        "--speaker=off",
        "--microphone=off",
        "--webcam=no",
        "--notifications=no",
        "--printing=no",
        "--file-transfer=no",
        "--open-files=no",
        "--start-new-commands=no",
        "--dbus-proxy=no",
        "--dbus-control=no",
        "--opengl=no",
        # One Firefox window that fills one screen: no multi-monitor emulation (no LD_PRELOAD of
        # libfakeXinerama into Firefox either). Empty, not "no": Xpra 3.1 takes any non-empty
        # value as "on" when it sizes the screen, and then at every client hello switches the
        # screen to another size and back, resizing Firefox twice even when the screen already
        # has the client's size (ffsystemd.screen).
        "--fake-xinerama=",
        *clipboard_args(settings.clipboard),  # the tab's copy and paste, not left to /etc/xpra
        "--session-name=Firefox",
        f"--xvfb={xvfb_command(settings)}",
        "--resize-display=yes",
        "--exit-with-children=yes",
        f"--start-child={child}",
        *settings.extra_xpra_args,
    ]


def xpra_config_file() -> str:
    """Contents of `<session>/xdg/xpra/xpra.conf`.

    Read after /etc/xpra, it replaces the distribution's `start = /etc/X11/Xsession true`
    (which pops an xmessage window) and its dbus-launch.
    """
    return "start = /bin/true\ndbus-launch =\nmdns = no\n"


def launcher_environment(paths: SessionPaths) -> dict[str, str]:
    """The variables the launcher sets for every session, pointing into its directory.

    HOME is the session's own `home/`, so whatever a program writes under `~` (Firefox's
    `~/.mozilla` or `~/.config/mozilla`, GTK, fontconfig, dconf, PulseAudio, Mesa) stays in
    the session; the XDG homes are set explicitly too, because Xpra expands `~` from the
    password database, not from HOME. XAUTHORITY is the session's own cookie file, which
    create_session_dirs makes (Xpra uses it only when it exists; XPRA_PRIVATE_XAUTH keeps
    any fallback in the session's runtime dir rather than `~/.Xauthority`).
    """
    home = paths.home
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CONFIG_DIRS": str(paths.xdg_config),
        "XDG_RUNTIME_DIR": str(paths.runtime),
        "XDG_CACHE_HOME": str(paths.cache),
        "XPRA_USER_CONF_DIRS": str(home / ".config" / "xpra"),
        "TMPDIR": str(paths.temp),
        "XAUTHORITY": str(paths.xauthority),
        "XPRA_PRIVATE_XAUTH": "1",
        "NO_AT_BRIDGE": "1",
        "MOZ_CRASHREPORTER_DISABLE": "1",
        "MOZ_NO_REMOTE": "1",
    }


def session_environment(
    base_env: Mapping[str, str], paths: SessionPaths, pass_environment: Iterable[str] = ()
) -> dict[str, str]:
    """The environment Xpra (and so Xvfb and Firefox) starts with.

    Only the server's variables named by ALLOWED_ENV or pass_environment (names, or
    prefixes ending in `*`) are kept; the launcher's own variables (launcher_environment)
    are then set over them, so no allow-list entry can point a session elsewhere.
    """
    patterns = (*ALLOWED_ENV, *pass_environment)
    env = {k: v for k, v in base_env.items() if env_allowed(k, patterns)}
    env.update(launcher_environment(paths))
    return env


DEFAULT_PREFS: dict[str, object] = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "startup.homepage_override_url": "",
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "browser.startup.firstrunSkipsHomepage": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.dataSubmissionPolicyBypassNotification": True,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "browser.tabs.warnOnClose": False,
    "browser.warnOnQuit": False,
    "browser.sessionstore.resume_from_crash": False,
    "browser.disableResetPrompt": True,
    "browser.uitour.enabled": False,
    "extensions.pocket.enabled": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.ping-centre.telemetry": False,
    "signon.rememberSignons": False,
    "browser.translations.automaticallyPopup": False,
    "browser.download.useDownloadDir": True,
    "browser.download.always_ask_before_handling_new_types": False,
    # No hidden new-tab page kept loaded (a privileged content process, ~55 MiB PSS measured):
    # a new tab loads it when opened.
    "browser.newtab.preload": False,
}


def content_process_prefs(processes: int) -> dict[str, object]:
    """Firefox prefs: at most `processes` shared web content processes, and one spare kept ready.

    Site isolation stays on (each site still gets a process of its own); what this bounds is
    the pool of shared content processes (`dom.ipc.processCount`, Firefox's default 8) and the
    processes Firefox starts ahead of need (`dom.ipc.processPrelaunch.fission.number`, default
    3: ~15 MiB PSS each, idle).
    """
    return {"dom.ipc.processCount": processes, "dom.ipc.processPrelaunch.fission.number": 1}


def xulstore_json() -> str:
    """Contents of the profile's `xulstore.json`: Firefox's main window starts maximized.

    A maximized window is one Xpra's HTML5 client sizes to the browser tab and resizes with it.
    """
    state = {"chrome://browser/content/browser.xhtml": {"main-window": {"sizemode": "maximized"}}}
    return json.dumps(state)


def download_prefs(downloads: Path) -> dict[str, object]:
    """Firefox saves every download to `downloads` without asking (not to `~/Downloads`)."""
    return {
        "browser.download.dir": str(downloads),
        "browser.download.lastDir": str(downloads),
        "browser.download.folderList": 2,
        "browser.download.useDownloadDir": True,
        "browser.download.always_ask_before_handling_new_types": False,
        "browser.download.manager.addToRecentDocs": False,
    }


def user_js(
    start_url: str, extra_prefs: Mapping[str, object] | None = None, downloads: Path | None = None
) -> str:
    """Contents of the profile's `user.js`: a quiet first run that opens start_url.

    With downloads, Firefox saves downloads there (download_prefs); extra_prefs win over both.
    """
    prefs = dict(DEFAULT_PREFS)
    if downloads is not None:
        prefs.update(download_prefs(downloads))
    prefs["browser.startup.homepage"] = start_url
    prefs["browser.startup.page"] = 1
    if extra_prefs:
        prefs.update(extra_prefs)
    lines = [f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items()]
    return "// written by ffsystemd for this session\n" + "\n".join(lines) + "\n"
