"""A chapter's screenshot keeps what the page shows and drops the empty page around it
(scripts/book/browser.py)."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image, ImageDraw

from coursehub_tools.book.browser import MARGIN_PX, cropped_to_content

pytestmark = pytest.mark.unit

WHITE, GREY, INK = (255, 255, 255), (240, 240, 240), (20, 20, 20)


def _page(draw) -> bytes:
    picture = Image.new("RGB", (1280, 760), WHITE)
    draw(ImageDraw.Draw(picture))
    out = BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(BytesIO(png)).size


def test_a_narrow_column_is_cut_out_with_a_margin_and_keeps_its_scale():
    png, share = cropped_to_content(_page(lambda d: d.rectangle((400, 100, 800, 300), fill=INK)))
    width, height = 800 - 400 + 1 + 2 * MARGIN_PX, 300 - 100 + 1 + 2 * MARGIN_PX
    assert _size(png) == (width, height)
    assert share == pytest.approx(width / 1280), "shown at the whole window's scale"


def test_a_header_bar_keeps_the_width_and_the_empty_bottom_goes():
    def header_and_button(d):
        d.rectangle((0, 0, 1279, 56), fill=GREY)
        d.rectangle((520, 180, 740, 226), fill=INK)

    png, share = cropped_to_content(_page(header_and_button))
    assert _size(png) == (1280, 226 + 1 + MARGIN_PX)
    assert share == 1.0


def test_an_empty_page_is_kept_whole():
    page = _page(lambda d: None)
    assert cropped_to_content(page) == (page, 1.0)
