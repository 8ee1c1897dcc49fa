"""The prebuilt JupyterLab extension is installed and enabled with the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_labextension_list_shows_ffsystemd_enabled_and_ok() -> None:
    jupyter = Path(sys.executable).with_name("jupyter")
    out = subprocess.run(
        [str(jupyter), "labextension", "list"], capture_output=True, text=True, timeout=120, check=True
    )
    text = out.stdout + out.stderr
    line = next((ln for ln in text.splitlines() if ln.strip().startswith("ffsystemd ")), "")
    assert "enabled" in line and "OK" in line, text
