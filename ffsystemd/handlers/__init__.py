"""Tornado handlers of the REST API (thin: parse, authorize, call the manager, render JSON)."""

from __future__ import annotations

from .cleanup import CleanupHandler
from .firefox import FirefoxHandler
from .health import HealthHandler

default_handlers = [
    (r"/firefox-launcher/api/firefox", FirefoxHandler),
    (r"/firefox-launcher/api/cleanup", CleanupHandler),
    (r"/firefox-launcher/api/health", HealthHandler),
]

__all__ = ["CleanupHandler", "FirefoxHandler", "HealthHandler", "default_handlers"]
