"""The built book's check finds a Markdown table shown as text (scripts/book_check.py)."""

from __future__ import annotations

import pytest

from coursehub_tools.book_check import (
    MOSTLY_BLANK,
    PAGE_WIDTH_PX,
    main,
    picture_problems,
    repeats,
    smallest_text_px,
    tables_as_text,
)

pytestmark = pytest.mark.unit

AS_TEXT = "<p>| students | ready |\n| --- | ---: |\n| 20 | 20 |</p>"
AS_TABLE = "<table><tr><th>students</th></tr><tr><td>20</td></tr></table>"


def test_a_table_shown_as_text_is_found():
    assert tables_as_text(f"<div>{AS_TEXT}</div>") == [
        "| students | ready |\n| --- | ---: |\n| 20 | 20 |"
    ]


def test_a_table_whose_dashes_the_typographer_joined_is_found():
    # CommonMark's typographer renders `---` as an em dash, `--` as an en dash.
    em, en = "\u2014", "\u2013"
    assert len(tables_as_text(f"<p>| a | b |\n| {em} | {em}: |\n| 1 | 2 |</p>")) == 1
    assert len(tables_as_text(f"<p>a | b\n{en}|{en}\n1 | 2</p>")) == 1


def test_a_rendered_table_and_a_paragraph_with_a_bar_are_not():
    assert tables_as_text(AS_TABLE + "<p>a | b, and --- a dash</p>") == []


def test_the_command_names_the_page_and_fails(tmp_path, capsys):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "class-arrival.html").write_text(AS_TEXT)
    (tmp_path / "index.html").write_text(AS_TABLE)
    assert main([str(tmp_path)]) == 1
    assert (
        capsys.readouterr().out
        == "book/class-arrival.html: a table shown as text: | students | ready |\n"
    )
    (tmp_path / "book" / "class-arrival.html").write_text(AS_TABLE)
    assert main([str(tmp_path)]) == 0


def test_no_built_book_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: no built pages in {tmp_path}")


def _png(path, colours):
    """A picture whose rows are the given colours, one row each, scaled up."""
    from PIL import Image

    image = Image.new("RGB", (40, 4 * len(colours)))
    for row, colour in enumerate(colours):
        for y in range(4 * row, 4 * row + 4):
            for x in range(40):
                image.putpixel((x, y), colour)
    image.save(path)


def test_a_mostly_blank_screenshot_is_found_and_a_full_one_is_not(tmp_path):
    white, text = (255, 255, 255), (20, 20, 20)
    blank_rows = round(MOSTLY_BLANK * 20) + 1
    _png(tmp_path / "blank.png", [white] * blank_rows + [text] * (20 - blank_rows))
    _png(tmp_path / "full.png", [white, text] * 10)
    page = tmp_path / "page.html"
    page.write_text('<img src="blank.png"><img alt="x" src="full.png">')
    problems = picture_problems(page)
    assert len(problems) == 1 and problems[0].startswith("blank.png: 95% of it is one colour")


def _svg(width: str, font: float) -> str:
    return f'<svg width="{width}" height="100pt"><text font-size="{font}">a</text></svg>'


def test_a_diagram_shrunk_below_readable_text_is_found(tmp_path):
    # 9 pt text in a picture twice the page's width ends at 6 px.
    wide = PAGE_WIDTH_PX * 2 * 3 / 4
    assert smallest_text_px(_svg(f"{wide}pt", 9)) == pytest.approx(6.0)
    assert smallest_text_px(_svg("500pt", 9)) == pytest.approx(12.0), "not shrunk: 9 pt is 12 px"
    (tmp_path / "wide.svg").write_text(_svg(f"{wide}pt", 9))
    (tmp_path / "narrow.svg").write_text(_svg("500pt", 9))
    page = tmp_path / "page.html"
    page.write_text('<img src="wide.svg"><img src="narrow.svg">')
    assert [problem.split(":")[0] for problem in picture_problems(page)] == ["wide.svg"]


def test_a_long_block_shown_on_two_pages_is_found_and_a_short_one_is_not():
    long = "<pre>" + "\n".join(f"line {n} &amp; more" for n in range(8)) + "</pre>"
    short = "<pre>a\nb</pre>"
    found = repeats({"gke.html": long + short, "deployments.html": long + short, "x.html": ""})
    assert found == [
        "gke.html and deployments.html: the same 8 lines ('line 0 & more'...); "
        "show it once and link to it"
    ]
    assert repeats({"gke.html": long, "kind.html": long.replace("line 7", "line 8")}) == []


def test_a_long_block_shown_twice_on_one_page_is_found():
    long = "<pre>" + "\n".join(f"gcloud step {n}" for n in range(8)) + "</pre>"
    assert repeats({"gke.html": long + "<p>again:</p>" + long}) == [
        "gke.html, 2 times: the same 8 lines ('gcloud step 0'...); show it once and link to it"
    ]
