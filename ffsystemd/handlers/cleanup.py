"""POST /firefox-launcher/api/cleanup: stop sessions this launcher created, or orphans on request.

`{"id": ID}`, `{"ids": [...]}` and `{"all": true}` act only on this server's own sessions
(ffsystemd.ownership). `{"orphans": true}` removes the sessions of dead servers of this user
(ffsystemd.orphans) and answers `{"stopped": [ids], "errors": {id or server id: message},
"orphans": [the removed orphans' JSON]}`.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..ids import is_valid_session_id
from .base import FFSystemdAPIHandler

MAX_IDS = 100


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise web.HTTPError(400, f"{name} must be true or false")
    return value


class CleanupHandler(FFSystemdAPIHandler):
    """Stop one, several or all sessions; `force` SIGKILLs the whole cgroup first."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.reject_unknown_keys(body, {"id", "ids", "all", "orphans", "force", "keep_profile"})
        selectors = [key for key in ("id", "ids", "all", "orphans") if key in body]
        if len(selectors) != 1:
            raise web.HTTPError(400, 'give exactly one of "id", "ids", "all" or "orphans"')
        if "orphans" in body:
            await self._cleanup_orphans(body)
            return
        force = _flag(body, "force")
        keep_profile = _flag(body, "keep_profile") if "keep_profile" in body else None
        if "all" in body:
            if body["all"] is not True:
                raise web.HTTPError(400, '"all" must be true')
            ids = self.manager.session_ids()
        else:
            ids = [body["id"]] if "id" in body else body["ids"]
            if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
                raise web.HTTPError(400, f'"ids" must be a list of 1 to {MAX_IDS} session ids')
            bad = [i for i in ids if not is_valid_session_id(i)]
            if bad:
                raise web.HTTPError(400, "malformed session id(s): expected 12 lowercase hex digits")
            known = set(self.manager.session_ids())
            if not any(i in known for i in ids):
                raise web.HTTPError(404, "no such session of this launcher: " + ", ".join(ids))
        stopped, errors = await self.manager.cleanup(ids, force=force, keep_profile=keep_profile)
        self.finish(json.dumps({"stopped": stopped, "errors": errors}))

    async def _cleanup_orphans(self, body: dict[str, Any]) -> None:
        if body["orphans"] is not True:
            raise web.HTTPError(400, '"orphans" must be true')
        if set(body) != {"orphans"}:
            raise web.HTTPError(400, '"orphans" takes no options (orphans are always stopped and removed)')
        cleaned, errors = await self.settings["ffsystemd_orphans"].cleanup()
        stopped = [o["id"] for o in cleaned]
        self.finish(json.dumps({"stopped": stopped, "errors": errors, "orphans": cleaned}))
