"""Real tier, in real JupyterLab: a browser with a device pixel ratio of 2 gets Firefox rendered at
2x into X pixels that are its device pixels (sharp), and clicks land where the user clicks;
for a cold session and for a claimed pooled one (whose Firefox was already running at 96 DPI)."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator

import pytest
from PIL import Image
from playwright.sync_api import Frame, Page

from .browser import ServedPage, chromium, save_artifact
from .test_lab_real import PANEL
from .test_pool_real import ready_pooled
from .test_screen_real import RESIZED, xpra_log
from .test_view_real import FIREFOX, GEOMETRY, open_firefox_tab, window_covers_frame
from .world import JupyterServer, wait_until

pytestmark = [pytest.mark.real, pytest.mark.browser]

# Reports Firefox's devicePixelRatio and where its button and its stripes are, in X pixels (the
# content area's screen position is in Firefox's CSS pixels), and every click on the button.
# The stripes are one *device* pixel each way (a canvas drawn at devicePixelRatio): no picture
# upscaled from fewer pixels can show them.
HIDPI_PAGE = b"""<!doctype html><html><head><title>hidpi page</title><style>
body { margin: 0; font: 16px sans-serif }
#stripes { position: absolute; left: 60px; top: 60px; width: 200px; height: 60px }
#press { position: absolute; left: 400px; top: 240px; width: 140px; height: 60px }
#low { position: fixed; left: 8px; bottom: 8px; width: 100px; height: 40px }
#far { position: fixed; right: 8px; top: 8px; width: 100px; height: 40px }
#open { position: absolute; left: 60px; top: 240px; width: 100px; height: 40px }
</style></head><body><canvas id="stripes"></canvas><button id="press">press</button>
<button id="low">low</button><button id="far">far</button>
<button id="open">open</button><script>
let drawn = 0;
function draw() {
  const c = document.getElementById('stripes'), r = devicePixelRatio;
  if (drawn === r) return;
  drawn = r;
  c.width = Math.round(200 * r); c.height = Math.round(60 * r);
  const g = c.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, c.width, c.height);
  g.fillStyle = '#000';
  for (let x = 0; x < c.width; x += 2) g.fillRect(x, 0, 1, c.height);
}
function box(id) {
  const b = document.getElementById(id).getBoundingClientRect(), r = devicePixelRatio;
  return [(mozInnerScreenX + b.left) * r, (mozInnerScreenY + b.top) * r, b.width * r, b.height * r];
}
function report(kind, extra) {
  fetch('/', {method: 'POST', body: JSON.stringify(Object.assign(
    {kind: kind, dpr: devicePixelRatio, stripes: box('stripes'),
     press: box('press'), low: box('low'), far: box('far'), open: box('open')},
    extra || {}))});
}
setInterval(() => { draw(); report('tick'); }, 500);
for (const id of ['press', 'low', 'far']) document.getElementById(id).addEventListener('click',
  e => report('click', {id: id, x: e.clientX, y: e.clientY}));
document.getElementById('open').addEventListener('click',
  () => window.open('about:blank', '', 'width=400,height=300,left=500,top=200'));
</script></body></html>"""


@pytest.fixture
def hidpi_site() -> Iterator[tuple[str, list[dict]]]:
    """HIDPI_PAGE on 127.0.0.1: (URL, every report it made)."""
    with ServedPage(HIDPI_PAGE, on_post=json.loads) as served:
        yield served.url, served.posts


# A real HiDPI screen: every frame, also the client's (a renderer of its own), has ratio 2.
# (Playwright's device_scale_factor alone reaches only the top page: the frame reported 1.)
HIDPI_ARGS = ["--force-device-scale-factor=2"]


def in_x_pixels(frame: Frame, ratio: float, slack: int = 3) -> dict | None:
    """The geometry if Firefox's window fills the frame and its canvas has `ratio` x its CSS size."""
    g = frame.evaluate(GEOMETRY)
    if not g or not window_covers_frame(g, slack):
        return None
    ok = (
        abs(g["canvas"][0] - ratio * g["width"]) <= slack
        and abs(g["canvas"][1] - ratio * g["height"]) <= slack
    )
    return g if ok else None


def to_page(page: Page, frame: Frame, x: float, y: float) -> tuple[float, float]:
    """A point in X pixels as CSS pixels of JupyterLab's page."""
    box = page.locator(".jp-FFSystemd-frame").bounding_box()
    assert box
    across, down = frame.evaluate(
        "() => [client.desktop_width / innerWidth, client.desktop_height / innerHeight]"
    )
    return box["x"] + x / across, box["y"] + y / down


def stripes_kept(page: Page, frame: Frame, stripes: list[float]) -> float:
    """Of neighbouring device pixels across the stripes in a screenshot, the share that differ."""
    x, y, w, h = stripes
    left, top = to_page(page, frame, x + 8, y + 8)
    right, bottom = to_page(page, frame, x + w - 8, y + h - 8)
    shot = page.screenshot(clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
    image = Image.open(io.BytesIO(shot)).convert("L")
    row = [image.getpixel((i, image.height // 2)) for i in range(image.width)]
    save_artifact("hidpi-stripes.png", shot)
    return sum(abs(a - b) > 150 for a, b in itertools.pairwise(row)) / (len(row) - 1)


def sharp(page: Page, frame: Frame, stripes: Callable[[], list[float]]) -> bool:
    """The one-device-pixel stripes arrive as they are (an upscaled picture has none); `stripes`
    gives where the page last said they are (it reports again after a re-layout)."""
    kept: list[float] = []
    try:
        wait_until(
            lambda: kept.append(stripes_kept(page, frame, stripes())) or kept[-1] > 0.9, 60, "sharp stripes"
        )
    except AssertionError as error:
        raise AssertionError(f"{error}: share of differing neighbours {kept[-3:]}") from None
    return True


def settled_box(reports: list[dict], name: str) -> list[float]:
    """Where the page says the element `name` is, once its last two ticks agree (a window still
    being resized or rescaled moves a button fixed to the page's bottom)."""

    def last_two() -> list[list[float]]:
        return [r[name] for r in reports if r.get("kind") == "tick"][-2:]

    return wait_until(
        lambda: (two := last_two()) and len(two) == 2 and two[0] == two[1] and two[1],
        30,
        f"the page's layout of {name} to settle",
        interval=0.1,
    )


def click_the_buttons(page: Page, frame: Frame, reports: list[dict]) -> None:
    """A click at each button's place on the user's screen reaches it (the first at its centre).

    The other two sit at the page's bottom left and top right, where a pointer beyond the X
    screen would land nowhere (the bottom right is where JupyterLab puts its notices).
    """
    for name, centre in (("press", (470, 270)), ("low", None), ("far", None)):
        x, y, w, h = settled_box(reports, name)
        at = to_page(page, frame, x + w / 2, y + h / 2)
        page.mouse.click(*at)
        try:
            wait_until(
                lambda name=name: any(r.get("id") == name for r in reports), 30, f"the click to reach {name}"
            )
        except AssertionError as error:
            save_artifact(f"hidpi-click-{name}.png", page.screenshot())
            now = reports[-1][name]
            raise AssertionError(
                f"{error}: clicked page point {at} for X box {[x, y, w, h]}, now at {now}"
            ) from None
        click = next(r for r in reports if r.get("id") == name)
        if centre:
            assert abs(click["x"] - centre[0]) <= 3 and abs(click["y"] - centre[1]) <= 3, click


POPUP = """() => Object.values(client.id_to_window).filter(w => w.override_redirect).map(w => {
  const box = w.div[0].getBoundingClientRect();
  return [box.left, box.top, box.right, box.bottom];
})"""


def menu_at_the_pointer(page: Page, frame: Frame) -> None:
    """Firefox's context menu (a popup window) opens where the user right-clicked, in CSS px."""
    box = page.locator(".jp-FFSystemd-frame").bounding_box()
    assert box
    x, y = 300, box["height"] * 0.6  # in the page, below the stripes
    page.mouse.click(box["x"] + x, box["y"] + y, button="right")
    [menu] = wait_until(lambda: frame.evaluate(POPUP) or None, 30, "Firefox's context menu")
    left, top, right, bottom = menu
    assert abs(left - x) <= 6 and (abs(top - y) <= 6 or abs(bottom - y) <= 6), (menu, x, y)  # or flipped up
    assert right - left > 60  # a menu, not a speck
    page.keyboard.press("Escape")
    wait_until(lambda: frame.evaluate(POPUP) == [], 30, "the menu to close")


DIALOGS = """() => Object.values(client.id_to_window).filter(w => w.d_header && w !== (FIREFOX)).map(w => {
  const head = document.querySelector(w.d_header).getBoundingClientRect();
  return {head: [head.left, head.top, head.width, head.height], xpra: [w.x, w.y]};
})""".replace("FIREFOX", FIREFOX)


def a_dialog_follows_a_drag(page: Page, frame: Frame, reports: list[dict]) -> None:
    """A window of its own (window.open) keeps Xpra's title bar; dragged by it 100 CSS px left and
    50 down, it moves that much on the screen and twice that in X pixels."""
    x, y, w, h = settled_box(reports, "open")
    page.mouse.click(*to_page(page, frame, x + w / 2, y + h / 2))
    seen: list[list[dict]] = [[]]

    def settled() -> dict | None:
        """The dialog once it has its 400 CSS px and stays put (Firefox sizes a new window late)."""
        now = frame.evaluate(DIALOGS)
        same = now == seen[-1] and len(now) == 1 and abs(now[0]["head"][2] - 400) <= 3
        seen.append(now)
        return now[0] if same else None

    dialog = wait_until(settled, 60, "the opened window, with a title bar, 400 CSS px wide", interval=0.5)
    box = page.locator(".jp-FFSystemd-frame").bounding_box()
    assert box
    left, top, width, height = dialog["head"]
    start = (box["x"] + left + width / 2, box["y"] + top + height / 2)
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(start[0] - 10 * step, start[1] + 5 * step)
    page.mouse.up()
    moved: list[dict] = []

    def followed() -> bool:
        """The title bar is 100 CSS px left and 50 down, and Xpra has the window twice that
        in X pixels (the move reaches Xpra after the client's own drawing)."""
        now = frame.evaluate(DIALOGS)
        if len(now) != 1:
            return False
        moved.append(now[0])
        head, xpra = now[0]["head"], now[0]["xpra"]
        return (
            abs(head[0] - (left - 100)) <= 2
            and abs(head[1] - (top + 50)) <= 2
            and abs(xpra[0] - (dialog["xpra"][0] - 200)) <= 4
            and abs(xpra[1] - (dialog["xpra"][1] + 100)) <= 4
        )

    try:
        wait_until(followed, 30, "the title bar to follow the pointer")
    except AssertionError as error:
        save_artifact("hidpi-dialog.png", page.screenshot())
        raise AssertionError(f"{error}: from {dialog} to {moved[-1:]}") from None


def open_hidpi_tab(page: Page, server: JupyterServer) -> Frame:
    frame = open_firefox_tab(page, server)
    assert frame.evaluate("() => devicePixelRatio") == 2  # the client's frame is on the 2x screen
    frame.wait_for_function(f"() => {{ const w = {FIREFOX}; return w && /hidpi page/.test(w.title); }}")
    return frame


def check_hidpi_tab(page: Page, server: JupyterServer, reports: list[dict]) -> Frame:
    frame = open_hidpi_tab(page, server)
    wait_until(
        lambda: in_x_pixels(frame, 2), 60, f"a 2x canvas filling the tab, saw {frame.evaluate(GEOMETRY)}"
    )
    wait_until(lambda: reports and reports[-1]["dpr"] == 2, 60, f"Firefox at 2x, saw {reports[-1:]}")
    wait_until(lambda: in_x_pixels(frame, 2), 30, f"the canvas still 2x, saw {frame.evaluate(GEOMETRY)}")
    assert sharp(page, frame, lambda: reports[-1]["stripes"])
    click_the_buttons(page, frame, reports)
    menu_at_the_pointer(page, frame)
    save_artifact("hidpi-tab.png", page.screenshot())
    return frame


def test_a_hidpi_browser_gets_firefox_at_2x_sharp_and_clickable(
    server_factory: Callable[..., JupyterServer], hidpi_site: tuple[str, list[dict]]
) -> None:
    url, reports = hidpi_site
    server = server_factory(screen_size="3840x2160", start_url=url)
    with chromium(HIDPI_ARGS) as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=2).new_page()
        frame = check_hidpi_tab(page, server, reports)
        session_id = page.locator(PANEL).get_attribute("data-session-id")
        assert session_id
        # The tab pre-sized the screen to the client's 2x size, so Xpra never resized it (nor ran
        # its resize-time DPI code): Firefox's 2x came from the DPI in the client's hello.
        assert RESIZED not in xpra_log(server, session_id)
        a_dialog_follows_a_drag(page, frame, reports)
        save_artifact("hidpi-dialog.png", page.screenshot())
    server.cleanup(id=session_id)


def test_a_claimed_pooled_session_rescales_its_running_firefox_to_2x(
    server_factory: Callable[..., JupyterServer], hidpi_site: tuple[str, list[dict]]
) -> None:
    url, reports = hidpi_site
    server = server_factory(pool_size=1, screen_size="3840x2160", start_url=url)
    [pooled] = wait_until(lambda: ready_pooled(server), 120, "a ready pooled session")
    with chromium(HIDPI_ARGS) as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=2).new_page()
        check_hidpi_tab(page, server, reports)
        assert page.locator(PANEL).get_attribute("data-session-id") == pooled
    server.cleanup(id=pooled)


def test_a_hidpi_tab_too_large_for_the_x_screen_gets_a_lower_ratio_and_stays_clickable(
    server_factory: Callable[..., JupyterServer], hidpi_site: tuple[str, list[dict]]
) -> None:
    """At 2x the tab would need more X pixels than the screen has (1920x1080): the client lowers
    its ratio until the X size fits, Firefox follows, and clicks at the page's edges still land."""
    url, reports = hidpi_site
    server = server_factory(screen_size="1920x1080", start_url=url)
    with chromium(HIDPI_ARGS) as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=2).new_page()
        frame = open_hidpi_tab(page, server)
        width, height = frame.evaluate("() => [innerWidth, innerHeight]")
        assert 2 * width > 1920 or 2 * height > 1080, (width, height)  # 2x would not fit
        ratio = min(1920 / width, 1080 / height)
        assert 1.1 < ratio < 2
        wait_until(
            lambda: in_x_pixels(frame, ratio), 60, f"a {ratio:.3f}x canvas, saw {frame.evaluate(GEOMETRY)}"
        )
        desktop = frame.evaluate("() => [client.desktop_width, client.desktop_height]")
        assert desktop[0] <= 1920 and desktop[1] <= 1080, desktop
        assert desktop[0] == 1920 or desktop[1] == 1080, desktop  # all the room there is one way
        # Firefox's scale is the reported DPI / 96, to the nearest 60/n (its app units per pixel).
        wait_until(lambda: reports and abs(reports[-1]["dpr"] - ratio) < 0.03, 60, f"Firefox at {ratio:.3f}x")
        click_the_buttons(page, frame, reports)
        save_artifact("hidpi-capped-tab.png", page.screenshot())
        session_id = page.locator(PANEL).get_attribute("data-session-id")
    server.cleanup(id=session_id)
