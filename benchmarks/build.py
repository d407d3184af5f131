"""How long `make book` (both editions) takes: cold, with nothing changed, after editing one chapter's text, after
editing one module of the package; and, with ``--test``, the whole test suite on a warm environment.

Run with `make bench-build`. Each scenario runs in a fresh clone of the committed book (the working tree's uncommitted
changes are not measured), with this checkout's .venv, and is repeated ``--repeats`` times; the table gives the median
and the spread (min–max). Measure on an idle machine: the chapters execute two at a time, one per core. The chapters'
times in the first cold build are written to ``book/_ext/execution-seconds.json``: a first build starts the longest.

These numbers are targets to watch, not tests: nothing here fails the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from dlbook_execute import save_estimates  # noqa: E402 -- writes book/_ext/execution-seconds.json of this checkout

BIN = Path(sys.executable).parent
TARGETS_S = {"cold build": 180.0, "rebuild, nothing changed": 30.0, "rebuild, one chapter's text edited": 60.0,
             "rebuild, one module edited": None, "make test, warm": 360.0}


def _clone(into: Path) -> Path:
    book = into / "book-clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(book)], check=True)
    for fetched in ("mathjax", "fonts"):  # what `make` fetches from npm at set-up: not in the repository
        if (ROOT / "book" / "_static" / fetched).exists():
            shutil.copytree(ROOT / "book" / "_static" / fetched, book / "book" / "_static" / fetched)
    return book


def _env(book: Path) -> dict[str, str]:
    # the clone's package, not the editable install of this checkout, is what its chapters import
    return dict(os.environ, DLBOOK_WIDGETS="static", PYTHONPATH=str(book / "src"), DLBOOK_CACHE="")


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def _build(book: Path) -> float:
    """`make book` in the clone: execute what is stale, then both editions side by side."""
    return _timed([str(BIN / "python"), str(book / "book" / "_ext" / "editions.py"), "site"], book, _env(book))


def _edit_text(book: Path) -> None:
    path = book / "book" / "convnets" / "padding.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    cell["source"][-1] += " "  # a change to prose only: the code, and so the execution, stays the same
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _edit_module(book: Path) -> None:
    with open(book / "src" / "dlbook" / "padding.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _benchmark_edit() -> None:\n    return None\n")


def scenarios(repeats: int, with_test: bool) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in TARGETS_S if with_test or "test" not in name}
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            book = _clone(Path(tmp))
            times["cold build"].append(_build(book))
            if repeat == 0:  # what each chapter took, two at a time: the order of the next first build
                save_estimates(book / "_build" / ".jupyter_cache", book / "book")
            times["rebuild, nothing changed"].append(_build(book))
            _edit_text(book)
            times["rebuild, one chapter's text edited"].append(_build(book))
            _edit_module(book)
            times["rebuild, one module edited"].append(_build(book))
            if with_test:
                env = dict(_env(book), DLBOOK_CACHE=str(book / "_build" / ".jupyter_cache"))
                # the README's test command (`make test`: one worker per core), stopping at a first failure
                times["make test, warm"].append(_timed([str(BIN / "python"), "-m", "pytest", "tests", "-n", "auto",
                                                        "-q", "-x"], book, env))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--test", action="store_true", help="also time the whole test suite on the warm clone")
    args = parser.parse_args()
    times = scenarios(args.repeats, args.test)
    print(f"{'scenario':40s}{'median s':>10s}{'spread s':>16s}{'target s':>10s}")
    for name, values in times.items():
        target = TARGETS_S[name]
        flag = "" if target is None or statistics.median(values) <= target else "  over target"
        print(f"{name:40s}{statistics.median(values):10.1f}{f'{min(values):.1f}–{max(values):.1f}':>16s}"
              f"{'' if target is None else f'{target:10.0f}'}{flag}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "build.json").write_text(json.dumps({"repeats": args.repeats, "seconds": times}, indent=2))


if __name__ == "__main__":
    main()
