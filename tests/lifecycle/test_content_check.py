"""A course's notebooks run before students see them; a failing cell blocks the course."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date

import nbformat
import pytest

from coursehub_tools.book.example_content import EXAMPLE, NOTEBOOK, TITLE, make_content_repo
from coursehub_tools.lifecycle import content_check, dispatcher

pytestmark = pytest.mark.hub  # notebooks run in real kernels


def test_the_example_course_runs_and_is_the_one_the_hub_pulls():
    ran, failures = content_check.check_folder(EXAMPLE)
    assert NOTEBOOK in ran and failures == []
    first = nbformat.read(EXAMPLE / NOTEBOOK, as_version=4).cells[0].source
    assert first.splitlines()[0] == f"# {TITLE}", "the title the browser test looks for"


def broken_copy(tmp_path):
    copy = tmp_path / "content"
    shutil.copytree(EXAMPLE, copy)
    notebook = nbformat.read(copy / NOTEBOOK, as_version=4)
    notebook.cells.insert(2, nbformat.v4.new_code_cell("import course_package_nobody_installed"))
    nbformat.write(notebook, copy / NOTEBOOK)
    return copy


def test_a_failing_cell_is_named_by_notebook_cell_and_error(tmp_path, capsys):
    copy = broken_copy(tmp_path)
    assert content_check.main(["check", str(copy)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {NOTEBOOK}, cell 3: ModuleNotFoundError: "
        "No module named 'course_package_nobody_installed'\n"
    )


def accept_with_failing_notebooks(project_copy, tmp_path) -> tuple:
    """data-science-101 ACCEPTED with content whose notebook fails at cell 3, and no mail
    server (the e-mail fails fast and the report says so); (root, slug, its start)."""
    root, slug = project_copy.root, "data-science-101"
    source = tmp_path / "repo-source"
    content = make_content_repo(source)
    shutil.copy(broken_copy(tmp_path / "broken") / NOTEBOOK, source / NOTEBOOK)
    subprocess.run(["git", "-C", str(source), "-c", "user.name=i", "-c", "user.email=i@x",
                    "commit", "-qam", "break it"], check=True)  # fmt: skip
    no_server = {"host": "127.0.0.1", "port": 9, "starttls": False}
    project_copy.edit("deploy/lifecycle.yaml", lambda s: s["mail"].update(no_server))

    def accepted(course):
        course["lifecycle"]["state"] = "ACCEPTED"
        course["content"] = {"repo": content, "branch": "main"}

    project_copy.edit(f"deploy/courses/{slug}.yaml", accepted)
    return root, slug, date.fromisoformat(str(dispatcher.registry(root)[slug]["start"]))


def test_a_course_whose_notebooks_fail_is_not_deployed(project_copy, tmp_path):
    root, slug, start = accept_with_failing_notebooks(project_copy, tmp_path)
    steps = [s for s in dispatcher.plan(dispatcher.registry(root), start) if s.slug == slug]
    report = dispatcher.run(steps, None, root, root / "archive", dispatcher.day_clock(start), root)
    assert report[0].startswith(f"{slug}: FAILED (deploy: its notebooks fail: {NOTEBOOK}, cell 3")
    assert dispatcher.registry(root)[slug]["lifecycle"]["state"] == "FAILED"
    assert "could not e-mail" in report[1]


def test_the_content_job_reports_a_failing_cell_and_the_dispatch_job_fails_the_course(
    project_copy, tmp_path, monkeypatch, capsys
):
    """The dispatch workflow's two jobs with real kernels: the notebooks run where no
    secret is, and the job holding the hub's token fails the course on their report."""
    root, slug, start = accept_with_failing_notebooks(project_copy, tmp_path)
    report = tmp_path / "content.json"
    for name in dispatcher.SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    argv = ["--root", str(root), "--today", start.isoformat()]
    assert dispatcher.main([*argv, "--check-content", str(report)]) == 0
    assert f"{slug}: {NOTEBOOK}, cell 3: ModuleNotFoundError" in capsys.readouterr().out

    monkeypatch.setenv(dispatcher.TOKEN_ENV, "a-secret")
    argv += ["--hub", "http://127.0.0.1:9", "--content-report", str(report)]
    assert dispatcher.main(argv) == 1
    assert (
        f"{slug}: FAILED (deploy: its notebooks fail: {NOTEBOOK}, cell 3" in capsys.readouterr().out
    )
    assert dispatcher.registry(root)[slug]["lifecycle"]["state"] == "FAILED"


# --- the course's memory limit ---------------------------------------------------------------

COURSE = "data-science-101"


def course_limit() -> int:
    from coursehub_tools.config.capacity_inputs import memory_bytes
    from coursehub_tools.config.deployconfig import load

    quantity = load("prod").values["custom"]["courses"][COURSE]["resources"]["memory"]["limit"]
    return int(memory_bytes(quantity, COURSE))


def hungry_copy(tmp_path, size: int):
    """The example course plus a notebook that holds `size` bytes in one array."""
    copy = tmp_path / "content"
    shutil.copytree(EXAMPLE, copy)
    cells = [nbformat.v4.new_code_cell(f"table = bytearray({size})"),
             nbformat.v4.new_code_cell("print(len(table))")]  # fmt: skip
    nbformat.write(nbformat.v4.new_notebook(cells=cells), copy / "big-data.ipynb")
    return copy


def test_a_notebook_needing_more_than_the_courses_memory_limit_fails_the_check(tmp_path, capsys):
    copy = hungry_copy(tmp_path, course_limit() + course_limit() // 2)
    assert content_check.main(["check", str(copy), "--course", COURSE]) == 1
    err = capsys.readouterr().err
    assert err == "error: big-data.ipynb, cell 1: MemoryError: \n"


def test_notebooks_within_the_limit_run_under_it(tmp_path):
    copy = hungry_copy(tmp_path, course_limit() // 8)
    ran, failures = content_check.check_folder(copy, course_limit())
    assert sorted(ran) == sorted([NOTEBOOK, "big-data.ipynb"]) and failures == []


def test_an_unreadable_memory_limit_is_one_line(capsys):
    assert content_check.main(["check", str(EXAMPLE), "--memory-limit", "lots"]) == 2
    assert capsys.readouterr().err == (
        "error: --memory-limit: 'lots' is not a Kubernetes quantity such as 512M or 2G\n"
    )
