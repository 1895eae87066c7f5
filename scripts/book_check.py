"""What a reader would see wrong in the built book, found in its HTML and its pictures.

    coursehub-book-check [_build/html]

- A Markdown table that reached the page as text: a paragraph holding a table's
  separator row (`| --- | --- |`), as myst-nb renders a cell's Markdown output
  when its renderer has no tables.
- A picture that is mostly one colour: a screenshot of an empty page.
- A diagram whose smallest text, shrunk to the page's width, is too small to read.
- The same long block (a file, an output) shown twice: the second place should link.

`nox -s book` runs it after every build.
"""

from __future__ import annotations

import argparse
import re
import sys
from html import unescape
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


# A picture with more than this share of one colour shows nothing worth the space.
MOSTLY_BLANK = 0.9
# The text column of the book's theme at a desktop window, in CSS pixels; an
# image wider than this is shrunk to it.
PAGE_WIDTH_PX = 720
# Below this height a diagram's labels cannot be read without zooming.
SMALLEST_READABLE_PX = 8.0
# An SVG measures in points (Graphviz writes pt); a CSS pixel is 3/4 of one.
PX_PER_PT = 4 / 3
IMAGE = re.compile(r'<img\b[^>]*\bsrc="([^"]+)"')


def blank_share(picture: Path) -> float:
    """The share of a raster picture's pixels that have its commonest colour."""
    from PIL import Image

    with Image.open(picture) as image:
        pixels = image.convert("RGB").reduce(4)
    counts = pixels.getcolors(maxcolors=pixels.width * pixels.height)
    return max(count for count, _ in counts) / (pixels.width * pixels.height)


def smallest_text_px(svg: str) -> float | None:
    """An SVG's smallest font size in CSS pixels once shrunk to the page, or None if no text."""
    width = re.search(r'<svg\b[^>]*\bwidth="([\d.]+)(pt|px)?"', svg)
    sizes = [float(size) for size in re.findall(r'font-size="([\d.]+)"', svg)]
    if not width or not sizes:
        return None
    to_px = PX_PER_PT if width.group(2) in (None, "pt") else 1.0
    shrink = min(1.0, PAGE_WIDTH_PX / (float(width.group(1)) * to_px))
    return min(sizes) * to_px * shrink


def picture_problems(page: Path) -> list[str]:
    """What is wrong with the pictures a built page shows."""
    problems = []
    for source in IMAGE.findall(page.read_text()):
        picture = (page.parent / source).resolve()
        if picture.suffix == ".svg" and picture.is_file():
            smallest = smallest_text_px(picture.read_text())
            if smallest is not None and smallest < SMALLEST_READABLE_PX:
                problems.append(
                    f"{picture.name}: its smallest text is {smallest:.1f} px at the page's "
                    f"width ({PAGE_WIDTH_PX} px); at least {SMALLEST_READABLE_PX:g} px reads"
                )
        elif picture.suffix == ".png" and picture.is_file():
            share = blank_share(picture)
            if share > MOSTLY_BLANK:
                problems.append(
                    f"{picture.name}: {share:.0%} of it is one colour; crop it to what it shows"
                )
    return problems


# A block this long shown twice is a repeat, not a shared line or two.
REPEAT_LINES = 8
PRE = re.compile(r"<pre\b[^>]*>(.*?)</pre>", re.DOTALL)
TAG = re.compile(r"<[^>]+>")


def blocks(html: str) -> list[str]:
    """The text of every preformatted block of a page (code, files, outputs)."""
    return [unescape(TAG.sub("", block)).strip() for block in PRE.findall(html)]


def repeats(pages: dict[str, str]) -> list[str]:
    """Each long block shown in more than one place, with the places."""
    places: dict[str, list[str]] = {}
    for name, html in pages.items():
        for block in blocks(html):
            if block.count("\n") + 1 >= REPEAT_LINES:
                places.setdefault(block, []).append(name)
    return [
        f"{shown_where(where)}: the same {block.count(chr(10)) + 1} lines "
        f"({block.splitlines()[0][:60]!r}...); show it once and link to it"
        for block, where in places.items()
        if len(where) > 1
    ]


def shown_where(pages: list[str]) -> str:
    """`a.html and b.html`, or `a.html, 2 times` when one page shows the block again."""
    if len(set(pages)) == 1:
        return f"{pages[0]}, {len(pages)} times"
    return " and ".join(pages)


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
    problems = (
        [
            f"{page.relative_to(args.html)}: a table shown as text: {text.strip().splitlines()[0]}"
            for page in pages
            for text in tables_as_text(page.read_text())
        ]
        + [
            f"{page.relative_to(args.html)}: {problem}"
            for page in pages
            for problem in picture_problems(page)
        ]
        + repeats({str(page.relative_to(args.html)): page.read_text() for page in pages})
    )
    print(
        "\n".join(problems)
        or f"{len(pages)} pages: every table is a table, every picture shows something, "
        "every diagram reads at the page's width, and no long block is shown twice"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
