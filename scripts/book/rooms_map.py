"""The tools' rooms and the imports between them, read from the code.

Every module of the package is parsed (not imported) and its imports of
coursehub_tools are sorted by room. `backwards()` lists the imports that
coursehub_tools.ROOMS does not allow (tests/book/test_rooms.py requires none);
`rooms_source()` draws the rooms and the imports the code has, for the chapter
"Architecture decisions".
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import coursehub_tools
from coursehub_tools import ROOMS
from coursehub_tools.book.architecture_diagram import HEADER, _edge, _node

PACKAGE = Path(coursehub_tools.__file__).resolve().parent
NAME = "coursehub_tools"
# At the top of the package, outside every room: the one command, which runs them all.
TOP_LEVEL = {"__init__.py", "cli.py"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing file, relative to the package
    room: str | None  # its room; None at the top level
    target: str  # the dotted name imported
    target_room: str | None


def _room(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == NAME and parts[1] in ROOMS else None


def _targets(tree: ast.Module, package: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            # `from coursehub_tools import local` imports the room itself
            found += [f"{NAME}.{alias.name}" for alias in node.names] if base == NAME else [base]
    return [name for name in found if name == NAME or name.startswith(NAME + ".")]


def imports(package: Path = PACKAGE) -> list[Import]:
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        dotted = ".".join((NAME, *rel.with_suffix("").parts))
        own_package = dotted if rel.name == "__init__.py" else dotted.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(), str(rel))
        found += [
            Import(rel.as_posix(), _room(dotted), target, _room(target))
            for target in _targets(tree, own_package.removesuffix(".__init__"))
        ]
    return found


def outside_rooms(package: Path = PACKAGE) -> list[str]:
    """Modules neither in a room nor one of the top-level ones."""
    return sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if path.relative_to(package).parts[0] not in ROOMS
        and path.relative_to(package).as_posix() not in TOP_LEVEL
    )


def backwards(package: Path = PACKAGE) -> list[str]:
    """Each import from a room into a room it may not use, as 'module -> target'."""
    return [
        f"{found.module} ({found.room}) imports {found.target} ({found.target_room})"
        for found in imports(package)
        if found.room
        and found.target_room
        and found.target_room != found.room
        and found.target_room not in ROOMS[found.room][0]
    ]


def rooms_source(package: Path = PACKAGE) -> str:
    """The rooms, each with why it exists, and an arrow for each pair of rooms the code links."""
    links = Counter(
        (found.room, found.target_room)
        for found in imports(package)
        if found.room and found.target_room and found.room != found.target_room
    )
    lines = ["digraph rooms {", "  rankdir=BT;", *HEADER]
    lines += [_node(room, f"{room}: {why}") for room, (_, why) in ROOMS.items()]
    lines += [
        _edge(room, target, f"{count} import{'s' if count > 1 else ''}")
        for (room, target), count in sorted(links.items())
    ]
    lines.append("}")
    return "\n".join(lines) + "\n"
