"""The built book's check finds a Markdown table shown as text (scripts/book_check.py)."""

from __future__ import annotations

import pytest

from coursehub_tools.book_check import main, tables_as_text

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
