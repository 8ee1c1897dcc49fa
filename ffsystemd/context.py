"""What the session manager's parts share: the settings, the systemd client, the registry.

`SessionManager` builds one `ManagerContext` and hands it to the launcher, the watcher, the
stopper and the adopter; none of them keeps session state of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .commands import XpraSettings
from .events import Observers
from .ids import new_session_id
from .session import Owner, Session
from .session_dirs import session_paths
from .systemd_api import SystemdPort
from .units import ScopeLimits, unit_name


@dataclass(frozen=True)
class ManagerSettings:
    """Everything the manager needs from the validated configuration."""

    session_root: Path
    slice_name: str
    limits: ScopeLimits
    xpra: XpraSettings
    start_url: str = "about:blank"
    max_sessions: int = 4
    ready_timeout: float = 30.0
    keep_profile: bool = False
    job_timeout: float = 30.0
    idle_timeout: float = 0.0
    culling_interval: float = 60.0
    stats_interval: float = 2.0
    shutdown_timeout: float = 20.0
    reap_timeout: float = 2.0  # seconds our Xpra may take to exit once its unit is stopped, then SIGKILL
    ended_retention: int = 20
    downloads_dir: Path | None = None  # checked at start-up (ffsystemd.downloads); None: in the session
    server_id: str = ""  # whose sessions these are (ffsystemd.identity); "" = unnamed (tests)
    pool_size: int = 0  # sessions kept started ahead (ffsystemd.pool); 0: every launch is cold
    pool_max_age: float = 1800.0  # seconds a pooled session may wait before it is replaced
    activity_interval: float = 5.0  # at most one last_activity write per session per this (activity.py)

    def owns(self, owner: str | None) -> bool:
        """An owner read from a unit or a directory is this server (None matches an unnamed one)."""
        return owner == (self.server_id or None)


@dataclass
class ManagerContext:
    """The registry of sessions and the means to act on them, shared by the manager's parts."""

    settings: ManagerSettings
    systemd: SystemdPort
    observers: Observers = field(default_factory=Observers)
    sessions: dict[str, Session] = field(default_factory=dict)
    background: set[asyncio.Future[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run coro in the background; shutdown cancels what is still running."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def new_session(self, start_url: str, warm: bool = True) -> Session:
        """A new STARTING session owned by its launch, registered at once (concurrent launches
        see its slot taken); a warm one is the pool's (pooled until claimed)."""
        session_id = new_session_id()
        while session_id in self.sessions:
            session_id = new_session_id()
        session = Session(
            id=session_id,
            unit=unit_name(session_id),
            paths=session_paths(self.settings.session_root, session_id, self.settings.downloads_dir),
            start_url=start_url,
            created=datetime.now(timezone.utc),
            owner=Owner.LAUNCH,
            warm=warm,
            pooled=warm,
        )
        self.sessions[session_id] = session
        return session

    def session_of_unit(self, unit: str) -> Session | None:
        """The session whose unit is `unit`, if any."""
        return next((s for s in self.sessions.values() if s.unit == unit), None)
