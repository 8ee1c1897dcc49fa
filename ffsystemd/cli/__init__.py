"""The `ffsystemd` command: list, inspect, stop and diagnose this user's Firefox sessions.

It talks to the systemd user manager over D-Bus and reads the session root; no Jupyter
server is needed (and none is asked). The session root, bus address and commands come from
the Jupyter config (see ffsystemd.cli.config) unless given as options.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..ids import is_valid_session_id
from .install import SLICE, install_units, shipped_unit, user_unit_dir

EXIT_OK = 0
EXIT_FAILED = 1  # doctor: a launch cannot work; stop: a session could not be stopped
EXIT_USAGE = 2  # bad arguments or a malformed session id
EXIT_NO_MANAGER = 3  # the systemd user manager cannot be reached
EXIT_NO_SESSION = 4  # status/logs/stop: no such session of ours

EXIT_CODES_HELP = """exit codes:
  0  success (doctor: a launch can work; warnings allowed)
  1  doctor found an error that stops launches, or stop could not stop a session
  2  usage error (bad arguments, malformed session id)
  3  the systemd user manager cannot be reached (list, status, stop)
  4  no such session of ours (status, logs, stop)
"""

__all__ = [
    "EXIT_FAILED",
    "EXIT_NO_MANAGER",
    "EXIT_NO_SESSION",
    "EXIT_OK",
    "EXIT_USAGE",
    "SLICE",
    "build_parser",
    "install_units",
    "main",
    "shipped_unit",
    "user_unit_dir",
]


def _session_id(value: str) -> str:
    if not is_valid_session_id(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a session id (12 lowercase hex digits)")
    return value


def _common(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """Options every command takes, before or after the command name."""
    # On the subcommands they default to SUPPRESS so they never overwrite the top-level value.
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--session-root",
        default=default,
        metavar="DIR",
        help="session root (default: c.FirefoxLauncher.session_root from the Jupyter config,"
        " else ~/.firefox-launcher/sessions)",
    )
    parser.add_argument(
        "--config",
        default=default,
        metavar="FILE",
        type=Path,
        help="read FirefoxLauncher settings from this Jupyter config file only"
        " (default: jupyter_server_config.{py,json} and jupyter_ffsystemd_config.* in the"
        " Jupyter config path)",
    )
    parser.add_argument(
        "--bus-address",
        default=default,
        metavar="ADDRESS",
        help="D-Bus address of the user manager (default: c.FirefoxLauncher.bus_address, else"
        " $DBUS_SESSION_BUS_ADDRESS, else unix:path=$XDG_RUNTIME_DIR/bus)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `ffsystemd` command (its --help is the command's manual)."""
    parser = argparse.ArgumentParser(
        prog="ffsystemd",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lst = sub.add_parser("list", help="list this user's sessions (table, or --json)")
    _common(lst)
    lst.add_argument("--json", action="store_true", help='print JSON: {"sessions": [...]}')
    lst.add_argument(
        "--foreign",
        action="store_true",
        help="also list units with our name whose directory is not under this session root",
    )

    status = sub.add_parser("status", help="one session in full: unit properties, processes, log tail")
    _common(status)
    status.add_argument("id", type=_session_id)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--lines", type=int, default=20, help="Xpra log lines to show (default 20)")

    logs = sub.add_parser("logs", help="print a session's Xpra log (also of a failed launch)")
    _common(logs)
    logs.add_argument("id", type=_session_id)
    logs.add_argument("--lines", type=int, default=0, help="only the last N lines (default: all)")

    stop = sub.add_parser("stop", help="stop sessions through systemd and remove their directories")
    _common(stop)
    stop.add_argument("ids", nargs="*", type=_session_id, metavar="ID")
    stop.add_argument("--all", action="store_true", help="every session of ours")
    stop.add_argument(
        "--orphans",
        action="store_true",
        help="every session of ours whose owning server is gone (its liveness lock is free)",
    )
    stop.add_argument(
        "--force", action="store_true", help="SIGKILL the whole cgroup first, then stop and reset-failed"
    )
    stop.add_argument("--server", metavar="SERVER", help="only sessions owned by this server")
    keep = stop.add_mutually_exclusive_group()
    keep.add_argument("--keep-profile", action="store_true", default=None, help="keep the directories")
    keep.add_argument(
        "--remove-profile",
        dest="keep_profile",
        action="store_false",
        help="remove them (the default unless c.FirefoxLauncher.keep_profile is set)",
    )
    stop.add_argument("--json", action="store_true", help='print JSON: {"stopped": [...], "errors": {}}')

    doctor = sub.add_parser("doctor", help="check every precondition of a launch and say how to fix it")
    _common(doctor)
    doctor.add_argument("--json", action="store_true", help="print JSON (like GET .../api/health, plus fix)")

    inst = sub.add_parser("install-units", help=f"install {SLICE} into the user's systemd config")
    inst.add_argument("--target", type=Path, default=None, help="directory (default ~/.config/systemd/user)")
    inst.add_argument("--no-reload", action="store_true", help="do not run systemctl --user daemon-reload")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ffsystemd` command; returns the exit code (see EXIT_CODES_HELP)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "install-units":
        return _install(args)
    if args.command == "stop" and [bool(args.ids), args.all, args.orphans].count(True) != 1:
        parser.error("stop: give session ids, --all or --orphans (one of them)")
    from . import commands  # imports jupyter_server's traits: only when needed

    return asyncio.run(commands.run(args))


def _install(args: argparse.Namespace) -> int:
    import subprocess

    try:
        dest = install_units(args.target or user_unit_dir(), reload=not args.no_reload)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"ffsystemd install-units: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"installed {dest}; tune it with: systemctl --user edit {SLICE}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
