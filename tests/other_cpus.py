"""Execute the chapters with the arithmetic of other CPUs, and report every cell that fails.

A seeded chapter gives the same numbers on every run of one machine, but not on every machine: PyTorch and MKL pick
their kernels by the CPU's instruction set (AVX-512, AVX2, none), and kernels that add in another order round
differently. In a run that is close to chaotic (a large learning rate, a short training) that rounding grows into
other numbers, and an assertion that held by luck on one machine fails on the reader's. This script runs every chapter
once per instruction set below, with the environment variables that make PyTorch, MKL and oneDNN take that set's
kernels on this machine, and lists the cells that fail: a claim that fails here is too tight for the run it is about.

    python tests/other_cpus.py [chapter.ipynb ...]      (default: every chapter; `make other-cpus`)

Not part of `make test` (it executes every chapter twice more, about 10 min on 2 cores).
"""

from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# the kernels each kind of CPU gets: PyTorch's own (ATen), MKL's (BLAS) and oneDNN's (convolutions)
WORLDS = {
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "no vector instructions": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
                               "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def failures(path: Path, world: dict[str, str]) -> tuple[float, list[str]]:
    """Execute ``path`` (static widgets, one thread) with ``world`` added to the environment; the failing cells, each
    as "cell N: error, and the line it was raised at"."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}).execute(
        env={**os.environ, "OMP_NUM_THREADS": "1", "DLBOOK_WIDGETS": "static", **world})
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(o["traceback"]))
                raised = [line.strip() for line in trace.splitlines() if re.match(r"-+> *\d", line)]  # IPython's arrow
                out.append(f"cell {i}: {o['ename']}: {o['evalue'][:120]} {raised[-1] if raised else ''}".rstrip())
    return time.perf_counter() - start, out


def main(paths: list[Path]) -> int:
    jobs = [(name, world, path) for name, world in WORLDS.items() for path in paths]
    failed = 0
    with ProcessPoolExecutor(2) as pool:  # one kernel per core
        results = pool.map(failures, [path for _, _, path in jobs], [world for _, world, _ in jobs])
        for (name, _, path), (seconds, cells) in zip(jobs, results, strict=True):
            failed += bool(cells)
            print(f"{name:24s} {path.relative_to(ROOT)}: {len(cells)} failing cells ({seconds:.0f} s)", flush=True)
            for line in cells:
                print("    " + line, flush=True)
    print(f"{failed} of {len(jobs)} runs failed")
    return 1 if failed else 0


if __name__ == "__main__":
    chosen = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / "book").glob("*/*.ipynb"))
    sys.exit(main(chosen))
