"""The web view in a real browser (Debian's Chromium, headless, driven by playwright): the
page loads while a basket runs and a leg's progress changes on it without a reload.

With `LEGATO_WEB_SCREENSHOT=<path>` it also saves a picture of the page mid-basket (how
docs/img/web-view.png is made). Without /usr/bin/chromium it is skipped, unless `CI` is
set: there a missing browser is a failure, not a reason to pass."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from actors.lifecycle import BasketState
from cluster.engine import Engine
from cluster.web import serve_in_thread
from tests.cluster.conftest import NAMESPACE as SESSION_NAMESPACE
from tests.cluster.test_web import quick
from tests.support import without_injected_rejects

# A namespace of its own: no venue or basket another test left running can be in it.
NAMESPACE = f"{SESSION_NAMESPACE}-web-browser"

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {CHROMIUM} is missing: `apt-get install chromium`")
        pytest.skip(f"no browser: {CHROMIUM} is missing (`apt-get install chromium`)")
    return CHROMIUM


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine.start(
        without_injected_rejects("venues.toml", tmp_path), namespace=NAMESPACE
    ) as engine:
        yield engine


def test_the_page_shows_a_running_basket_and_its_legs_move_live(
    chromium: Path, engine: Engine
) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    handle = engine.submit(quick("web-browser", horizon_s=25))
    try:
        with (
            serve_in_thread(NAMESPACE, every_s=0.3) as web,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(
                executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                page.goto(web.url, timeout=30_000)
                cell = page.locator('[data-leg="web-browser/eth"] .pct')
                cell.wait_for(timeout=40_000)  # the row arrives over the event stream
                page.wait_for_function(
                    "document.querySelector('#live').textContent === 'live'", timeout=10_000
                )
                before = cell.text_content()
                # A leg's completion moves while the page stays loaded: only the stream can
                # have changed it.
                page.wait_for_function(
                    """([sel, before]) => {
                        const e = document.querySelector(sel);
                        return e !== null && e.textContent !== before;
                    }""",
                    arg=['[data-leg="web-browser/eth"] .pct', before],
                    timeout=30_000,
                )
                after = cell.text_content()
                assert after != before
                assert page.locator('[data-basket="web-browser"] [data-field="state"]').count()
                shot = os.environ.get("LEGATO_WEB_SCREENSHOT")
                if shot:
                    _screenshot_mid_basket(page, shot)
            finally:
                browser.close()
    finally:
        handle.cancel("the browser test is done")
        assert handle.result(timeout=60).status in {BasketState.CANCELLED, BasketState.COMPLETED}


def _screenshot_mid_basket(page: Page, path: str) -> None:
    """Wait (with a deadline) until the basket is a good way in, then take the picture."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = page.locator('[data-basket="web-browser"] [data-field="schedule"]').text_content()
        if text and float(text.rstrip("%")) >= 35:
            break
        page.wait_for_timeout(250)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
