"""Configuration of the session proxy (ffsystemd.handlers.client): connections and capabilities."""

from __future__ import annotations

from typing import Any

from traitlets import Float, HasTraits, Int, validate

from .checks import in_range


class ProxyConfig(HasTraits):
    """How many websockets a session may have, when an idle one closes, how long a capability lives."""

    max_connections_per_session = Int(
        8,
        config=True,
        help="Most websocket connections one session's Xpra may have open at once through the"
        " proxy (each tab or reload of a session's page opens one); more are answered 429.",
    )
    websocket_idle_timeout = Float(
        300.0,
        config=True,
        help="Close a proxied websocket that carried no byte either way for this many seconds"
        " (Xpra's client pings every few seconds while its page is open); 0 for never.",
    )
    capability_lifetime = Float(
        900.0,
        config=True,
        help="Seconds a session page's capability (the random key in its URL that authorizes"
        " the Xpra client's requests and websocket) stays valid without any use; it also ends"
        " with its session, and every new opening of the session page gets a new one.",
    )

    @validate("max_connections_per_session")
    def _check_max_connections(self, proposal: Any) -> int:
        return in_range(
            "max_connections_per_session", proposal["value"], 1, 1000, "must be between 1 and 1000"
        )

    @validate("websocket_idle_timeout")
    def _check_websocket_idle_timeout(self, proposal: Any) -> float:
        return in_range(
            "websocket_idle_timeout",
            proposal["value"],
            0,
            86400,
            "must be 0 (never) or up to 86400 seconds",
        )

    @validate("capability_lifetime")
    def _check_capability_lifetime(self, proposal: Any) -> float:
        return in_range(
            "capability_lifetime", proposal["value"], 10, 7 * 86400, "must be between 10 seconds and a week"
        )
