"""`ffsystemd doctor`: the checks of `GET .../api/health`, plus the command that fixes each one.

The checks themselves are ffsystemd.health's (one truth for the API and the CLI); this module
adds four that only make sense from a shell (the session root, the aggregate slice, sessions
of servers that are gone, xrandr for the first screen size) and, for every check that is not
ok, the exact commands to run (Debian/Ubuntu package names).
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..health import Check, run_checks
from ..safe_dirs import check_private_dir
from ..screen import XRANDR
from ..session_dirs import check_root_length
from ..systemd import SystemdClient
from .install import SLICE, user_unit_dir

SLICE_DIRS = (Path("/etc/systemd/user"), Path("/usr/lib/systemd/user"), Path("/lib/systemd/user"))


def fix_commands(check: dict[str, Any], uid: int, user: str) -> list[str]:
    """The commands that fix a failing check (pure); [] for an ok check or one with no fix."""
    if check["verdict"] == "ok":
        return []
    name, detail = check["name"], check.get("detail", "")
    if name == "user_bus":
        return [
            f"sudo loginctl enable-linger {user}",
            f"sudo systemctl start user@{uid}.service",
            f"export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus",
        ]
    if name == "user_manager":
        return [f"sudo systemctl start user@{uid}.service", f"sudo loginctl enable-linger {user}"]
    if name == "delegated_controllers":
        if "unknown" in detail:
            return []  # follows from the user manager check
        boot_v2 = [
            "stat -fc %T /sys/fs/cgroup   # cgroup2fs = cgroup v2 only; tmpfs = v1/hybrid",
            "sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub",
            "sudo update-grub && sudo reboot",
        ]
        if "cgroup v2" in detail:
            return boot_v2
        delegate = [
            "sudo mkdir -p /etc/systemd/system/user@.service.d",
            "printf '[Service]\\nDelegate=memory pids cpu\\n' |"
            " sudo tee /etc/systemd/system/user@.service.d/delegate.conf",
            "sudo systemctl daemon-reload",
            f"sudo systemctl restart user@{uid}.service   # ends this user's processes: or log out and in",
            f"cat /sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers",
        ]
        return boot_v2 + delegate if "hybrid" in detail else delegate
    if name in ("xpra", "xpra_html5"):
        if "PIL" in detail:
            return ["sudo apt-get install python3-pil"]
        return [
            "sudo apt-get install xpra python3-pil",
            "# or point c.FirefoxLauncher.xpra_command at the xpra program",
        ]
    if name == "firefox":
        return [
            "sudo apt-get install firefox-esr",
            "# or set c.FirefoxLauncher.firefox_command = ['/path/to/firefox']",
        ]
    if name == "session_root":
        return session_root_fix(detail)
    if name == "orphans":
        return ["ffsystemd stop --orphans", "ffsystemd list   # to see them first"]
    if name == "aggregate_slice":
        return ["ffsystemd install-units", f"systemctl --user edit {SLICE}   # to tune it"]
    if name == "xrandr":
        return ["sudo apt-get install x11-xserver-utils"]
    return []


_OPEN_OWN_DIR = re.compile(r"^(?:.*?: )?(/\S*) is writable by other users \(mode \d+\); check")
_OPEN_ANCESTOR = re.compile(r"^(?:.*?: )?(/\S*) is writable by other users \(mode \d+, no sticky bit\)")
_SYMLINK = re.compile(r"^(?:.*?: )?(/\S*) is a symlink \(to ")
CHOOSE_ROOT = "# set c.FirefoxLauncher.session_root (or --session-root) to a short directory you own"


def session_root_fix(detail: str) -> list[str]:
    """The commands that fix a refused session root, from the check's detail (pure)."""
    if match := _OPEN_OWN_DIR.match(detail):
        path = shlex.quote(match[1])
        return [f"ls -la {path}   # check that nobody planted anything in it", f"chmod 700 {path}"]
    if match := _OPEN_ANCESTOR.match(detail):
        return [f"chmod go-w {shlex.quote(match[1])}   # sudo if it is not yours", CHOOSE_ROOT]
    if match := _SYMLINK.match(detail):
        real = os.path.realpath(match[1])
        return [f"c.FirefoxLauncher.session_root = {real!r}   # the real directory, in the Jupyter config"]
    return [CHOOSE_ROOT]


def orphans_check(records: list[dict[str, Any]]) -> Check:
    """Sessions whose owning server is gone (warning: they use memory until stopped)."""
    orphans = [r for r in records if r["ours"] and r["server"] and r.get("server_alive") is False]
    if not orphans:
        return Check("orphans", "ok", "no session of a server that is gone")
    listed = ", ".join(f"{r['id']} (server {r['server']})" for r in orphans[:5])
    more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
    return Check(
        "orphans",
        "warning",
        f"{len(orphans)} session(s) of servers that are gone still exist: {listed}{more}",
        "stop them (their servers cannot)",
    )


def session_root_check(root: Path) -> Check:
    """The session root as start-up will judge it (ffsystemd.safe_dirs), creating nothing.

    `error` exactly when the server would refuse it: a symlink, not a directory, not ours,
    writable by others, under a directory another user controls, not creatable, or too long
    for the session sockets (its real path).
    """
    hint = "choose a session_root you own (short, not writable by other users)"
    try:
        check_root_length(root)
        real, exists = check_private_dir(root)
        check_root_length(Path(real))
    except FileNotFoundError as exc:
        return Check("session_root", "error", f"{root}: {exc.strerror or exc}", hint)
    except ValueError as exc:  # UnsafeDirectory, or too long
        return Check("session_root", "error", f"{root}: {exc}", hint)
    except OSError as exc:
        return Check("session_root", "error", f"{root}: cannot check it: {exc.strerror or exc}", hint)
    where = real if exists else f"{real} (created at the first launch)"
    return Check("session_root", "ok", where)


def slice_check(environ: dict[str, str] | None = None) -> Check:
    """Whether app-ffsystemd.slice (aggregate limits of all sessions) is installed (warning if not)."""
    for directory in (user_unit_dir(environ), *SLICE_DIRS):
        if (directory / SLICE).is_file():
            return Check("aggregate_slice", "ok", str(directory / SLICE))
    return Check(
        "aggregate_slice",
        "warning",
        f"{SLICE} is not installed: sessions have no limit all together",
        "run 'ffsystemd install-units'",
    )


def xrandr_check(which: Callable[[str], str | None] = shutil.which) -> Check:
    """Whether `xrandr` is there to give each session the tab's screen size (warning if not)."""
    found = which(XRANDR)
    if found:
        return Check("xrandr", "ok", found)
    return Check(
        "xrandr",
        "warning",
        "xrandr not found: each launch waits 0.5 s more for Xpra to resize its screen",
        "install x11-xserver-utils",
    )


async def diagnose(
    client: SystemdClient,
    *,
    xpra_command: list[str],
    firefox_command: list[str],
    needs_cpu: bool,
    session_roots: tuple[Path, ...],
    sessions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run every check; return {"verdict", "uid", "checks": [{name, verdict, detail, hint, fix}]}.

    `sessions` (ffsystemd.cli.inventory.collect's records; None when the user manager could not
    be asked) adds the `orphans` check. The overall verdict is `error` exactly when a launch
    cannot work.
    """
    report = await run_checks(client, xpra_command, firefox_command, needs_cpu)
    checks = list(report["checks"])
    checks += [asdict(session_root_check(root)) for root in session_roots]
    checks.append(asdict(slice_check()))
    checks.append(asdict(xrandr_check()))
    if sessions is not None:
        checks.append(asdict(orphans_check(sessions)))
    uid = os.getuid()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(uid)
    for check in checks:
        check["fix"] = fix_commands(check, uid, user)
    verdicts = {c["verdict"] for c in checks}
    overall = "error" if "error" in verdicts else "warning" if "warning" in verdicts else "ok"
    return {"verdict": overall, "uid": uid, "checks": checks}
