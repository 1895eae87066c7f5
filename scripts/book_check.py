"""What a reader would see wrong in the built book, found in its HTML.

    coursehub-book-check [_build/html]

A Markdown table that reached the page as text: a paragraph holding a table's
separator row (`| --- | --- |`), as myst-nb renders a cell's Markdown output
when its renderer has no tables. `nox -s book` runs it after every build.
"""

from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

# A separator cell: ---, or the em or en dash the renderer's typographer made of it.
_CELL = r"\s*:?(?:-{3,}|[\u2014\u2013]+):?\s*"
SEPARATOR_ROW = re.compile(rf"^\s*\|?{_CELL}(?:\|{_CELL})+\|?\s*$", re.MULTILINE)


class _Paragraphs(HTMLParser):
    """The text of every <p> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.current, self.found = 0, "", []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "p" and self.depth:
            self.depth -= 1
            if not self.depth:
                self.found.append(self.current)
                self.current = ""

    def handle_data(self, data):
        if self.depth:
            self.current += data


def tables_as_text(html: str) -> list[str]:
    """Paragraphs of `html` that are a Markdown table shown as text."""
    parser = _Paragraphs()
    parser.feed(html)
    return [text for text in parser.found if SEPARATOR_ROW.search(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="coursehub-book-check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("html", nargs="?", default="_build/html", type=Path)
    args = parser.parse_args(argv)
    pages = sorted(args.html.glob("*.html")) + sorted(args.html.glob("book/*.html"))
    if not pages:
        print(
            f"error: no built pages in {args.html}: build the book first (nox -s book)",
            file=sys.stderr,
        )
        return 1
    problems = [
        f"{page.relative_to(args.html)}: a table shown as text: {text.strip().splitlines()[0]}"
        for page in pages
        for text in tables_as_text(page.read_text())
    ]
    print("\n".join(problems) or f"{len(pages)} pages: every table is a table")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
