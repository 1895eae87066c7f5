"""Every project command the book and the README show can be copied and run as shown.

A command is a line of a shell block, or a code span with arguments, that starts
with one of the project's console scripts (pyproject.toml's [project.scripts]); a
span that is a script's bare name names the tool. Each is given to
that script's own argument parser, which refuses what the script would refuse:
a missing argument, a subcommand or option that does not exist. Here the command
is parsed; tests/test_book_commands_run.py runs those that need no cluster. Words
in capitals or in <angle brackets> stand for the reader's own values.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib

import pytest

from coursehub_tools.deployconfig import ROOT

pytestmark = pytest.mark.unit

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
PAGES = [*sorted((ROOT / "book").glob("*.md")), ROOT / "README.md"]
SHELL_BLOCK = re.compile(r"^```(?:bash|console|sh|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
OTHER_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")

# The reader's own values in a shown command, as the example school has them.
EXAMPLE_VALUES = {
    "<slug>": "data-science-101",
    "<start>": "2026-11-02",  # its first day (deploy/courses/data-science-101.yaml)
    "<deployment>": "local",
    "SLUG": "ml-201",
    "NAME": "ada",
    "TEXT": "room and budget agreed",
}


def shown_commands(text: str) -> list[str]:
    """The project commands a page shows, as a reader would copy them."""
    lines = [line for block in SHELL_BLOCK.findall(text) for line in block.splitlines()]
    prose = OTHER_BLOCK.sub("", SHELL_BLOCK.sub("", text))
    spans = [span for span in CODE_SPAN.findall(prose) if span.strip() not in SCRIPTS]
    candidates = [line.removeprefix("$ ") for line in lines] + spans
    return [
        command.split("  #")[0].strip()
        for command in candidates
        if command.split(" ", 1)[0] in SCRIPTS
    ]


COMMANDS = sorted(
    {
        (page.relative_to(ROOT).as_posix(), command)
        for page in PAGES
        for command in shown_commands(page.read_text())
    }
)


class _Parsed(Exception):
    """The parser accepted the command line; nothing past parsing runs."""


def parses(command: str, monkeypatch, capsys) -> str | None:
    """None if the script's parser accepts `command`, else the parser's complaint."""
    # A placeholder an option's type reads (a date) is parsed as the example's value.
    name, *argv = [EXAMPLE_VALUES.get(word, word) for word in shlex.split(command)]
    module, function = SCRIPTS[name].split(":")
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        original(parser, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        getattr(importlib.import_module(module), function)(argv)
    except _Parsed:
        return None
    except SystemExit as exit:
        # --help prints and exits 0: the reader gets what they asked for.
        return None if exit.code == 0 else capsys.readouterr().err.strip().splitlines()[-1]
    return "the command ran past its parser without parsing its arguments"


def test_the_pages_show_commands():
    assert len(COMMANDS) > 10, "the pages show the project's commands; the extraction broke"


@pytest.mark.parametrize(("page", "command"), COMMANDS)
def test_a_shown_command_is_one_its_script_accepts(page, command, monkeypatch, capsys):
    problem = parses(command, monkeypatch, capsys)
    assert problem is None, f"{page} shows `{command}`: {problem}"


def test_a_command_missing_its_argument_is_found(monkeypatch, capsys):
    assert parses("coursehub-gke scale-down", monkeypatch, capsys).endswith(
        "the following arguments are required: deployment"
    )
