"""Headless Debian Chromium driven by selenium: the browser tests' and the book's screenshots,
and the steps every chapter's pictures share (logging in through the stand-in, the picture).

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


def sign_in_with_standin(session, login: str) -> None:
    """On the hub's login page: choose GitHub, then agree as `login` on the stand-in's page.

    The stand-in's consent page has one button per fixture user
    (scripts/localhub/github-users.yaml) where GitHub would ask for a password.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in = (By.PARTIAL_LINK_TEXT, "Sign in with GitHub")
    WebDriverWait(session, 60).until(shown.presence_of_element_located(sign_in))
    session.find_element(*sign_in).click()
    session.find_element(By.CSS_SELECTOR, f'button[value="{login}"]').click()


def signed_in(hub_url: str, login: str, next_url: str = "/hub/home"):
    """A new headless browser, logged in to the hub as `login` and sent on to `next_url`.

    A WebDriver quits at the end of a `with` block, so a chapter can take its
    picture and leave no browser running.
    """
    from urllib.parse import quote

    session = headless_chromium()
    try:
        session.get(f"{hub_url}/hub/login?next={quote(next_url)}")
        sign_in_with_standin(session, login)
    except Exception:
        session.quit()
        raise
    return session


def screenshot(session, width: int = 720):
    """What the browser shows now, as a picture for a book chapter (IPython's Image)."""
    from IPython.display import Image

    return Image(data=session.get_screenshot_as_png(), width=width)
