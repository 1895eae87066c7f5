"""The course registry: schema errors name the file and the field; who may start what, when.

Expectations come from the registry files and the merged values, not from a copy.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from coursehub import courses
from coursehub.hooks import ADMIN_RUNNER, STEPS
from coursehub_tools.config.deployconfig import (
    COURSES_DIR,
    ROOT,
    ConfigError,
    Layer,
    load,
    read_yaml,
)

pytestmark = pytest.mark.unit
REGISTRY = sorted((ROOT / COURSES_DIR).glob("*.yaml"))
FIRST = REGISTRY[0]


def registry_entries() -> dict[str, dict]:
    entries = {}
    for path in REGISTRY:
        entry = read_yaml(path)
        entries[entry["slug"]] = entry
    return entries


# --- the registry reaches every deployment ---------------------------------------------------


def test_every_registry_file_is_a_course_of_every_deployment(deployment):
    assert load(deployment).values["custom"]["courses"] == registry_entries()


def test_the_prepuller_pulls_every_course_image(deployment):
    values = load(deployment).values
    pulled = {
        f"{image['name']}:{image['tag']}" for image in values["prePuller"]["extraImages"].values()
    }
    assert {course["image"] for course in values["custom"]["courses"].values()} <= pulled


def test_a_course_added_by_any_layer_is_pulled_too():
    entry = registry_entries()[read_yaml(FIRST)["slug"]]
    added = {**entry, "slug": "added-course", "image": "ghcr.io/example/added:1@sha256:" + "a" * 64}
    values = load(
        "prod", extra_layers=[Layer("test", {"custom": {"courses": {"added-course": added}}})]
    ).values
    assert values["prePuller"]["extraImages"]["course-added-course"] == {
        "name": "ghcr.io/example/added",
        "tag": "1@sha256:" + "a" * 64,
    }


# --- bad registry files ----------------------------------------------------------------------


REL = FIRST.relative_to(ROOT).as_posix()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.pop("image"), f"{REL}: (top level): 'image' is required but missing"),
        (lambda c: c.update(start="2026-13-01"), f"{REL}: start: '2026-13-01' is not a real date"),
        (lambda c: c.update(end="next spring"), f"{REL}: end: 'next spring' is not a real date"),
        (
            lambda c: c.update(image="ghcr.io/coursehub/x:latest"),
            f"{REL}: image: 'ghcr.io/coursehub/x:latest' is not an image pinned by a tag",
        ),
        (
            # GROWTH's moving tag: CI pushed every build as :deploy.
            lambda c: c.update(image="ghcr.io/coursehub/x:deploy"),
            f"{REL}: image: 'ghcr.io/coursehub/x:deploy' is not an image pinned by a tag",
        ),
        (
            lambda c: c.update(image="ghcr.io/coursehub/x"),
            f"{REL}: image: 'ghcr.io/coursehub/x' is not an image pinned by a tag",
        ),
        (
            lambda c: c.update(defaultNotebook="../other/secret.ipynb"),
            f"{REL}: defaultNotebook: '../other/secret.ipynb' is not a notebook path relative",
        ),
        (
            lambda c: c["groups"].update(students=["students"]),
            f"{REL}: groups.students.0: 'students' is not a JupyterHub group",
        ),
        (lambda c: c.update(titel="x"), f"{REL}: titel: unknown key; allowed here: "),
        (
            lambda c: c.update(start=c["end"], end=c["start"]),
            f"{REL}: end: ",
        ),
    ],
    ids=[
        "missing",
        "bad-date",
        "not-a-date",
        "latest",
        "moving-deploy-tag",
        "unpinned",
        "notebook-escapes",
        "group",
        "typo",
        "end-first",
    ],
)
def test_a_bad_registry_file_is_named_with_its_field(project_copy, change, expected):
    project_copy.edit(REL, change)
    with pytest.raises(ConfigError) as err:
        load("prod", root=project_copy.root)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_two_courses_with_one_slug_are_refused(project_copy):
    root = project_copy.root
    copy = root / COURSES_DIR / "zz-copy.yaml"
    shutil.copy(root / REL, copy)
    slug = read_yaml(FIRST)["slug"]
    with pytest.raises(ConfigError, match=re.escape(f"{COURSES_DIR}/zz-copy.yaml: slug: '{slug}'")):
        load("prod", root=root)


def test_a_course_from_another_layer_is_checked_against_the_schema():
    slug = read_yaml(FIRST)["slug"]
    bad = {"custom": {"courses": {slug: {"image": "ghcr.io/coursehub/x:latest"}}}}
    with pytest.raises(ConfigError) as err:
        load("prod", extra_layers=[Layer("test layer", bad)])
    assert str(err.value).startswith(f"test layer: custom.courses.{slug}.image: ")


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/coursehub/x:2026.11.1",
        "ghcr.io/coursehub/x:v3",
        "ghcr.io/coursehub/x:sha-1a2b3c4",
        # A digest pins whatever the tag is called: nodes pull that manifest or fail.
        "ghcr.io/coursehub/x:deploy@sha256:" + "a" * 64,
    ],
)
def test_pinned_images_are_allowed(image):
    slug = read_yaml(FIRST)["slug"]
    layer = Layer("test layer", {"custom": {"courses": {slug: {"image": image}}}})
    assert load("prod", extra_layers=[layer]).values["custom"]["courses"][slug]["image"] == image


# --- who may start what, when ----------------------------------------------------------------


@pytest.mark.parametrize("slug", sorted(registry_entries()))
def test_students_only_between_start_and_end_instructors_from_before(slug):
    course = courses.Course.from_values(registry_entries()[slug])
    student = sorted(course.student_groups)[:1]
    instructor = sorted(course.instructor_groups)[:1]
    day = timedelta(days=1)
    for today, student_may, instructor_may in [
        (course.start - day, False, True),
        (course.start, True, True),
        (course.end, True, True),
        (course.end + day, False, False),
    ]:
        if student:
            assert (course in courses.open_to([course], student, today)) is student_may, today
        assert (course in courses.open_to([course], instructor, today)) is instructor_may, today
    assert courses.open_to([course], ["coursehub-school:nobody"], course.start) == []


# --- the course image template ---------------------------------------------------------------


def test_image_template_is_pinned_and_carries_the_hooks_where_the_hub_runs_them():
    dockerfile = (ROOT / "deploy/deployments/coursehub/image/Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)$", dockerfile, re.M).group(1)
    name, _, tag = base.rpartition(":")
    assert name and tag and tag != "latest", f"FROM {base} is not pinned by a tag"
    hooks_path = load("prod").values["custom"]["startupHooks"]["path"]
    assert re.search(rf"^COPY hooks/ {re.escape(hooks_path)}/$", dockerfile, re.M)
    assert f"chown -R root:root {Path(hooks_path).parent!s}" in dockerfile
    hooks = sorted(p.name for p in (ROOT / "deploy/deployments/coursehub/image/hooks").iterdir())
    assert hooks == sorted([*(f"{step}.sh" for step in STEPS), ADMIN_RUNNER])


def test_image_requirements_match_what_the_hub_runs():
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    pins = {
        line.split("==")[0]: line
        for group in ("hub", "singleuser")
        for line in groups[group]
        if isinstance(line, str)
    }
    lines = (ROOT / "deploy/deployments/coursehub/image/requirements.txt").read_text().splitlines()
    required = [line for line in lines if line and not line.startswith("#")]
    assert required, "the template installs the hub's packages"
    for line in required:
        assert pins.get(line.split("==")[0]) == line, line


def test_the_chart_profile_list_stays_empty_the_hub_computes_it():
    entry = {"display_name": "x", "kubespawner_override": {"image": "any/image:1"}}
    with pytest.raises(ConfigError, match=re.escape("singleuser.profileList: ")):
        load("prod", extra_layers=[Layer("test", {"singleuser": {"profileList": [entry]}})])
