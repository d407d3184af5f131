"""Show the package's own code in a page, so that a chapter never re-types it.

``show_source(conv2d)`` displays the source of ``conv2d`` as a highlighted code block (Markdown output, which the
book renders with syntax highlighting and Jupyter shows as a code block). The code the reader sees is the code the
tests check.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["source_of", "show_source"]


def source_of(obj: Any) -> str:
    """The source text of a function, class or module defined in Python."""
    try:
        return inspect.getsource(obj).rstrip() + "\n"
    except (TypeError, OSError) as exc:
        raise TypeError(f"cannot show the source of {obj!r}: {exc}") from None


def show_source(*objs: Any) -> Any:
    """Return a displayable Markdown block with the source of each object, with the module it comes from."""
    from IPython.display import Markdown

    if not objs:
        raise TypeError("show_source needs at least one function, class or module")
    blocks = []
    for obj in objs:
        name = ".".join(part for part in (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)) if part)
        blocks.append(f"`{name or obj.__name__}`\n\n```python\n{source_of(obj)}```")
    return Markdown("\n\n".join(blocks))
