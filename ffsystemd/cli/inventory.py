"""Find this user's ffsystemd sessions from systemd and the session root, without a Jupyter server.

A session is *ours* when its unit has our name (`app-ffsystemd-firefox-<id>.scope`) AND a
`session-<id>` directory owned by this user (a real directory, not a symlink) exists under
one of the session roots looked at. Units with our prefix but no directory there belong to
another launcher and are only ever listed. The owning server is read the way servers read
it (ffsystemd.ownership: `session.json`'s `server_id`, else the unit's Description), the last
activity from `session.json`'s `last_activity`, which the owning server keeps up to date
(ffsystemd.activity: at most a few seconds behind the server's own view).
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..activity import read_session_metadata
from ..errors import NoSuchUnit, SystemdError
from ..identity import is_valid_server_id, server_id_from_description, state_dir
from ..liveness import is_alive, lock_path
from ..session import ACTIVE_STATE_TO_STATE, unit_figures
from ..session_dirs import SessionPaths, list_session_dirs, session_paths
from ..systemd import SystemdClient, UnitInfo, UnitSnapshot
from ..units import UNIT_GLOB, session_id_of, unit_name


def owning_server(metadata: Mapping[str, Any], description: str) -> str | None:
    """The server id that owns a session (pure): session.json's `server_id`, else the one in the
    unit's Description (ffsystemd.ownership), else None (made before servers had ids)."""
    owner = metadata.get("server_id")
    if is_valid_server_id(owner):
        return str(owner)
    return server_id_from_description(description)


def is_own_directory(path: Path) -> bool:
    """True for a real directory (not a symlink) owned by this user."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else max(0.0, round((now - moment).total_seconds(), 1))


def session_record(
    session_id: str,
    *,
    info: UnitInfo | None,
    unit: UnitSnapshot | None,
    session_dir: Path | None,
    metadata: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Build one session's JSON (the REST API's keys plus `server`, `ours`, `age_seconds`,
    `idle_seconds` (since its last activity), ...) (pure).

    `info` is the unit's ListUnitsByPatterns row (None: no unit loaded), `unit` its typed
    snapshot (None: unread, e.g. it went away meanwhile), `session_dir` its directory under
    our root (None: not ours).
    """
    snap = unit or UnitSnapshot()
    active_state = snap.active_state or (info.active_state if info else "inactive")
    state = ACTIVE_STATE_TO_STATE.get(active_state, "running")
    live = state in ("running", "stopping", "starting")
    created = _parse_time(metadata.get("created"))
    if created is None and session_dir is not None:
        try:
            created = datetime.fromtimestamp(session_dir.stat().st_mtime, timezone.utc)
        except OSError:
            created = None
    last_activity = _parse_time(metadata.get("last_activity"))
    return {
        "id": session_id,
        "unit": unit_name(session_id),
        "server": owning_server(metadata, info.description if info else ""),
        "server_alive": None,
        "ours": session_dir is not None,
        "unit_loaded": info is not None,
        "state": state,
        "pooled": metadata.get("pooled") is True,  # an unclaimed warm-pool session (ffsystemd.pool)
        "sub_state": snap.sub_state or (info.sub_state if info else None) or None,
        "result": None if info is None else snap.result,
        "created": _iso(created),
        "age_seconds": _seconds_since(created, now),
        "start_url": metadata.get("start_url"),
        **unit_figures(snap, live),
        "last_activity": _iso(last_activity),
        "idle_seconds": _seconds_since(last_activity, now),
        "session_root": None if session_dir is None else str(session_dir.parent),
        "session_dir": None if session_dir is None else str(session_dir),
    }


async def unit_snapshot(client: SystemdClient, name: str) -> UnitSnapshot | None:
    """The typed snapshot of a unit (None when it is gone or systemd refuses)."""
    try:
        snapshot = await client.unit_snapshot(name)
    except (NoSuchUnit, SystemdError):
        return None
    return snapshot if snapshot.loaded else None


async def collect(
    client: SystemdClient,
    roots: Sequence[Path],
    *,
    include_foreign: bool = False,
    servers_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Every session of ours (units and/or directories under any of roots), oldest first.

    With include_foreign, also units with our prefix whose directory is under none of the
    roots (`ours: false`). `server_alive` says whether the owning server's liveness lock
    (under servers_dir, default ~/.firefox-launcher) is held. Raises SystemdUnavailable.
    """
    units = {
        sid: info
        for info in await client.list_units_by_patterns([UNIT_GLOB])
        if (sid := session_id_of(info.name)) is not None
    }
    dirs: dict[str, SessionPaths] = {}
    for root in roots:
        for sid in list_session_dirs(root):
            paths = session_paths(root, sid)
            if sid not in dirs and is_own_directory(paths.base):
                dirs[sid] = paths
    ids = sorted(set(units) | set(dirs)) if include_foreign else sorted(dirs)
    snapshots = await asyncio.gather(
        *(unit_snapshot(client, units[sid].name) if sid in units else _nothing() for sid in ids)
    )
    now = datetime.now(timezone.utc)
    locks = state_dir() if servers_dir is None else servers_dir
    # As the servers judge orphans (ffsystemd.orphans): a server without a lock file here ran
    # with another HOME (e.g. one Unix user, a HOME per JupyterHub user) and is not judged dead.
    alive: dict[str, bool | None] = {}
    records = []
    for sid, unit in zip(ids, snapshots, strict=True):
        paths = dirs.get(sid)
        metadata = (read_session_metadata(paths) or {}) if paths is not None else {}
        base = None if paths is None else paths.base
        record = session_record(
            sid, info=units.get(sid), unit=unit, session_dir=base, metadata=metadata, now=now
        )
        server = record["server"]
        if server is not None:
            if server not in alive:
                ran_here = lock_path(locks, server).exists()
                alive[server] = is_alive(locks, server) if ran_here else None
            record["server_alive"] = alive[server]
        records.append(record)
    records.sort(key=lambda r: (r["created"] or "", r["id"]))
    return records


async def _nothing() -> None:
    return None
