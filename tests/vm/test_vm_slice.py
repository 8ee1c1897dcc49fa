"""The aggregate slice: with app-ffsystemd.slice installed by `ffsystemd install-units` and
its MemoryMax lowered by a drop-in, two sessions together cannot exceed it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from real.world import JupyterServer, systemctl_show, wait_until

from .guest import cgroup_dir, read_keyed, record_figure

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
        # A running slice keeps the MemoryMax it was started with: stop it (its sessions are
        # gone by now), so later tests get the slice as install-units or systemd make it.
        subprocess.run(["systemctl", "--user", "stop", SLICE], check=False, timeout=120)


# Each session's child (in place of Firefox: the claim is the cgroup tree's, and two Firefox
# start-ups plus their pages took ~12 min emulated) fills EATER_MB of memory, every page
# touched, then holds it; it waits for a file the test creates so the launch is not slowed.
EATER = """
import os, sys, time
profile = sys.argv[sys.argv.index("--profile") + 1]
while not os.path.exists(os.path.join(profile, "eat")):
    time.sleep(0.2)
chunks = []
for _ in range(EATER_MB // 16):
    chunks.append(bytearray(b"x") * (16 * 1024 * 1024))
open(os.path.join(profile, "full"), "w").close()
while True:
    time.sleep(60)
"""
EATER_MB = 720


def test_two_sessions_together_cannot_exceed_the_slice_memory_max(
    servers: Callable[..., JupyterServer], lowered_slice: Path
) -> None:
    shown = systemctl_show(SLICE, "MemoryMax", "FragmentPath", "DropInPaths")
    assert shown["MemoryMax"] == str(SLICE_MAX)
    assert shown["FragmentPath"] == str(UNITS / SLICE)
    assert str(lowered_slice) in shown["DropInPaths"]

    # Each session stays well under its own 1G limit, the two together not under the slice's.
    code = f"EATER_MB = {EATER_MB}\n" + EATER
    server = servers(memory_max="1G", firefox_command=[sys.executable, "-c", code])
    first, second = server.launch(url="about:blank"), server.launch(url="about:blank")
    profile = {s["id"]: server.session_root / f"session-{s['id']}" / "profile" for s in (first, second)}
    slice_dir = cgroup_dir(first["unit"]).parent
    assert (slice_dir / "memory.max").read_text().strip() == str(SLICE_MAX)
    kills_before = read_keyed(slice_dir / "memory.events")["oom_kill"]

    (profile[first["id"]] / "eat").touch()
    wait_until(
        lambda: (profile[first["id"]] / "full").exists(), 120, f"the first session to hold {EATER_MB} MB"
    )
    alone = int((slice_dir / "memory.current").read_text())
    assert alone > EATER_MB * 1024**2, alone  # it really holds its memory, within the slice
    (profile[second["id"]] / "eat").touch()
    peak = [alone]

    def one_ended() -> list[dict] | None:
        peak[0] = max(peak[0], int((slice_dir / "memory.current").read_text()))
        states = [server.status(s["id"]) for s in (first, second)]
        return [s for s in states if s["state"] == "failed"] or None

    failed = wait_until(one_ended, 120, "one of the two sessions to be OOM-killed", interval=0.05)
    record_figure("slice_peak_memory_current_mb", peak[0] / 1024**2, "MB")
    assert peak[0] <= SLICE_MAX
    assert read_keyed(slice_dir / "memory.events")["oom_kill"] > kills_before
    assert len(failed) == 1, failed  # the kernel killed in one session; the other holds on
    assert failed[0]["result"] == "oom-kill", failed
    survivor = next(s for s in (first, second) if s["id"] != failed[0]["id"])
    assert server.status(survivor["id"])["state"] == "running"
    # A failed session stays listed (with its verdict) until cleaned up, like the survivor.
    assert sorted(server.cleanup(all=True, force=True)["stopped"]) == sorted([first["id"], second["id"]])
