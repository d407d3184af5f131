"""The Chinese edition's catalogues: complete, current, faithful to the markup, and true to the glossary's terms.

A changed English sentence makes `make translations` mark its translation fuzzy (or leave a new one empty); these tests
then fail until a translator has followed, so the two editions cannot drift apart.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

from sitecheck import toc_pages
from translations import (
    CATALOGUES,
    Message,
    Term,
    catalogue_files,
    glossary_terms,
    kept_verbatim,
    markup_problems,
    messages,
    missing_terms,
    obsolete,
)

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.removesuffix(".html") for p in toc_pages())
FILES = catalogue_files()
NAMES = [str(p.relative_to(CATALOGUES).with_suffix("")) for p in FILES]
TERMS = glossary_terms()
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def test_every_page_has_exactly_one_catalogue():
    assert NAMES == PAGES


@pytest.mark.slow
def test_the_catalogues_hold_exactly_the_messages_of_the_english_text(tmp_path):
    """Extract the messages again (as `make translations` does, without executing anything) and compare."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from editions import _build

    pot = tmp_path / "gettext"
    assert _build(pot, tmp_path / "doctrees", "gettext", {"gettext_compact": False, "gettext_location": False,
                                                         "nb_execution_mode": "off", "project": "dlbook"}) == 0
    from babel.messages.pofile import read_po

    for name in PAGES:
        with (pot / f"{name}.pot").open("rb") as f:
            english = {m.id for m in read_po(f) if m.id}
        translated = {m.english for m in messages(CATALOGUES / f"{name}.po")}
        assert english - translated == set(), f"{name}: English messages missing from the catalogue (run `make " \
            f"translations`): {sorted(english - translated)[:3]}"
        assert translated - english == set(), f"{name}: catalogue messages no longer in the English text: " \
            f"{sorted(translated - english)[:3]}"


@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_every_message_is_translated_none_fuzzy_none_obsolete(path):
    found = messages(path)
    untranslated = [m.english[:80] for m in found if not m.chinese]
    fuzzy = [m.english[:80] for m in found if m.fuzzy]
    assert not untranslated, f"{len(untranslated)} untranslated, e.g. {untranslated[:3]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy (the English changed), e.g. {fuzzy[:3]}"
    assert not obsolete(path), f"obsolete messages kept: {obsolete(path)[:3]}"


@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_translations_keep_the_maths_code_links_and_references(path):
    problems = [f"{m.english[:60]!r}: {markup_problems(m)}" for m in messages(path) if m.chinese and markup_problems(m)]
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("path", [p for p in FILES if p.stem != "glossary"],
                         ids=[n for n in NAMES if not n.endswith("glossary")])
def test_the_chinese_edition_uses_the_glossary_terms(path):
    missing = [f"{term.english} -> {term.chinese} in {m.english[:70]!r}"
               for m in messages(path) if m.chinese for term in missing_terms(m, TERMS)]
    assert not missing, f"{len(missing)} messages without the glossary's term:\n" + "\n".join(missing[:10])


def test_the_checks_would_catch_a_lost_formula_a_changed_link_and_a_missing_term():
    good = Message("x", "Pad by $p$ with `F.pad`, see [padding](padding.ipynb).",
                   "用 `F.pad` 填充 $p$，见[填充](padding.ipynb)。", False)
    assert markup_problems(good) == []
    assert markup_problems(Message("x", good.english, "用 F.pad 填充 $p$，见[填充](padding.ipynb)。", False))
    assert markup_problems(Message("x", good.english, "用 `F.pad` 填充 $q$，见[填充](padding.ipynb)。", False))
    assert markup_problems(Message("x", good.english, "用 `F.pad` 填充 $p$，见[填充](stride.ipynb)。", False))
    assert kept_verbatim("{cite:p}`lecun1998` and `x`")["{cite:p}`lecun1998`"] == 1
    padding = Term("padding", "填充")
    assert padding.used_in("Paddings differ.") and not padding.used_in("the `padding` argument")
    assert not padding.used_in("$padding$") and not Term("pad", "填").used_in("padding")
    english = "Padding keeps the size; layer normalisation keeps the scale."
    terms = [padding, Term("normalisation", "标准化"), Term("layer normalisation", "层归一化")]
    assert missing_terms(Message("x", english, "补零保持尺寸；层归一化保持尺度。", False), terms) == [padding]
    # "layer normalisation" is one term: its 层归一化 suffices, 标准化 is not also asked for
    assert missing_terms(Message("x", english, "填充保持尺寸；层归一化保持尺度。", False), terms) == []


def test_the_glossary_gives_one_chinese_term_per_english_term():
    assert len(TERMS) >= 150
    english = [t.english.lower() for t in TERMS]
    assert len(english) == len(set(english)), "a term appears twice"
    assert Term("padding", "填充") in TERMS and all(t.chinese for t in TERMS)
    kept_in_english = [t.english for t in TERMS if not CJK.search(t.chinese)]
    assert kept_in_english == ["Transformer"], kept_in_english  # the one name Chinese textbooks do not translate


def _string_literals(source: str) -> list[str]:
    """The string constants of a piece of Python code, docstrings and other bare strings excluded."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    tree = ast.parse("\n".join(lines))
    bare = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare]


def test_figures_and_printed_outputs_are_language_neutral():
    """Both editions show the same figures and outputs: no code that draws or prints holds Chinese text (which a
    machine without a CJK font would draw as empty boxes, and the other edition would not translate)."""
    found = []
    for path in sorted((ROOT / "src" / "dlbook").glob("*.py")):
        found += [f"{path.name}: {s[:40]!r}" for s in _string_literals(path.read_text()) if CJK.search(s)]
    for page in PAGES:
        notebook = ROOT / f"{page}.ipynb"
        if notebook.exists():
            for cell in nbformat.read(notebook, as_version=4).cells:
                if cell.cell_type == "code":
                    found += [f"{page}: {s[:40]!r}" for s in _string_literals(cell.source) if CJK.search(s)]
    assert not found, found
