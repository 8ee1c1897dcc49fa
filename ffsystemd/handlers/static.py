"""`<base_url>firefox-launcher/client/<version>/<path>`: the Xpra client's static files, cacheable.

Served from memory (ffsystemd.client_files: an allow-list read at start-up), the same for
every session and every user of this server, without authentication: they are the installed
files of a public package, fixed at start-up, named by a digest of their content, and hold
nothing of the user's or a session's (like JupyterLab's own `/static/` assets). The sandboxed
page that loads them sends no cookie, and nothing here reads, sets or depends on one. Only
GET and HEAD of an exact key of the allow-list at the current version are answered (200, or
304 for a matching `If-None-Match`); everything else is 404 (405 for other methods, 413 for a
body). Every answer carries a locked-down policy (a file opened as a page runs nothing and
loads nothing), `nosniff` and `no-referrer`; files are `Cache-Control: public, max-age=<1
year>, immutable`.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ..client_files import ClientFiles
from ..metrics import count_client_file
from ..session_page import LOCKED_DOWN_POLICY, security_headers
from .proxy import PlainGetHandler

STATIC_ROUTE = r"/firefox-launcher/client/(?P<version>[^/]*)/(?P<path>.*)"
CACHE_FOREVER = "public, max-age=31536000, immutable"


class StaticClientHandler(PlainGetHandler):
    """The client's files by version and path; 404 for anything not in the allow-list."""

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        for name, value in security_headers(LOCKED_DOWN_POLICY, same_origin_only=False).items():
            self.set_header(name, value)

    def prepare(self) -> None:
        self.refuse_body()

    def check_xsrf_cookie(self) -> None:
        """Nothing but GET and HEAD does anything here."""

    def get(self, version: str, path: str) -> None:
        self._serve(version, path, with_body=True)

    def head(self, version: str, path: str) -> None:
        self._serve(version, path, with_body=False)

    def _method_not_allowed(self, *args: Any, **kwargs: Any) -> None:
        raise web.HTTPError(405, "the client's files answer only GET and HEAD")

    post = put = delete = patch = options = _method_not_allowed

    def _serve(self, version: str, path: str, with_body: bool) -> None:
        files: ClientFiles | None = self.settings.get("ffsystemd_client_files")
        found = files.get(path) if files is not None and version == files.version else None
        if found is None:
            raise web.HTTPError(404, "not a file of the client (or of another version)")
        self.set_header("Content-Type", found.content_type)
        self.set_header("Cache-Control", CACHE_FOREVER)
        self.set_header("ETag", found.etag)
        asked = self.request.headers.get("If-None-Match", "")
        if found.etag in (tag.strip() for tag in asked.split(",")) or asked.strip() == "*":
            self.set_status(304)
            return
        if with_body:
            self.write(found.body)
        else:
            self.set_header("Content-Length", str(len(found.body)))

    def on_finish(self) -> None:
        super().on_finish()
        count_client_file(self.get_status())

    def compute_etag(self) -> str | None:
        """Our ETag is set per file (tornado's own would hash the body again)."""
        return None
