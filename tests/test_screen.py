"""ffsystemd.screen: a launch's first screen size, checked, and set by the session's shell.

The shell parts run for real under /bin/sh with a stand-in `xrandr` on PATH that records its
arguments (the real one needs an X server: tests/real/test_screen_real.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ffsystemd.commands import XpraSettings, firefox_child_argv, firefox_exit_file, xpra_argv
from ffsystemd.screen import SCREEN_FUNCTION, SCREEN_MIN, check_screen, mode_name, screen_set_file
from ffsystemd.session_dirs import create_session_dirs, ensure_root, session_paths
from ffsystemd.warm import claim_line

LIMIT = (1920, 1080)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1070, 779], (1070, 779)),
        ((64, 64), (64, 64)),
        ([4000, 779], (1920, 779)),
        ([800, 5000], (800, 1080)),
    ],
)
def test_a_screen_is_two_integers_clamped_to_the_screen_size(value, expected) -> None:
    assert check_screen(value, LIMIT) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1070x779", "two integers"),
        ([1070], "two integers"),
        ([1070, 779, 1], "two integers"),
        ([1070.0, 779], "two integers"),
        ([True, 779], "two integers"),
        (["1070", "779"], "two integers"),
        ({"width": 1070}, "two integers"),
        ([63, 779], f"at least {SCREEN_MIN}x{SCREEN_MIN}"),
        ([1070, -1], f"at least {SCREEN_MIN}x{SCREEN_MIN}"),
    ],
)
def test_anything_else_is_refused_saying_what_a_screen_is(value, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_screen(value, LIMIT)


FAKE_XRANDR = """#!/bin/sh
echo "$*" >> "$XRANDR_LOG"
[ -n "$XRANDR_FAIL" ] && case "$*" in *"$XRANDR_FAIL"*) exit 1 ;; esac
exit 0
"""


@pytest.fixture
def xrandr(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose `xrandr` records its arguments in the returned log (and /bin's tools)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xrandr").write_text(FAKE_XRANDR)
    (bin_dir / "xrandr").chmod(0o755)
    log = tmp_path / "xrandr.log"
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "XRANDR_LOG": str(log)}, log


def run_function(width: int, height: int, marker: Path, env: dict[str, str]) -> None:
    script = SCREEN_FUNCTION + f"ffs_screen {width} {height} {shlex.quote(str(marker))}\n"
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=10)


def test_the_function_adds_a_mode_of_our_own_name_and_sets_the_screen_to_it(tmp_path, xrandr) -> None:
    env, log = xrandr
    marker = tmp_path / "screen-set"
    run_function(1070, 779, marker, env)
    newmode, addmode, output = [line.split() for line in log.read_text().splitlines()]
    name = mode_name(1070, 779)
    assert name == "ffs-1070x779"
    # --newmode NAME CLOCK H-DISPLAY H-SYNC-START H-SYNC-END H-TOTAL V-DISPLAY ... V-TOTAL
    assert newmode[:2] == ["--newmode", name] and len(newmode) == 11
    h, v = [int(x) for x in newmode[3:7]], [int(x) for x in newmode[7:11]]
    assert h[0] == 1070 and v[0] == 779 and h == sorted(h) and v == sorted(v)
    assert int(newmode[2]) * 1_000_000 >= h[3] * v[3] * 60  # the clock carries a 60 Hz mode
    assert addmode == ["--addmode", "screen", name]
    assert output == ["--output", "screen", "--mode", name]
    assert marker.read_text() == "set\n"


def test_a_refused_mode_or_no_xrandr_still_writes_the_marker_so_nobody_waits(tmp_path, xrandr) -> None:
    env, log = xrandr
    marker = tmp_path / "screen-set"
    run_function(800, 600, marker, {**env, "XRANDR_FAIL": "--addmode"})
    assert marker.read_text() == "failed\n"
    assert "--output" not in log.read_text()  # gave up at the first refusal
    empty = tmp_path / "empty"
    empty.mkdir()
    run_function(800, 600, marker, {"PATH": str(empty)})
    assert marker.read_text() == "no-xrandr\n"


@pytest.fixture
def paths(tmp_path: Path):
    root = Path(os.path.realpath(tmp_path / "root"))
    ensure_root(root)
    result = session_paths(root, "0123456789ab")
    create_session_dirs(result)
    return result


def test_a_cold_start_child_sets_the_screen_before_firefox_starts(paths, tmp_path, xrandr) -> None:
    env, log = xrandr
    firefox = tmp_path / "firefox"  # records whether the screen was set when it started
    marker = shlex.quote(str(screen_set_file(paths)))
    firefox.write_text(f'#!/bin/sh\ncat {marker} > "$XRANDR_LOG.ff"\nexit 4\n')
    firefox.chmod(0o755)
    settings = XpraSettings(firefox_command=(str(firefox),))
    argv = firefox_child_argv(settings, paths, "https://example.org/", (1070, 779))
    xpra = xpra_argv(settings, paths, "https://example.org/", screen=(1070, 779))
    child = next(a for a in xpra if a.startswith("--start-child="))
    assert shlex.split(child.split("=", 1)[1]) == argv
    done = subprocess.run(argv, env=env, timeout=10)
    assert done.returncode == 4 and firefox_exit_file(paths).read_text().strip() == "4"
    assert Path(f"{log}.ff").read_text() == "set\n"
    assert log.read_text().splitlines()[-1] == "--output screen --mode ffs-1070x779"


def test_without_a_screen_the_cold_start_child_does_not_touch_the_screen(paths) -> None:
    argv = firefox_child_argv(XpraSettings(firefox_command=("/bin/true",)), paths, "https://example.org/")
    assert "ffs_screen" not in argv[2] and "xrandr" not in argv[2]


def test_the_claim_line_carries_the_size_or_zeros_and_only_a_start_url() -> None:
    assert claim_line("https://example.org/a?b", (1070, 779)) == b"1070 779 https://example.org/a?b\n"
    assert claim_line("about:blank") == b"0 0 about:blank\n"
    with pytest.raises(ValueError):
        claim_line("file:///etc/passwd", (800, 600))
