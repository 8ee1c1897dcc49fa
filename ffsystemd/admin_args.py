"""What an admin may add to the Xpra and Firefox command lines and to the profile (pure checks).

The launcher's own choices are what keep a session inside its scope and directory and
reachable only through Jupyter: which sockets Xpra listens on, what it runs, how clients
authenticate, where Firefox keeps its profile and that nothing can drive it remotely. Extra
arguments and preferences may tune a session, never undo one of those.

* Xpra: every option `xpra_argv` emits is refused (derived from the builder itself, so a new
  option there is protected at once), and so are whole families that open listeners, run
  commands, change authentication or encryption, or move files and identities
  (XPRA_REFUSED_FAMILIES). Xpra's option parser takes unique abbreviations (`--exec-wr`),
  `--no-<option>` negations and `--option value` pairs: an abbreviation of a refused option
  is refused, a negation counts as its option, and only the one-argument form
  `--option=value` is accepted (a separate value could just as well be a positional
  argument, i.e. a display or a server to connect to).
* Firefox: its parser takes `-opt`, `--opt` and `-opt=value` alike, case-insensitively;
  remote-control and debugging options and the profile/instance options are refused.
* Preferences: remote debugging, Marionette and the remote agent, chrome devtools, and
  the places files go (cache, downloads) are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .commands import XpraSettings, firefox_argv, xpra_argv
from .session_dirs import SessionPaths

# Option name prefixes (without the leading --) refused whatever follows them.
XPRA_REFUSED_FAMILIES = (
    # listeners, sockets and where the server can be found
    "bind",
    "socket",
    "system-proxy-socket",
    "tcp",
    "udp",
    "ws",
    "wss",
    "ssl",
    "ssh",
    "rfb",
    "vsock",
    "min-port",
    "mdns",
    "displayfd",
    "use-display",
    "http-scripts",
    "html",
    "www",
    # authentication and encryption
    "auth",
    "password",
    "encryption",
    "challenge-handlers",
    "username",
    # programs Xpra runs, and where and as whom it runs them
    "start",
    "exec-wrapper",
    "dbus-launch",
    "source",
    "lpadmin",
    "lpinfo",
    "pulseaudio-command",
    "pulseaudio-configure-commands",
    "open-command",
    "remote-xpra",
    "proxy",
    "xvfb",
    "env",
    "daemon",
    "systemd-run",
    "uid",
    "gid",
    "chdir",
    "pidfile",
    "log-dir",
    "log-file",
    "exit-with",
    "mmap-group",
)
# Option names (without --) anywhere in which these words appear are refused too.
XPRA_REFUSED_WORDS = ("-auth", "-encryption", "-upgrade", "-proxy")

FIREFOX_REFUSED = (
    "remote-debugging-port",
    "remote-allow-hosts",
    "remote-allow-origins",
    "remote-allow-system-access",
    "marionette",
    "start-debugger-server",
    "jsdebugger",
    "wait-for-browser",
    "debugger",
    "debugger-args",
    "d",
    "g",
    "profile",
    "p",
    "profilemanager",
    "new-instance",
    "no-remote",
    "remote",
    "headless",
    "screenshot",
    "backgroundtask",
    "xpcshell",
    "setdefaultbrowser",
)
FIREFOX_REFUSED_PREFIXES = ("remote-allow", "remote-debugging", "marionette", "juggler")

PREF_REFUSED_PREFIXES = (
    "devtools.debugger.remote-",
    "marionette.",
    "remote.",
    "browser.cache.disk.parent_directory",
    "browser.cache.offline.parent_directory",
    "browser.download.dir",
    "browser.download.downloadDir",
    "browser.download.lastDir",
    "browser.download.folderList",
)
PREF_REFUSED = (
    "devtools.chrome.enabled",
    "devtools.debugger.prompt-connection",
    "devtools.debugger.force-local",
)

_SAMPLE_PATHS = SessionPaths(Path("/ffsystemd-sample"), "0" * 12)


def _option_names(argv: list[str]) -> frozenset[str]:
    return frozenset(arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--"))


@lru_cache(maxsize=1)
def managed_xpra_options() -> frozenset[str]:
    """The names (without --) of the options the launcher itself gives `xpra start`."""
    return _option_names(xpra_argv(XpraSettings(), _SAMPLE_PATHS, "about:blank"))


@lru_cache(maxsize=1)
def managed_firefox_options() -> frozenset[str]:
    """The names (without dashes) of the options the launcher itself gives Firefox."""
    return _option_names(
        firefox_argv(XpraSettings(firefox_command=("firefox",)), _SAMPLE_PATHS, "about:blank")
    )


XPRA_OPTION_TRAITS = {"clipboard": "clipboard", "clipboard-direction": "clipboard"}
"""Managed Xpra options an admin sets through a trait instead (named in the refusal)."""


def _xpra_refusal(name: str) -> str | None:
    for managed in sorted(managed_xpra_options()):
        if managed.startswith(name):
            why = (
                f"--{managed} is set by ffsystemd"
                if managed == name
                else f"abbreviates --{managed}, set by ffsystemd"
            )
            trait = XPRA_OPTION_TRAITS.get(managed)
            return f"{why}; use c.FirefoxLauncher.{trait}" if trait else why
    for family in XPRA_REFUSED_FAMILIES:
        if family.startswith(name) and family != name:
            return f"abbreviates --{family}..., which ffsystemd manages"
        if name.startswith(family):
            return f"--{family}* options (listeners, commands, authentication, identities) are ffsystemd's"
    for word in XPRA_REFUSED_WORDS:
        if word in name:
            return f"*{word}* options (authentication, encryption, upgrades, proxies) are ffsystemd's"
    return None


def xpra_arg_refusal(arg: str) -> str | None:
    """Why an extra `xpra start` argument is refused, or None if it may be added."""
    if not arg.startswith("--"):
        if arg.startswith("-"):
            return f"{arg!r}: short options are not accepted; use the --long-option=value form"
        return f"{arg!r}: only --option=value arguments are accepted (no separate values, no positionals)"
    name = arg[2:].split("=", 1)[0]
    if len(name) < 2 or name.startswith("-"):
        return f"{arg!r}: not an option"
    positive = name[3:] if name.startswith("no-") else name
    why = _xpra_refusal(positive)
    return None if why is None else f"{arg!r}: {why}"


def firefox_arg_refusal(arg: str) -> str | None:
    """Why an extra Firefox argument is refused, or None if it may be added (positional ones may)."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    name = arg.lstrip("-").split("=", 1)[0].lower()
    if (
        name in FIREFOX_REFUSED
        or name in managed_firefox_options()
        or name.startswith(FIREFOX_REFUSED_PREFIXES)
    ):
        return f"{arg!r}: remote control, debugging and the profile/instance options are managed by ffsystemd"
    return None


def pref_refusal(name: str) -> str | None:
    """Why a Firefox preference may not be set by firefox_prefs, or None if it may."""
    if name in PREF_REFUSED or name.startswith(PREF_REFUSED_PREFIXES):
        return (
            f"{name!r}: remote debugging, Marionette, the remote agent, chrome devtools and where"
            " the session keeps its files are managed by ffsystemd"
        )
    return None
