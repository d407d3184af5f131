"""Sphinx tweaks for the dlbook site: pages that load without console errors, offline.

- sphinx-thebe (always loaded by Jupyter Book 1, unused here: the book has no live-kernel buttons) adds its inline
  script twice per page, which throws "Identifier 'THEBE_JS_URL' has already been declared", and a launch configuration
  pointing at an unrelated example repository. Its scripts and its configuration are dropped.
- The theme logs an error on a first visit, when no colour mode is stored yet; a default mode avoids it.
- The sidebar buttons do nothing with the theme versions Jupyter Book 1 installs; ``dlbook-nav.js`` mends them.
- A static slider figure carries its frames inline (base64), so that it works in Jupyter without a server. On the site
  the frames become files under ``_images/frames/`` (named by their content, so a frame used twice is stored once),
  which the page fetches when a slider shows them: a chapter's HTML stays small.
- MathJax (1.2 MB of script) is fetched and run after the page is ready, and typesets a page's equations in a task of
  its own, not inside the DOMContentLoaded event: the page is ready sooner, though the typesetting itself is still one
  long task (a few hundred ms for a long chapter) during which the page does not respond. Its end is marked
  (``performance.mark('dlbook-maths-typeset')``) for ``benchmarks/pages.py``. The theme's search-as-you-type is off,
  so only the search page loads the search index (book/_templates/layout.html), not every page.
- pybtex finds the plain-text backend that every citation asks for without searching the installed packages again.
- Sphinx 7's Chinese search language keeps every Latin word of the book in a list and walks it for each word it stems
  (quadratic in the book's length): the Chinese edition took 76 s to build here, 41 s with ``SearchChinese``, which
  keeps them in a set and writes the same index.
- Sphinx parses each translated message of the Chinese edition (3,100 of them) as a document of its own; MyST built a
  new Markdown parser and docutils' default settings for each. ``NotebookParser`` makes both once: that edition went
  from 31 s to 24 s here, with the same pages.
- Each page links to the same page in the other edition (the Chinese one is built into ``zh/``, book/_ext/editions.py),
  and the table of contents' part captions are translated like the rest of the page.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import hashlib
import html
import json
import os
import re
import tempfile
from pathlib import Path

from docutils import nodes
from myst_nb import sphinx_ as myst_nb_sphinx
from sphinx import addnodes
from sphinx.builders.html._assets import _file_checksum, _JavaScript
from sphinx.locale import init as init_locale
from sphinx.search import zh as sphinx_zh
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

# One static slider figure, as dlbook.widgets writes it: the first frame's <img>, then the JSON with every frame.
_FIGURE = re.compile(r'(<img class="dlbook-frame"[^>]*?src=")data:[^"]*(">)'
                     r'(<script type="application/json" class="dlbook-data">)(.*?)(</script>)', re.S)
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/svg+xml": ".svg"}


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    context["script_files"] = [
        s for s in scripts
        if "thebe" not in str(s) and "THEBE" not in str(getattr(s, "attributes", {}).get("body", ""))
    ]


def _drop_thebe_config(app, doctree, docname):
    for node in list(doctree.findall(nodes.raw)):
        if "text/x-thebe-config" in node.astext() or "kernelName = " in node.astext():
            node.parent.remove(node)


# MathJax calls startup.pageReady when the document is ready, inside the DOMContentLoaded event; its default typesets
# the whole page there. This one waits for the next task first (a function, so it cannot go through mathjax3_config,
# which Sphinx writes as JSON).
_MATH_AFTER_READY = ("window.MathJax.startup = Object.assign(window.MathJax.startup || {}, {pageReady: function () { "
                     "return new Promise(function (done) { setTimeout(done, 0); })"
                     ".then(function () { return MathJax.startup.defaultPageReady(); })"
                     ".then(function () { performance.mark('dlbook-maths-typeset'); }); }});")


# A deferred script runs before DOMContentLoaded, and an async one as soon as it has arrived, which for a cached copy is
# while the page is still being parsed. Added to the page once that event has fired, a script runs after it. The
# MathJax script and the theme's icon script (book/_templates/layout.html, through the page context) are loaded so.
_LOAD_AFTER_READY = ('document.addEventListener("DOMContentLoaded", function () {{ '
                     'var s = document.createElement("script"); s.src = {src}; document.head.appendChild(s); }});')


def load_after_ready(src: str) -> str:
    """The inline script that adds the script at URL ``src`` to the page once it is ready (DOMContentLoaded)."""
    return _LOAD_AFTER_READY.format(src=json.dumps(src))


def _template_helpers(app, pagename, templatename, context, doctree):
    context["load_after_ready"] = load_after_ready


def _math_after_ready(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files") or []
    for i, script in enumerate(scripts):
        body = getattr(script, "attributes", {}).get("body", "")
        if body.startswith("window.MathJax = ") and _MATH_AFTER_READY not in body:
            script.attributes["body"] = f"{body}; {_MATH_AFTER_READY}"
        filename = str(getattr(script, "filename", "") or "")
        if filename == f"_static/{app.config.mathjax_path}":  # where Sphinx puts a local mathjax_path
            src = context["pathto"](filename, resource=True)
            if checksum := _file_checksum(app.outdir, filename):  # as Sphinx writes it: a new MathJax, a new URL
                src += f"?v={checksum}"
            scripts[i] = _JavaScript("", priority=script.priority, body=load_after_ready(src))
            # a first visit fetches it while the page is parsed
            context["metatags"] = (context.get("metatags", "")
                                   + f'\n<link rel="preload" as="script" href="{html.escape(src)}">')


def _default_mode(app, config):
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")  # the theme reads its default colour mode from the page context
    config.html_context = context


def _write_once(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` unless it is there; atomic, so parallel writers never leave half a file."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.replace(tmp, path)


def frames_as_files(body: str, outdir: Path, url_of) -> str:
    """Move every static slider figure's inline frames into files; return the page body that points at them.

    ``url_of(name)`` turns a path under the output folder into a URL relative to the page.
    """
    def move(match: re.Match) -> str:
        data = json.loads(match.group(4))
        ext = _EXTENSIONS.get(data["mime"], ".img")
        urls = []
        for image in data.pop("images"):
            content = base64.b64decode(image)
            name = f"_images/frames/{hashlib.sha256(content).hexdigest()[:20]}{ext}"
            _write_once(outdir / name, content)
            urls.append(url_of(name))
        data["urls"] = urls
        key = re.search(r'data-key="([^"]*)"', match.group(1)).group(1)
        first = urls[data["frames"][html.unescape(key)]]
        payload = json.dumps(data).replace("</", "<\\/")
        return f"{match.group(1)}{first}{match.group(2)}{match.group(3)}{payload}{match.group(5)}"

    return _FIGURE.sub(move, body)


def _frames(app, pagename, templatename, context, doctree):
    if "body" in context and "dlbook-data" in context["body"]:
        context["body"] = frames_as_files(context["body"], Path(app.outdir),
                                          lambda name: context["pathto"](name, 1))


# Pygments wraps every name, punctuation mark and run of spaces of a listing in its own span. In the style the theme
# uses (a11y-high-contrast light and dark) names (n) and punctuation (p) have exactly the colour of the code block
# itself, so their spans change nothing on screen while making up about a third of a chapter's HTML; they are dropped
# (tests/test_site.py checks the colours, so a style that colours them would fail the test rather than lose them).
_PLAIN_SPAN = re.compile(r'<span class="(?:n|p|w)">([^<]*)</span>')


def plain_code(body: str) -> str:
    """``body`` without the spans of code tokens drawn in the code block's own colour."""
    return _PLAIN_SPAN.sub(r"\1", body)


def _lighter(app, pagename, templatename, context, doctree):
    if "body" in context:
        context["body"] = plain_code(context["body"])


# the Chinese edition is the English site's subfolder zh/ (book/_ext/editions.py builds it)
EDITIONS = {"en": ("English", "Read this page in English"), "zh_CN": ("中文", "阅读本页的中文版")}


def counterpart(pagename: str, language: str | None) -> tuple[str, str]:
    """The other edition's language and the URL of the same page there, relative to the page ``pagename``.

    ``book/convnets/padding`` in English links to ``../../zh/book/convnets/padding.html``; in Chinese (one folder
    deeper) to ``../../../book/convnets/padding.html``.
    """
    up = "../" * pagename.count("/")
    if (language or "en").startswith("zh"):
        return "en", f"{up}../{pagename}.html"
    return "zh_CN", f"{up}zh/{pagename}.html"


def _language_switch(app, pagename, templatename, context, doctree):
    if "header_buttons" not in context:  # not a page of the book (e.g. the search page of a theme without buttons)
        return
    other, url = counterpart(pagename, app.config.language)
    text, tooltip = EDITIONS[other]
    context["header_buttons"].insert(0, {"type": "link", "url": url, "text": text, "tooltip": tooltip,
                                         "icon": "fas fa-language", "label": "language-switch"})
    hreflang = "zh-CN" if other == "zh_CN" else "en"
    context["metatags"] = context.get("metatags", "") + f'\n<link rel="alternate" hreflang="{hreflang}" href="{url}">'


class TranslateTocCaptions(SphinxTransform):
    """The table of contents' part captions, in the page's language. sphinx-external-toc inserts the toctrees (transform
    priority 100) after Sphinx has translated the page (priority 20), so without this they would stay in English."""

    default_priority = 110

    def apply(self, **kwargs) -> None:
        if not (self.config.language or "en").startswith("zh"):
            return
        dirs = [os.path.join(self.env.srcdir, folder) for folder in self.config.locale_dirs]
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalog, found = init_locale(dirs, self.config.language, domain)
        for toctree in self.document.findall(addnodes.toctree) if found else ():
            if toctree.get("caption"):
                toctree["caption"] = catalog.gettext(toctree["caption"])


def _plaintext_backend_at_hand() -> None:
    """sphinxcontrib-bibtex asks pybtex for its plain-text backend once per citation, and pybtex looks for it in the
    metadata of every installed package each time (4 ms here, idle: 1.5 s for the 360 citations, in each edition). A
    plugin registered at run time is found before that search."""
    from pybtex.plugin import find_plugin, register_plugin

    register_plugin("pybtex.backends", "plaintext", find_plugin("pybtex.backends", "plaintext"), force=True)


def _static_files_even_without_pages(app, exception) -> None:
    """Copy ``html_static_path`` (``book/_static``: CSS, scripts, the web font) also when no page was written. Sphinx 7
    copies it only after writing pages: an edit to ``book/_static`` alone left the built site with the old files."""
    from sphinx.builders.html import StandaloneHTMLBuilder

    if exception is None and isinstance(app.builder, StandaloneHTMLBuilder) and not app.builder.dlbook_wrote_pages:
        app.builder.copy_html_static_files({})  # no page context: none of the book's static files is a template


def _pages_written(app, builder) -> None:
    builder.dlbook_wrote_pages = True


class _LatinWords(set):
    """The Latin words of an index, as a set that Sphinx's ``split`` can ``extend`` as it extends its list."""

    def extend(self, words) -> None:
        self.update(words)


class SearchChinese(sphinx_zh.SearchChinese):
    """Sphinx's Chinese search language, with the Latin words seen so far in a set of this index's own.

    Sphinx 7.4's ``split`` appends every Latin word it finds to a list shared by the class, and ``stem`` asks whether
    a word is in that list; ``in`` walks a list, and most words of the index (the Chinese ones) are never in it, so
    each of the ~35,000 words stemmed for the book walked a list that grew with every Latin word split so far (with
    repeats). A set answers at once; Sphinx's own
    ``split`` and ``stem`` are kept. The index is the same as Sphinx's for the first Chinese build of a process (with
    Sphinx's class, a second build in the same process also finds the first one's words in the list).
    """

    def init(self, options: dict[str, str]) -> None:
        super().init(options)
        self.latin_terms = _LatinWords()


# Parsing the Chinese edition's translated messages. Sphinx parses each of them (3,100 paragraphs, headings and table
# cells) as a document of its own, with the parser of the page it comes from: myst-nb's, which hands a translated
# message to MyST's Markdown parser. For every message MyST builds a new Markdown parser with all its plugins, and its
# renderer makes a document with docutils' default settings (``options.get("document", make_document())``: made, then
# thrown away for the one Sphinx passes); docutils builds those settings from scratch each time. Both are the same for
# every message, so while a message is parsed the first comes from a cache and the second is made once and copied.
_MD_PARSERS: dict[tuple[int, type], tuple[object, object]] = {}


@functools.cache
def _default_settings(parser_cls: type):
    from docutils.frontend import get_default_settings

    return get_default_settings(parser_cls)


def _document_with_default_settings(source_path: str = "notset", parser_cls: type | None = None) -> nodes.document:
    """MyST's ``make_document``: a new document with the parser's default settings (a copy of settings made once)."""
    from docutils.parsers.rst import Parser as RSTParser
    from docutils.utils import new_document

    return new_document(source_path, settings=copy.copy(_default_settings(parser_cls or RSTParser)))


def _shared_md_parser(make, handed: list):
    """MyST's ``create_md_parser`` with one parser per configuration and renderer, for one message's parse. A parse
    sets the parser's ``document`` option and the renderer's state (``setup_render``) anew, so one parser can parse
    message after message. It is handed out once per message: a parse inside the message's parse (an include) gets a
    new one. The configuration is kept alongside, so that its id cannot be another object's later."""
    def create_md_parser(config, renderer):
        if handed:
            return make(config, renderer)
        kept = _MD_PARSERS.get((id(config), renderer))
        if kept is None or kept[0] is not config:
            kept = _MD_PARSERS[id(config), renderer] = (config, make(config, renderer))
        handed.append(kept[1])
        return kept[1]
    return create_md_parser


@contextlib.contextmanager
def _message_parse():
    """MyST's Markdown parsers and default documents, made once, for the duration of one translated message's parse."""
    from myst_parser.mdit_to_docutils import base
    from myst_parser.parsers import sphinx_ as myst_sphinx

    made, document, handed = myst_sphinx.create_md_parser, base.make_document, []
    myst_sphinx.create_md_parser, base.make_document = _shared_md_parser(made, handed), _document_with_default_settings
    try:
        yield
    finally:
        myst_sphinx.create_md_parser, base.make_document = made, document
        for parser in handed:  # the option only; the renderer keeps its last document until the build finishes
            parser.options.pop("document", None)


def _forget_md_parsers(app, exception) -> None:
    _MD_PARSERS.clear()


class NotebookParser(myst_nb_sphinx.Parser):
    """myst-nb's parser (notebooks and MyST pages); a translated message is parsed as MyST parses it, with the parts
    that are the same for every message made once (``_message_parse``)."""

    def parse(self, inputstring: str, document: nodes.document) -> None:
        if not document.current_source.endswith("<translated>"):  # how Sphinx names a message's source
            super().parse(inputstring, document)
            return
        with _message_parse():
            super().parse(inputstring, document)


def setup(app):
    _plaintext_backend_at_hand()
    app.add_source_parser(NotebookParser, override=True)
    app.add_search_language(SearchChinese)  # for every Chinese build in this process: the English one has no use for it
    app.connect("builder-inited", lambda app: setattr(app.builder, "dlbook_wrote_pages", False))
    app.connect("write-started", _pages_written)
    app.connect("build-finished", _static_files_even_without_pages)
    app.connect("build-finished", _forget_md_parsers)
    app.add_transform(TranslateTocCaptions)
    app.connect("html-page-context", _language_switch, priority=600)  # after the theme has made its buttons
    app.connect("html-page-context", _frames)
    app.connect("html-page-context", _lighter)
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("html-page-context", _template_helpers)
    app.connect("html-page-context", _math_after_ready, priority=900)  # after sphinx.ext.mathjax has added its config
    app.connect("doctree-resolved", _drop_thebe_config, priority=900)  # after sphinx-thebe has added it
    app.add_js_file("dlbook-nav.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
