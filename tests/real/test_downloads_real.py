"""Real tier: Firefox's downloads land in `<root_dir>/Downloads`, where Jupyter and JupyterLab show them."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable

import pytest

from .browser import chromium, save_artifact
from .test_traces_real import DOWNLOAD_BODY, DOWNLOAD_NAME, site  # noqa: F401 - site is a fixture
from .world import JupyterServer, unit_gone, wait_until

pytestmark = pytest.mark.real


def listed(server: JupyterServer, directory: str) -> dict[str, dict]:
    """The Jupyter contents API's listing of a directory of root_dir: name -> model."""
    resp = server.get(f"api/contents/{directory}")
    if resp.status_code == 404:
        return {}
    assert resp.status_code == 200, resp.text
    return {item["name"]: item for item in resp.json()["content"]}


@pytest.mark.browser
def test_a_download_appears_in_the_contents_api_and_the_lab_file_browser(
    server_factory: Callable[..., JupyterServer],
    site: tuple[str, list[str]],  # noqa: F811
) -> None:
    base_url, seen = site
    server = server_factory()
    downloads = server.root / "Downloads"  # the default: Downloads/ in the server's root_dir
    assert downloads.is_dir() and stat.S_IMODE(downloads.stat().st_mode) == 0o700
    session = server.launch(url=f"{base_url}/page")
    base = server.session_root / f"session-{session['id']}"
    # Firefox was told where downloads go and where its upload dialog opens.
    user_js = (base / "profile" / "user.js").read_text()
    assert f'user_pref("browser.download.dir", "{downloads}");' in user_js
    assert f'user_pref("dom.input.fallbackUploadDir", "{server.root}");' in user_js

    wait_until(
        lambda: listed(server, "Downloads").get(DOWNLOAD_NAME, {}).get("size") == len(DOWNLOAD_BODY),
        90,
        "the download in GET /api/contents/Downloads",
    )
    assert "/download" in seen, seen
    assert (downloads / DOWNLOAD_NAME).read_bytes() == DOWNLOAD_BODY
    assert list((base / "downloads").iterdir()) == []  # not in the session any more

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}lab/tree/Downloads?reset&token={server.token}")
        item = page.locator(".jp-DirListing-item", has_text=re.compile(re.escape(DOWNLOAD_NAME)))
        item.first.wait_for(timeout=60_000)
        save_artifact("lab-downloads.png", page.screenshot())

    # A download outlives its session.
    server.cleanup(id=session["id"])
    wait_until(lambda: unit_gone(session["unit"]), 30, "the session's unit to go")
    assert not base.exists()
    assert DOWNLOAD_NAME in listed(server, "Downloads")
