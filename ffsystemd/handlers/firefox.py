"""POST/GET/HEAD /firefox-launcher/api/firefox: launch, list or look up, and probe."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..ids import is_valid_session_id
from ..urls import check_start_url
from .base import FFSystemdAPIHandler


class FirefoxHandler(FFSystemdAPIHandler):
    """Sessions: start one (POST), list or show one (GET), can a launch succeed now (HEAD)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.reject_unknown_keys(body, {"url"})
        url = None
        if body.get("url") is not None:
            try:
                url = check_start_url(body["url"])
            except ValueError as exc:
                raise web.HTTPError(400, str(exc)) from None
        session = await self.manager.launch(url)
        self.set_status(201)
        self.set_header("Location", session["url"])
        self.finish(json.dumps(session))

    @web.authenticated
    @authorized
    async def get(self) -> None:
        session_id = self.get_query_argument("id", None)
        if session_id is None:
            sessions = await self.manager.list_status()
            self.finish(json.dumps({"sessions": sessions}))
            return
        if not is_valid_session_id(session_id):
            raise web.HTTPError(400, "malformed session id: expected 12 lowercase hex digits")
        session = await self.manager.status(session_id)
        if self.get_query_argument("redirect", "0") in ("1", "true", "yes"):
            self.redirect(session["url"])
            return
        self.finish(json.dumps(session))

    @web.authenticated
    @authorized
    async def head(self) -> None:
        ok, _why = await self.manager.can_launch()
        self.set_status(200 if ok else 503)
        self.finish()
