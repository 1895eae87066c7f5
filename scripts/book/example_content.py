"""A course content repository to try courses with on this machine: git, the example notebooks.

    python -m coursehub_tools.book.example_content /tmp/course-content   # prints its file:// URL

An instructor's real content repository lives on GitHub; the local hub has no
network to reach it, so the tests and the book point a course at this one
instead (custom.courses.<slug>.content.repo), and nbgitpuller pulls it as it
would pull GitHub's. Its files are examples/data-science-101/, whose notebooks
coursehub content checks.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from coursehub_tools.config.yamlfiles import ROOT

EXAMPLE = ROOT / "examples" / "data-science-101"
TITLE = "Welcome to the course"
NOTEBOOK = "Welcome.ipynb"


def make_content_repo(folder: Path) -> str:
    """Create a git repository of the example content in `folder`; return its file:// URL."""
    shutil.copytree(EXAMPLE, folder)
    git = ["git", "-c", "user.name=Instructor", "-c", "user.email=instructor@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run([*git, "-C", str(folder), "add", "."], check=True)
    subprocess.run([*git, "-C", str(folder), "commit", "-q", "-m", "Course content"], check=True)
    return f"file://{folder.resolve()}"


def with_example_content(folder: Path, slug: str = "data-science-101") -> dict:
    """A values layer pointing course `slug` at a new example repository in `folder`."""
    content = {"repo": make_content_repo(folder), "branch": "main"}
    return {"custom": {"courses": {slug: {"content": content}}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder that does not exist yet")
    args = parser.parse_args(argv)
    if args.folder.exists():
        print(f"error: {args.folder} exists; choose a new folder", file=sys.stderr)
        return 1
    print(make_content_repo(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
