"""How a pooled ("warm") session's Firefox starts on a blank page and is later told its page.

A warm session is an ordinary session (own directory, profile, scope, limits) whose Xpra start
child is `/bin/sh <runtime>/warm.sh` (written by the launcher) instead of Firefox itself. The
script runs inside the session's scope, as a child of its Xpra, and:

1. starts a D-Bus daemon for this session alone: its socket is `<runtime>/bus` in the
   session's 0700 runtime directory, EXTERNAL authentication (our uid), no TCP, and no service
   directories, so nothing can be activated on it;
2. starts Firefox on a blank page (first_page) with remoting on (no `--no-remote`, no MOZ_NO_REMOTE) on that
   bus: Firefox registers `org.mozilla.firefox.<its profile path>` there, on no other bus;
3. once that name is on the bus and Firefox's start-up is over (its profile's
   `sessionCheckpoints.json` says `sessionstore-windows-restored`: a URL handed over earlier
   is lost), creates `<runtime>/warm-ready` and waits for one line on the
   FIFO `<runtime>/claim` (0600): `<width> <height> <start URL>`, written by the server when it
   claims the session (`open_url`; a size of `0 0`: none asked for);
4. sets the X screen to that size first (ffsystemd.screen: the client's hello then needs no
   resize) and writes `<runtime>/screen-set`;
5. checks the URL is an http(s) or about: URL and runs `firefox --profile <profile> <url>`: a
   remote client that hands the URL to the running Firefox over the private bus and exits;
   the profile sets `browser.link.open_newwindow.override.external` to 1, so the page
   replaces the blank one in the same tab. Its exit status goes to `<runtime>/claimed`;
6. waits for Firefox, records its exit status where a cold session's start child does
   (`firefox.exit`), and stops its bus.

So a remote command can reach only this session's Firefox: the bus is the session's own
socket, and the name Firefox listens on is derived from the session's own profile.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shlex
import time
from pathlib import Path
from xml.sax.saxutils import escape

from .commands import XpraSettings, firefox_exit_file
from .screen import SCREEN_FUNCTION, screen_set_file
from .session_dirs import SessionPaths
from .urls import check_start_url

WARM_PREFS: dict[str, object] = {
    # A URL handed over by the remote client opens in the current tab (replacing about:blank).
    "browser.link.open_newwindow.override.external": 1,
}
BLANK_URL = "about:blank"
"""The start URL of a pooled session's record until it is claimed."""
WAITING_PAGE = "about:blank?warm"
"""A blank page Firefox does not count as blank (see first_page)."""
_WAITING_PAGE_RE = re.compile(r"about:[a-z]+(?:\?[a-z]+)?")
BLANK_PAGES = ("about:blank", "about:home", "about:newtab")
"""Start pages for which Firefox puts the keyboard in its address bar (its start-up does so for
a blank page; a page handed over later keeps whatever focus there was)."""


def first_page(start_url: str) -> str:
    """The page a pooled Firefox waits on, for a server whose start_url is `start_url` (pure).

    Firefox's start-up focuses the address bar when it opens on a blank page, and a URL handed
    over by a claim loads without moving that focus. So for a blank start_url (the default) the
    pool waits on about:blank, and the keyboard is in the address bar as in a cold session on
    about:blank; for a real start page it waits on WAITING_PAGE, so keys typed after the claim
    reach the page, as in a cold session on that page (measured: on about:blank every key of
    9 of 9 warm claims went into the address bar). A launch asking for the other kind of page
    gets the focus of the server's kind.
    """
    return BLANK_URL if start_url in BLANK_PAGES else WAITING_PAGE


DBUS_DAEMON = "dbus-daemon"
DBUS_SEND = "dbus-send"


def script_path(paths: SessionPaths) -> Path:
    return paths.runtime / "warm.sh"


def bus_config_path(paths: SessionPaths) -> Path:
    return paths.runtime / "bus.conf"


def bus_socket(paths: SessionPaths) -> Path:
    return paths.runtime / "bus"


def claim_fifo(paths: SessionPaths) -> Path:
    return paths.runtime / "claim"


def ready_file(paths: SessionPaths) -> Path:
    return paths.runtime / "warm-ready"


def claimed_file(paths: SessionPaths) -> Path:
    return paths.runtime / "claimed"


_ADDRESS_SAFE = re.compile(r"[-0-9A-Za-z_/.\\*]")


def bus_address(paths: SessionPaths) -> str:
    """The D-Bus address of the session's private bus (unsafe bytes %-escaped as D-Bus wants)."""
    raw = os.fsencode(bus_socket(paths))
    escaped = "".join(chr(b) if _ADDRESS_SAFE.fullmatch(chr(b)) else f"%{b:02x}" for b in raw)
    return f"unix:path={escaped}"


def bus_config(paths: SessionPaths) -> str:
    """The private bus's configuration: one unix socket, our uid only, nothing activatable."""
    socket = escape(str(bus_socket(paths)))
    return (
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        "<busconfig>\n"
        "  <type>session</type>\n"
        f"  <listen>unix:path={socket}</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        '  <policy context="default">\n'
        '    <allow send_destination="*"/>\n'
        '    <allow receive_sender="*"/>\n'
        '    <allow own="*"/>\n'
        "  </policy>\n"
        "</busconfig>\n"
    )


def warm_script(settings: XpraSettings, paths: SessionPaths, waiting_page: str = BLANK_URL) -> str:
    """The start child of a warm session (see the module docstring); every value shell-quoted.

    Firefox starts on `waiting_page` (first_page), which must be an about: page.
    """
    if not _WAITING_PAGE_RE.fullmatch(waiting_page):
        raise ValueError(f"a pooled Firefox waits on an about: page, not {waiting_page!r}")
    q = shlex.quote
    firefox = " ".join(q(a) for a in settings.firefox_command)
    extra = " ".join(q(a) for a in settings.extra_firefox_args)
    profile = q(str(paths.profile))
    socket = q(str(bus_socket(paths)))
    checkpoints = q(str(paths.profile / "sessionCheckpoints.json"))
    list_names = (
        f"{DBUS_SEND} --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus"
        " org.freedesktop.DBus.ListNames"
    )
    return f"""# written by ffsystemd: the start child of a pooled session (ffsystemd.warm)
{SCREEN_FUNCTION}unset MOZ_NO_REMOTE
export DBUS_SESSION_BUS_ADDRESS={q(bus_address(paths))}
{DBUS_DAEMON} --nofork --nopidfile --config-file={q(str(bus_config_path(paths)))} </dev/null &
bus=$!
n=0
while [ ! -S {socket} ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n+1)); done
{firefox} --new-instance --profile {profile} {extra} {q(waiting_page)} &
ff=$!
(
  while kill -0 $ff 2>/dev/null && ! {{ grep -qs sessionstore-windows-restored {checkpoints} &&
      {list_names} 2>/dev/null | grep -q '"org\\.mozilla\\.'; }}; do
    sleep 0.05
  done
  kill -0 $ff 2>/dev/null || exit 0
  : > {q(str(ready_file(paths)))}
  read -r width height url < {q(str(claim_fifo(paths)))} || exit 0
  case $width$height in
    ''|*[!0-9]*) echo refused > {q(str(claimed_file(paths)))}; exit 0 ;;
  esac
  if [ "$width" -gt 0 ] && [ "$height" -gt 0 ]; then
    ffs_screen "$width" "$height" {q(str(screen_set_file(paths)))}
  fi
  case $url in
    http://*|https://*|about:*) ;;
    *) echo refused > {q(str(claimed_file(paths)))}; exit 0 ;;
  esac
  timeout 20 {firefox} --profile {profile} "$url" </dev/null
  echo $? > {q(str(claimed_file(paths)))}
) &
opener=$!
wait $ff
code=$?
kill $opener $bus 2>/dev/null
echo "$code" > {q(str(firefox_exit_file(paths)))}
exit "$code"
"""


def warm_child(paths: SessionPaths) -> str:
    """Xpra's `--start-child` for a warm session: run the script the launcher wrote."""
    return shlex.join(["/bin/sh", str(script_path(paths))])


def write_warm_files(settings: XpraSettings, paths: SessionPaths, waiting_page: str = BLANK_URL) -> None:
    """Write the warm script (Firefox waiting on `waiting_page`) and the bus configuration, and
    make the claim FIFO (0600)."""
    script_path(paths).write_text(warm_script(settings, paths, waiting_page))
    bus_config_path(paths).write_text(bus_config(paths))
    os.mkfifo(claim_fifo(paths), 0o600)


def is_ready(paths: SessionPaths) -> bool:
    """Firefox is up on its blank page and the script waits for a URL."""
    return ready_file(paths).exists()


class OpenFailed(Exception):
    """The URL could not be handed to the pooled session's Firefox."""


async def open_url(
    paths: SessionPaths, url: str, timeout: float = 10.0, screen: tuple[int, int] | None = None
) -> None:
    """Hand the (validated) URL, and the first screen size if any, to the session; return once
    its Firefox took the URL.

    Raises OpenFailed when nobody waits on the claim FIFO, the remote client failed or did
    not finish within timeout seconds.
    """
    send_url(paths, url, screen)
    await url_taken(paths, timeout)


def claim_line(url: str, screen: tuple[int, int] | None = None) -> bytes:
    """The claim FIFO's line: `<width> <height> <url>` (`0 0`: no size); ValueError on a bad URL."""
    width, height = screen if screen is not None else (0, 0)
    return f"{int(width)} {int(height)} {check_start_url(url)}\n".encode()


def send_url(paths: SessionPaths, url: str, screen: tuple[int, int] | None = None) -> None:
    """Write the claim line (claim_line) to the claim FIFO; OpenFailed when nobody waits on it."""
    line = claim_line(url, screen)
    try:
        fd = os.open(claim_fifo(paths), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        reason = "nobody waits for it" if exc.errno == errno.ENXIO else exc.strerror
        raise OpenFailed(f"cannot write the claim FIFO: {reason}") from exc
    try:
        os.write(fd, line)  # at most 2 KiB: one atomic pipe write
    finally:
        os.close(fd)


async def url_taken(paths: SessionPaths, timeout: float = 10.0) -> None:
    """Return once Firefox's remote client handed the URL over; OpenFailed if it failed or
    did not finish within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = claimed_file(paths).read_text().strip()
        except FileNotFoundError:
            status = ""
        if status:
            if status != "0":
                raise OpenFailed(f"Firefox's remote client ended with {status}")
            return
        if time.monotonic() >= deadline:
            raise OpenFailed(f"Firefox did not take the URL within {timeout:g} s")
        await asyncio.sleep(0.02)
