"""The code style the book shows its readers: ruff over the package, the tests, the benchmarks, the build step and
the chapters (ruff reads notebooks), and listings one screen long (measured by ``benchmarks/structure.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import structure  # noqa: E402


def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run([str(ruff), "check", "src", "tests", "benchmarks", "book"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_argument_checks_are_a_small_share_of_the_package():
    funcs = structure.functions()
    share = sum(f.checks for f in funcs) / sum(f.body for f in funcs)
    assert share <= structure.MAX_CHECK_SHARE, f"argument checks are {share:.0%} of the package's function bodies"


def test_no_public_function_is_longer_than_a_screen():
    long = [f"{f.module}.{f.name} ({f.body} lines)" for f in structure.functions()
            if f.public and f.body > structure.MAX_PUBLIC_BODY]
    assert not long, f"longer than {structure.MAX_PUBLIC_BODY} lines: {long}"


def test_only_the_drawing_modules_import_matplotlib():
    assert structure.matplotlib_importers() == []


def test_the_counts_see_what_they_count(tmp_path):
    """The measure itself can fail: a module made of a check helper and a long public function trips both limits."""
    body = "\n".join(f"    y = x + {i}" for i in range(structure.MAX_PUBLIC_BODY + 1))
    (tmp_path / "m.py").write_text(
        "import matplotlib\n\n"
        "def _check_x(x):\n    if x < 0:\n        raise ValueError('x')\n    return x\n\n"
        f"def long(x):\n    \"\"\"Doc.\"\"\"\n{body}\n    return y\n", encoding="utf-8")
    funcs = {f.name: f for f in structure.functions(tmp_path)}
    assert funcs["_check_x"].checks == funcs["_check_x"].body == 3
    assert funcs["long"].public and funcs["long"].body == structure.MAX_PUBLIC_BODY + 2 and funcs["long"].checks == 0
    assert structure.matplotlib_importers(tmp_path) == ["m.py"]
