"""Every chapter executes cleanly: a failing chapter points at its cell.

The book build (nox -s book) executes the same notebooks; this runs them under
pytest so a failure names the chapter and the cell.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coursehub_tools.deployconfig import ROOT

pytestmark = pytest.mark.hub


def chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    return [ROOT / f"{name}.md" for name in files]


def has_code(path: Path) -> bool:
    return path.exists() and "```{code-cell}" in path.read_text()


@pytest.mark.parametrize("chapter", [p for p in chapters() if has_code(p)], ids=lambda p: p.stem)
def test_chapter_executes(chapter, local_hub_pieces):
    import jupytext
    import nbclient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(chapter)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(chapter.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{chapter.relative_to(ROOT)}: a cell failed:\n{err}")


def test_every_chapter_in_the_toc_exists():
    missing = [str(p.relative_to(ROOT)) for p in chapters() if not p.exists()]
    assert missing == []
