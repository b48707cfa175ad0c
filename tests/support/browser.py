"""Real headless Chromium (Debian's chromium + chromium-driver) driven by selenium, for page tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1400,1000")


def _missing(what: str) -> None:
    text = f"{what} is not installed: scripts/bootstrap.sh (make setup) installs it (scripts/debian-packages.txt)"
    if os.environ.get("CI") == "true":
        pytest.fail(text)  # in CI the page test must run, never skip
    pytest.skip(text)


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[object]:
    """A selenium WebDriver on a fresh headless Chromium profile in ``user_data_dir``."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium (the dev extra)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None:
        _missing("chromium")
    if driver_path is None:
        _missing("chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
