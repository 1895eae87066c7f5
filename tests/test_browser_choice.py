"""Which browser and driver the screenshots use, on Debian and on GitHub's Ubuntu runner image.

Stand-in executables print what the real ones print to `--version`; the runner
image's Chrome, Chromium snapshot and chromedriver are from
actions/runner-images, images/ubuntu/scripts/build/install-google-chrome.sh.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coursehub_tools.browser import BrowserUnavailable, browser_and_driver

pytestmark = pytest.mark.unit


def installed(folder: Path, name: str, version_line: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


def test_on_the_runner_image_chrome_goes_with_the_driver_in_chromewebdriver(tmp_path, monkeypatch):
    bin_dir, driver_dir = tmp_path / "bin", tmp_path / "chromedriver-linux64"
    chrome = installed(bin_dir, "google-chrome", "Google Chrome 151.0.7922.137")
    installed(bin_dir, "chromium", "Chromium 151.0.7922.0")
    driver = installed(driver_dir, "chromedriver", "ChromeDriver 151.0.7922.138 (0abc-refs/x)")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("CHROMEWEBDRIVER", str(driver_dir))
    assert browser_and_driver() == (str(chrome), str(driver))


def test_on_debian_chromium_goes_with_chromium_driver(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    chromium = installed(bin_dir, "chromium", "Chromium 156.0.8078.129 built on Debian 12")
    driver = installed(bin_dir, "chromedriver", "ChromeDriver 156.0.8078.129 (1a2e-refs/x)")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CHROMEWEBDRIVER", raising=False)
    assert browser_and_driver() == (str(chromium), str(driver))


def test_a_browser_of_another_version_than_the_driver_is_passed_over(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    installed(bin_dir, "google-chrome", "Google Chrome 152.0.8000.1")
    chromium = installed(bin_dir, "chromium", "Chromium 151.0.7922.0")
    driver = installed(bin_dir, "chromedriver", "ChromeDriver 151.0.7922.138 (0abc-refs/x)")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CHROMEWEBDRIVER", raising=False)
    assert browser_and_driver() == (str(chromium), str(driver))


def test_no_browser_of_the_drivers_version_says_which_versions_it_found(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    installed(bin_dir, "chromium-browser", "Command '/usr/bin/chromium-browser' requires the snap")
    installed(bin_dir, "chromedriver", "ChromeDriver 151.0.7922.138 (0abc-refs/x)")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CHROMEWEBDRIVER", raising=False)
    with pytest.raises(BrowserUnavailable) as unavailable:
        browser_and_driver()
    assert str(unavailable.value) == (
        f"{bin_dir}/chromedriver (version 151) drives none of the browsers found "
        f"({bin_dir}/chromium-browser: no version): on Debian `apt-get install chromium "
        "chromium-driver` (nox -s pytest and nox -s book do); on Ubuntu, Google Chrome and the "
        "chromedriver of its version"
    )


def test_no_driver_says_how_to_install_one(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    installed(bin_dir, "chromium", "Chromium 156.0.8078.129 built on Debian 12")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CHROMEWEBDRIVER", raising=False)
    with pytest.raises(BrowserUnavailable, match=r"^chromedriver is not installed: on Debian"):
        browser_and_driver()
