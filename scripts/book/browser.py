"""Headless Chromium (or Chrome) driven by selenium: the browser tests' and the book's screenshots,
and the steps every chapter's pictures share (logging in through the stand-in, the picture).

On Debian, `nox -s pytest` and `nox -s book` install the chromium and chromium-driver
packages. GitHub's ubuntu-24.04 runner image has Google Chrome (/usr/bin/google-chrome), a
Chromium snapshot (/usr/bin/chromium) and the chromedriver built for that Chrome (in
$CHROMEWEBDRIVER, /usr/local/share/chromedriver-linux64); Ubuntu's own chromium package is
a snap stub that cannot run there. `python -m coursehub_tools.book.browser` prints what it uses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Chrome first: where it is installed (GitHub's runner image) the driver is built for it.
BROWSERS = ("google-chrome", "chromium", "chromium-browser")
# Without the background-networking flags Chromium tries Google's hosts, which
# a closed network refuses. Root needs --no-sandbox, and so does a user on
# Ubuntu 24.04, whose AppArmor denies the sandbox's user namespaces.
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
    # A scrollbar is not the page, and would keep a picture from being cropped.
    "--hide-scrollbars",
)
HOW_TO_INSTALL = (
    "on Debian `apt-get install chromium chromium-driver` (nox -s pytest and nox -s book do); "
    "on Ubuntu, Google Chrome and the chromedriver of its version"
)


class BrowserUnavailable(Exception):
    """No browser with a driver of its version; the message says how to get them."""


def major_version(command: str) -> str | None:
    """`151` from `Google Chrome 151.0.7922.137` or `ChromeDriver 151.0.7922.138 (...)`."""
    try:
        shown = subprocess.run([command, "--version"], capture_output=True, text=True,
                               timeout=60, check=False).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\b(\d+)\.\d+\.\d+\.\d+\b", shown)
    return found.group(1) if found else None


def chromedriver() -> str | None:
    """The runner image names its driver's folder in CHROMEWEBDRIVER; Debian's is on PATH."""
    folder = os.environ.get("CHROMEWEBDRIVER")
    if folder and (Path(folder) / "chromedriver").is_file():
        return str(Path(folder) / "chromedriver")
    return shutil.which("chromedriver")


def browser_and_driver() -> tuple[str, str]:
    """The first installed browser whose major version is the chromedriver's, and the driver.

    A driver drives only its own major version, and selenium's error for any
    other is a page of stack trace; this says which versions it found.
    """
    driver = chromedriver()
    browsers = [path for path in map(shutil.which, BROWSERS) if path]
    if not driver or not browsers:
        missing = "chromedriver" if browsers else "a Chromium or Chrome browser"
        raise BrowserUnavailable(f"{missing} is not installed: {HOW_TO_INSTALL}")
    wanted = major_version(driver)
    versions = {browser: major_version(browser) for browser in browsers}
    for browser, version in versions.items():
        if version and version == wanted:
            return browser, driver
    found = ", ".join(
        f"{browser}: {version or 'no version'}" for browser, version in versions.items()
    )
    raise BrowserUnavailable(
        f"{driver} (version {wanted}) drives none of the browsers found ({found}): {HOW_TO_INSTALL}"
    )


def headless_chromium():
    browser, driver = browser_and_driver()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(120)
    return session


def sign_in_with_standin(session, login: str) -> None:
    """On the hub's login page: choose GitHub, then agree as `login` on the stand-in's page.

    The stand-in's consent page has one button per fixture user
    (scripts/local/hub/github-users.yaml) where GitHub would ask for a password.
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


# Around what a page shows, this much of its background stays in the picture.
MARGIN_PX = 24


def cropped_to_content(png: bytes) -> tuple[bytes, float]:
    """The picture without the empty page around what it shows, and the share of width kept.

    The hub's pages are narrow columns in a 1280 px window: uncropped, most of
    a picture is background. The background is the colour of the bottom-left
    corner (the top may be a header bar); a page that is all background is kept whole.
    """
    from io import BytesIO

    from PIL import Image, ImageChops

    picture = Image.open(BytesIO(png)).convert("RGB")
    background = Image.new("RGB", picture.size, picture.getpixel((0, picture.height - 1)))
    box = ImageChops.difference(picture, background).getbbox()
    if box is None:
        return png, 1.0
    left, top, right, bottom = box
    kept = picture.crop(
        (
            max(left - MARGIN_PX, 0),
            max(top - MARGIN_PX, 0),
            min(right + MARGIN_PX, picture.width),
            min(bottom + MARGIN_PX, picture.height),
        )
    )
    out = BytesIO()
    kept.save(out, format="PNG")
    return out.getvalue(), kept.width / picture.width


def screenshot(session, width: int = 720):
    """What the browser shows now, cropped to it, as a picture for a chapter (IPython's Image).

    `width` is the whole window's width on the page; a cropped picture keeps
    that scale, so text is the same size in every picture.
    """
    from IPython.display import Image

    png, share = cropped_to_content(session.get_screenshot_as_png())
    return Image(data=png, width=round(width * share))


if __name__ == "__main__":
    try:
        browser, driver = browser_and_driver()
        print(f"browser {browser}, driver {driver}")
    except BrowserUnavailable as err:
        sys.exit(str(err))
