"""Headless Chromium (Debian's) driven by Playwright, screenshots kept as artifacts; the one-page
web server (ServedPage, RecordingPage) lives in tests/real/served.py and is re-exported here."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from .served import TEST_PAGE, RecordingPage, ServedPage

__all__ = ["TEST_PAGE", "RecordingPage", "ServedPage", "chromium", "distinct_colours", "save_artifact"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@contextmanager
def chromium(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """A headless Debian Chromium (Playwright cannot download its own browsers here)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


def distinct_colours(png: bytes) -> int:
    """Number of distinct colours in a PNG (a blank canvas has one or two)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    return len(colours) if colours is not None else 1 << 20


def save_artifact(name: str, data: bytes) -> Path:
    """Keep a screenshot under test-artifacts/ (CI keeps it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(data)
    return path
