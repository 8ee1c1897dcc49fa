"""ffsystemd: a real Firefox in a JupyterLab tab, each session a transient systemd user scope."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt front end (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "ffsystemd"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell Jupyter Server where the extension app lives."""
    from .app import FirefoxLauncher

    return [{"module": "ffsystemd.app", "app": FirefoxLauncher}]
