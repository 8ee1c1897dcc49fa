"""The HiDPI rule of ffsystemd/client_scale.js (pure; run under Node, which the front end's build needs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import ffsystemd
from ffsystemd.session_page import OUR_SCRIPTS

SCRIPT = Path(ffsystemd.__file__).parent / "client_scale.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs node (scripts/setup installs it)")


def rule(calls: list[list[object]]) -> list[object]:
    """[pixelRatio(*args), screenPixels(css, ratio), dpiOf(ratio)] for each call, computed by the file."""
    program = (
        "const s = require(process.argv[1]);"
        "const calls = JSON.parse(process.argv[2]);"
        "console.log(JSON.stringify(calls.map(c => { const r = s.pixelRatio(...c);"
        " return [r, s.screenPixels(c[1], c[2], r), s.dpiOf(r)]; })));"
    )
    assert NODE is not None
    out = subprocess.run(
        [NODE, "-e", program, str(SCRIPT), json.dumps(calls)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_a_browser_without_hidpi_gets_ratio_1_as_today() -> None:
    results = rule(
        [[1, 1070, 779], [1, 1070, 779, 800, 600], [0.5, 1070, 779], [1.005, 1070, 779], [None, 10, 10]]
    )
    assert [r[0] for r in results] == [1, 1, 1, 1, 1]
    assert results[0][1:] == [[1070, 779], 96]
    assert results[1][1] == [1070, 779]  # a tab larger than the X screen at ratio 1: as today, not clamped


def test_the_ratio_is_the_device_pixel_ratio_when_the_x_size_fits() -> None:
    results = rule(
        [[2, 1070, 779], [2, 1070, 779, 3840, 2160], [1.5, 1001, 701, 3840, 2160], [1.25, 800, 600]]
    )
    assert results[0] == [2, [2140, 1558], 192]
    assert results[1] == [2, [2140, 1558], 192]
    assert results[2] == [1.5, [1502, 1052], 144]  # rounded to whole X pixels
    assert results[3] == [1.25, [1000, 750], 120]


def test_the_ratio_is_capped_so_the_x_size_fits_the_screen_and_at_three() -> None:
    (fit, tall, tiny, many) = rule(
        [[2, 1070, 779, 1920, 1080], [2, 500, 779, 1920, 1080], [2, 1900, 1070, 1920, 1080], [4, 640, 480]]
    )
    assert fit[1] == [1483, 1080] and fit[2] == 133  # 1080 / 779 = 1.386
    assert tall[1][1] == 1080
    assert tiny[0] == 1  # 1.0093: not worth a rescale
    assert many[0] == 3 and many[1] == [1920, 1440]


def test_the_page_loads_the_rule_after_client_view() -> None:
    paths = list(OUR_SCRIPTS)
    assert paths.index("_ffsystemd/client-scale.js") > paths.index("_ffsystemd/client-view.js")
    assert OUR_SCRIPTS["_ffsystemd/client-scale.js"] == SCRIPT.read_bytes()
