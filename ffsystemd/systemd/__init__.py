"""The systemd user manager over D-Bus: the only package that imports dbus-fast.

All systemd I/O of ffsystemd lives here, as small documented coroutines: `bus.py` owns the
connection (reconnects with back-off, matches, signals as typed events, calls with timeouts,
job waits), `client.py` the manager's methods, `properties.py` the decoding of unit properties
into `UnitSnapshot`s. D-Bus errors become the typed exceptions of `ffsystemd.errors`. Nothing
here knows about sessions or HTTP.
"""

from ..systemd_api import UnitInfo, UnitSnapshot
from .bus import (
    DBUS,
    MANAGER_IFACE,
    MANAGER_PATH,
    PROPS_IFACE,
    SCOPE_IFACE,
    SYSTEMD,
    UNIT_IFACE,
    BusConnection,
    user_bus_address,
)
from .client import SystemdClient

__all__ = [
    "DBUS",
    "MANAGER_IFACE",
    "MANAGER_PATH",
    "PROPS_IFACE",
    "SCOPE_IFACE",
    "SYSTEMD",
    "UNIT_IFACE",
    "BusConnection",
    "SystemdClient",
    "UnitInfo",
    "UnitSnapshot",
    "user_bus_address",
]
