"""How the package reads: lines per module, function length, and the share of lines that are argument checks.

    python benchmarks/structure.py          # a table per module and the totals

Counted with Python's ``ast`` over ``src/dlbook``, docstrings excluded:

* a function's *body lines* are the source lines from its first statement after the docstring to its last;
* *check lines* are ``if`` blocks whose body only raises, plus the whole body of a check helper (a function in
  ``dlbook/_checks.py`` or one whose name starts with ``_check``).

``tests/test_lint.py`` holds the package to the limits below, so the listings the chapters show stay one screen long.
"""

from __future__ import annotations

import ast
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dlbook"
MAX_PUBLIC_BODY = 40  # lines: one screen, signature and docstring aside
MAX_CHECK_SHARE = 0.10
DRAWING_MODULES = {"plotting.py", "figures.py", "widgets.py", "explorer.py", "display.py"}


@dataclass(frozen=True)
class Function:
    module: str
    name: str
    public: bool
    body: int
    checks: int


def _body_span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int] | None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return None
    return body[0].lineno, body[-1].end_lineno


def _raise_only_ifs(node: ast.AST) -> int:
    """Lines of ``if`` blocks (without else) whose body is nothing but a ``raise``."""
    lines = 0
    for child in ast.walk(node):
        if isinstance(child, ast.If) and not child.orelse and all(isinstance(s, ast.Raise) for s in child.body):
            lines += child.end_lineno - child.lineno + 1
    return lines


def functions(package: Path = PACKAGE) -> list[Function]:
    """Every function and method of the package, nested ones counted inside their parent."""
    found = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            nodes += [n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in nodes:
            span = _body_span(node)
            if span is None:
                continue
            body = span[1] - span[0] + 1
            helper = path.name == "_checks.py" or node.name.startswith("_check")
            checks = body if helper else min(body, _raise_only_ifs(node))
            public = not node.name.startswith("_") and not path.name.startswith("_")
            found.append(Function(path.stem, node.name, public, body, checks))
    return found


def matplotlib_importers(package: Path = PACKAGE) -> list[str]:
    """Modules outside the drawing modules that import matplotlib."""
    bad = []
    for path in sorted(package.glob("*.py")):
        if path.name in DRAWING_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "matplotlib" for n in names):
                bad.append(path.name)
                break
    return bad


def main() -> int:
    funcs = functions()
    print(f"{'module':16} {'lines':>6} {'funcs':>6} {'median':>7} {'max':>5} {'checks':>7}")
    for module in sorted({f.module for f in funcs}):
        mine = [f for f in funcs if f.module == module]
        lines = len((PACKAGE / f"{module}.py").read_text(encoding="utf-8").splitlines())
        body = sum(f.body for f in mine)
        share = sum(f.checks for f in mine) / body if body else 0.0
        lengths = [f.body for f in mine]
        print(f"{module:16} {lines:6d} {len(mine):6d} {statistics.median(lengths):7.0f} {max(lengths):5d} {share:7.0%}")
    body = sum(f.body for f in funcs)
    checks = sum(f.checks for f in funcs)
    lengths = [f.body for f in funcs]
    print(f"\n{len(funcs)} functions, {body} body lines, median {statistics.median(lengths):.0f}, max {max(lengths)}")
    print(f"check lines: {checks} ({checks / body:.0%}; limit {MAX_CHECK_SHARE:.0%})")
    long = sorted((f for f in funcs if f.public and f.body > MAX_PUBLIC_BODY), key=lambda f: -f.body)
    listed = ", ".join(f"{f.module}.{f.name} {f.body}" for f in long) or "none"
    print(f"public functions over {MAX_PUBLIC_BODY} lines: {listed}")
    print("matplotlib outside the drawing modules: " + (", ".join(matplotlib_importers()) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
