"""Which server owns a unit or a session directory, and the rules every server follows.

Ownership rules (DESIGN.md, "Who is trusted, who owns what"). A session belongs to the
server whose **server id** (`ffsystemd.identity`) started it. A server:

1. lists, proxies, culls, cleans up and re-adopts only sessions of its own server id: a unit
   is its own when the unit's Description names its server id (`owner_of_unit`) *and* the
   session directory under its session_root says so in `session.json` (`owner_of_dir`);
2. never stops, resets or deletes a unit or directory of another server id — not at start-up,
   not after a reconnect, not on shutdown, not for `{"all": true}`; a unit or directory whose
   owner cannot be read (no `session.json`, a Description without a server id, e.g. made by
   an older ffsystemd) is nobody's to touch automatically;
3. re-adopts its own running units after its own restart (same server id), as before;
4. leaves sessions of a server id whose server is gone (its liveness lock is free, see
   `ffsystemd.liveness`) to an explicit cleanup (`POST .../api/cleanup {"orphans": true}`,
   listed by `GET .../api/health`), which holds the dead server's lock while it works;
5. sweeps (removes) a directory without a unit only when the directory is its own and no
   launch of its own is filling it (its launches are in its registry from before the
   directory exists); another server's directory is never swept, whatever state it is in.

`session.json`, written into `<session_root>/session-<id>/` before the unit is started:

    {"id": "<session id>", "server_id": "<server id>", "unit": "app-ffsystemd-firefox-<id>.scope",
     "start_url": "...", "created": "<ISO 8601 UTC>"}

The owning server later adds `"last_activity": "<ISO 8601 UTC>"` (ffsystemd.activity).

Pure functions over parsed data; reading `session.json` is the only I/O here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .identity import is_valid_server_id, server_id_from_description

METADATA_FILE = "session.json"


def session_metadata(
    *, session_id: str, server_id: str, unit: str, start_url: str, created: str, pooled: bool = False
) -> dict[str, Any]:
    """The content of a session's `session.json` (see the module docstring)."""
    metadata: dict[str, Any] = {
        "id": session_id,
        "server_id": server_id,
        "unit": unit,
        "start_url": start_url,
        "created": created,
    }
    if pooled:
        metadata["pooled"] = True  # in the warm pool, unclaimed: a restarted server stops it
    return metadata


def read_metadata(session_dir: Path) -> dict[str, Any] | None:
    """The parsed `session.json` of a session directory, or None if missing or not an object."""
    try:
        data = json.loads((Path(session_dir) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_pooled_dir(session_dir: Path) -> bool:
    """The session directory is of an unclaimed warm-pool session (its metadata says so)."""
    return (read_metadata(session_dir) or {}).get("pooled") is True


def owner_of_dir(session_dir: Path) -> str | None:
    """The server id a session directory belongs to, from its `session.json` (None: unknown)."""
    metadata = read_metadata(session_dir)
    owner = metadata.get("server_id") if metadata else None
    return owner if is_valid_server_id(owner) else None


def owner_of_unit(description: str) -> str | None:
    """The server id a session unit belongs to, from its Description (None: unknown)."""
    return server_id_from_description(description)


def is_own_unit(description: str, server_id: str) -> bool:
    """True when a unit's Description names server_id as its owner."""
    return owner_of_unit(description) == server_id


def is_own_dir(session_dir: Path, server_id: str) -> bool:
    """True when a session directory's `session.json` names server_id as its owner."""
    return owner_of_dir(session_dir) == server_id
