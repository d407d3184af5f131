"""Execute the chapters with the arithmetic of other CPUs, and report every cell that fails.

A seeded chapter gives the same numbers on every run of one machine, but not on every machine: PyTorch and MKL pick
their kernels by the CPU's instruction set (AVX-512, AVX2, none), and kernels that add in another order round
differently. In a run that is close to chaotic (a large learning rate, a short training) that rounding grows into
other numbers, and an assertion that held by luck on one machine fails on the reader's. This script runs every chapter
once per instruction set below, with the environment variables that make PyTorch, MKL and oneDNN take that set's
kernels on this machine, and lists the cells that fail: a claim that fails here is too tight for the run it is about.

A machine can only step down: on an AVX2 machine the AVX2 run is the native one, and AVX-512 is not tried at all. Each
run checks that PyTorch's own kernels are the set asked for (``torch.backends.cpu.get_cpu_capability()``) and says so
if not; MKL and oneDNN report no such thing, and are trusted to follow their variables.

    python tests/other_cpus.py [--seeds 11,12,13] [chapter.ipynb ...]     (default: every chapter; `make other-cpus`)

``--seeds`` runs the chosen chapters with the native kernels once per seed instead, each seed put in place of every
``seed_everything(0)``, ``manual_seed(0)`` and ``seed=0`` of their code: another draw of the same experiment, for a
claim that should hold for the experiment and not only for seed 0. Choose seeds the chapter does not use for anything
else (a held-out set drawn with ``manual_seed(2)`` would share its draws with training batches seeded 2).

Not part of `make test`: it executes every chapter twice more.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from dlbook_execute import kernel_config  # noqa: E402 -- the build's kernel settings

# the kernels each kind of CPU gets: PyTorch's own (ATen), MKL's (BLAS) and oneDNN's (convolutions); and the name
# torch.backends.cpu.get_cpu_capability() gives that choice
WORLDS = {
    "AVX2": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, "AVX2"),
    "no vector instructions": ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
                                "ONEDNN_MAX_CPU_ISA": "SSE41"}, "DEFAULT"),
}
PROBE = "import torch\nprint('dlbook-cpu-capability', torch.backends.cpu.get_cpu_capability())"


def with_seed(nb: nbformat.NotebookNode, seed: int) -> nbformat.NotebookNode:
    """The notebook with ``seed`` in place of every seed 0 its code sets."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            for zero in ("seed_everything(0)", "manual_seed(0)", "seed=0"):
                cell.source = cell.source.replace(zero, zero.replace("0", str(seed)))
    return nb


def failures(path: Path, env: dict[str, str], seed: int | None) -> tuple[float, str, list[str]]:
    """Execute ``path`` (static widgets, one thread) with ``env`` added to the environment: the seconds it took, the
    CPU capability PyTorch used, and the failing cells, each as "cell N: error, and the line it was raised at"."""
    from nbclient import NotebookClient
    from traitlets.config import Config

    nb = nbformat.read(path, as_version=4)
    if seed is not None:
        nb = with_seed(nb, seed)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))  # cell numbers below count from the chapter's first cell
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=600, allow_errors=True, shutdown_kernel="immediate",  # as dlbook_execute does
                       resources={"metadata": {"path": str(path.parent)}}, config=Config(kernel_config())).execute(
            env={**os.environ, "OMP_NUM_THREADS": "1", "DLBOOK_WIDGETS": "static", **env})
    except Exception as err:  # a cell that timed out, a kernel that died: reported, and the other runs go on
        return time.perf_counter() - start, "?", [f"the run stopped: {type(err).__name__}: {str(err)[:200]}"]
    probe = "".join(o.get("text", "") for o in nb.cells[0].get("outputs", []))
    capability = probe.split("dlbook-cpu-capability")[-1].strip() or "?"
    out = []
    for i, cell in enumerate(nb.cells[1:]):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(o["traceback"]))
                raised = [line.strip() for line in trace.splitlines() if re.match(r"-+> *\d", line)]  # IPython's arrow
                out.append(f"cell {i}: {o['ename']}: {o['evalue'][:120]} {raised[-1] if raised else ''}".rstrip())
    return time.perf_counter() - start, capability, out


def main(paths: list[Path], seeds: list[int]) -> int:
    if seeds:
        jobs = [(f"seed {s}", {}, None, s, path) for s in seeds for path in paths]
    else:
        jobs = [(name, env, want, None, path) for name, (env, want) in WORLDS.items() for path in paths]
    failed = 0
    with ProcessPoolExecutor(2) as pool:  # one kernel per core
        results = pool.map(failures, [j[4] for j in jobs], [j[1] for j in jobs], [j[3] for j in jobs])
        for (name, _, want, _, path), (seconds, capability, cells) in zip(jobs, results, strict=True):
            if want is not None and capability not in (want, "?"):  # "?": the run stopped, and says why
                cells = [f"PyTorch used {capability} kernels, not {want}: this machine cannot run this set"] + cells
            failed += bool(cells)
            print(f"{name:24s} {path.relative_to(ROOT)}: {len(cells)} failing ({seconds:.0f} s, {capability})",
                  flush=True)
            for line in cells:
                print("    " + line, flush=True)
    print(f"{failed} of {len(jobs)} runs failed")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="notebooks (default: every chapter)")
    parser.add_argument("--seeds", default="", help="comma-separated seeds: native kernels, one run per seed")
    args = parser.parse_args()
    chosen = [p.resolve() for p in args.chapters] or sorted((ROOT / "book").glob("*/*.ipynb"))
    sys.exit(main(chosen, [int(s) for s in args.seeds.split(",") if s]))
