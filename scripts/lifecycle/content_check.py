"""A course's notebooks, run top to bottom before students see them.

MIT's authoring rule ("run the whole notebook to catch dependency and memory
problems") as a check: every notebook of a folder or content repository runs in
a fresh kernel, and the first failing cell of each is reported by notebook,
cell number and error.

    coursehub content check examples/data-science-101 --memory-limit 2G
    coursehub content check --repo https://github.com/org/ml-201-content --branch main
    coursehub content check examples/data-science-101 --course data-science-101

Each kernel runs under the course's memory limit (resources.memory.limit, or
--memory-limit), so a notebook that needs more fails here, not in a student's
kernel. The limit is the kernel's RLIMIT_DATA, which an unprivileged user may
set on their own processes (a cgroup would need root or systemd's delegation,
which GitHub's runners do not give a job): the heap and every private
anonymous mapping, where Python and NumPy keep their data. It counts mappings
a process reserved but never touched, so it is stricter than the pod's cgroup
limit (resident memory), never laxer. Here the kernel is this environment's;
run it in the course image (CI's image job) to test the course's own
environment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from coursehub_tools.config.capacity_inputs import memory_bytes
from coursehub_tools.config.deployconfig import ConfigError, load

CELL_TIMEOUT = 300
LIMITED_KERNEL = "python3-memory-limited"
# Sets the limit, then becomes the kernel: the limit holds across exec.
# ref: setrlimit(2), RLIMIT_DATA counts private anonymous mappings since Linux 4.7.
SET_LIMIT_THEN_KERNEL = (
    "import os, resource, sys; "
    "limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)); "
    "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', *sys.argv[2:]])"
)


@dataclass(frozen=True)
class Failure:
    notebook: str
    cell: int  # counted from 1, as a reader counts
    error: str

    def __str__(self) -> str:
        where = f"{self.notebook}, cell {self.cell}" if self.cell else self.notebook
        return f"{where}: {self.error}"


def check_folder(folder: Path, memory_limit: int | None = None) -> tuple[list[str], list[Failure]]:
    """Run every notebook under `folder`, each kernel under `memory_limit` bytes if given.

    The notebooks run and their failures.
    """
    notebooks = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    failures = []
    for path in notebooks:
        failure = run_notebook(path, folder, memory_limit)
        if failure:
            failures.append(failure)
    return [str(p.relative_to(folder)) for p in notebooks], failures


def limited_kernel(memory_limit: int, kernels: Path) -> AsyncKernelManager:
    """A kernel manager whose python3 kernel cannot take more than `memory_limit` bytes."""
    spec = kernels / LIMITED_KERNEL
    spec.mkdir(parents=True)
    argv = [
        sys.executable,
        "-c",
        SET_LIMIT_THEN_KERNEL,
        str(memory_limit),
        "-f",
        "{connection_file}",
    ]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": LIMITED_KERNEL, "language": "python"})
    )
    return AsyncKernelManager(
        kernel_name=LIMITED_KERNEL,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
    )


def run_notebook(path: Path, folder: Path, memory_limit: int | None = None) -> Failure | None:
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="coursehub-kernels-") as kernels:
        km = limited_kernel(memory_limit, Path(kernels)) if memory_limit else None
        client = nbclient.NotebookClient(
            notebook, km=km, timeout=CELL_TIMEOUT, kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )  # fmt: skip
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            return _failure(notebook, path, folder, err)
    return None


def _failure(notebook, path: Path, folder: Path, err: Exception) -> Failure:
    """The first failing cell of `notebook`; the last one run if the kernel died in it."""
    cell = next((i for i, c in enumerate(notebook.cells, 1) if _failed(c)), None)
    if cell is None:
        ran = [i for i, c in enumerate(notebook.cells, 1) if c.get("execution_count")]
        cell = ran[-1] if ran else len(notebook.cells)
    return Failure(str(path.relative_to(folder)), cell, _last_line(err))


def _failed(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def _last_line(err: Exception) -> str:
    ename, evalue = getattr(err, "ename", ""), getattr(err, "evalue", "")
    return f"{ename}: {evalue}" if ename else str(err).strip().splitlines()[-1]


def check_repository(
    repo: str, branch: str, memory_limit: int | None = None
) -> tuple[list[str], list[Failure]]:
    """Clone the content repository (as nbgitpuller would) and check its notebooks."""
    with tempfile.TemporaryDirectory(prefix="coursehub-content-") as tmp:
        clone = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--branch", branch, repo, tmp],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if clone.returncode != 0:
            reason = (clone.stderr.strip().splitlines() or ["no message"])[-1]
            return [], [Failure(repo, 0, f"cannot be cloned: {reason}")]
        return check_folder(Path(tmp), memory_limit)


def kernel_memory_limit(quantity: str | None, course: str | None) -> int | None:
    """Bytes from --memory-limit or the course's resources.memory.limit; None if neither."""
    if course is not None:
        courses = load("prod").values["custom"]["courses"]
        if course not in courses:
            raise ConfigError(f"--course {course!r} is not in the registry: {', '.join(courses)}")
        quantity = courses[course]["resources"]["memory"]["limit"]
        return int(memory_bytes(quantity, f"deploy/courses/{course}.yaml: resources.memory.limit"))
    if quantity is None:
        return None
    return int(memory_bytes(quantity, "--memory-limit"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["check"])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--repo")
    parser.add_argument("--branch", default="main")
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--memory-limit", help="each kernel's limit, a Kubernetes quantity (2G)")
    limit.add_argument(
        "--course", help="use this registry course's resources.memory.limit (deploy/courses/)"
    )
    args = parser.parse_args(argv)
    if (args.folder is None) == (args.repo is None):
        parser.error("name a folder or --repo, one of them")
    try:
        memory_limit = kernel_memory_limit(args.memory_limit, args.course)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ran, failures = (
        check_repository(args.repo, args.branch, memory_limit)
        if args.repo
        else check_folder(args.folder, memory_limit)
    )
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"{len(ran) - len(failures)} of {len(ran)} notebooks ran without an error")
    return 1 if failures or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
