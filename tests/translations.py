"""Checks of the Chinese catalogues (book/locales/zh_CN/LC_MESSAGES/**/*.po), shared by tests/test_translations.py.

A translation must keep everything of its English message that is not prose: the maths, the inline code, the link
targets and the cross-reference roles, unchanged and complete. And it must use the glossary's Chinese term for every
glossary term its English message uses.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from editions import glossary_rows  # noqa: E402  (the build's own reading of the glossary)

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


def _is_display_maths(text: str) -> bool:
    """A display equation's message is the equation alone, between newlines (the ``$$`` are not part of it)."""
    return text.startswith("\n") and text.endswith("\n")


def kept_verbatim(text: str) -> Counter:
    """The parts of a message a translation must keep unchanged: a display equation whole; else roles
    (``{cite:p}`key```), inline code, maths and link targets, each with its count."""
    if _is_display_maths(text):
        return Counter([text])
    found: Counter = Counter()
    for pattern in (_ROLE, _CODE, _MATH):
        found.update(m.group(0) for m in pattern.finditer(text))
        text = pattern.sub(" ", text)  # a role's argument is not also inline code; code may contain a dollar
    found.update(f"]({t})" for t in _TARGET.findall(text))
    return found


_MARKDOWN = MarkdownIt("commonmark").use(dollarmath_plugin)


def emphasis(text: str) -> Counter:
    """How many bold and italic spans ``text`` renders to. A ``**`` between Chinese punctuation and a Chinese
    character (``**半对。**它们``) does not close its span under CommonMark's rules and is shown as asterisks."""
    return Counter(child.type for token in _MARKDOWN.parse(text) for child in token.children or []
                   if child.type in ("strong_open", "em_open"))


def markup_problems(message: Message) -> list[str]:
    """What the translation of ``message`` lost or added among the parts it must keep (empty when it kept them)."""
    english, chinese = kept_verbatim(message.english), kept_verbatim(message.chinese)
    lost = ["lost " + part for part in sorted(english - chinese)]
    added = ["added " + part for part in sorted(chinese - english)]
    spans = [] if emphasis(message.english) == emphasis(message.chinese) else [
        f"bold/italic spans {dict(emphasis(message.english))} became {dict(emphasis(message.chinese))}"]
    return lost + added + spans


def prose(text: str) -> str:
    """``text`` without what is not prose (maths, code, roles, link targets)."""
    if _is_display_maths(text):
        return ""
    for pattern in (_ROLE, _CODE, _MATH):
        text = pattern.sub(" ", text)
    return _TARGET.sub("]", text)


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str  # the glossary's term; a row's "(also ...)" variants are not accepted in its place

    @property
    def accepted(self) -> list[str]:
        """The Chinese terms a translation may use: ``轮 / 轮次`` names two for one English word."""
        return self.chinese.split(" / ") if " / " in self.chinese and "/" not in self.english else [self.chinese]

    def spans(self, english_text: str) -> list[tuple[int, int]]:
        """Where the prose of ``english_text`` uses the term as a word (or its plural; -ise and -ize alike)."""
        words = re.escape(self.english).replace(r"\ ", r"[\s-]+").replace("is", "i[sz]").replace("iz", "i[sz]")
        return [m.span() for m in re.finditer(rf"(?<![\w-]){words}(?:s|es)?(?![\w-])", prose(english_text), re.I)]

    def used_in(self, english_text: str) -> bool:
        return bool(self.spans(english_text))


def glossary_terms(path: Path = GLOSSARY) -> list[Term]:
    """The glossary's rows: English term, and the Chinese term before any parenthesised variant."""
    return [Term(english, chinese) for english, chinese in glossary_rows(path)]


# English words whose glossary sense a string match cannot tell from another common sense: not checked.
AMBIGUOUS = {
    "code": "program code (代码) and an autoencoder's code (编码) are the same English word",
    "kernel": "a Jupyter kernel (内核) and a convolution kernel (卷积核) are the same English word",
}

# Sentences where an English glossary word is not used in the glossary's sense, so its Chinese term would be wrong.
# (catalogue, English term, the start of the English message) -> why.
TERM_EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("book/run", "window", "On Windows"): "the operating system",
    ("book/attention/transformers", "bias", '*"Prompts were introduced'): "a prompt biasing answers (偏差), no weight",
    ("book/attention/transformers", "bias", "Vaswani et al."): "a prompt biasing answers (偏差), no weight",
    ("book/convnets/resampling", "shuffling", "The YOLOv2 paper"): "periodic shuffling (周期性重排) is not random",
    ("book/convnets/resampling", "shuffling", '*"Space-to-depth (reorg)'): "periodic shuffling (周期性重排)",
    ("book/convnets/resampling", "shuffling", "Dumoulin and Visin"): "periodic shuffling (周期性重排)",
    ("book/training/forward-backprop", "bias", "**3. The optimiser"): "Adam's bias correction (偏差修正)",
    ("book/convnets/padding", "tap", "The explorer below draws"): "to tap a screen (轻触)",
    ("book/convnets/pooling", "normalisation", '*"Lp-norm pooling applies'): "dividing by a norm (归一化)",
}


def used_terms(english: str, terms: list[Term]) -> list[Term]:
    """The terms ``english`` uses, except where a use is part of a longer term's ("layer normalisation" uses the
    term layer normalisation, not normalisation)."""
    spans = {term: term.spans(english) for term in terms if term.english not in AMBIGUOUS}
    every = [span for found in spans.values() for span in found]
    return [term for term, found in spans.items()
            if any(not any(a <= s and e <= b and (a, b) != (s, e) for a, b in every) for s, e in found)]


def missing_terms(message: Message, terms: list[Term]) -> list[Term]:
    """The glossary terms the English message uses whose Chinese term its translation lacks (exceptions excused)."""
    return [term for term in used_terms(message.english, terms)
            if not any(chinese in message.chinese for chinese in term.accepted)
            and not any(key[0] == message.catalogue and key[1] == term.english and message.english.startswith(key[2])
                        for key in TERM_EXCEPTIONS)]
