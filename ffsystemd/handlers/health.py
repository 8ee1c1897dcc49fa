"""GET /firefox-launcher/api/health: each launch precondition with a verdict and a hint.

Besides the checks, the report says who this server is (`"server"`: server id, how it was
chosen, JupyterHub user and server name, session root) and lists the orphaned sessions other,
dead servers of this user left behind (`"orphans"`, see ffsystemd.orphans; null when the user
manager cannot be asked). They are removed only by `POST .../api/cleanup {"orphans": true}`.
`"pool"` says how full the warm pool is: its `size` (pool_size), how many pooled sessions are
`ready` to be claimed and how many are `starting` (ffsystemd.pool; never listed as sessions).
"""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import FFSystemdError
from ..health import run_checks
from .base import FFSystemdAPIHandler


class HealthHandler(FFSystemdAPIHandler):
    """Report user bus, user manager, delegated controllers, xpra + HTML5 client, firefox; server;
    orphans; the warm pool's fill."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        manager = self.manager
        settings = manager.settings
        report = await run_checks(
            manager.systemd,
            list(settings.xpra.xpra_command),
            list(settings.xpra.firefox_command),
            needs_cpu=settings.limits.cpu_quota_per_sec_usec < 2**64 - 1,
        )
        report["server"] = self.settings["ffsystemd_app"].server_info()
        report["pool"] = {"size": settings.pool_size, **manager.pool.counts()}
        try:
            report["orphans"] = [o.to_json() for o in await self.settings["ffsystemd_orphans"].find()]
        except FFSystemdError:
            report["orphans"] = None
        self.finish(json.dumps(report))
