"""A term the glossary explains links to it where a chapter first uses it.

The terms are the glossary's own entries (book/glossary.md), so a new entry
is checked in every chapter the moment it is written. A chapter's prose is
what a reader reads as text: code, headings, link texts and other roles are
not places to explain a word, so they neither count as a use nor hold a link.
"""

from __future__ import annotations

import re

import pytest

from coursehub_tools.deployconfig import ROOT

pytestmark = pytest.mark.unit

GLOSSARY = ROOT / "book" / "glossary.md"
GLOSSARY_BLOCK = re.compile(r"^```\{glossary\}\n(.*?)^```", re.MULTILINE | re.DOTALL)

# The same words in another sense: a file server is not a user's server, an SSO
# proxy is not the hub's proxy, a seccomp profile is not a course's profile.
OTHER_SENSES = re.compile(
    r"\b(?:NFS|database|HTTP|web|API|metadata|Prometheus's)\s+servers?\b"
    r"|\bSSO\s+proxy\b|\bseccomp\s+profile\b",
    re.IGNORECASE,
)
NOT_PROSE = [
    re.compile(r"\A---\n.*?^---\n", re.MULTILINE | re.DOTALL),  # the notebook's header
    re.compile(r"^(`{3,}|:{3,}).*?^\1\s*$", re.MULTILINE | re.DOTALL),  # code, directives
    re.compile(r"<!--.*?-->", re.DOTALL),
    re.compile(r"^#+ .*$|^\(\S+\)=$", re.MULTILINE),  # headings and their labels
    re.compile(r"!?\[[^\]]*\]\([^)]*\)|<https?://[^>]*>"),  # links, images, URLs
    OTHER_SENSES,
]
# A code span, or a role such as {download}`...`; a {term} role is kept.
INLINE_CODE = re.compile(r"(\{[\w:-]+\})?`[^`]+`")
TERM_LINK = re.compile(r"\{term\}`(?:[^`<]*<([^>`]+)>|([^`]+))`")


def glossary_terms() -> list[str]:
    """The glossary's entries: the unindented lines of its {glossary} block."""
    block = GLOSSARY_BLOCK.search(GLOSSARY.read_text()).group(1)
    return [line for line in block.splitlines() if line.strip() and not line[0].isspace()]


def blank(match: re.Match) -> str:
    """The match's place kept (same length, same lines) with nothing in it to find."""
    return re.sub(r"[^\n]", " ", match.group(0))


def keep_term_links(code: re.Match) -> str:
    return code.group(0) if code.group(1) == "{term}" else blank(code)


def prose(text: str) -> str:
    """The text a reader reads as prose, everything else blanked where it stood."""
    for pattern in NOT_PROSE:
        text = pattern.sub(blank, text)
    return INLINE_CODE.sub(keep_term_links, text)


def use_of(term: str) -> re.Pattern:
    """The term as a word in running text, also in the plural (`pods`) or possessive."""
    return re.compile(rf"(?<![\w/.-]){re.escape(term)}(?:e?s)?(?![\w-])", re.IGNORECASE)


def unlinked_first_uses(text: str, terms: list[str]) -> list[tuple[str, int]]:
    """(term, offset) for each term the text uses before, or without, its {term} link."""
    text = prose(text)
    linked = {}
    for link in TERM_LINK.finditer(text):
        target = (link.group(1) or link.group(2)).strip().lower()
        linked.setdefault(target, link.start())
    text = TERM_LINK.sub(blank, text)
    found = []
    for term in terms:
        use = use_of(term).search(text)
        if use and use.start() < linked.get(term.lower(), len(text)):
            found.append((term, use.start()))
    return found


def chapters():
    return sorted(page for page in (ROOT / "book").glob("*.md") if page != GLOSSARY)


def test_the_glossary_has_its_terms():
    terms = glossary_terms()
    assert {"pod", "placeholder", "429", "degraded", "OAuth app"} <= set(terms), terms


@pytest.mark.parametrize("chapter", chapters(), ids=lambda page: page.name)
def test_a_chapter_links_each_glossary_term_where_it_first_uses_it(chapter):
    text = chapter.read_text()
    unlinked = [
        f"line {text.count(chr(10), 0, offset) + 1}: {term!r} in "
        f"{' '.join(text[max(0, offset - 30) : offset + 30].split())!r}"
        for term, offset in unlinked_first_uses(text, glossary_terms())
    ]
    assert unlinked == [], "link the first use: {term}`pods <pod>`, {term}`hub`"


def test_a_link_after_the_first_use_is_too_late():
    text = "The hub starts a pod. Each {term}`pod` is a server.\n\n```\npod in code\n```\n"
    assert unlinked_first_uses(text, ["pod", "hub"]) == [("pod", 17), ("hub", 4)]


def test_code_headings_links_and_other_senses_are_not_uses():
    text = (
        "# The hub\n\n`hub` and [the hub](intro.md) and the NFS server, then the "
        "{term}`hubs <hub>` and the {term}`server`.\n"
    )
    assert unlinked_first_uses(text, ["hub", "server"]) == []
