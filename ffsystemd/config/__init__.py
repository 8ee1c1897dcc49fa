"""The `FirefoxLauncher` configuration: its traits in groups, each with the checks of its values.

Each group is a `HasTraits` mixin of `ffsystemd.app.FirefoxLauncher` (so every trait is still
`c.FirefoxLauncher.<name>`), declaring its traits with their `help=` (the user documentation,
also the README's configuration table, see ffsystemd.config_docs) and validating them: a bad
value raises a TraitError naming `c.FirefoxLauncher.<trait>`, which stops the extension.

- ffsystemd.config.checks: the error every check raises and the shared range checks.
- ffsystemd.config.scope: what each session's systemd scope may use (limits, slice, stop).
- ffsystemd.config.browser: what runs in a session (commands, arguments, prefs, environment,
  screen, downloads, profile keeping).
- ffsystemd.config.server: this server's sessions (id, root, timeouts, culling, shutdown, bus).
- ffsystemd.config.proxy: the session proxy (connections, websocket idle, capabilities).
"""

from __future__ import annotations

from .browser import BrowserConfig
from .proxy import ProxyConfig
from .scope import ScopeConfig
from .server import ServerConfig

CONFIG_GROUPS = (ScopeConfig, ServerConfig, BrowserConfig, ProxyConfig)
"""The trait groups in the order the README's configuration table lists them."""

__all__ = ["CONFIG_GROUPS", "BrowserConfig", "ProxyConfig", "ScopeConfig", "ServerConfig"]
