"""Sphinx tweaks for the dlbook site: pages that load without console errors, offline.

- sphinx-thebe (always loaded by Jupyter Book 1, unused here: the book has no live-kernel buttons) adds its inline
  script twice per page, which throws "Identifier 'THEBE_JS_URL' has already been declared". Its scripts are dropped.
- The theme logs an error on a first visit, when no colour mode is stored yet; a default mode avoids it.
"""

from __future__ import annotations


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    context["script_files"] = [
        s for s in scripts
        if "thebe" not in str(s) and "THEBE" not in str(getattr(s, "attributes", {}).get("body", ""))
    ]


def _default_mode(app, config):
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")  # the theme reads its default colour mode from the page context
    config.html_context = context


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
