"""Sphinx tweaks for the dlbook site: pages that load without console errors, offline.

- sphinx-thebe (always loaded by Jupyter Book 1, unused here: the book has no live-kernel buttons) adds its inline
  script twice per page, which throws "Identifier 'THEBE_JS_URL' has already been declared", and a launch configuration
  pointing at an unrelated example repository. Its scripts and its configuration are dropped.
- The theme logs an error on a first visit, when no colour mode is stored yet; a default mode avoids it.
- The sidebar buttons do nothing with the theme versions Jupyter Book 1 installs; ``dlbook-nav.js`` mends them.
"""

from __future__ import annotations

from docutils import nodes


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


def _default_mode(app, config):
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")  # the theme reads its default colour mode from the page context
    config.html_context = context


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("doctree-resolved", _drop_thebe_config, priority=900)  # after sphinx-thebe has added it
    app.add_js_file("dlbook-nav.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
