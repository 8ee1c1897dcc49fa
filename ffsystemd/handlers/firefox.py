"""POST/GET/HEAD /firefox-launcher/api/firefox: launch, list or look up, and probe."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..ids import is_valid_session_id
from ..screen import check_screen
from ..urls import check_start_url
from .base import FFSystemdAPIHandler


class FirefoxHandler(FFSystemdAPIHandler):
    """Sessions: start one (POST), list or show one (GET), can a launch succeed now (HEAD).

    POST `{"url"?, "wait"?, "screen"?}`: 201 with the running session; with `"wait": false`, 202
    at once with the session still starting (a failure then shows as its final `failed`
    record). `screen` `[width, height]`: the size the tab's client will ask for (X pixels,
    clamped to screen_size); the session's screen has it before the client connects.
    """

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = self.json_body()
            self.reject_unknown_keys(body, {"url", "wait", "screen"})
            wait = body.get("wait", True)
            if not isinstance(wait, bool):
                raise web.HTTPError(400, "wait must be true or false")
            url = None
            if body.get("url") is not None:
                try:
                    url = check_start_url(body["url"])
                except ValueError as exc:
                    raise web.HTTPError(400, str(exc)) from None
            screen = None
            if body.get("screen") is not None:
                try:
                    screen = check_screen(body["screen"], self.manager.settings.xpra.screen_size)
                except ValueError as exc:
                    raise web.HTTPError(400, str(exc)) from None
        except web.HTTPError as exc:  # counted (ffsystemd_launches_refused_total), then answered
            self.manager.refuse_launch("bad-request", exc.log_message or "")
            raise
        session = await self.manager.launch(url, wait=wait, screen=screen)
        # 201: running (a claimed pooled session is at once); 202 (wait false): still starting,
        # its page may already be opened.
        self.set_status(201 if session["state"] == "running" else 202)
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
