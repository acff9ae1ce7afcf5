"""Headless Chromium through Selenium, for the tests that open pages in a browser (the
debug-toolbar panel, the browsable API's Filters dialog). A pytest plugin of the suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REQUIRE_SERVICES

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: The window the tests (and the documentation's screenshots) see: 1280 by 900 pixels.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


def _browser_missing() -> str | None:
    """Why headless Chromium cannot be driven here, or None if it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not on PATH (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium through Selenium; skipped without it, unless CI requires it."""
    reason = _browser_missing()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"CROSSPREFETCH_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
