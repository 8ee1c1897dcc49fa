"""Per-session capabilities: the only credential the session's Xpra client ever holds.

The client runs in an opaque origin (see ffsystemd.session_page), where no request carries
Jupyter's cookies. An authenticated, authorized navigation to a session's page mints a
capability (256 random bits, URL-safe) and redirects to a URL that carries it in its path;
every request of the client and its websocket (the client copies the page's path into the
websocket URL) must carry a capability minted for that very session.

Lifetime: a capability is valid while its session runs and until it has gone unused for
`idle_lifetime` seconds (any request or websocket traffic under it is a use, so an open
client keeps it alive and Xpra's own reconnects reuse it). Each navigation mints a new one;
a session keeps at most `per_session` of them, dropping the least recently used. They live
in the server's memory only: a server restart invalidates them all (a reload of the page
mints a new one). They are never the Jupyter token or cookie and grant nothing else.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CAPABILITY_PATTERN = r"[A-Za-z0-9_-]{43}"
"""What secrets.token_urlsafe(32) produces: 43 URL-safe characters (256 bits)."""
_CAPABILITY_RE = re.compile(rf"\A{CAPABILITY_PATTERN}\Z")

DEFAULT_IDLE_LIFETIME = 15 * 60.0
DEFAULT_PER_SESSION = 16


@dataclass
class _Grant:
    secret: str
    last_used: float


@dataclass
class CapabilityStore:
    """Mints and checks session capabilities (in memory; clock injectable for tests)."""

    idle_lifetime: float = DEFAULT_IDLE_LIFETIME
    per_session: int = DEFAULT_PER_SESSION
    clock: Callable[[], float] = time.monotonic
    _grants: dict[str, list[_Grant]] = field(default_factory=dict)

    def mint(self, session_id: str) -> str:
        """A new capability for session_id (the least recently used one goes beyond per_session)."""
        now = self.clock()
        grants = [g for g in self._grants.get(session_id, []) if now - g.last_used < self.idle_lifetime]
        grants.sort(key=lambda g: g.last_used)
        del grants[: max(0, len(grants) - self.per_session + 1)]
        secret = secrets.token_urlsafe(32)
        grants.append(_Grant(secret, now))
        self._grants[session_id] = grants
        return secret

    def check(self, session_id: str, capability: str) -> bool:
        """True if capability was minted for session_id and has not expired; a hit counts as a use.

        Every stored capability of the session is compared in constant time.
        """
        if not _CAPABILITY_RE.match(capability):
            return False
        now = self.clock()
        found = None
        for grant in self._grants.get(session_id, []):
            if hmac.compare_digest(grant.secret.encode(), capability.encode()):
                found = grant
        if found is None:
            return False
        if now - found.last_used >= self.idle_lifetime:
            self._grants[session_id].remove(found)
            return False
        found.last_used = now
        return True

    def touch(self, session_id: str, capability: str) -> None:
        """Count traffic under a capability as a use (keeps an open client's capability alive)."""
        for grant in self._grants.get(session_id, []):
            if hmac.compare_digest(grant.secret.encode(), capability.encode()):
                grant.last_used = self.clock()

    def forget(self, session_id: str) -> None:
        """Invalidate every capability of a session (it ended)."""
        self._grants.pop(session_id, None)

    def prune(self, running: Callable[[str], bool]) -> None:
        """Drop the capabilities of sessions that no longer run and those that expired."""
        now = self.clock()
        for session_id in list(self._grants):
            live = [g for g in self._grants[session_id] if now - g.last_used < self.idle_lifetime]
            if live and running(session_id):
                self._grants[session_id] = live
            else:
                del self._grants[session_id]

    def sessions(self) -> list[str]:
        """Ids of the sessions holding capabilities (for pruning and tests)."""
        return list(self._grants)
