"""The convolution-arithmetic explorer: sliders for i, k, s, p, d over a diagram of one layer's windows.

Chapters: ``book/convnets/padding.ipynb`` and ``book/convnets/stride.ipynb``.

:func:`arithmetic_explorer` returns a self-contained block (see :func:`dlbook.widgets.html_app`) that works in the
static site, JupyterLab, VS Code and Colab alike, without a kernel and without any download. For a square input and
the same settings along both axes it shows the padded input (in ``transposed`` mode: stretched by inserted zeros), the
cells the selected output cell reads (tap or click an output cell; a mouse also previews by pointing), the input cells
no window reads (hatched), and the output size with its formula filled in, or the error PyTorch raises.

Python computes everything the page shows. :func:`explorer_data` calls :mod:`dlbook.arithmetic` for every setting the
sliders offer and lays out one axis per setting (:func:`explorer_axis`; height and width share it); the page embeds
that table, compressed, and its JavaScript (``explorer_files/explorer.js``) only looks a setting up and draws it.
The size shown is in the element ``.dlbook-explorer-size``: attribute ``data-size`` (the output size, or ``"error"``)
and ``data-unread`` (the unread input positions of one axis, comma-separated).
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dlbook._checks import flag, one_of
from dlbook.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    effective_kernel_size,
    pool_output_size,
    unread_positions,
)
from dlbook.widgets import html_app

__all__ = ["MODES", "FORMULAS", "NOTES", "ExplorerLimits", "explorer_axis", "explorer_data", "pack", "unpack",
           "arithmetic_explorer"]

MODES = ("conv", "transposed", "pool")
_MODE_LABELS = {"conv": "convolution", "transposed": "transposed convolution", "pool": "max pooling"}
_PARAM_LABELS = {"i": "input size i", "k": "kernel size k", "s": "stride s", "p": "padding p", "d": "dilation d",
                 "output_padding": "output_padding"}
# The controls each mode reads, in the order of its table (the first varies slowest); this order puts equal entries
# next to each other, which makes the compressed table about a third smaller.
_AXES = {"conv": ("k", "d", "s", "p", "i"), "pool": ("p", "k", "d", "s", "i", "ceil_mode"),
         "transposed": ("output_padding", "s", "k", "d", "p", "i")}
# Texts the page fills in: {name} is a slider's value or a number of the setting's entry in the table.
_FLOOR = "⌊(i + 2p − d(k − 1) − 1) / s⌋ + 1 = ⌊({i} + 2·{p} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = ⌊{num} / {s}⌋ + 1"
_CEIL = _FLOOR.replace("⌊", "⌈").replace("⌋", "⌉")
_TRANSPOSED = ("o = (i − 1)s − 2p + d(k − 1) + output_padding + 1 = "
               "({i} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {output_padding} + 1")
FORMULAS = {
    "floor": "o = " + _FLOOR + " = {o}",
    "ceil": "o = " + _CEIL + " = {o}",
    "dropped": "o = " + _CEIL + " = {rounded} − 1 (dropped) = {o}",
    "transposed": _TRANSPOSED + " = {o}",
    "floor raises": "o = " + _FLOOR + ": PyTorch raises",
    "ceil raises": "o = " + _CEIL + ": PyTorch raises",
    "transposed raises": _TRANSPOSED + ": PyTorch raises",
}
NOTES = {
    "error": "PyTorch raises: {error}",
    "stretched": "Drawn as the equivalent stride-1 convolution: s − 1 = {zeros} zero(s) inserted between input cells, "
                 "d(k − 1) − p = {q} cell(s) of padding on each side (a negative number crops), output_padding = "
                 "{output_padding} extra cell(s) at the bottom/right.",
    "dropped": "The last window would start in the right padding (at (o − 1)s ≥ i + p): PyTorch drops it.",
    "hangs": "ceil_mode: the last window hangs {hang} cell(s) past the padded input; pooling ignores the cells it "
             "does not have.",
    "remainder": "(i + 2p − d(k − 1) − 1) mod s = {num} mod {s} = {rem}: the last {rem} row(s)/column(s) of the padded "
                 "input are never reached by a window.",
    "border": "(i + 2p − d(k − 1) − 1) mod s = {num} mod {s} = 0: the windows end exactly at the border.",
    "unread": "No window reads input rows and columns {unread} (hatched).",
}
_FILES = resources.files("dlbook") / "explorer_files"


@dataclass(frozen=True)
class ExplorerLimits:
    """The (min, max) range of every slider of the explorer."""

    i: tuple[int, int] = (1, 12)
    k: tuple[int, int] = (1, 5)
    s: tuple[int, int] = (1, 4)
    p: tuple[int, int] = (0, 4)
    d: tuple[int, int] = (1, 3)
    output_padding: tuple[int, int] = (0, 3)

    def values(self) -> dict[str, list]:
        """Every value each control offers, ``ceil_mode`` included."""
        return {name: list(range(lo, hi + 1)) for name, (lo, hi) in vars(self).items()} | {"ceil_mode": [False, True]}


def explorer_axis(mode: str, i: int, k: int, s: int, p: int, d: int, output_padding: int = 0,
                  ceil_mode: bool = False) -> dict[str, Any]:
    """What the explorer shows along one axis for one setting, the output size from :mod:`dlbook.arithmetic`.

    ``o``: the output size (0 where PyTorch raises; ``error``: its message); ``cells``: one letter per drawn position
    (``i`` input, ``p`` padding, ``z`` inserted zero, ``c`` cropped, ``C`` cropped input cell, ``b`` past the edge,
    ``hang`` of them); output ``a`` reads the drawn positions ``first + a * step + u * d``, ``u = 0 .. k - 1``;
    ``unread``: the input cells no window reads; ``formula`` and ``notes``: the keys of :data:`FORMULAS` and
    :data:`NOTES` to show, and the numbers they need (``num``, ``rem``, ...).
    """
    o, error = _size(mode, i, k, s, p, d, output_padding, ceil_mode)
    span = effective_kernel_size(k, d)
    num, q = i + 2 * p - span, span - 1 - p  # the formula's numerator; a transposed convolution's padding
    if mode == "transposed":  # the stride-1 convolution over the stretched input, padded (q > 0) or cropped (q < 0)
        m, lo, hi = (i - 1) * s + 1, -q, (i - 1) * s + 1 + q + output_padding  # stretched coordinates
        cells = "".join(_stretched_cell(z, s, m, lo, hi) for z in range(min(0, lo), max(m, hi)))
        inputs, first, step = [j * s - min(0, lo) for j in range(i)], lo - min(0, lo), 1
    else:
        inputs, first, step = [p + j for j in range(i)], 0, s
        cells = "p" * p + "i" * i + "p" * p
        cells += "b" * max(0, (o - 1) * s + span - len(cells)) * (o > 0)  # a ceil_mode window hangs over the edge
    read = {first + a * step + u * d for a in range(o) for u in range(k)}
    unread = [] if not o else unread_positions(i, k, s, p, d) if mode == "conv" else [
        j for j in range(i) if inputs[j] not in read]
    rounded = -(-num // s) + 1  # pooling's ceil count, before PyTorch drops a window that starts in the padding
    dropped = mode == "pool" and ceil_mode and 0 < o < rounded
    formula = "transposed" if mode == "transposed" else "dropped" if dropped else "ceil" if ceil_mode else "floor"
    strided = mode != "transposed" and o > 0 and s > 1 and not ceil_mode
    notes = [key for key, shown in [("error", error), ("stretched", mode == "transposed"), ("dropped", dropped),
                                    ("hangs", "b" in cells), ("remainder", strided and num % s),
                                    ("border", strided and not num % s), ("unread", unread)] if shown]
    return {"o": o, "error": error, "formula": formula + " raises" * bool(error), "notes": notes, "num": num,
            "rem": num % s, "rounded": rounded, "zeros": s - 1, "q": q, "cells": cells, "hang": cells.count("b"),
            "first": first, "step": step, "unread": list(unread)}


def _size(mode: str, i: int, k: int, s: int, p: int, d: int, output_padding: int, ceil_mode: bool) -> tuple[int, str]:
    """The output size from :mod:`dlbook.arithmetic` and ``""``, or 0 and the message of the error it raises."""
    try:
        if mode == "transposed":
            return conv_transpose_output_size(i, k, s, p, output_padding, d), ""
        return (pool_output_size(i, k, s, p, d, ceil_mode) if mode == "pool" else conv_output_size(i, k, s, p, d)), ""
    except ValueError as refusal:
        return 0, str(refusal)


def _stretched_cell(z: int, s: int, m: int, lo: int, hi: int) -> str:
    """The letter of stretched position ``z`` (input cells at multiples of ``s`` below ``m``; kept span lo..hi)."""
    cell = "p" if z < 0 or z >= m else "z" if z % s else "i"
    return cell if lo <= z < hi else "C" if cell == "i" else "c"


def explorer_data(modes: tuple[str, ...] = MODES, limits: ExplorerLimits = ExplorerLimits()) -> dict[str, Any]:
    """The table the page looks settings up in: per mode, its axes and one column per field of :func:`explorer_axis`.

    Entry ``n`` of a column belongs to the ``n``-th setting of ``itertools.product`` over the axes' values.
    """
    values, data = limits.values(), {}
    for mode in modes:
        axes = {name: values[name] for name in _AXES[mode]}
        rows = [explorer_axis(mode, **dict(zip(axes, setting, strict=True)))
                for setting in itertools.product(*axes.values())]
        data[mode] = {"axes": axes, "columns": {field: [row[field] for row in rows] for field in rows[0]}}
    return data


def pack(data: dict[str, Any]) -> str:
    """``data`` as JSON, deflated (zlib) and base64-encoded: what the page's ``DecompressionStream`` reads back."""
    return base64.b64encode(zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)).decode("ascii")


def unpack(packed: str) -> dict[str, Any]:
    """The inverse of :func:`pack`."""
    return json.loads(zlib.decompress(base64.b64decode(packed)))


def arithmetic_explorer(
    mode: str = "conv",
    i: int = 6,
    k: int = 3,
    s: int = 1,
    p: int = 0,
    d: int = 1,
    output_padding: int = 0,
    ceil_mode: bool = False,
    *,
    modes: tuple[str, ...] = MODES,
    limits: ExplorerLimits = ExplorerLimits(),
    title: str | None = None,
) -> Any:
    """The convolution-arithmetic explorer, starting at the given settings; display it as a cell's last value.

    ``modes`` lists the modes the reader may switch between (the first sets the order of the menu); ``limits`` the
    slider ranges. Raises ``ValueError`` when a starting value is not one its control offers.
    """
    if not modes or not isinstance(modes, tuple):
        raise ValueError(f"modes must be a non-empty tuple drawn from {MODES}, got {modes!r}")
    modes = tuple(one_of(m, "modes", MODES) for m in modes)
    one_of(mode, "mode", modes)
    flag(ceil_mode, "ceil_mode")
    offered = limits.values()
    start = {name: one_of(value, name, offered[name]) for name, value in
             dict(i=i, k=k, s=s, p=p, d=d, output_padding=output_padding).items()}
    options = "".join(f'<option value="{m}"{" selected" * (m == mode)}>{_MODE_LABELS[m]}</option>' for m in modes)
    hidden = ' style="display:none"' * (len(modes) == 1)
    rows = [f'<label class="dlx-row"{hidden}><span>mode</span><select class="dlbook-explorer-mode" aria-label="mode">'
            f"{options}</select></label>"]
    rows += [_slider(name, value, offered[name]) for name, value in start.items()]
    rows += [f'<label class="dlx-row" data-row="ceil_mode"><span>ceil_mode</span><input type="checkbox" '
             f'class="dlbook-explorer-ceil" aria-label="ceil_mode"{" checked" * ceil_mode}></label>']
    heading = f'<div class="dlx-title">{html.escape(title)}</div>' if title else ""
    body = (_FILES / "explorer.html").read_text(encoding="utf-8").format(heading=heading, controls="".join(rows))
    config = {"formulas": FORMULAS, "notes": NOTES, "packed": pack(explorer_data(modes, limits))}
    return html_app(body, (_FILES / "explorer.js").read_text(encoding="utf-8"), config,
                    css=(_FILES / "explorer.css").read_text(encoding="utf-8"))


def _slider(name: str, value: int, offered: list[int]) -> str:
    label = html.escape(_PARAM_LABELS[name])
    return (f'<label class="dlx-row" data-row="{name}"><span>{label}</span><input class="dlbook-explorer-slider" '
            f'type="range" min="{offered[0]}" max="{offered[-1]}" step="1" value="{value}" data-param="{name}" '
            f'aria-label="{label}"><output>{value}</output></label>')
