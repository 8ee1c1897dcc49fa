"""What the `ffsystemd` command needs from the Jupyter configuration, read without a server.

The FirefoxLauncher traits are read from the same files a `jupyter server` reads
(`jupyter_ffsystemd_config.{py,json}` then `jupyter_server_config.{py,json}` in every
directory of `jupyter --paths`' config path, or one explicit `--config FILE`), without
validating them: `ffsystemd doctor` must still run when, say, the configured xpra is missing.
Command-line options win over the files; the trait defaults fill the rest. Without a
configured session root the command looks at every server's root (see CliConfig).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_config_path
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader

from ..identity import state_dir
from ..limits import UINT64_MAX, parse_cpu_quota
from ..liveness import known_servers
from ..systemd import user_bus_address

LAUNCHER = "FirefoxLauncher"
LEGACY_ROOT = "sessions"  # ~/.firefox-launcher/sessions, the shared default before server ids


@dataclass(frozen=True)
class CliConfig:
    """The launcher settings the CLI acts on.

    `session_roots`: the one configured (or given) session root; without one, the roots of
    every server this user ran (their liveness records, `ffsystemd.liveness`) plus the legacy
    shared `~/.firefox-launcher/sessions`, since each server then has a root of its own.
    """

    session_roots: tuple[Path, ...]
    explicit_root: bool
    bus_address: str
    keep_profile: bool
    xpra_command: list[str]
    firefox_command: list[str]
    needs_cpu: bool
    dbus_timeout: float
    sources: tuple[str, ...]  # config files that set FirefoxLauncher traits (for `doctor`)


def _load_file(path: Path) -> Config:
    """Load one .py or .json config file (ConfigFileNotFound when it is missing)."""
    loader_class = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
    return loader_class(path.name, path=str(path.parent)).load_config()


def _load(names: list[str], directories: list[str]) -> tuple[Config, list[str]]:
    """Merge name.py then name.json of each directory, lowest priority (last) first."""
    config = Config()
    files = []
    for directory in reversed(directories):
        for name in names:
            for suffix in (".py", ".json"):
                path = Path(directory) / f"{name}{suffix}"
                try:
                    loaded = _load_file(path)
                except ConfigFileNotFound:
                    continue
                config.merge(loaded)
                if LAUNCHER in loaded:
                    files.append(str(path))
    return config, files


def launcher_config(config_file: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Return the FirefoxLauncher section of the Jupyter config and the files that set it.

    With config_file, only that file is read (as `jupyter server --config=FILE` would, on
    top of nothing else). A file that fails to load raises its error.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        config = _load_file(config_file)
        files = [str(config_file)] if LAUNCHER in config else []
    else:
        directories = jupyter_config_path()
        # The extension's own file first; the server's file (and its command line) wins.
        config, files = _load(["jupyter_ffsystemd_config", "jupyter_server_config"], directories)
    section = config.get(LAUNCHER, Config())
    return {key: section[key] for key in section}, files


def known_roots(home: Path | None = None) -> tuple[Path, ...]:
    """Session roots of every server this user ran (alive or not), and the legacy shared root."""
    base = state_dir(home)
    roots = [r.session_root.expanduser() for r in known_servers(base) if r.session_root is not None]
    roots.append(base / LEGACY_ROOT)
    return tuple(dict.fromkeys(roots))


def resolve(
    config_file: Path | None = None,
    *,
    session_root: str | None = None,
    bus_address: str | None = None,
    environ: dict[str, str] | None = None,
) -> CliConfig:
    """Combine command-line options, the Jupyter config and the trait defaults into a CliConfig."""
    from ..app import FirefoxLauncher, find_firefox  # the traits' defaults are the documentation

    env = os.environ if environ is None else environ
    values, files = launcher_config(config_file)

    def trait(name: str) -> Any:
        if name in values:
            return values[name]
        return getattr(FirefoxLauncher, name).default()

    try:
        cpu = parse_cpu_quota(str(trait("cpu_quota")))
    except ValueError:
        cpu = UINT64_MAX
    root = session_root or str(values.get("session_root") or "")
    return CliConfig(
        session_roots=(Path(root).expanduser(),) if root else known_roots(),
        explicit_root=bool(root),
        bus_address=bus_address or str(trait("bus_address") or "") or user_bus_address(dict(env)),
        keep_profile=bool(trait("keep_profile")),
        xpra_command=list(trait("xpra_command") or []),
        firefox_command=list(trait("firefox_command") or []) or find_firefox(),
        needs_cpu=cpu != UINT64_MAX,
        dbus_timeout=float(trait("dbus_timeout")),
        sources=tuple(files),
    )
