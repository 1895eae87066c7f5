"""A course's notebooks, run top to bottom before students see them.

MIT's authoring rule ("run the whole notebook to catch dependency and memory
problems") as a check: every notebook of a folder or content repository runs in
a fresh kernel, and the first failing cell of each is reported by notebook,
cell number and error.

    coursehub-content check examples/data-science-101
    coursehub-content check --repo https://github.com/org/ml-201-content --branch main

Here the kernel is this environment's; run it in the course image (CI's image
job) to test the course's own environment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError

CELL_TIMEOUT = 300


@dataclass(frozen=True)
class Failure:
    notebook: str
    cell: int  # counted from 1, as a reader counts
    error: str

    def __str__(self) -> str:
        where = f"{self.notebook}, cell {self.cell}" if self.cell else self.notebook
        return f"{where}: {self.error}"


def check_folder(folder: Path) -> tuple[list[str], list[Failure]]:
    """Run every notebook under `folder`; the notebooks run and their failures."""
    notebooks = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    failures = []
    for path in notebooks:
        failure = run_notebook(path, folder)
        if failure:
            failures.append(failure)
    return [str(p.relative_to(folder)) for p in notebooks], failures


def run_notebook(path: Path, folder: Path) -> Failure | None:
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )  # fmt: skip
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        cell = next((i for i, c in enumerate(notebook.cells, 1) if _failed(c)), len(notebook.cells))
        return Failure(str(path.relative_to(folder)), cell, _last_line(err))
    return None


def _failed(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def _last_line(err: Exception) -> str:
    ename, evalue = getattr(err, "ename", ""), getattr(err, "evalue", "")
    return f"{ename}: {evalue}" if ename else str(err).strip().splitlines()[-1]


def check_repository(repo: str, branch: str) -> tuple[list[str], list[Failure]]:
    """Clone the content repository (as nbgitpuller would) and check its notebooks."""
    with tempfile.TemporaryDirectory(prefix="coursehub-content-") as tmp:
        clone = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--branch", branch, repo, tmp],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if clone.returncode != 0:
            reason = (clone.stderr.strip().splitlines() or ["no message"])[-1]
            return [], [Failure(repo, 0, f"cannot be cloned: {reason}")]
        return check_folder(Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["check"])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--repo")
    parser.add_argument("--branch", default="main")
    args = parser.parse_args(argv)
    if (args.folder is None) == (args.repo is None):
        parser.error("name a folder or --repo, one of them")
    ran, failures = (
        check_repository(args.repo, args.branch) if args.repo else check_folder(args.folder)
    )
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"{len(ran) - len(failures)} of {len(ran)} notebooks ran without an error")
    return 1 if failures or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
