"""Sessions whose server is gone for good: found on request, cleaned up only when asked.

An *orphaned* session is a unit (`app-ffsystemd-firefox-<id>.scope` whose Description names
a server id) or a session directory (whose `session.json` names one) belonging to a server
id other than ours that ran here (its lock file exists in our state directory,
`ffsystemd.liveness`) and whose lock is free: no running server will ever re-adopt or clean it
up — unless that server starts again, which is why nothing here
runs on its own. `GET .../api/health` lists them; `POST .../api/cleanup {"orphans": true}`
(and the `ffsystemd` CLI) removes them. Units or directories without a readable owner are
never orphans of anyone (rule 2 of `ffsystemd.ownership`), and neither are sessions of a server
id without a lock file here: that server ran with another HOME (JupyterHub's
SimpleLocalProcessSpawner gives each hub user one, on the same Unix user and user manager), so
whether it lives cannot be told from here.

Directories are found under the session_root each dead server recorded in its lock file,
and under our own session_root (two servers may share one if configured so).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FFSystemdError, NoSuchUnit, SystemdTimeout, SystemdUnavailable
from .liveness import ServerRecord, holding_dead, is_alive, known_servers, lock_path
from .ownership import owner_of_dir, owner_of_unit
from .session_dirs import list_session_dirs, remove_session_dir, session_paths
from .systemd import SystemdClient
from .units import UNIT_GLOB, session_id_of, unit_name

log = logging.getLogger(__name__)


@dataclass
class Orphan:
    """One orphaned session: its server id and whatever is left of it (unit, directory)."""

    server_id: str
    session_id: str
    unit_state: str | None = None  # systemd's ActiveState while the unit is loaded
    directory: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """Render as `{"server_id", "id", "unit", "unit_state", "directory"}`."""
        return {
            "server_id": self.server_id,
            "id": self.session_id,
            "unit": unit_name(self.session_id) if self.unit_state is not None else None,
            "unit_state": self.unit_state,
            "directory": str(self.directory) if self.directory is not None else None,
        }


class Orphans:
    """Finds and (on request) removes the orphaned sessions other servers left behind."""

    def __init__(
        self, systemd: SystemdClient, state_dir: Path, server_id: str, session_root: Path, job_timeout: float
    ) -> None:
        self.systemd = systemd
        self.state_dir = Path(state_dir)
        self.server_id = server_id
        self.session_root = Path(session_root)
        self.job_timeout = job_timeout

    def _dead(self, owner: str | None, dead_cache: dict[str, bool]) -> bool:
        if owner is None or owner == self.server_id:
            return False
        if owner not in dead_cache:
            ran_here = lock_path(self.state_dir, owner).exists()
            dead_cache[owner] = ran_here and not is_alive(self.state_dir, owner)
        return dead_cache[owner]

    async def find(self, only: str | None = None, *, held: bool = False) -> list[Orphan]:
        """Every orphaned session now (or only those of server id `only`), sorted by server and id.

        `held`: we hold `only`'s lock ourselves (a cleanup), so it counts as dead.
        Raises SystemdUnavailable/SystemdTimeout when the user manager cannot be asked.
        """
        dead: dict[str, bool] = {only: True} if (held and only) else {}
        found: dict[tuple[str, str], Orphan] = {}
        for info in await self.systemd.list_units_by_patterns([UNIT_GLOB]):
            sid, owner = session_id_of(info.name), owner_of_unit(info.description)
            if sid is None or owner is None or (only and owner != only) or not self._dead(owner, dead):
                continue
            found[(owner, sid)] = Orphan(owner, sid, unit_state=info.active_state)
        roots: dict[Path, str | None] = {self.session_root: None}
        for record in self._records():
            if record.session_root is None or record.server_id == self.server_id:
                continue
            if not record.alive or (held and record.server_id == only):
                roots.setdefault(record.session_root, record.server_id)
        for root, expected in roots.items():
            for sid in list_session_dirs(root):
                base = session_paths(root, sid).base
                owner = owner_of_dir(base)
                if owner is None or (expected is not None and owner != expected) or (only and owner != only):
                    continue
                if not self._dead(owner, dead):
                    continue
                orphan = found.setdefault((owner, sid), Orphan(owner, sid))
                orphan.directory = base
        return [found[key] for key in sorted(found)]

    def _records(self) -> list[ServerRecord]:
        try:
            return known_servers(self.state_dir)
        except OSError as exc:
            log.warning("ffsystemd: cannot read the server records in %s: %s", self.state_dir, exc)
            return []

    async def cleanup(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Stop, reset and remove every orphaned session; returns (cleaned orphans' JSON, errors).

        Works server id by server id, holding that server's liveness lock meanwhile (a server
        that came back to life in between is skipped and reported in errors). Raises
        SystemdUnavailable/SystemdTimeout when the user manager cannot be asked.
        """
        cleaned: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        for owner in sorted({o.server_id for o in await self.find()}):
            with holding_dead(self.state_dir, owner) as lock:
                if lock is None:
                    errors[owner] = f"server {owner} is running again; its sessions are its own"
                    continue
                for orphan in await self.find(only=owner, held=True):
                    problem = await self._remove(orphan)
                    if problem:
                        errors[orphan.session_id] = problem
                    else:
                        cleaned.append(orphan.to_json())
        return cleaned, errors

    async def _remove(self, orphan: Orphan) -> str | None:
        name = unit_name(orphan.session_id)
        if orphan.unit_state is not None:
            log.info("ffsystemd: stopping orphaned %s of server %s", name, orphan.server_id)
            try:
                if orphan.unit_state != "failed":
                    await self.systemd.stop_unit(name, job_timeout=self.job_timeout)
                with contextlib.suppress(NoSuchUnit):
                    await self.systemd.reset_failed_unit(name)
            except NoSuchUnit:
                pass
            except (SystemdUnavailable, SystemdTimeout):
                raise
            except FFSystemdError as exc:
                return f"could not stop {name}: {exc}"
        if orphan.directory is not None and owner_of_dir(orphan.directory) == orphan.server_id:
            try:
                remove_session_dir(session_paths(orphan.directory.parent, orphan.session_id))
            except (OSError, ValueError) as exc:
                return f"stopped, but {orphan.directory} was not removed: {exc}"
        return None
