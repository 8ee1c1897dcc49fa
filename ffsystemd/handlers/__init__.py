"""Tornado handlers of the REST API (thin: parse, authorize, call the manager, render JSON)."""

from __future__ import annotations

from .cleanup import CleanupHandler
from .client import CLIENT_ROUTE, SessionClientHandler
from .firefox import FirefoxHandler
from .health import HealthHandler
from .proxy import (
    ANY_SESSION_ROUTE,
    SESSION_ROOT_ROUTE,
    SESSION_ROUTE,
    SessionEntryHandler,
    SessionSlashHandler,
    UnknownSessionHandler,
)
from .static import STATIC_ROUTE, StaticClientHandler

default_handlers = [
    (r"/firefox-launcher/api/firefox", FirefoxHandler),
    (r"/firefox-launcher/api/cleanup", CleanupHandler),
    (r"/firefox-launcher/api/health", HealthHandler),
    (STATIC_ROUTE, StaticClientHandler),
    (CLIENT_ROUTE, SessionClientHandler),
    (SESSION_ROUTE, SessionEntryHandler),
    (ANY_SESSION_ROUTE, UnknownSessionHandler),
    (SESSION_ROOT_ROUTE, SessionSlashHandler),
]

__all__ = [
    "CleanupHandler",
    "FirefoxHandler",
    "HealthHandler",
    "SessionClientHandler",
    "SessionEntryHandler",
    "SessionSlashHandler",
    "StaticClientHandler",
    "default_handlers",
]
