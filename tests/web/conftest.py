"""Browser fixtures for the dashboard: Debian's headless Chromium through its
ChromeDriver (Selenium), installed by .ci/install-browser.sh when missing; a failed
browser test leaves a screenshot under test-artifacts/ (or $BM_TEST_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("BM_TEST_ARTIFACTS", str(ROOT / "test-artifacts")))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage", "--window-size=1300,1000")


def _have_browser() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path, installing Debian's packages once when they are missing."""
    if not _have_browser():
        script = ROOT / ".ci" / "install-browser.sh"
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["bash", str(script)], timeout=900, check=False,
                           capture_output=True)
    if not _have_browser():
        pytest.skip("no browser: Debian's chromium and chromium-driver are not installed and "
                    "could not be (run .ci/install-browser.sh as root)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for failures
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    driver = getattr(item, "funcargs", {}).get("browser")
    if driver is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{item.name}.png"
    try:
        driver.save_screenshot(str(path))
        (ARTIFACTS / f"{item.name}.html").write_text(driver.page_source)
    except Exception as exc:  # the browser itself may be what failed
        report.sections.append(("screenshot", f"none: {exc}"))
        return
    report.sections.append(("screenshot", f"saved {path} (and the page's HTML beside it)"))
