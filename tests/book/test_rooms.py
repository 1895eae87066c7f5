"""The tools' rooms: every module is in one, and no import runs against coursehub_tools.ROOMS."""

from __future__ import annotations

import pytest

from coursehub_tools import ROOMS
from coursehub_tools.book.rooms_map import backwards, outside_rooms, rooms_source

pytestmark = pytest.mark.unit


def test_no_import_runs_backwards():
    assert backwards() == []


def test_every_module_is_in_a_room():
    assert outside_rooms() == []


def _package(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_an_import_against_the_order_is_found(tmp_path):
    package = _package(tmp_path, {
        "config/deployconfig.py": "from coursehub_tools.measure import culling\n",
        "measure/culling.py": "from coursehub_tools.config import deployconfig\n",
        "local/hub/spawner.py": "from ..local_hub import x\nfrom coursehub_tools import measure\n",
        "local/local_hub.py": "",
    })  # fmt: skip
    assert backwards(package) == [
        "config/deployconfig.py (config) imports coursehub_tools.measure (measure)",
        "local/hub/spawner.py (local) imports coursehub_tools.measure (measure)",
    ]


def test_a_module_outside_the_rooms_is_found(tmp_path):
    package = _package(tmp_path, {"cli.py": "", "helpers.py": "", "config/chart.py": ""})
    assert outside_rooms(package) == ["helpers.py"]


def test_the_map_draws_every_room_and_the_links_the_code_has():
    source = rooms_source()
    for room in ROOMS:
        assert f'"{room}" [label="{room}:' in source
    assert '"measure" -> "local"' in source
    assert '"local" -> "measure"' not in source
