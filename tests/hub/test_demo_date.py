"""The demo school's date: a hub that is not a real school's lives on a pinned day.

The example registry's courses have real dates, so on the real calendar the demo
hub (`nox -s hub`) would offer Sam two courses, one, or none depending on the day.
The deployments that list config/demo-date.yaml judge courses by its date instead;
staging and prod never do. Expectations come from the merged values and the
GitHub stand-in's fixture, so a fork that moves its registry learns here what to
change.
"""

from __future__ import annotations

import pytest

from coursehub.courses import course_day, load_courses, open_to, pretend_notice
from coursehub.spawner import CourseSpawner
from coursehub_tools.config.deployconfig import ConfigError, check_values, load
from coursehub_tools.local.github_standin import World
from coursehub_tools.local.local_hub import FIXTURE

pytestmark = pytest.mark.unit

DEMO_DATE_FILE = "deploy/deployments/coursehub/config/demo-date.yaml"
WORLD = World.from_file(FIXTURE, "id", "secret")


def pretended(deployment: str) -> str | None:
    return load(deployment).values["hub"]["config"].get("CourseSpawner", {}).get("today")


def groups_of(login: str) -> list[str]:
    return [f"{team['organization']['login']}:{team['slug']}" for team in WORLD.teams_of(login)]


@pytest.mark.parametrize("deployment", ["local", "local-sso", "kind"])
def test_the_demo_deployments_live_on_the_demo_date(deployment):
    demo = load("local").layers[-1]
    assert demo.source == DEMO_DATE_FILE
    assert pretended(deployment) == demo.values["hub"]["config"]["CourseSpawner"]["today"]


@pytest.mark.parametrize("deployment", ["staging", "prod"])
def test_a_real_school_uses_the_real_date(deployment):
    assert pretended(deployment) is None


def test_on_the_demo_date_sam_has_one_course_that_needs_no_network():
    values = load("local").values
    day = course_day(pretended("local"))
    courses = load_courses(values["custom"]["courses"])
    students = [
        login
        for login in WORLD.users
        if set(groups_of(login)) & set(values["custom"]["github"]["studentTeams"])
    ]
    assert "sam" in students, "the chapters log in as Sam, a student of the fixture"
    move_it = (
        f"move the date in {DEMO_DATE_FILE} inside one course of deploy/courses/ that "
        "no other course of the demo's students overlaps"
    )
    for login in students:
        open_courses = [c.slug for c in open_to(courses, groups_of(login), day)]
        assert len(open_courses) <= 1, (
            f"on {day} {login} must choose from {open_courses}: {move_it}"
        )
    (sams,) = open_to(courses, groups_of("sam"), day) or [None]
    assert sams is not None, f"on {day} Sam has no course to start: {move_it}"
    assert sams.content_repo is None, (
        f"{sams.slug} fetches its content from {sams.content_repo} at every start, so the "
        "demo would need the network: pick a date in a course without `content`"
    )


def test_the_notice_names_the_date_and_the_setting():
    notice = pretend_notice("2026-11-16")
    assert "2026-11-16" in notice and "CourseSpawner.today" in notice


@pytest.mark.parametrize("bad", ["2026-11-31", "16.11.2026", "tomorrow"])
def test_an_unreadable_demo_date_is_one_line_naming_the_file_and_key(project_copy, bad):
    def pretend(values):
        values["hub"]["config"]["CourseSpawner"]["today"] = bad

    project_copy.edit(DEMO_DATE_FILE, pretend)
    with pytest.raises(ConfigError) as refused:
        check_values(load("local", root=project_copy.root), project_copy.root)
    assert str(refused.value) == (
        f"{DEMO_DATE_FILE}: hub.config.CourseSpawner.today: {bad!r} is not a real date "
        "written YYYY-MM-DD (leave it unset for the real date)"
    )


@pytest.mark.parametrize("bad", ["2026-11-31", "next monday"])
def test_the_hub_refuses_an_unreadable_date_where_it_is_set(bad):
    with pytest.raises(Exception, match=f"CourseSpawner.today {bad!r} is not a date: write YYYY"):
        CourseSpawner(today=bad)
    assert str(CourseSpawner(today="2027-03-15").course_date()) == "2027-03-15"
