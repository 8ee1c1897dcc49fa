"""The `ffsystemd` Jupyter server extension: configuration, handlers and lifecycle."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join

from . import metrics
from .capability import CapabilityStore
from .client_files import discover_client_files
from .commands import XpraSettings, content_process_prefs
from .config import BrowserConfig, ProxyConfig, ScopeConfig, ServerConfig
from .config.browser import FORBIDDEN_XPRA_ARGS, find_firefox, forbidden_xpra_arg
from .config.checks import bad
from .downloads import open_downloads_dir, upload_prefs
from .event_log import route_package_logs
from .identity import ServerIdentity, default_session_root, server_identity, state_dir
from .limits import UINT64_MAX, parse_cpu_quota, parse_memory_max, parse_screen_size, parse_tasks_max
from .liveness import ServerIdInUse, ServerLock, claim
from .manager import ManagerSettings, SessionManager
from .orphans import Orphans
from .session_dirs import check_root_length, ensure_root
from .signals import stop_on_sigint
from .systemd import SystemdClient
from .units import ScopeLimits

__all__ = ["FORBIDDEN_XPRA_ARGS", "FirefoxLauncher", "find_firefox", "forbidden_xpra_arg"]


class FirefoxLauncher(ScopeConfig, ServerConfig, BrowserConfig, ProxyConfig, ExtensionApp):
    """Firefox in a JupyterLab tab: each session an Xpra + Firefox in a transient systemd user scope.

    The configurable traits and their checks live in ffsystemd.config (one group per concern);
    this class turns them into the runtime objects and runs the extension's lifecycle.
    """

    name = "ffsystemd"
    load_other_extensions = True

    # --- building the runtime objects -----------------------------------------
    def resolved_firefox_command(self) -> list[str]:
        """The Firefox command to run: firefox_command, or the one found on PATH."""
        return list(self.firefox_command) or find_firefox()

    def resolve_identity(self, environ: dict[str, str] | None = None) -> ServerIdentity:
        """This server's identity: the server_id trait, else JupyterHub's names, else derived.

        See ffsystemd.identity; a derived id may still move to a free slot in claim_identity().
        """
        serverapp = self.serverapp
        return server_identity(
            configured=self.server_id,
            environ=os.environ if environ is None else environ,
            root_dir=str(getattr(serverapp, "root_dir", "") or os.getcwd()),
            base_url=str(getattr(serverapp, "base_url", "") or "/"),
        )

    def resolved_session_root(self, server_id: str) -> Path:
        """session_root, or the per-server default ~/.firefox-launcher/<server id>."""
        if self.session_root:
            return Path(self.session_root).expanduser()
        root = default_session_root(server_id)
        try:
            check_root_length(root)
        except ValueError as exc:
            raise bad("session_root", "", f"the default {root} is {exc}; set a shorter one") from None
        return root

    def checked_session_root(self, root: Path) -> Path:
        """Create the session root, or accept it only if it is safely ours; return its real path.

        Stops the extension (naming session_root, the path and the owner found) when the
        root or a directory above it is a symlink or directory another user controls
        (ffsystemd.safe_dirs), or when its real path is too long for the session sockets.
        """
        try:
            real = ensure_root(root)
            check_root_length(real)
        except (OSError, ValueError) as exc:
            why = str(exc) if isinstance(exc, ValueError) else f"cannot create it: {exc.strerror or exc}"
            raise bad("session_root", str(root), why) from None
        return real

    def claim_identity(self, identity: ServerIdentity) -> ServerLock:
        """Take this server's liveness lock (ffsystemd.liveness); a held fixed id stops the extension."""
        try:
            return claim(state_dir(), identity, {"pid": os.getpid()})
        except ServerIdInUse as exc:
            trait = "server_id" if identity.source == "config" else "server_id (from JupyterHub)"
            raise bad(trait, identity.server_id, f"{exc}; give each server its own id") from None

    def server_info(self) -> dict[str, Any]:
        """Who this server is, for the health report: server id, how it was chosen, hub names."""
        identity: ServerIdentity | None = getattr(self, "server_identity", None)
        lock: ServerLock | None = getattr(self, "server_lock", None)
        return {
            "server_id": lock.server_id if lock is not None else None,
            "source": identity.source if identity is not None else None,
            "hub_user": identity.hub_user if identity is not None else None,
            "hub_server_name": identity.hub_server_name if identity is not None else None,
            "session_root": str(getattr(self, "session_root_path", "") or ""),
        }

    def server_root_dir(self) -> str:
        """ServerApp.root_dir (what the JupyterLab file browser shows), or the working directory."""
        return str(getattr(self.serverapp, "root_dir", "") or os.getcwd())

    def checked_downloads_dir(self) -> Path | None:
        """Create or accept downloads_dir (ffsystemd.downloads); stop the extension naming it if unsafe."""
        try:
            return open_downloads_dir(self.downloads_dir, self.server_root_dir())
        except ValueError as exc:
            raise bad("downloads_dir", self.downloads_dir, str(exc)) from None

    def manager_settings(
        self, session_root: Path | None = None, downloads_dir: Path | None = None, server_id: str = ""
    ) -> ManagerSettings:
        """Turn the (validated) traits into the session manager's settings.

        downloads_dir is the checked directory (checked_downloads_dir), None for the session's own.
        server_id and session_root are this server's (claimed) id and root; by default the id
        resolve_identity() gives (without claiming it) and its root.
        """
        server_id = server_id or self.resolve_identity().server_id
        if session_root is None:
            session_root = self.resolved_session_root(server_id)
        firefox = self.resolved_firefox_command()
        if not firefox:
            raise bad("firefox_command", [], "neither firefox nor firefox-esr is on PATH; set it")
        return ManagerSettings(
            session_root=session_root,
            server_id=server_id,
            slice_name=self.slice,
            limits=ScopeLimits(
                memory_max=parse_memory_max(self.memory_max),
                tasks_max=parse_tasks_max(self.tasks_max),
                cpu_quota_per_sec_usec=parse_cpu_quota(self.cpu_quota),
                stop_timeout_usec=int(self.stop_timeout * 1_000_000),
                runtime_max_usec=int(self.max_age * 1_000_000) if self.max_age else UINT64_MAX,
            ),
            xpra=XpraSettings(
                xpra_command=tuple(self.xpra_command),
                firefox_command=tuple(firefox),
                extra_xpra_args=tuple(self.extra_xpra_args),
                extra_firefox_args=tuple(self.extra_firefox_args),
                screen_size=parse_screen_size(self.screen_size),
                extra_prefs={
                    **content_process_prefs(self.firefox_content_processes),
                    **upload_prefs(self.server_root_dir()),
                    **self.firefox_prefs,
                },
                pass_environment=tuple(self.pass_environment),
                clipboard=self.clipboard,
            ),
            start_url=self.start_url,
            max_sessions=self.max_sessions,
            pool_size=self.pool_size,
            pool_max_age=self.pool_max_age,
            ready_timeout=self.ready_timeout,
            keep_profile=self.keep_profile,
            job_timeout=max(30.0, self.stop_timeout + 10),
            idle_timeout=self.idle_timeout,
            culling_interval=self.culling_interval,
            stats_interval=self.stats_interval,
            shutdown_timeout=self.stop_timeout + 15,
            downloads_dir=downloads_dir,
        )

    def reapply_server_config(self) -> None:
        """Apply the server's FirefoxLauncher config again, so a bad value stops the extension.

        jupyter_server only logs a config error while it links the extension, then loads the
        extension anyway; and traitlets has rolled back every FirefoxLauncher value of that
        config by then, so the extension would run on defaults (another session_root, other
        limits). Applying the config again here raises the same TraitError, and a failing
        load is one jupyter_server does not serve: the routes stay absent.
        """
        if self.serverapp is not None:
            self.update_config(self.serverapp.config)

    def initialize_settings(self) -> None:
        """Claim this server's id, create the session manager (validating the whole configuration)."""
        self.reapply_server_config()
        base_url = self.serverapp.base_url if self.serverapp is not None else "/"
        identity = self.resolve_identity()
        lock = self.claim_identity(identity)
        try:
            root = self.checked_session_root(self.resolved_session_root(lock.server_id))
            settings = self.manager_settings(
                session_root=root, downloads_dir=self.checked_downloads_dir(), server_id=lock.server_id
            )
        except BaseException:
            lock.release()
            raise
        lock.write_record(
            {
                "pid": os.getpid(),
                "started": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                "session_root": str(root),
                "base_url": base_url,
                "root_dir": str(getattr(self.serverapp, "root_dir", "") or ""),
                "hub_user": identity.hub_user,
                "hub_server_name": identity.hub_server_name,
            }
        )
        self.server_identity, self.server_lock, self.session_root_path = identity, lock, root
        self.log.info("ffsystemd: server id %s (%s), sessions in %s", lock.server_id, identity.source, root)
        self.session_manager = SessionManager(
            settings,
            SystemdClient(self.bus_address or None, call_timeout=self.dbus_timeout),
            url_for=lambda sid: url_path_join(base_url, "firefox-launcher", "session", sid) + "/",
        )
        self.orphans = Orphans(
            self.session_manager.systemd, state_dir(), lock.server_id, root, settings.job_timeout
        )
        self.settings["ffsystemd_manager"] = self.session_manager
        self.settings["ffsystemd_orphans"] = self.orphans
        self.settings["ffsystemd_capabilities"] = CapabilityStore(idle_lifetime=self.capability_lifetime)
        self.settings["ffsystemd_max_connections"] = self.max_connections_per_session
        self.settings["ffsystemd_websocket_idle_timeout"] = self.websocket_idle_timeout
        self.settings["ffsystemd_app"] = self
        self.settings["ffsystemd_client_files"] = discover_client_files()
        metrics.install(self.session_manager)
        server_log = getattr(self.serverapp, "log", None)
        route_package_logs(self.log, server_log.getEffectiveLevel() if server_log is not None else None)

    def initialize_handlers(self) -> None:
        """Register the REST routes (see ffsystemd.handlers)."""
        from .handlers import default_handlers

        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the event loop runs: re-adopt running sessions, start culling and reconnects.

        Also makes SIGINT a clean stop (ffsystemd.signals): JupyterHub stops servers with it.
        """
        manager = getattr(self, "session_manager", None)
        if manager is None:  # the configuration stopped the extension
            return
        self._restore_sigint = stop_on_sigint(lambda: serverapp.stop(from_signal=True))
        await manager.start()

    async def stop_extension(self) -> None:
        """On server stop: stop every session unless on_shutdown is 'keep'."""
        manager = getattr(self, "session_manager", None)
        if manager is not None:
            action = "stopping" if self.on_shutdown == "stop" else "keeping"
            self.log.info("ffsystemd: %s sessions on shutdown", action)
            await manager.shutdown(stop_sessions=self.on_shutdown == "stop")
        restore = getattr(self, "_restore_sigint", None)
        if restore is not None:
            restore()
        lock: ServerLock | None = getattr(self, "server_lock", None)
        if lock is not None:
            lock.release()  # from now on what this server kept is orphaned until it restarts
