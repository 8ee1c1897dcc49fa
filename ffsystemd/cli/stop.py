"""`ffsystemd stop`: stop sessions through systemd and remove their directories per policy.

Only sessions that are ours are touched: the unit has our name AND its `session-<id>`
directory (owned by this user) exists under the session root. A Jupyter server that owns a
stopped session sees its unit end over D-Bus and reports it as ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FFSystemdError, NoSuchUnit, SystemdError, SystemdTimeout, SystemdUnavailable
from ..identity import state_dir
from ..liveness import holding_dead
from ..session_dirs import remove_session_credentials, remove_session_dir, session_paths
from ..systemd import SystemdClient


@dataclass
class StopOutcome:
    """What `stop` did to one session."""

    id: str
    unit: str
    stopped: bool = False  # systemd stopped (or had already unloaded) the unit
    directory_removed: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "unit": self.unit,
            "stopped": self.stopped,
            "directory_removed": self.directory_removed,
            "error": self.error,
            "notes": self.notes,
        }


def select_targets(
    records: Iterable[Mapping[str, Any]],
    ids: list[str],
    *,
    all_sessions: bool,
    server: str | None,
    orphans: bool = False,
) -> tuple[list[Mapping[str, Any]], dict[str, str]]:
    """Choose the sessions to stop (pure): (records to stop, {id: why refused}).

    With orphans every session of ours whose owning server is known and gone; with
    all_sessions every session of ours (of `server` when given); else the given ids, each of
    which must be ours (and owned by `server` when given).
    """
    by_id = {r["id"]: r for r in records}
    if orphans:
        chosen = [
            r
            for r in by_id.values()
            if r["ours"]
            and r["server"]
            and r.get("server_alive") is False
            and (server is None or r["server"] == server)
        ]
        return chosen, {}
    if all_sessions:
        chosen = [r for r in by_id.values() if r["ours"] and (server is None or r["server"] == server)]
        return chosen, {}
    chosen, refused = [], {}
    for sid in dict.fromkeys(ids):
        record = by_id.get(sid)
        if record is None:
            refused[sid] = "no such session of this user"
        elif not record["ours"]:
            refused[sid] = "not ours: its unit has no session directory under this session root"
        elif server is not None and record["server"] != server:
            refused[sid] = f"owned by server {record['server'] or '-'}, not {server}"
        else:
            chosen.append(record)
    return chosen, refused


async def stop_one(
    client: SystemdClient,
    root: Path,
    record: Mapping[str, Any],
    *,
    force: bool,
    keep_profile: bool,
    job_timeout: float = 30.0,
) -> StopOutcome:
    """Stop one of our sessions: (force: SIGKILL the whole cgroup,) StopUnit, ResetFailedUnit
    when failed or forced, then remove its directory unless keep_profile.

    Raises SystemdUnavailable when the user manager is gone; other errors go in the outcome.
    """
    outcome = StopOutcome(record["id"], record["unit"])
    unit = record["unit"]
    if record["unit_loaded"]:
        try:
            if force:
                with contextlib.suppress(NoSuchUnit, SystemdError):
                    await client.kill_unit(unit, signal.SIGKILL)
            if await client.stop_unit(unit, job_timeout=job_timeout):
                outcome.notes.append("unit stopped")
            if force or record["state"] == "failed":
                with contextlib.suppress(NoSuchUnit):
                    await client.reset_failed_unit(unit)
            outcome.stopped = True
        except SystemdUnavailable:
            raise
        except (FFSystemdError, SystemdTimeout) as exc:
            outcome.error = f"systemd could not stop {unit}: {exc}"
            return outcome
    else:
        outcome.stopped = True
        outcome.notes.append("no unit loaded")
    if keep_profile:
        outcome.notes.append("directory kept (keep_profile)")
        # The profile stays; the dead X server's cookie, sockets and runtime files do not.
        with contextlib.suppress(OSError, ValueError):
            remove_session_credentials(session_paths(root, record["id"]))
        return outcome
    try:
        # The owning server may be removing it at the same time: gone is fine.
        outcome.directory_removed = remove_session_dir(session_paths(root, record["id"]))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        outcome.error = f"stopped, but the session directory was not removed: {exc}"
    if not session_paths(root, record["id"]).base.exists():
        outcome.directory_removed = True
    return outcome


async def stop_many(
    client: SystemdClient,
    records: list[Mapping[str, Any]],
    *,
    force: bool,
    keep_profile: bool,
    job_timeout: float = 30.0,
    servers_dir: Path | None = None,
) -> list[StopOutcome]:
    """Stop the given sessions concurrently; raises SystemdUnavailable if the manager is gone.

    Sessions of a server that is gone (orphans) are stopped while holding that server's
    liveness lock (ffsystemd.liveness.holding_dead), so it cannot start again and re-adopt
    them half-way; a live owner simply sees its units end.
    """
    locks = state_dir() if servers_dir is None else servers_dir
    with contextlib.ExitStack() as held:
        for server in sorted(
            {r["server"] for r in records if r["server"] and r.get("server_alive") is False}
        ):
            held.enter_context(holding_dead(locks, server))
        results = await asyncio.gather(
            *(
                stop_one(
                    client,
                    Path(r["session_root"]),
                    r,
                    force=force,
                    keep_profile=keep_profile,
                    job_timeout=job_timeout,
                )
                for r in records
            ),
            return_exceptions=True,
        )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]
