"""The demo on other days: chapters run with the clock moved around the registry's courses.

The book build runs every chapter on the day it is built; this runs the ones
that start the demo hub again on the days `days_around` derives from the
registry, in a kernel whose clock (and every process it starts: the hub, the
proxy, the GitHub stand-in, JupyterLab) is moved there with libfaketime. A
chapter that needs today's date to be inside a course fails here, naming the
day, long before that day comes. "Run it on your laptop" is the README's first
command in code (Sam logs in and reaches JupyterLab), so it runs on every day;
every other chapter with code runs on the last day, the furthest from the dates
anything was written on (a chapter need not start a hub to depend on the day: a
pod built from prod's values has no course after every course has ended).
"""

from __future__ import annotations

import os
import re

import jupytext
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from coursehub.courses import load_courses
from coursehub_tools.config.deployconfig import ROOT, load
from coursehub_tools.local.moved_clock import days_around, moved_clock_environment

pytestmark = pytest.mark.hub

DAYS = days_around(load_courses(load("local").values["custom"]["courses"]))
FURTHEST = list(DAYS)[-1]
EVERY_DAY = "laptop"
CODE_CELL = re.compile(r"^```\{code-cell\}", re.MULTILINE)


def chapters_with_code() -> list[str]:
    return sorted(
        path.stem for path in (ROOT / "book").glob("*.md") if CODE_CELL.search(path.read_text())
    )


def run_chapter(name: str, day_name: str) -> None:
    notebook = jupytext.read(ROOT / "book" / f"{name}.md", fmt="md:myst")
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "book")}},
    )
    try:
        client.execute(env=moved_clock_environment(DAYS[day_name], os.environ))
    except CellExecutionError as err:
        pytest.fail(
            f'chapter "{name}" failed on {DAYS[day_name]} ({day_name}), '
            f"with the clock moved there:\n{err}"
        )


def test_the_chapters_with_code_are_found():
    found = chapters_with_code()
    assert EVERY_DAY in found and "reliability" in found, found


@pytest.mark.parametrize("day_name", list(DAYS))
def test_sam_reaches_jupyterlab_in_the_laptop_chapter_on(day_name):
    run_chapter(EVERY_DAY, day_name)


@pytest.mark.parametrize("chapter", [c for c in chapters_with_code() if c != EVERY_DAY])
def test_a_chapter_runs_on_the_furthest_day(chapter):
    run_chapter(chapter, FURTHEST)
