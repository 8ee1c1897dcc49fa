"""`ffsystemd install-units`: install the shipped systemd units into the user's configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

SLICE = "app-ffsystemd.slice"


def shipped_unit(name: str) -> Path:
    """Path of a unit file shipped with the package (wheel) or in the source tree."""
    packaged = resources.files("ffsystemd").joinpath("units_data", name)
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "units" / name
    if source.is_file():
        return source
    raise FileNotFoundError(f"{name} is not shipped with this installation")


def user_unit_dir(environ: dict[str, str] | None = None) -> Path:
    """$XDG_CONFIG_HOME/systemd/user (default ~/.config/systemd/user)."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user"


def install_units(target: Path, reload: bool = True) -> Path:
    """Copy the slice into target and `systemctl --user daemon-reload`; return the installed path."""
    target.mkdir(parents=True, exist_ok=True)
    dest = target / SLICE
    shutil.copyfile(shipped_unit(SLICE), dest)
    if reload:
        subprocess.run(["systemctl", "--user", "daemon-reload"], check=True, timeout=60)
    return dest
