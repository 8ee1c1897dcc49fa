"""One log line per session event, with the session id and its unit (logger `ffsystemd.sessions`).

Lines (INFO unless said otherwise; an admin filters on the level or the logger):

    session <id> (<unit>): launch requested, start page <redacted url>
    launch request refused: max_sessions reached (...)          WARNING
    launch request refused: bad request                         (the 400 answer says why)
    session <id> (<unit>) ready after <s> s
    session <id> (<unit>) claimed from the pool, page opened after <s> s   (a warm-pool hit;
                                                       its "launch requested" line follows)
    pool session <id> did not open its page: cold launch                      WARNING
    no pool session ready: cold launch
    session <id> (<unit>): launch cancelled by a cleanup after <s> s
    session <id> (<unit>): launch failed at step <step> after <s> s          WARNING
    session <id> (<unit>) ended: <state>, result <result>: <reason>   WARNING unless the result
                                                                      is success or idle-timeout
    session <id> (<unit>) cleaned up [(forced)]
    session <id> (<unit>): cleanup [(forced)] failed: <error>                 WARNING

Start pages are never logged whole: `url_for_log` keeps an about: page and only the scheme, host
and port of an http(s) URL (a path, query, fragment or user info can carry a secret). Other
parts of the package log their session lines through `session_line`, so every one has the same
shape. A pooled session's own start (a pooled SessionLaunched) is logged by the pool (logger
ffsystemd.pool). Installed as a manager observer by the extension (see ffsystemd.events).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from .events import (
    LaunchRefused,
    LaunchRequested,
    PoolClaimed,
    SessionCleanedUp,
    SessionEnded,
    SessionEvent,
    SessionLaunched,
)
from .units import unit_name

log = logging.getLogger("ffsystemd.sessions")

QUIET_RESULTS = frozenset({None, "success", "idle-timeout"})


def _unit(session_id: str) -> str:
    try:
        return unit_name(session_id)
    except ValueError:
        return "?"


def url_for_log(url: str | None) -> str:
    """A start URL as it may be logged (pure): an about: page whole, an http(s) URL as
    `scheme://host[:port]` plus `/…` when it had more; `-` for none, `<unparsable>` otherwise."""
    if not url:
        return "-"
    if url.startswith("about:"):
        return url if len(url) <= 48 and url[6:].replace("-", "").isalpha() else "about:…"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable>"
    if parts.scheme not in ("http", "https") or not host:
        return "<unparsable>"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else "/"
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}{rest}"


def session_line(level: int, session_id: str, text: str, *args: object) -> None:
    """Log `session <id> (<unit>)<text>` on ffsystemd.sessions (text is a %-format for args)."""
    log.log(level, "session %s (%s)" + text, session_id, _unit(session_id), *args)


def route_package_logs(target: logging.Logger, level: int | None = None) -> bool:
    """Send the package's log lines (every `ffsystemd.*` logger) through target's handlers.

    A Jupyter server configures its own loggers only: without this, the package's INFO lines
    (a session ready, cleaned up, ...) are dropped and its warnings printed without time or
    level. `level` (default: target's effective level, i.e. `--log-level`) becomes the
    package logger's unless it has one. Does nothing (False) when the `ffsystemd` logger or the
    root logger already has a handler: an admin's `c.Application.logging_config` (or a
    process-wide logging setup) decides then, and no line is written twice.
    """
    package = logging.getLogger("ffsystemd")
    if package.handlers or logging.getLogger().handlers or not target.handlers:
        return False
    for handler in target.handlers:
        package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(target.getEffectiveLevel() if level is None else level)
    return True


def log_event(event: SessionEvent) -> None:
    """Log one session event (a manager observer: synchronous, never raises on odd values)."""
    if isinstance(event, PoolClaimed):
        if event.outcome == "hit":
            session_line(
                logging.INFO,
                event.session_id or "",
                " claimed from the pool, page opened after %.2f s",
                event.seconds,
            )
        elif event.outcome == "failed":
            log.warning("pool session %s did not open its page: cold launch", event.session_id)
        else:
            log.info("no pool session ready: cold launch")
        return
    if isinstance(event, SessionLaunched) and event.pooled:
        return
    sid = event.session_id
    if isinstance(event, LaunchRequested):
        session_line(logging.INFO, sid, ": launch requested, start page %s", url_for_log(event.start_url))
    elif isinstance(event, LaunchRefused):
        if event.reason == "max-sessions":
            log.warning("launch request refused: max_sessions reached (%s)", event.message)
        else:
            log.info("launch request refused: %s", event.reason.replace("-", " "))
    elif isinstance(event, SessionLaunched):
        if event.outcome == "running":
            session_line(logging.INFO, sid, " ready after %.2f s", event.seconds)
        elif event.outcome == "cancelled":
            session_line(logging.INFO, sid, ": launch cancelled by a cleanup after %.2f s", event.seconds)
        else:
            session_line(
                logging.WARNING,
                sid,
                ": launch failed at step %s after %.2f s",
                event.failed_step or "?",
                event.seconds,
            )
    elif isinstance(event, SessionEnded):
        level = logging.INFO if event.result in QUIET_RESULTS else logging.WARNING
        session_line(level, sid, " ended: %s, result %s: %s", event.state, event.result or "-", event.message)
    elif isinstance(event, SessionCleanedUp):
        forced = " (forced)" if event.forced else ""
        if event.error is None:
            session_line(logging.INFO, sid, " cleaned up%s", forced)
        else:
            session_line(logging.WARNING, sid, ": cleanup%s failed: %s", forced, event.error)
