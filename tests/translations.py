"""Checks of the Chinese catalogues (book/locales/zh_CN/LC_MESSAGES/**/*.po), shared by tests/test_translations.py.

A translation must keep everything of its English message that is not prose: the maths, the inline code, the link
targets and the cross-reference roles, unchanged and complete. And it must use the glossary's Chinese term for every
glossary term its English message uses.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = ROOT / "book" / "locales" / "zh_CN" / "LC_MESSAGES"
GLOSSARY = ROOT / "book" / "glossary.md"

# what a translation keeps verbatim: display and inline maths, inline code, link targets, roles with their argument
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
_CODE = re.compile(r"``.+?``|`[^`\n]+`")
_TARGET = re.compile(r"\]\(([^)\s]+)\)")
_ROLE = re.compile(r"\{[\w:.-]+\}`[^`]*`")


@dataclass(frozen=True)
class Message:
    catalogue: str  # e.g. "book/convnets/padding"
    english: str
    chinese: str
    fuzzy: bool


def catalogue_files(folder: Path = CATALOGUES) -> list[Path]:
    return sorted(folder.rglob("*.po"))


def messages(path: Path, folder: Path = CATALOGUES) -> list[Message]:
    """Every message of one catalogue except the header, obsolete ones excluded (see :func:`obsolete`)."""
    with path.open("rb") as f:
        catalog = read_po(f)
    name = str(path.relative_to(folder).with_suffix(""))
    return [Message(name, m.id, m.string or "", m.fuzzy) for m in catalog if m.id]


def obsolete(path: Path) -> list[str]:
    """Messages kept in a catalogue although the English text no longer has them."""
    with path.open("rb") as f:
        return list(read_po(f).obsolete)


def kept_verbatim(text: str) -> Counter:
    """The parts of a message a translation must keep unchanged: roles (``{cite:p}`key```), inline code, maths and
    link targets, each with its count."""
    found: Counter = Counter()
    for pattern in (_ROLE, _CODE, _MATH):
        found.update(m.group(0) for m in pattern.finditer(text))
        text = pattern.sub(" ", text)  # a role's argument is not also inline code; code may contain a dollar
    found.update(f"]({t})" for t in _TARGET.findall(text))
    return found


def markup_problems(message: Message) -> list[str]:
    """What the translation of ``message`` lost or added among the parts it must keep (empty when it kept them)."""
    english, chinese = kept_verbatim(message.english), kept_verbatim(message.chinese)
    lost = ["lost " + part for part in sorted(english - chinese)]
    added = ["added " + part for part in sorted(chinese - english)]
    return lost + added


def prose(text: str) -> str:
    """``text`` without what is not prose (maths, code, roles, link targets)."""
    for pattern in (_ROLE, _CODE, _MATH):
        text = pattern.sub(" ", text)
    return _TARGET.sub("]", text)


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str  # the glossary's term; a row's "(also ...)" variants are not accepted in its place

    def used_in(self, english_text: str) -> bool:
        """Whether ``english_text`` uses the term as a word (or its plural), outside maths and code."""
        words = re.escape(self.english).replace(r"\ ", r"[\s-]+")
        return re.search(rf"(?<![\w-]){words}(?:s|es)?(?![\w-])", prose(english_text), re.I) is not None


def glossary_terms(path: Path = GLOSSARY) -> list[Term]:
    """The glossary's rows: English term, and the Chinese term before any parenthesised variant."""
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] in ("English", "") or set(cells[0]) <= set("-"):
            continue
        chinese = re.split(r"\s*[(（]", cells[1])[0].strip()
        terms.append(Term(cells[0], chinese))
    return terms
