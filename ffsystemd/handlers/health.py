"""GET /firefox-launcher/api/health: each launch precondition with a verdict and a hint."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..health import run_checks
from .base import FFSystemdAPIHandler


class HealthHandler(FFSystemdAPIHandler):
    """Report user bus, user manager, delegated controllers, xpra + HTML5 client, firefox."""

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
        self.finish(json.dumps(report))
