"""Show the package's own code in a page, so that a chapter never re-types it.

``show_source(conv2d)`` displays the source of ``conv2d`` as a highlighted code block (Markdown output, which the
book renders with syntax highlighting and Jupyter shows as a code block). The code the reader sees is the code the
tests check.

A listing longer than :data:`FOLD_LINES` lines folds its docstring into a collapsed block (an HTML ``<details>``)
that shows the docstring's first line: the signature and every line of code stay on the page, the prose that the
chapter around the listing explains is one click away.
"""

from __future__ import annotations

import ast
import html
import inspect
import re
import textwrap
from typing import Any

__all__ = ["FOLD_LINES", "source_of", "docstring_span", "show_source"]

FOLD_LINES = 40  # about one screen of code at the book's font size on a laptop


def source_of(obj: Any) -> str:
    """The source text of a function, class or module defined in Python."""
    try:
        return inspect.getsource(obj).rstrip() + "\n"
    except (TypeError, OSError) as exc:
        raise TypeError(f"cannot show the source of {obj!r}: {exc}") from None


def _docstring(source: str) -> ast.Expr | None:
    """The docstring statement of the function or class that ``source`` defines, or ``None``."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:  # a method with a multi-line string at column 0: dedent leaves it indented
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return None
    first = tree.body[0].body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return None
    return first


def docstring_span(source: str) -> tuple[int, int] | None:
    """The 0-based first and last line of the docstring of the function or class that ``source`` defines, or ``None``
    if it has none (a module's source, or a definition without a docstring)."""
    node = _docstring(source)
    return None if node is None else (node.lineno - 1, node.end_lineno - 1)


def _fenced(code: str, language: str = "python") -> str:
    return f"```{language}\n{code}```"


def _listing(source: str) -> str:
    """One source as Markdown: a code block, or for a long listing with a docstring of more than two lines, the code
    above the docstring, the docstring in a collapsed block whose summary is its first line, then the rest."""
    lines = source.splitlines(keepends=True)
    node = _docstring(source) if len(lines) > FOLD_LINES else None
    if node is None or node.end_lineno - node.lineno < 2:
        return _fenced(source)
    start, end = node.lineno - 1, node.end_lineno - 1
    opening = re.match(r"\s*([rRuU]?(?:\"\"\"|\'\'\'|\"|'))", lines[start])  # the docstring's prefix and quotes
    first = next((line.strip() for line in node.value.value.splitlines() if line.strip()), "")
    summary = html.escape((opening.group(1) if opening else "") + first, quote=False)
    return "\n\n".join([
        _fenced("".join(lines[:start])),
        # data-lines: the Chinese edition's style sheet says "(the docstring, n lines)" in Chinese
        f'<details class="dlbook-docstring"><summary>{summary} … <span data-lines="{end - start + 1}">(the '
        f"docstring, {end - start + 1} lines)</span></summary>",
        _fenced("".join(lines[start:end + 1])),  # a whole string literal: highlighted as the docstring it is
        "</details>",
        _fenced("".join(lines[end + 1:])),
    ])


def show_source(*objs: Any) -> Any:
    """Return a displayable Markdown block with the source of each object, with the module it comes from."""
    from IPython.display import Markdown

    if not objs:
        raise TypeError("show_source needs at least one function, class or module")
    blocks = []
    for obj in objs:
        name = ".".join(part for part in (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)) if part)
        blocks.append(f"`{name or obj.__name__}`\n\n{_listing(source_of(obj))}")
    return Markdown("\n\n".join(blocks))
