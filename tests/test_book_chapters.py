"""The table of contents and the chapters agree.

Chapters are executed once, by the book build (`nox -s book`), which fails on
any error and names the chapter and the cell (nb_execution_raise_on_error and
nb_execution_show_tb in _config.yml); running them here as well would execute
each twice in CI. The chapter "Architecture" says why.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from coursehub_tools.deployconfig import ROOT

pytestmark = pytest.mark.unit


def chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    return [ROOT / f"{name}.md" for name in files]


def test_every_chapter_in_the_toc_exists():
    missing = [str(p.relative_to(ROOT)) for p in chapters() if not p.exists()]
    assert missing == []


INCLUDE = re.compile(r"^```\{include\}\s+(\S+)", re.MULTILINE)


def included() -> set[Path]:
    """The pieces chapters include (a table two chapters share), not chapters of their own."""
    return {
        (chapter.parent / name).resolve()
        for chapter in chapters()
        for name in INCLUDE.findall(chapter.read_text())
    }


def test_every_chapter_is_in_the_toc():
    listed = set(chapters()) | included()
    unlisted = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "book").glob("*.md"))
                if p.resolve() not in listed]  # fmt: skip
    assert unlisted == [], "a chapter outside the table of contents is never built or executed"


# `chapter "Culling"` in a chapter's prose, or in a glossary entry: a reference a reader
# cannot follow. Code (a fenced block that is not a glossary) may say it.
PLAIN_REFERENCE = re.compile(r'chapters?\s+"[^"]+"')
FENCE = re.compile(r"^```(?!\{glossary\}).*?^```\s*$", re.MULTILINE | re.DOTALL)


def test_every_reference_to_a_chapter_is_a_link():
    plain = [
        f"{page.name}: {' '.join(reference.split())}"
        for page in [*sorted((ROOT / "book").glob("*.md")), ROOT / "README.md"]
        for reference in PLAIN_REFERENCE.findall(FENCE.sub("", page.read_text()))
    ]
    assert plain == [], "write [Title](file.md) where the text names a chapter"


# A chapter shows a long file as short excerpts and links the whole of it once.
LONG_FILE_LINES = 60
INCLUDE_BLOCK = re.compile(r"^```\{literalinclude\} (\S+)\n((?::[^\n]*\n)*)```\n", re.MULTILINE)
NARROWED = re.compile(r"^:(lines|start-at|start-after|end-before|end-at|pyobject):", re.MULTILINE)


def test_a_long_file_is_an_excerpt_with_a_link_to_the_whole():
    whole = []
    for chapter in chapters():
        text = chapter.read_text()
        for include in INCLUDE_BLOCK.finditer(text):
            path, options = include.groups()
            lines = len((chapter.parent / path).read_text().splitlines())
            if lines <= LONG_FILE_LINES:
                continue
            if not NARROWED.search(options) or f"<{path}>`" not in text:
                whole.append(f"{chapter.name}: {path} ({lines} lines)")
    assert whole == [], (
        "show an excerpt (:start-at:, :pyobject:, ...) and then {download}`name <path>`"
    )


# jupyter-book 1's default MyST extensions (its config, myst_enable_extensions).
BOOK_MYST_EXTENSIONS = {"colon_fence", "dollarmath", "linkify", "substitution", "tasklist"}


def test_every_notebook_chapter_reads_as_myst_nb_reads_it():
    """myst-nb splits a notebook chapter into cells with a parser of its own; some Markdown
    (a task list, `- [ ]`) crashes it there while reading well as a page."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    config = MdParserConfig(enable_extensions=BOOK_MYST_EXTENSIONS)
    unreadable = []
    for chapter in chapters():
        text = chapter.read_text()
        if text.startswith("---\njupytext:"):
            try:
                read_myst_markdown_notebook(text, config)
            except Exception as err:  # the reader's own bug surfaces as any exception
                unreadable.append(f"{chapter.name}: {type(err).__name__}: {err}")
    assert unreadable == []


def test_a_link_within_a_chapter_has_its_target():
    """`[below](#name)` needs `(name)=` above a heading: the book makes no heading anchors."""
    missing = []
    for chapter in chapters():
        text = chapter.read_text()
        targets = re.findall(r"\]\(#([\w-]+)\)", text)
        missing += [f"{chapter.name}: #{name}" for name in targets if f"({name})=" not in text]
    assert missing == []
