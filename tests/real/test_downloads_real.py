"""Real tier: Firefox's downloads land in `<root_dir>/Downloads`, where Jupyter and JupyterLab show them."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Callable, Iterator

import pytest

from .browser import ServedPage, chromium, save_artifact
from .test_traces_real import DOWNLOAD_BODY, DOWNLOAD_NAME, site  # noqa: F401 - site is a fixture
from .world import JupyterServer, unit_gone, wait_until

pytestmark = pytest.mark.real

UPLOAD_PAGE = (
    b"<!doctype html><title>upload page</title>"
    b"<style>input{position:fixed;left:0;top:0;width:100vw;height:100vh}</style>"
    b"<input type=file onchange=\"fetch('/upload', {method: 'POST', body: this.files[0]})\">"
)
TITLES = "() => window.client ? Object.values(client.id_to_window).map(w => w.title || '') : []"


@pytest.fixture
def upload_site() -> Iterator[tuple[str, list[bytes]]]:
    """A page on 127.0.0.1 that is one big file input and POSTs the chosen file back: (URL, bodies)."""
    with ServedPage(UPLOAD_PAGE) as served:
        yield served.url, served.posts


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


@pytest.mark.browser
def test_the_upload_dialog_opens_in_root_dir(
    server_factory: Callable[..., JupyterServer], upload_site: tuple[str, list[bytes]]
) -> None:
    url, bodies = upload_site
    server = server_factory(screen_size="1280x800")
    (server.root / "in-root-dir.txt").write_bytes(b"a file of the server's root_dir\n")
    session = server.launch(url=url)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{server.port}{session['url']}?token={server.token}")
        page.wait_for_function(f"() => ({TITLES})().some(t => t.includes('upload page'))", timeout=90_000)
        canvas = page.locator("div.window canvas").first
        deadline = time.monotonic() + 60
        while len(page.evaluate(TITLES)) < 2:  # the file chooser is a second window
            assert time.monotonic() < deadline, f"no file chooser opened: {page.evaluate(TITLES)}"
            canvas.click(position={"x": 600, "y": 400})
            page.wait_for_timeout(2000)  # bounded by the deadline; the dialog takes a moment
        assert any(t.startswith("File Upload") for t in page.evaluate(TITLES)), page.evaluate(TITLES)
        page.wait_for_timeout(1000)
        # A name relative to the dialog's folder: only root_dir holds it.
        page.keyboard.type("./in-root-dir.txt", delay=50)
        page.keyboard.press("Enter")
        wait_until(lambda: bodies, 30, "the page to upload the chosen file")
        save_artifact("upload-from-root-dir.png", page.screenshot())
    assert bodies == [b"a file of the server's root_dir\n"]
    server.cleanup(id=session["id"])
