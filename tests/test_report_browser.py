"""The report in a real browser: headless Chromium (Debian's ``chromium``) opens
``report/index.html`` from disk with the network off, and finds no console errors or requests,
every arm's row, every figure decoded, a page that fits a laptop screen, a screenshot that is
not blank, and print styles that apply."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from reports import build_report
from tests.browser import Browser, find_chromium
from tests.fake_run import ARMS, make_run_dir

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (install Debian's 'chromium' package; .ci/run does)",
)

PAGE_STATE = """(async () => {
  const images = [...document.images];
  const decoded = await Promise.all(images.map(i => i.decode().then(() => true, () => false)));
  return {
    arms: [...document.querySelectorAll("table.main tr[data-arm]")].map(r => r.dataset.arm),
    images: images.map((img, k) => ({name: img.dataset.figure, width: img.naturalWidth,
                                      height: img.naturalHeight, decoded: decoded[k]})),
    links: [...document.querySelectorAll("[src], [href]")]
      .map(e => e.getAttribute("src") || e.getAttribute("href"))
      .filter(u => !u.startsWith("data:") && !u.startsWith("#")),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  };
})()"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(make_run_dir(tmp_path_factory.mktemp("run")))


@pytest.fixture(scope="module")
def page(report):
    browser = Browser(CHROMIUM)
    try:
        session = browser.open(report.as_uri())
        yield browser, session, browser.evaluate(session, PAGE_STATE)
    finally:
        browser.close()


def problems(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and non-local requests."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            found.append(f"console.{params['type']}: {params['args']}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("data:", "file:", "about:")):
                found.append(f"request: {url}")
    return found


def test_no_console_errors_and_no_network(page):
    browser, _, state = page
    assert problems(browser.events) == []
    assert state["links"] == []


def test_every_arm_has_a_row_in_every_family_table(page):
    _, _, state = page
    families = len(state["arms"]) // len(ARMS)
    assert families == 5 and state["arms"] == list(ARMS) * families


def test_every_figure_is_present_and_decoded(page, report):
    _, _, state = page
    on_disk = {
        p.stem for p in (report.parent / "figures").iterdir() if p.suffix in (".png", ".gif")
    }
    shown = {image["name"] for image in state["images"]}
    assert shown == on_disk and len(state["images"]) == len(on_disk)
    bad = [i for i in state["images"] if not (i["decoded"] and i["width"] > 0 and i["height"] > 0)]
    assert bad == []


def test_fits_a_laptop_screen_and_screenshots_are_not_blank(page):
    browser, session, state = page
    assert state["overflow"] <= 0  # wide tables scroll inside their box, the page does not
    for section in ("main", "frames"):
        browser.evaluate(session, f"document.getElementById('{section}').scrollIntoView()")
        shot = np.asarray(Image.open(io.BytesIO(browser.screenshot(session))).convert("L"))
        assert shot.shape == (900, 1280)
        assert shot.std() > 20, f"{section}: screenshot looks blank"
        assert (shot < 200).mean() > 0.02, f"{section}: almost nothing drawn"


def test_print_styles_apply(page):
    browser, session, _ = page
    browser.send("Emulation.setEmulatedMedia", {"media": "print"}, session)
    try:
        display = browser.evaluate(
            session, "getComputedStyle(document.querySelector('nav')).display"
        )
        assert display == "none"
        pdf = browser.send("Page.printToPDF", {"printBackground": False}, session)["data"]
        assert len(pdf) > 10_000
    finally:
        browser.send("Emulation.setEmulatedMedia", {"media": ""}, session)


DELTA_WIDTHS = """[...document.querySelectorAll("#deltas img")].map(img => ({
  shown: img.getBoundingClientRect().width, natural: img.naturalWidth,
  room: img.closest("section").clientWidth}))"""


def test_delta_charts_get_the_full_width_and_narrow_screens_no_sideways_scroll(page):
    browser, session, _ = page
    widths = browser.evaluate(session, DELTA_WIDTHS)
    assert widths and all(w["shown"] >= min(w["natural"], w["room"]) - 1 for w in widths)
    header = "getComputedStyle(document.querySelector('table.main thead th')).whiteSpace"
    assert browser.evaluate(session, header) == "normal"  # long metric names wrap
    metrics = {"height": 900, "deviceScaleFactor": 1, "mobile": False}
    browser.send("Emulation.setDeviceMetricsOverride", {"width": 390, **metrics}, session)
    try:
        overflow = "document.documentElement.scrollWidth - window.innerWidth"
        assert browser.evaluate(session, overflow) <= 0
    finally:
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, **metrics}, session)
