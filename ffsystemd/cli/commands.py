"""The bodies of `ffsystemd list | status | logs | stop | doctor` (one coroutine each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import FFSystemdError, SystemdUnavailable
from ..failed_logs import failed_log_path
from ..identity import state_dir
from ..process import log_tail
from ..session_dirs import session_paths
from ..systemd import SystemdClient
from . import EXIT_FAILED, EXIT_NO_MANAGER, EXIT_NO_SESSION, EXIT_OK, EXIT_USAGE
from .config import CliConfig, resolve
from .doctor import diagnose
from .inventory import collect
from .render import SESSION_HEADERS, session_row, table, to_json
from .stop import select_targets, stop_many


async def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one subcommand; returns its exit code. Output goes to out/err (default stdout/stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = resolve(args.config, session_root=args.session_root, bus_address=args.bus_address)
    except Exception as exc:  # a broken config file: say which, like the server would
        print(f"ffsystemd: cannot read the Jupyter config: {exc}", file=err)
        return EXIT_USAGE
    client = SystemdClient(config.bus_address, call_timeout=config.dbus_timeout)
    try:
        handler = {"list": _list, "status": _status, "logs": _logs, "stop": _stop, "doctor": _doctor}
        return await handler[args.command](args, config, client, out, err)
    except SystemdUnavailable as exc:
        print(f"ffsystemd {args.command}: {exc}", file=err)
        print("  run 'ffsystemd doctor' to see what is missing", file=err)
        return EXIT_NO_MANAGER
    finally:
        await client.close()


async def _list(args: Any, config: CliConfig, client: SystemdClient, out: TextIO, err: TextIO) -> int:
    records = await collect(client, config.session_roots, include_foreign=args.foreign)
    roots = [str(r) for r in config.session_roots]
    if args.json:
        print(to_json({"session_roots": roots, "sessions": records}), file=out)
    elif records:
        print(table(SESSION_HEADERS, [session_row(r) for r in records]), file=out)
    else:
        print(f"no sessions (session roots: {', '.join(roots)})", file=out)
    return EXIT_OK


def _log_file(roots: tuple[Path, ...], session_id: str) -> Path | None:
    """The session's live Xpra log, else the kept log of its failed launch, else None."""
    for root in roots:
        live = session_paths(root, session_id).xpra_log
        if live.is_file():
            return live
    for root in roots:
        kept = failed_log_path(root, session_id)
        if kept.is_file():
            return kept
    return None


async def _status(args: Any, config: CliConfig, client: SystemdClient, out: TextIO, err: TextIO) -> int:
    records = await collect(client, config.session_roots, include_foreign=True)
    record = next((r for r in records if r["id"] == args.id), None)
    log = _log_file(config.session_roots, args.id)
    if record is None and log is None:
        print(f"ffsystemd status: no session {args.id}", file=err)
        return EXIT_NO_SESSION
    if record is None:  # only the kept log of a failed launch is left
        record = {"id": args.id, "state": "failed", "launch_failed": True}
    props: dict[str, Any] = {}
    processes: list[tuple[int, str]] = []
    if record.get("unit_loaded"):
        try:
            props = await client.unit_properties(record["unit"])  # all of them, as systemd names them
            processes = await client.unit_processes(record["unit"])
        except SystemdUnavailable:
            raise
        except FFSystemdError:
            pass  # unloaded meanwhile: the record says what was seen
    tail = log_tail(log, lines=args.lines) if log is not None and args.lines > 0 else []
    full = {
        **record,
        "properties": props,
        "processes": [{"pid": pid, "command": cmd} for pid, cmd in processes],
        "log": None if log is None else str(log),
        "log_tail": tail,
    }
    if args.json:
        print(to_json(full), file=out)
        return EXIT_OK
    skip = {"properties", "processes", "log_tail"}
    for key, value in full.items():
        if key not in skip:
            print(f"{key}: {'-' if value is None else value}", file=out)
    if processes:
        print("processes:", file=out)
        for pid, cmd in processes:
            print(f"  {pid:>7}  {cmd}", file=out)
    if props:
        print("unit properties:", file=out)
        for key in sorted(props):
            print(f"  {key}={props[key]}", file=out)
    if log is not None:
        print(f"last {len(tail)} lines of {log}:", file=out)
        for line in tail:
            print(f"  {line}", file=out)
    return EXIT_OK


async def _logs(args: Any, config: CliConfig, client: SystemdClient, out: TextIO, err: TextIO) -> int:
    log = _log_file(config.session_roots, args.id)
    if log is None:
        print(f"ffsystemd logs: no Xpra log of session {args.id}", file=err)
        return EXIT_NO_SESSION
    if args.lines > 0:
        lines = log_tail(log, lines=args.lines, max_bytes=max(16384, args.lines * 400))
        text = "\n".join(lines) + ("\n" if lines else "")
    else:
        text = log.read_text(errors="replace")
    out.write(text)
    return EXIT_OK


async def _stop(args: Any, config: CliConfig, client: SystemdClient, out: TextIO, err: TextIO) -> int:
    records = await collect(client, config.session_roots, include_foreign=True)
    targets, refused = select_targets(
        records, args.ids, all_sessions=args.all, server=args.server, orphans=args.orphans
    )
    keep = config.keep_profile if args.keep_profile is None else args.keep_profile
    outcomes = await stop_many(
        client,
        targets,
        force=args.force,
        keep_profile=keep,
        job_timeout=max(30.0, config.dbus_timeout * 3),
    )
    errors = dict(refused)
    errors.update({o.id: o.error for o in outcomes if o.error})
    stopped = [o.id for o in outcomes if not o.error]
    if args.json:
        body = {"stopped": stopped, "errors": errors, "sessions": [o.to_json() for o in outcomes]}
        print(to_json(body), file=out)
    else:
        for outcome in outcomes:
            if not outcome.error:
                print(f"stopped {outcome.id} ({outcome.unit}; {', '.join(outcome.notes)})", file=out)
        for sid, message in errors.items():
            print(f"ffsystemd stop: {sid}: {message}", file=err)
        if not outcomes and not errors:
            print("no sessions to stop", file=out)
    if any(o.error for o in outcomes):
        return EXIT_FAILED
    if refused:
        return EXIT_NO_SESSION
    return EXIT_OK


async def _doctor(args: Any, config: CliConfig, client: SystemdClient, out: TextIO, err: TextIO) -> int:
    try:
        sessions: list[dict[str, Any]] | None = await collect(client, config.session_roots)
    except FFSystemdError:  # no user manager: the checks say so
        sessions = None
    report = await diagnose(
        client,
        xpra_command=config.xpra_command,
        firefox_command=config.firefox_command,
        needs_cpu=config.needs_cpu,
        session_roots=config.session_roots if config.explicit_root else (state_dir(),),
        sessions=sessions,
    )
    report["config_files"] = list(config.sources)
    if args.json:
        print(to_json(report), file=out)
    else:
        for check in report["checks"]:
            print(f"{check['verdict'].upper():8} {check['name']}: {check['detail']}", file=out)
            if check["verdict"] != "ok" and check.get("hint"):
                print(f"         hint: {check['hint']}", file=out)
            for command in check["fix"]:
                print(f"         fix:  {command}", file=out)
        sources = ", ".join(config.sources) or "none (trait defaults)"
        print(f"config files: {sources}", file=out)
        meaning = {
            "ok": "a launch can work",
            "warning": "a launch can work (see warnings)",
            "error": "a launch cannot work",
        }[report["verdict"]]
        print(f"verdict: {report['verdict']} — {meaning}", file=out)
    return EXIT_FAILED if report["verdict"] == "error" else EXIT_OK
