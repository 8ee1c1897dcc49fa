"""The aggregate slice: with app-ffsystemd.slice installed by `ffsystemd install-units` and
its MemoryMax lowered by a drop-in, two sessions together cannot exceed it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from real.world import JupyterServer, systemctl_show, wait_until

from .guest import PageServer, cgroup_dir, read_keyed, record_figure

pytestmark = pytest.mark.vm

SLICE = "app-ffsystemd.slice"
SLICE_MAX = 1200 * 1024**2
UNITS = Path.home() / ".config" / "systemd" / "user"


def systemctl(*args: str) -> None:
    subprocess.run(["systemctl", "--user", *args], check=True, timeout=120)


@pytest.fixture
def lowered_slice() -> Iterator[Path]:
    """Install the slice with the product's CLI, lower its MemoryMax with a drop-in; undo both."""
    unit_file = UNITS / SLICE
    existed = unit_file.exists()
    dropin = UNITS / f"{SLICE}.d" / "50-vm-test.conf"
    subprocess.run([sys.executable, "-m", "ffsystemd.cli", "install-units"], check=True, timeout=120)
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(f"[Slice]\nMemoryMax={SLICE_MAX}\n")
    systemctl("daemon-reload")
    try:
        yield dropin
    finally:
        dropin.unlink()
        if not existed:
            unit_file.unlink(missing_ok=True)
        systemctl("daemon-reload")


def test_two_sessions_together_cannot_exceed_the_slice_memory_max(
    servers: Callable[..., JupyterServer], lowered_slice: Path
) -> None:
    shown = systemctl_show(SLICE, "MemoryMax", "FragmentPath", "DropInPaths")
    assert shown["MemoryMax"] == str(SLICE_MAX)
    assert shown["FragmentPath"] == str(UNITS / SLICE)
    assert str(lowered_slice) in shown["DropInPaths"]

    pages = PageServer()
    try:
        # Each session stays well under its own 1G limit, the two together not under the slice's.
        server = servers(memory_max="1G")
        first = server.launch(url=pages.url(mb=640))
        slice_dir = cgroup_dir(first["unit"]).parent
        assert (slice_dir / "memory.max").read_text().strip() == str(SLICE_MAX)
        kills_before = read_keyed(slice_dir / "memory.events")["oom_kill"]
        second = server.launch(url=pages.url(mb=640))
        peak = [0]

        def one_ended() -> list[dict] | None:
            peak[0] = max(peak[0], int((slice_dir / "memory.current").read_text()))
            states = [server.status(s["id"]) for s in (first, second)]
            return [s for s in states if s["state"] == "failed"] or None

        failed = wait_until(one_ended, 300, "one of the two sessions to be OOM-killed", interval=0.1)
    finally:
        pages.close()
    record_figure("slice_peak_memory_current_mb", peak[0] / 1024**2, "MB")
    assert peak[0] <= SLICE_MAX
    assert read_keyed(slice_dir / "memory.events")["oom_kill"] > kills_before
    assert all(s["result"] == "oom-kill" for s in failed), failed
    server.cleanup(all=True, force=True)
