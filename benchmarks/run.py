"""Speed of the reference implementations relative to PyTorch, and how long each chapter takes to execute.

Run with `make bench`. Results go to benchmarks/results/latest.json and are printed as a table. Every ratio is
measured in one run, ours and PyTorch's interleaved on the same inputs (in rounds, each timing a few calls of ours and
as many of PyTorch's back to back), and reported as the median of the rounds' ratios: the ratio is what matters, not
the absolute time, which depends on the machine and its load.

These numbers are targets to watch, not tests: nothing here fails the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
# Ratio targets: how many times slower than PyTorch's kernel our reference may be (median, one thread), so that a
# change that makes an operator much slower is noticed. Each follows from how the reference is written, with room for
# noise (measured on the benchmark shapes here: the ratio after each name):
# - conv2d (1.7): builds the patch matrix (im2col, the one copy of the input it makes), then one matrix product;
#   PyTorch's kernel reads the input in place.
# - conv_transpose2d (1.1-1.7): one matrix product, then col2im (F.fold), whose scatter-add is the extra cost.
# - max_pool2d, avg_pool2d (3.2-3.4): the windows are a view, but the max pool also works out which window cells lie
#   on the input (not on padding) and gathers the winner, so that ties and gradients match PyTorch's, and the
#   average pool divides by a count computed per window (count_include_pad, ceil_mode, divisor_override).
# - pad2d_reflect (12): gathers through an index tensor built for every call; pure overhead at this small size.
# - upsample_bilinear (11): two separable interpolations, each building its source indices and weights and gathering
#   two neighbours per output, where PyTorch runs one fused loop.
# - scaled_dot_product_attention (3.2-3.4): materialises the T x T scores and weights in separate operations where
#   PyTorch's kernel fuses them.
# On the later AMD EPYC machine (AVX-512), three runs in rounds of calls: conv2d 1.8-2.0, conv_transpose2d 1.5-1.6,
# max_pool2d 2.7-3.2, avg_pool2d 4.0, pad2d_reflect 12.4-13.7, upsample_bilinear 2.2-2.6, scaled_dot_product_attention
# 1.9-2.7. Timed one call of each in turn, as before, conv_transpose2d moved between 1.64 and 2.18 there.
TARGETS = {"conv2d": 3.0, "conv_transpose2d": 2.0, "max_pool2d": 5.0, "avg_pool2d": 5.0,
           "pad2d_reflect": 16.0, "upsample_bilinear": 15.0, "scaled_dot_product_attention": 5.0}
# flash_attention against F.scaled_dot_product_attention by sequence length T (one head of width 64, float32, keys in
# blocks of 128, the function's default), with a target of 1.5 at T = 1024. Measured side by side by ratio() below on
# the shared 2-core machine: 1.27 in this table (31 pairs, load 9); over 5 runs of 15 pairs 1.11-1.32 (median 1.15,
# load 8) against 1.72-3.53 (2.25) for the loop before it was fused; in CPU time (time.thread_time, which leaves out
# what other processes take) 1.49-1.73 (median 1.49, load 14) against 2.95-3.10. The loop now makes each block's
# weights in place from its scores (sub_, exp_), rescales and adds in one addcmul_, and starts the maximum at the
# lowest finite number, not at -inf, so it needs no guard; with blocks of 64 the same loop measures about 1.7 in CPU
# time, since twice the blocks dispatch twice the small operations. What remains: the two matrix products of every
# block alone take 0.8-1.1x PyTorch's whole call (its kernel writes its products into buffers it reuses; ours
# allocates each block's scores); max, subtraction, exp and sum are four passes over each block where PyTorch's kernel
# makes two fused ones per row (max; exp and sum); and each block dispatches 13 operations from Python. Peak
# memory is the most bytes PyTorch's CPU allocator held during one call: 1.53 MB at T = 1024 with blocks of 128
# (1.78 MB for the old loop with blocks of 64), PyTorch's 0.82 MB. On the later AMD EPYC machine (AVX-512), whose
# PyTorch kernel is relatively faster, the ratio at T = 1024 is at the target or a little over: 1.46-1.65 over ten
# runs in rounds of calls (median 1.53); a variant that sums the weights in the second matrix product (a column of
# ones appended to the values) measured 1.52-1.53 against 1.44-1.48 for this loop side by side, so it was not taken.
LENGTHS = (128, 256, 512, 1024, 2048, 4096)
LENGTH_TARGETS = {1024: 1.5}
# generate with and without the key-value cache: one fixed, untrained TinyGPT (4 blocks, D = 128, 4 heads, context
# 128, float32), one sequence, greedy, from a one-token prompt; the speed-up is the time without over the time with.
# At most 5 repeats: one run without the cache at 127 tokens takes about a second.
NEW_TOKENS = (16, 64, 127)
CHAPTER_BUDGET_S = 60.0
# Live sliders: the time from setting a slider value on a LiveFigure to its new image bytes (a real front end adds the
# round trip to the kernel and the decoding, about 20-50 ms). A first visit to a value should take under 100 ms, both
# with nothing rendered ahead (the figure is drawn then: one render and one PNG or JPEG encoding) and after a pause,
# when it is served from the frames rendered ahead. The reader is assumed to pause LIVE_PAUSE_S seconds on a frame
# before the next move; the idle loop needs one render plus widgets.PREFETCH_DELAY_S to have the first neighbour ready.
LIVE_TARGET_MS = 100.0
LIVE_PAUSE_S = 1.0


def _seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def ratio(ours: Callable[[], object], ref: Callable[[], object], repeats: int,
          min_seconds: float = 0.01) -> dict[str, float]:
    """Median time per call of ours and of PyTorch's, and the median of their ratios, timed side by side.

    In each of ``repeats`` rounds ours runs ``calls`` times in a row, then PyTorch's as many times (``calls``: enough
    for ours to take about ``min_seconds``, at least one), and the round's ratio compares the two back to back, so
    that the machine's drift over the run cancels. Timing one call of each in turn instead gave ratios that moved by a
    third between runs minutes apart on an idle machine here (conv_transpose2d: 1.64-2.18 on a ~4 ms call).
    """
    ours(), ref()  # warm-up: first-call costs (allocations, dispatch caches) are not what is compared
    calls = max(1, math.ceil(min_seconds / _seconds_per_call(ours, 1)))
    t_ours, t_ref, ratios = [], [], []
    for _ in range(repeats):
        t_ours.append(_seconds_per_call(ours, calls))
        t_ref.append(_seconds_per_call(ref, calls))
        ratios.append(t_ours[-1] / t_ref[-1])
    return {"ours_ms": 1e3 * statistics.median(t_ours), "torch_ms": 1e3 * statistics.median(t_ref),
            "ratio": statistics.median(ratios), "calls": calls}


def op_benchmarks(repeats: int) -> dict[str, dict[str, float]]:
    from dlbook.attention import scaled_dot_product_attention
    from dlbook.conv import conv2d
    from dlbook.padding import pad2d
    from dlbook.pooling import avg_pool2d, max_pool2d
    from dlbook.resampling import conv_transpose2d, upsample_bilinear

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 16, 32, 32, generator=g)  # (B, C, H, W)
    w = torch.randn(32, 16, 3, 3, generator=g)  # (O, C, kH, kW)
    wt = torch.randn(16, 8, 4, 4, generator=g)  # (C_in, C_out, kH, kW)
    q, k, v = (torch.randn(8, 4, 128, 32, generator=g) for _ in range(3))  # (B, heads, T, D)
    cases = {
        "conv2d": (lambda: conv2d(x, w, padding=1), lambda: F.conv2d(x, w, padding=1)),
        "conv_transpose2d": (lambda: conv_transpose2d(x, wt, stride=2, padding=1),
                             lambda: F.conv_transpose2d(x, wt, stride=2, padding=1)),
        "max_pool2d": (lambda: max_pool2d(x, 2), lambda: F.max_pool2d(x, 2)),
        "avg_pool2d": (lambda: avg_pool2d(x, 3, 2, 1), lambda: F.avg_pool2d(x, 3, 2, 1)),
        "pad2d_reflect": (lambda: pad2d(x, (2, 2, 2, 2), mode="reflect"),
                          lambda: F.pad(x, (2, 2, 2, 2), mode="reflect")),
        "upsample_bilinear": (lambda: upsample_bilinear(x, 2),
                              lambda: F.interpolate(x, scale_factor=2, mode="bilinear")),
        "scaled_dot_product_attention": (lambda: scaled_dot_product_attention(q, k, v, is_causal=True),
                                         lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    }
    return {name: ratio(ours, ref, repeats) for name, (ours, ref) in cases.items()}


_PEAK_MEMORY = """
import json, sys, torch, torch.nn.functional as F
from dlbook.attention import flash_attention, peak_allocated_bytes
torch.set_num_threads(1)
out = {}
for T in map(int, sys.argv[1:]):
    q, k, v = (torch.randn(1, T, 64) for _ in range(3))
    out[T] = [peak_allocated_bytes(fn, q, k, v) for fn in (flash_attention, F.scaled_dot_product_attention)]
print(json.dumps(out))
"""


def attention_by_length(repeats: int, lengths: tuple[int, ...] = LENGTHS) -> dict[int, dict[str, float]]:
    """flash_attention against F.scaled_dot_product_attention at each T: time ratio and peak memory of both.

    Memory is measured in a fresh process (the profiler that records the allocations stays out of the timings).
    """
    from dlbook.attention import flash_attention

    g = torch.Generator().manual_seed(0)
    out = {}
    for T in lengths:
        q, k, v = (torch.randn(1, T, 64, generator=g) for _ in range(3))  # (B, T, E), float32
        out[T] = ratio(partial(flash_attention, q, k, v), partial(F.scaled_dot_product_attention, q, k, v), repeats)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _PEAK_MEMORY, *map(str, lengths)], env=env, check=True,
                          capture_output=True, text=True)
    for T, (ours, ref) in json.loads(proc.stdout).items():
        out[int(T)] |= {"ours_mb": ours / 2**20, "torch_mb": ref / 2**20}
    return out


def generation_benchmarks(repeats: int, new_tokens: tuple[int, ...] = NEW_TOKENS) -> dict[int, dict[str, float]]:
    """Median time of ``generate`` for each number of new tokens, with the cache and without, timed alternately."""
    from dlbook.transformer import TinyGPT, TransformerConfig, generate

    torch.manual_seed(0)
    model = TinyGPT(TransformerConfig(vocab_size=64, block_size=128, d_model=128, n_heads=4, n_layers=4, d_ff=512))
    prompt = torch.zeros(1, 1, dtype=torch.long)  # (B, T0)
    out = {}
    for n in new_tokens:
        cached = partial(generate, model, prompt, n, temperature=0.0)
        full = partial(generate, model, prompt, n, temperature=0.0, use_cache=False)
        r = ratio(cached, full, min(repeats, 5))
        out[n] = {"cache_ms": r["ours_ms"], "no_cache_ms": r["torch_ms"], "speedup": 1.0 / r["ratio"]}
    return out


def _live_figures() -> dict[str, tuple]:
    """Three slider figures of the chapters, rebuilt from the package: (render, grid, initial, dpi, image format)."""
    from dlbook import figures
    from dlbook.arithmetic import conv_output_size, read_counts
    from dlbook.conv import CLASSIC_KERNELS, classic_kernel, conv2d
    from dlbook.plotting import sample_photo, use_book_style

    use_book_style()
    hopper, photo = sample_photo(128)[None], sample_photo(96)[None]  # (1, 1, H, W)

    def filtered(kernel: str, kernel_size: int):  # convolution: hand-made kernels on a photo
        k = classic_kernel(kernel, kernel_size)  # (k, k)
        out = conv2d(hopper, k[None, None], padding="same")[0, 0]  # (128, 128)
        return figures.filtered_photo(hopper[0, 0], k, out, kernel, signed=kernel.startswith(("edges", "outline")))

    def read_count_map(kernel_size: int, padding: int):  # padding: windows reading each pixel
        row = torch.tensor(read_counts(8, kernel_size, p=padding), dtype=torch.float64)  # (8,)
        o = conv_output_size(8, kernel_size, p=padding)
        return figures.read_count_grid(torch.outer(row, row), padding=padding, vmax=25,
                                       title=f"kernel {kernel_size}, padding {padding}: 8×8 → {o}×{o}")

    return {
        "convolution: kernels on a photo": (filtered, {"kernel": list(CLASSIC_KERNELS), "kernel_size": [3, 5, 7, 9]},
                                            {"kernel": "box blur", "kernel_size": 5}, 80, "jpeg"),
        "padding: read counts": (read_count_map, {"kernel_size": [1, 3, 5], "padding": [0, 1, 2, 3]},
                                 {"kernel_size": 1, "padding": 1}, 80, "png"),
        "pooling: window and stride": (lambda kernel_size, stride: figures.pooling_windows(photo[0, 0], kernel_size,
                                                                                           stride),
                                       {"kernel_size": [1, 2, 3, 4], "stride": [1, 2, 3, 4]},
                                       {"kernel_size": 2, "stride": 2}, 72, "jpeg"),
    }


def _time_move(live, name: str, value: object) -> float:
    """Milliseconds from setting slider ``name`` to ``value`` until the image widget holds the new frame."""
    shown = []
    live.image.observe(lambda _change: shown.append(time.perf_counter()), names="value")
    start = time.perf_counter()
    live.sliders[name].value = value
    live.image.unobserve_all("value")
    return 1e3 * (shown[0] - start)


async def _three_moves(spec: tuple) -> tuple[float, float, float]:
    """One figure, built afresh on this event loop: (a) a first visit before anything was rendered ahead, (b) after
    a pause, a first visit to a neighbour of that value, (c) back to the start, a revisit."""
    from dlbook.widgets import LiveFigure

    render, grid, initial, dpi, image_format = spec
    live = LiveFigure(render, grid, initial, dpi, None, image_format)  # renders ahead on this loop's call_later
    name = next(iter(grid))
    step = lambda v: grid[name][grid[name].index(v) + 1]  # noqa: E731 -- one step along the first slider
    cold = _time_move(live, name, step(initial[name]))  # no await since: nothing rendered ahead yet
    await asyncio.sleep(LIVE_PAUSE_S)
    ahead = _time_move(live, name, step(step(initial[name])))
    return cold, ahead, _time_move(live, name, initial[name])


def live_slider_benchmarks(repeats: int) -> dict[str, dict[str, list[float]]]:
    """Per figure, the times in ms of a first visit with nothing rendered ahead, of a first visit to a neighbour
    after LIVE_PAUSE_S, and of a revisit, each repeated on a fresh LiveFigure."""
    out = {}
    for label, spec in _live_figures().items():
        runs = [asyncio.run(_three_moves(spec)) for _ in range(repeats)]
        out[label] = dict(zip(("first_ms", "ahead_ms", "revisit_ms"), map(list, zip(*runs, strict=True)),
                              strict=True))
    return out


def _spread(ms: list[float]) -> str:
    return f"{statistics.median(ms):7.1f} [{min(ms):5.1f}-{max(ms):5.1f}]"


def chapter_times() -> dict[str, float]:
    """Wall-clock seconds to execute each chapter in static-widget mode (the slowest mode: every frame rendered)."""
    env = dict(os.environ, DLBOOK_WIDGETS="static")
    out = {}
    for nb in sorted((ROOT / "book").rglob("*.ipynb")):
        if "_build" in nb.parts or ".ipynb_checkpoints" in nb.parts:
            continue
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--stdout",
                        str(nb)], env=env, check=True, capture_output=True)
        out[str(nb.relative_to(ROOT))] = time.perf_counter() - t
    return out


def _ratio_columns(r: dict, target: float | None, *extra: float) -> str:
    """One table row after its name: ours and torch in ms, their ratio, the target, any extra columns, and a flag."""
    flag = "" if target is None or r["ratio"] <= target else "  over target"
    columns = "".join(f"{x:10.2f}" for x in extra)
    return (f"{r['ours_ms']:10.2f}{r['torch_ms']:10.2f}{r['ratio']:8.2f}"
            f"{'' if target is None else f'{target:8.1f}':8s}{columns}{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-chapters", action="store_true")
    parser.add_argument("--skip-ops", action="store_true")
    parser.add_argument("--skip-lengths", action="store_true", help="skip attention by sequence length")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS),
                        help="sequence lengths T for attention by length (default: %(default)s)")
    parser.add_argument("--skip-generation", action="store_true", help="skip generate with vs without the cache")
    parser.add_argument("--skip-live", action="store_true", help="skip the live slider timings")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the operator ratios (default 1: the ratio compares the algorithms, "
                             "not how well each one is parallelised)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    ops = {} if args.skip_ops else op_benchmarks(args.repeats)
    print(f"{'operator':30s}{'ours ms':>10s}{'torch ms':>10s}{'ratio':>8s}{'target':>8s}")
    for name, r in ops.items():
        print(f"{name:30s}{_ratio_columns(r, TARGETS.get(name))}")
    lengths = {} if args.skip_lengths else attention_by_length(args.repeats, tuple(args.lengths))
    if lengths:
        print("\nflash_attention vs F.scaled_dot_product_attention, one head, E = 64, float32, blocks of 128 keys")
        print(f"{'T':>6s}{'ours ms':>10s}{'torch ms':>10s}{'ratio':>8s}{'target':>8s}{'ours MB':>10s}{'torch MB':>10s}")
    for T, r in lengths.items():
        print(f"{T:6d}{_ratio_columns(r, LENGTH_TARGETS.get(T), r['ours_mb'], r['torch_mb'])}")
    generation = {} if args.skip_generation else generation_benchmarks(args.repeats)
    if generation:
        print("\ngenerate, TinyGPT with 4 blocks, D = 128, context 128, one sequence, greedy: key-value cache or not")
        print(f"{'new tokens':>10s}{'cache ms':>10s}{'none ms':>10s}{'speed-up':>10s}")
    for n, r in generation.items():
        print(f"{n:10d}{r['cache_ms']:10.1f}{r['no_cache_ms']:10.1f}{r['speedup']:10.2f}")
    live = {} if args.skip_live else live_slider_benchmarks(min(args.repeats, 7))
    if live:
        print(f"\nlive slider: ms from a slider value to its new image on the widget, median [min-max]; "
              f"'ahead' after a {LIVE_PAUSE_S:g} s pause")
        print(f"{'figure':34s}{'first visit':>22s}{'ahead':>22s}{'revisit':>22s}")
    for label, r in live.items():
        # both a move with nothing rendered ahead and one after a pause: the prefetch hides a slow render only
        # from a reader who pauses
        slow = [k for k in ("first_ms", "ahead_ms") if statistics.median(r[k]) >= LIVE_TARGET_MS]
        flag = "".join(f"  {k.removesuffix('_ms')} over target" for k in slow)
        print(f"{label:34s}{_spread(r['first_ms']):>22s}{_spread(r['ahead_ms']):>22s}{_spread(r['revisit_ms']):>22s}"
              f"{flag}")
    chapters = {} if args.skip_chapters else chapter_times()
    for name, s in chapters.items():
        print(f"{name:48s}{s:7.1f} s{'  over budget' if s > CHAPTER_BUDGET_S else ''}")
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "latest.json").write_text(json.dumps({"ops": ops, "attention_by_length": lengths,
                                                         "generation": generation, "live_slider_ms": live,
                                                         "chapters_s": chapters,
                                                         "torch": torch.__version__,
                                                         "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
