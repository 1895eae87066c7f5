"""Which browser and driver the screenshots use, on Debian and on GitHub's Ubuntu runner image.

Stand-in executables print what the real ones print to `--version`; the runner
image's Chrome, Chromium snapshot and chromedriver are from
actions/runner-images, images/ubuntu/scripts/build/install-google-chrome.sh.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coursehub_tools.book.browser import BrowserUnavailable, browser_and_driver

pytestmark = pytest.mark.unit


def installed(folder: Path, name: str, version_line: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


# The runner image's driver is in its own folder, which $CHROMEWEBDRIVER names.
RUNNER_DRIVERS = "chromedriver-linux64"


@pytest.mark.parametrize(
    ("installs", "chosen"),
    [
        pytest.param(
            [("bin", "google-chrome", "Google Chrome 151.0.7922.137"),
             ("bin", "chromium", "Chromium 151.0.7922.0"),
             (RUNNER_DRIVERS, "chromedriver", "ChromeDriver 151.0.7922.138 (0abc-refs/x)")],
            ("bin/google-chrome", f"{RUNNER_DRIVERS}/chromedriver"),
            id="runner image: Chrome with the driver in CHROMEWEBDRIVER",
        ),
        pytest.param(
            [("bin", "chromium", "Chromium 156.0.8078.129 built on Debian 12"),
             ("bin", "chromedriver", "ChromeDriver 156.0.8078.129 (1a2e-refs/x)")],
            ("bin/chromium", "bin/chromedriver"),
            id="Debian: chromium with chromium-driver",
        ),
        pytest.param(
            [("bin", "google-chrome", "Google Chrome 152.0.8000.1"),
             ("bin", "chromium", "Chromium 151.0.7922.0"),
             ("bin", "chromedriver", "ChromeDriver 151.0.7922.138 (0abc-refs/x)")],
            ("bin/chromium", "bin/chromedriver"),
            id="a browser of another version than the driver is passed over",
        ),
    ],
)  # fmt: skip
def test_the_browser_chosen_goes_with_the_driver(tmp_path, monkeypatch, installs, chosen):
    for folder, name, version_line in installs:
        installed(tmp_path / folder, name, version_line)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    if (tmp_path / RUNNER_DRIVERS).is_dir():
        monkeypatch.setenv("CHROMEWEBDRIVER", str(tmp_path / RUNNER_DRIVERS))
    else:
        monkeypatch.delenv("CHROMEWEBDRIVER", raising=False)
    assert browser_and_driver() == tuple(str(tmp_path / path) for path in chosen)


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
