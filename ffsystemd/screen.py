"""The session's first screen size: the X screen set to the tab's size before the client's hello (pure).

Xpra resizes its virtual screen to the size the HTML5 client asks for in its hello, and when
that size is not one of the X server's modes yet it adds one and then sleeps 0.5 s ("to make
sure that everything sees the new resolution", x11_server_core in Xpra 3.1) before it answers
the hello: half a second of every launch. When the screen already has exactly the client's
size, Xpra skips all of that ("perfect match").

So a launch may say which size the client is going to ask for (`screen`, the frame's size in
X pixels); inside the session, before Firefox opens its page, `xrandr` sets the X screen to
it (a mode of our own name, `ffs-<w>x<h>`, so it never clashes with the modes Xpra adds
later), and a marker file says it is done; the client's websocket is let through only then
(`ffsystemd.handlers.client`, bounded), so Xpra never races our resize. The screen keeps the
`screen_size` it was started with as its maximum (Xvfb cannot grow beyond that), so a larger
request is clamped to it. Without `xrandr` on the host the step does nothing and says so in
the marker: launches are then 0.5 s slower, nothing else changes.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .session_dirs import SessionPaths

SCREEN_MIN = 64
"""The smallest width or height a launch may ask for (X pixels)."""

XRANDR = "xrandr"
XVFB_OUTPUT = "screen"
"""The name of Xvfb's only RandR output."""


def check_screen(value: object, limit: tuple[int, int]) -> tuple[int, int]:
    """A launch's `screen` as (width, height), clamped to `limit` (the session's screen_size).

    `value` must be a list of two integers of at least SCREEN_MIN; ValueError (its message
    says what was wrong) otherwise.
    """
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError("screen must be [width, height]: two integers (X pixels)")
    width, height = value
    if width < SCREEN_MIN or height < SCREEN_MIN:
        raise ValueError(f"screen must be at least {SCREEN_MIN}x{SCREEN_MIN} pixels")
    return min(width, limit[0]), min(height, limit[1])


MODE_PREFIX = "ffs-"
"""Our RandR modes are named `ffs-<w>x<h>`: never a name Xpra chooses (it names modes `<w>x<h>`)."""


def mode_name(width: int, height: int) -> str:
    """Our RandR mode's name for a size (what SCREEN_FUNCTION names it)."""
    return f"{MODE_PREFIX}{width}x{height}"


def screen_set_file(paths: SessionPaths) -> Path:
    """The marker the session writes once its first screen size is set (or given up on)."""
    return paths.runtime / "screen-set"


SCREEN_FUNCTION = f"""ffs_screen() {{
  # ffsystemd.screen: set the X screen ($DISPLAY) to $1 x $2 pixels, then write the marker $3:
  # set, failed (Xpra resizes as usual) or no-xrandr. A 60 Hz mode with a small blanking:
  # Xvfb shows no picture, any consistent timings do.
  if ! command -v {XRANDR} >/dev/null 2>&1; then echo no-xrandr > "$3"; return 0; fi
  if {XRANDR} --newmode "{MODE_PREFIX}$1x$2" $(( ($1 + 24) * ($2 + 24) * 60 / 1000000 + 1 )) \\
       "$1" $(($1 + 8)) $(($1 + 16)) $(($1 + 24)) "$2" $(($2 + 8)) $(($2 + 16)) $(($2 + 24)) \\
       2>/dev/null &&
     {XRANDR} --addmode {XVFB_OUTPUT} "{MODE_PREFIX}$1x$2" 2>/dev/null &&
     {XRANDR} --output {XVFB_OUTPUT} --mode "{MODE_PREFIX}$1x$2" 2>/dev/null; then
    echo set > "$3"
  else
    echo failed > "$3"
  fi
}}
"""
"""A shell function `ffs_screen WIDTH HEIGHT MARKER` (the start child defines it; WIDTH and
HEIGHT are checked integers: check_screen or the claim line's digits-only test)."""


def presize_line(screen: tuple[int, int] | None, paths: SessionPaths) -> str:
    """The shell line a cold session's start child runs before Firefox (empty without a size)."""
    if screen is None:
        return ""
    width, height = screen
    return f"ffs_screen {int(width)} {int(height)} {shlex.quote(str(screen_set_file(paths)))}\n"
