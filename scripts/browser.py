"""Headless Debian Chromium driven by selenium: the browser tests' and the book's screenshots.

`nox -s pytest` and `nox -s book` install Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import shutil

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
# Without the background-networking flags Chromium tries Google's hosts, which
# a closed network refuses; root needs --no-sandbox.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


class BrowserUnavailable(Exception):
    """Chromium or its driver is missing; the message says how to get them."""


def headless_chromium():
    chromium = next(filter(None, map(shutil.which, CHROMIUMS)), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        raise BrowserUnavailable(
            "Debian's chromium and chromium-driver are not installed "
            "(nox -s pytest and nox -s book install them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(120)
    return session
