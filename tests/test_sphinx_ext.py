"""The site's Sphinx extension (book/_ext/dlbook_sphinx.py), piece by piece, without building the site."""

from __future__ import annotations

import sys
from pathlib import Path

import pybtex.plugin
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from dlbook_sphinx import _plaintext_backend_at_hand  # noqa: E402


def test_the_plaintext_backend_is_found_without_searching_the_installed_packages(monkeypatch):
    _plaintext_backend_at_hand()

    def no_search(*args, **kwargs):
        raise AssertionError("pybtex searched the installed packages' entry points")

    monkeypatch.setattr(pybtex.plugin, "entry_points", no_search)
    backend = pybtex.plugin.find_plugin("pybtex.backends", "plaintext")
    assert backend.__module__ == "pybtex.backends.plaintext"
    with pytest.raises(AssertionError, match="searched"):  # the false world: an unregistered plugin is searched for
        pybtex.plugin.find_plugin("pybtex.backends", "html")


def test_the_web_font_keeps_every_chinese_slice_and_cuts_latin_letters_from_their_ranges():
    from webfont import font_faces

    css = """
    @font-face { src: url(./files/noto-sans-sc-119-400-normal.woff2) format('woff2'); unicode-range: U+20-22,U+61-7b,U+200-300,U+3002,U+7684; }
    @font-face { src: url(./files/noto-sans-sc-3-400-normal.woff2) format('woff2'); unicode-range: U+5377,U+79ef; }
    @font-face { src: url(./files/noto-sans-sc-7-400-normal.woff2) format('woff2'); unicode-range: U+41-5a; }
    @font-face { src: url(./files/noto-sans-sc-latin-400-normal.woff2) format('woff2'); unicode-range: U+0000-00FF,U+2000-206F; }
    """  # noqa: E501 -- fontsource's lines, as its 400.css writes them
    # the slice of the commonest characters (的 U+7684, 。 U+3002) also holds ASCII: kept, without its Latin letters;
    # a slice of Latin letters only is dropped; so is the named Latin file, its general punctuation included
    assert font_faces(css) == [("noto-sans-sc-119-400-normal.woff2", "U+250-300,U+3002,U+7684"),
                               ("noto-sans-sc-3-400-normal.woff2", "U+5377,U+79ef")]


@pytest.mark.parametrize("wrote_pages, exception, copies", [(False, None, 1), (True, None, 0), (False, OSError(), 0)])
def test_static_files_are_copied_when_a_build_writes_no_page(wrote_pages, exception, copies):
    """Sphinx 7 copies book/_static only after writing pages; the hook copies it when none was written (an edit to
    a CSS file or the web font alone), and leaves a build that wrote pages (Sphinx copied) or failed alone."""
    from types import SimpleNamespace

    from dlbook_sphinx import _static_files_even_without_pages
    from sphinx.builders.html import StandaloneHTMLBuilder

    builder = object.__new__(StandaloneHTMLBuilder)  # the hook reads two attributes only
    calls = []
    builder.copy_html_static_files = calls.append
    builder.dlbook_wrote_pages = wrote_pages
    _static_files_even_without_pages(SimpleNamespace(builder=builder), exception)
    assert len(calls) == copies


class _CountedWord(str):
    """A word that counts how often it is compared for equality: ``in`` on a list compares it with every entry."""

    compared = 0

    def __eq__(self, other):
        _CountedWord.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_the_chinese_search_index_stems_as_sphinx_does_and_looks_each_word_up_at_once():
    from dlbook_sphinx import SearchChinese
    from sphinx.search import zh

    text = ["卷积层 (convolutional layer) 的 padding 和 stride", "The GPT and BERT models", "ReLU 激活函数, MLM"]
    ours, sphinx = SearchChinese({}), zh.SearchChinese({})
    sphinx.latin_terms = []  # Sphinx's class keeps the words of every earlier index in a list the class shares
    for line in text:
        words = ours.split(line)
        assert words == sphinx.split(line)
        assert [ours.stem(w) for w in words] == [sphinx.stem(w) for w in words]  # "MLM" and "GPT" are kept whole
    for i in range(3000):  # a book's worth of distinct Latin words
        ours.split(f"word{i}")
        sphinx.split(f"word{i}")
    _CountedWord.compared = 0
    # a Chinese word (most of the index) is never among the Latin words: the whole list was walked for each one
    assert ours.stem(_CountedWord("卷积")) == sphinx.stem("卷积") == "卷积"
    assert _CountedWord.compared < 10
    sphinx.stem(_CountedWord("卷积"))  # the false world: Sphinx's list, walked for every word of every page
    assert _CountedWord.compared > 3000


PAGE = """# Title

The first paragraph, with `code` and $x^2$.

A second paragraph with a [link](https://example.org) and *emphasis*.

| a | b |
|---|---|
| one cell | another cell |
"""

MESSAGES = {"Title": "标题", "The first paragraph, with `code` and $x^2$.": "第一段，有 `code` 和 $x^2$。",
            "A second paragraph with a [link](https://example.org) and *emphasis*.":
                "第二段，有一个[链接](https://example.org)和*强调*。",
            "one cell": "一个单元格", "another cell": "另一个单元格"}


def _build_chinese_page(src: Path, out: Path) -> str:
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    (src / "locales" / "zh_CN" / "LC_MESSAGES").mkdir(parents=True, exist_ok=True)
    (src / "conf.py").write_text("extensions = ['myst_nb', 'dlbook_sphinx']\nnb_execution_mode = 'off'\n"
                                 "myst_enable_extensions = ['dollarmath']\nlocale_dirs = ['locales']\n"
                                 "gettext_compact = False\n", encoding="utf-8")
    (src / "index.md").write_text(PAGE, encoding="utf-8")
    po = "".join(f'msgid "{en}"\nmsgstr "{zh}"\n\n' for en, zh in MESSAGES.items())
    (src / "locales" / "zh_CN" / "LC_MESSAGES" / "index.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n' + po, encoding="utf-8")
    # a namespace of its own, as sphinx-build gives a build: the node classes it registers go with it, so that a later
    # build in this process (another test) does not warn that they are registered already
    with docutils_namespace():
        app = Sphinx(str(src), str(src), str(out / "html"), str(out / "doctrees"), "html",
                     confoverrides={"language": "zh_CN"}, status=None, warning=None, freshenv=True)
        app.build()
    assert not app.statuscode
    return (out / "html" / "index.html").read_text(encoding="utf-8")


def test_translated_messages_are_parsed_as_myst_parses_them_with_one_markdown_parser(tmp_path, monkeypatch):
    """The Chinese edition's page is the same as with myst-nb's own parser, whose Markdown parser is made once for
    all the page's messages instead of once per message."""
    import dlbook_sphinx
    import myst_nb.sphinx_
    from myst_parser.parsers import sphinx_ as myst_sphinx

    made = []
    create = myst_sphinx.create_md_parser
    monkeypatch.setattr(myst_sphinx, "create_md_parser", lambda *args: made.append(args) or create(*args))
    ours = _build_chinese_page(tmp_path / "src", tmp_path / "ours")
    ours_made = len(made)
    made.clear()
    monkeypatch.setattr(dlbook_sphinx.NotebookParser, "parse", myst_nb.sphinx_.Parser.parse)  # myst-nb's alone
    theirs = _build_chinese_page(tmp_path / "src", tmp_path / "theirs")
    # one parser for the page itself, then one for every message, or one for all of them
    assert len(made) >= 1 + len(MESSAGES) and ours_made == 2
    assert "第二段，有一个" in ours and "<em>强调</em>" in ours and r"\(x^2\)" in ours  # translated, MyST-parsed
    assert ours == theirs
