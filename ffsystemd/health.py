"""Check each precondition of a launch and say what to do about a failing one."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import FFSystemdError
from .systemd import SystemdClient

XPRA_HTML5_DIRS = (Path("/usr/share/xpra/www"), Path("/usr/local/share/xpra/www"))


@dataclass
class Check:
    """One precondition: verdict is ok, warning or error."""

    name: str
    verdict: str
    detail: str
    hint: str = ""


def unified_cgroup_mount(proc_mounts: str) -> Path | None:
    """Return where the cgroup v2 hierarchy is mounted, from the text of /proc/self/mounts."""
    for line in proc_mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def controllers_check(proc_mounts: str, control_group: str, needed: set[str]) -> Check:
    """Judge whether the manager's cgroup has the controllers that enforce our limits (pure)."""
    mount = unified_cgroup_mount(proc_mounts)
    if mount is None:
        return Check(
            "delegated_controllers",
            "warning",
            "no cgroup v2 hierarchy is mounted: limits are accepted but not enforced",
            "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2)",
        )
    path = mount / control_group.lstrip("/") / "cgroup.controllers"
    try:
        available = set(path.read_text().split())
    except OSError as exc:
        return Check("delegated_controllers", "warning", f"cannot read {path}: {exc}", "")
    missing = sorted(needed - available)
    if missing:
        hybrid = " (hybrid cgroup layout)" if mount != Path("/sys/fs/cgroup") else ""
        return Check(
            "delegated_controllers",
            "warning",
            f"controllers {', '.join(missing)} are not delegated to the user manager{hybrid}:"
            " MemoryMax/TasksMax/CPUQuota are accepted but not enforced",
            "use a cgroup v2 host and delegate them: 'systemctl edit user@.service' with"
            " [Service] Delegate=memory pids cpu",
        )
    return Check("delegated_controllers", "ok", f"{', '.join(sorted(needed))} delegated ({path.parent})")


async def _python_has_pil(xpra_path: str) -> bool:
    """True when the Python that runs xpra can import PIL (Xpra's HTML5 connections need it)."""
    try:
        first = Path(xpra_path).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return True
    if not first.startswith("#!"):
        return True
    interpreter = first[2:].strip().split()
    proc = await asyncio.create_subprocess_exec(
        *interpreter,
        "-c",
        "import PIL",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 10) == 0


async def run_checks(
    systemd: SystemdClient, xpra_command: list[str], firefox_command: list[str], needs_cpu: bool
) -> dict[str, Any]:
    """Check bus, manager, controllers, xpra, its HTML5 client and firefox; return the health JSON."""
    checks: list[Check] = []
    control_group = None
    bus_error = await systemd.probe_bus()
    if bus_error:
        hint = "log in through a systemd session or set DBUS_SESSION_BUS_ADDRESS"
        checks.append(Check("user_bus", "error", bus_error, hint))
        checks.append(Check("user_manager", "error", "no user bus", ""))
    else:
        checks.append(Check("user_bus", "ok", f"connected to {systemd.bus_address}"))
        try:
            version = await systemd.version()
            control_group = await systemd.control_group()
            checks.append(Check("user_manager", "ok", f"systemd {version} answers"))
        except FFSystemdError as exc:
            hint = "start a systemd user manager for this user (systemctl start user@$UID.service)"
            checks.append(Check("user_manager", "error", str(exc), hint))
    if control_group:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            mounts = ""
        needed = {"memory", "pids"} | ({"cpu"} if needs_cpu else set())
        checks.append(controllers_check(mounts, str(control_group), needed))
    else:
        checks.append(Check("delegated_controllers", "error", "unknown: no user manager", ""))

    xpra = shutil.which(xpra_command[0]) if xpra_command else None
    if xpra:
        checks.append(Check("xpra", "ok", xpra))
        html5 = next((d for d in XPRA_HTML5_DIRS if (d / "index.html").is_file()), None)
        if html5 is None:
            checks.append(
                Check(
                    "xpra_html5",
                    "error",
                    "Xpra's HTML5 client is not installed",
                    "install the xpra HTML5 client (Debian: it ships in the xpra package)",
                )
            )
        elif not await _python_has_pil(xpra):
            checks.append(
                Check(
                    "xpra_html5",
                    "error",
                    f"{html5} found, but Xpra's Python lacks PIL",
                    "install python3-pil",
                )
            )
        else:
            checks.append(Check("xpra_html5", "ok", str(html5)))
    else:
        checks.append(Check("xpra", "error", f"{xpra_command!r} not found", "install xpra"))
        checks.append(Check("xpra_html5", "error", "xpra missing", "install xpra"))

    firefox = shutil.which(firefox_command[0]) if firefox_command else None
    checks.append(
        Check("firefox", "ok", firefox)
        if firefox
        else Check(
            "firefox",
            "error",
            "neither firefox nor firefox-esr found",
            "install firefox or firefox-esr, or set c.FirefoxLauncher.firefox_command",
        )
    )
    verdicts = {c.verdict for c in checks}
    overall = "error" if "error" in verdicts else "warning" if "warning" in verdicts else "ok"
    return {"verdict": overall, "uid": os.getuid(), "checks": [asdict(c) for c in checks]}
