"""The chapters' explanatory figures: each function takes the numbers it shows and returns a matplotlib ``Figure``.

The maths lives in the concept modules (:mod:`dlbook.autograd`, :mod:`dlbook.arithmetic`, ...); a chapter computes
with them and passes the results here, so that its page shows one short call instead of a screen of rectangles. Where
a figure needs a few numbers of its own (an output to fill in, a count to write), it takes them from PyTorch or
:mod:`dlbook.arithmetic`. Every function is pure: same arguments, same picture, no state kept between calls. The
figure is created with pyplot, so a notebook shows it at the end of the cell, and :func:`dlbook.widgets.interact`
renders (and closes) the ones its sliders ask for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from dlbook.arithmetic import pool_output_size, read_counts
from dlbook.autograd import Graph, Tensor, graph
from dlbook.plotting import as_image, image_grid, show_kernel, write_numbers

__all__ = [
    "graph_levels",
    "draw_graph",
    "transposed_conv_step",
    "transposed_conv_captions",
    "pooling_windows",
    "lp_pooling",
    "image_panels",
    "sample_positions",
    "downsampled_stripes",
    "neuron_chain_rule",
    "gradient_norms",
    "conv_backward_one_hot",
    "read_count_grid",
    "window_strips",
    "receptive_field_map",
    "impulse_response",
    "filtered_photo",
    "ridge_fit",
    "decay_paths",
    "sparse_weights",
    "clipped_descent",
    "smooth_fit",
    "dropout_runs",
    "early_stop",
    "checkerboard",
    "downsampling",
    "upsampling",
]

GRID = "#999999"  # the outline of a cell in the grid figures
MARK = "crimson"  # the window or cell the figure is about


def _new_figure(figsize: tuple[float, float], **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure with a row of ``ncols`` axes (3 unless given)."""
    fig, axes = plt.subplots(1, kwargs.pop("ncols", 3), figsize=figsize, **kwargs)
    return fig, np.atleast_1d(axes)


def _write_values(ax: Axes, values: np.ndarray | torch.Tensor, fontsize: float = 11, skip=None, **kwargs) -> None:
    """Write each entry of a 2-D array in its cell (row r, column c at x=c, y=r), except where ``skip`` is true."""
    for (r, c), v in np.ndenumerate(np.asarray(values)):
        if skip is None or not skip[r, c]:
            ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=fontsize, **kwargs)


def _outline(ax: Axes, row: float, col: float, height: float, width: float, colour: str = MARK,
             lw: float = 3) -> None:
    """An unfilled rectangle over the cells ``[row, row + height) × [col, col + width)``."""
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), width, height, fill=False, edgecolor=colour, linewidth=lw))


# --------------------------------------------------------------------------------------- computational graphs
def graph_levels(g: Graph) -> list[int]:
    """A column for each node of ``g`` in a left-to-right drawing: a result one column right of its latest input;
    an input (leaf) one column left of its first use, so that a parameter sits next to the operation that reads it.
    """
    level = [0] * len(g.nodes)
    parents: list[list[int]] = [[] for _ in g.nodes]
    children: list[list[int]] = [[] for _ in g.nodes]
    for p, c in g.edges:
        parents[c].append(p)
        children[p].append(c)
    for i in range(len(g.nodes)):  # topological order: every parent's column is final
        if parents[i]:
            level[i] = 1 + max((level[p] for p in parents[i] if parents[p]), default=0)
    for i in range(len(g.nodes)):
        if not parents[i] and children[i]:
            level[i] = min(level[c] for c in children[i]) - 1
    return level


def _graph_rows(g: Graph, columns: dict[int, list[int]]) -> dict[int, float]:
    """A height for each node: the boxes of each column ordered by the mean height of their neighbours (a few
    sweeps of the barycentre rule), so that edges stay short and mostly uncrossed."""
    y = {i: float(k) for col in columns.values() for k, i in enumerate(col)}
    neighbours: dict[int, list[int]] = {i: [] for i in range(len(g.nodes))}
    for p, c in g.edges:
        neighbours[p].append(c)
        neighbours[c].append(p)
    for _ in range(4):
        for col in columns.values():
            col.sort(key=lambda i: float(np.mean([y[j] for j in neighbours[i]])) if neighbours[i] else y[i])
            for k, i in enumerate(col):
                y[i] = k - (len(col) - 1) / 2
    return y


def _node_text(t: Tensor, values: bool) -> str:
    """A node's label: its name (and operation), then its shape, or its value and gradient."""
    name = f"{t.label} = {t._op}" if t._op and t.label else t.label or t._op or "tensor"
    if values and t.data.size == 1:
        return f"{name}\nvalue {t.data.item():.3g}\ngrad {t.grad.item():.3g}"
    shape = "scalar" if t.data.size == 1 and t.ndim <= 1 else "×".join(map(str, t.shape))
    return f"{name}\n({shape})"


def draw_graph(root: Tensor, *, values: bool = False, ax: Axes | None = None,
               figsize: tuple[float, float] | None = None, fontsize: float = 10.0) -> Figure:
    """Draw the autograd engine's own graph of ``root`` left to right, in columns (:func:`graph_levels`).

    Leaves (inputs, parameters, constants) are grey boxes, operations blue, ``root`` orange; an arrow per use of a
    tensor. With ``values=True`` single-number nodes show their value and gradient (run ``root.backward()`` first).
    Draws into ``ax`` if given, else into a new figure sized to the graph; returns the figure.
    """
    g = graph(root)
    level = graph_levels(g)
    columns: dict[int, list[int]] = {}
    for i, lv in enumerate(level):
        columns.setdefault(lv - min(level), []).append(i)
    y = _graph_rows(g, columns)
    x = {i: float(lv - min(level)) for i, lv in enumerate(level)}
    tallest = max(len(c) for c in columns.values())
    if ax is None:
        size = figsize or (min(9.0, 1.5 * len(columns)), (1.05 if values else 0.8) * tallest + 0.3)
        fig, (ax,) = _new_figure(size, ncols=1)
    box_w, box_h = 0.86, 0.8 if values else 0.62
    arrow = dict(arrowstyle="-|>", color="#57606a", lw=0.9, shrinkA=0, shrinkB=0)
    for p, c in g.edges:
        ax.annotate("", xy=(x[c] - box_w / 2, y[c]), xytext=(x[p] + box_w / 2, y[p]), arrowprops=arrow)
    for i, t in enumerate(g.nodes):
        colour = "#fbd38d" if t is root else "#cfe3ff" if t._parents else "#e6e6e6"
        ax.add_patch(FancyBboxPatch((x[i] - box_w / 2, y[i] - box_h / 2), box_w, box_h, fc=colour,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", ec="#57606a", lw=0.8))
        ax.text(x[i], y[i], _node_text(t, values), ha="center", va="center", fontsize=fontsize, linespacing=1.15)
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(-tallest / 2, tallest / 2)
    ax.axis("off")
    ax.figure.tight_layout(pad=0.2)
    return ax.figure


# ------------------------------------------------------------------------------------ transposed convolution
def _transposed_conv_grids(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, output_padding: int):
    """The padded input (zeros inserted, border added), the kind of each of its cells (1: an input, 0.5: an inserted
    zero, 0: border padding), the flipped kernel and the output of the transposed convolution."""
    x, weight = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(weight, dtype=torch.float64)
    s, k, q = stride, weight.shape[-1], output_padding
    border = k - 1 - padding  # d(k - 1) - p with d = 1
    zeros_in = torch.zeros((x.shape[0] - 1) * s + 1, (x.shape[1] - 1) * s + 1, dtype=x.dtype)
    zeros_in[::s, ::s] = x
    kind = torch.zeros_like(zeros_in) + 0.5
    kind[::s, ::s] = 1.0
    padded = F.pad(zeros_in, (border, border + q, border, border + q))  # output_padding at the bottom and right
    kind = F.pad(kind, (border, border + q, border, border + q))
    y = F.conv_transpose2d(x[None, None], weight[None, None], stride=s, padding=padding, output_padding=q)[0, 0]
    return padded, kind, weight.flip(0, 1), y


def transposed_conv_captions(x: torch.Tensor, weight: torch.Tensor, stride: int = 2, padding: int = 1,
                             output_padding: int = 1) -> list[str]:
    """The caption of each step :func:`transposed_conv_step` draws: three steps that build the padded input, one
    that flips the kernel, then one per output cell, row by row."""
    padded, _, _, y = _transposed_conv_grids(x, weight, stride, padding, output_padding)
    h, w = x.shape
    zh, zw = (h - 1) * stride + 1, (w - 1) * stride + 1
    border = weight.shape[-1] - 1 - padding
    return [f"1. the input ({h}×{w})",
            f"2. insert s − 1 = {stride - 1} zero{'s' * (stride > 2)} between inputs ({zh}×{zw})",
            f"3. pad d(k − 1) − p = {border} on every side, output_padding = {output_padding} more at bottom/right "
            f"({padded.shape[0]}×{padded.shape[1]})",
            "4. flip the kernel; then slide it with stride 1",
            ] + [f"5. output ({i}, {j})" for i in range(y.shape[0]) for j in range(y.shape[1])]


def _cells(ax: Axes, values: torch.Tensor, colours: np.ndarray | None = None, shown: torch.Tensor | None = None):
    """A grid of outlined cells with their values written in; ``colours`` fills them, and only the ``shown`` cells
    are drawn (values that are NaN are left blank)."""
    for (r, c), v in np.ndenumerate(values.numpy()):
        if shown is None or shown[r, c]:
            fill = dict(facecolor=colours[r, c]) if colours is not None else dict(fill=False)
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, edgecolor=GRID, linewidth=0.8, **fill))
            if not np.isnan(v):
                ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=11)
    ax.set_xlim(-0.6, values.shape[1] - 0.4)  # a margin, so that the border lines show
    ax.set_ylim(values.shape[0] - 0.4, -0.6)


def transposed_conv_step(x: torch.Tensor, weight: torch.Tensor, step: int, *, stride: int = 2, padding: int = 1,
                         output_padding: int = 1) -> Figure:
    """One step of a transposed convolution of a 2-D input ``x`` (h, w) with a square kernel ``weight`` (k, k),
    computed as zero insertion, padding and a stride-1 correlation with the flipped kernel.

    Left, the padded input, every number drawn where it sits in the final grid so that the steps line up: step 0
    shows the inputs (blue), step 1 adds the ``stride - 1`` zeros inserted between them (grey), step 2 the border of
    ``k - 1 - padding`` zeros plus ``output_padding`` at the bottom and right (white). Middle, the kernel, flipped
    from step 3 on. Right, the output: from step 4 on, each step moves the window (red) one position and fills in
    one more output cell. The caption is ``transposed_conv_captions(...)[step]``.
    """
    padded, kind, flipped, y = _transposed_conv_grids(x, weight, stride, padding, output_padding)
    k = flipped.shape[0]
    fig, axes = _new_figure((9.6, 3.9), gridspec_kw={"width_ratios": [padded.shape[1], k, y.shape[1]]})
    colours = np.select([kind.numpy() == 1.0, kind.numpy() == 0.5], ["#9ecae1", "#e0e0e0"], "white")
    _cells(axes[0], padded, colours, shown={0: kind == 1.0, 1: kind >= 0.5}.get(step, kind >= 0.0))
    h, w = x.shape
    part = min(step, 2)  # what the left panel shows: the input, the zeros inserted, the padded input
    size = [(h, w), ((h - 1) * stride + 1, (w - 1) * stride + 1), tuple(padded.shape)][part]
    axes[0].set_title(f"{['input', 'zeros inserted', 'padded input'][part]} ({size[0]}×{size[1]})")
    kernel = flipped if step >= 3 else torch.as_tensor(weight, dtype=torch.float64)
    low, high = float(kernel.min()), float(kernel.max())
    pad = 0.625 * ((high - low) or 1.0)  # pale colours, so that the numbers stay readable
    axes[1].imshow(kernel.numpy(), cmap="Oranges", vmin=low - pad, vmax=high + pad)
    _write_values(axes[1], kernel.numpy())
    axes[1].set_title("kernel, flipped" if step >= 3 else "kernel")
    shown = torch.full_like(y, float("nan"))
    if step >= 4:
        i, j = divmod(step - 4, y.shape[1])
        shown.view(-1)[: step - 3] = y.flatten()[: step - 3]
        _outline(axes[0], i, j, k, k)
        _outline(axes[2], i, j, 1, 1)
    low, high = min(float(y.min()), 0.0), float(y.max())
    pad = 0.18 * ((high - low) or 1.0)
    axes[2].imshow(shown.numpy(), cmap="Greens", vmin=low - pad, vmax=high + pad)
    _cells(axes[2], shown)
    axes[2].set_title(f"output ({y.shape[0]}×{y.shape[1]})")
    for ax in axes:
        ax.set_aspect("equal")
        ax.axis("off")
    fig.suptitle(transposed_conv_captions(x, weight, stride, padding, output_padding)[step], fontsize=11)
    fig.subplots_adjust(left=0.02, right=0.965, bottom=0.03, top=0.84, wspace=0.12)
    return fig


# ---------------------------------------------------------------------------------------------------- pooling
def pooling_windows(photo: torch.Tensor, kernel_size: int, stride: int, grid: int = 12) -> Figure:
    """What window size and stride do to a pooling layer's output, for a ``photo`` (H, W).

    Left: a ``grid``×``grid`` input with the number of windows that read each cell (red 0: never read, which
    happens when ``stride > kernel_size``) and the first two windows outlined; middle and right: the photo after
    max and average pooling with the same window and stride, titled with the sizes ``pool_output_size`` gives.
    """
    counts = torch.tensor(read_counts(grid, kernel_size, stride))  # (grid,) reads per row index
    reads = counts[:, None] * counts[None, :]  # (grid, grid) reads per cell
    x = photo[None, None]  # (1, 1, H, W)
    pooled = [F.max_pool2d(x, kernel_size, stride)[0, 0], F.avg_pool2d(x, kernel_size, stride)[0, 0]]
    o_grid = pool_output_size(grid, kernel_size, stride)
    H, W = photo.shape
    oh, ow = pool_output_size(H, kernel_size, stride), pool_output_size(W, kernel_size, stride)
    fig, axes = _new_figure((9.6, 4.1))
    # pale colours, so that the numbers stay legible
    axes[0].imshow(reads.numpy(), cmap="Blues", vmin=0, vmax=max(int(reads.max()), 1) * 2.5)
    rows, cols = np.indices(reads.shape)
    values = reads.flatten().tolist()
    write_numbers(axes[0], np.c_[cols.ravel(), rows.ravel()], [str(v) for v in values], 9,
                  [MARK if v == 0 else "black" for v in values])
    for n, colour in ((0, MARK), (1, "darkorange")):  # the first two windows
        _outline(axes[0], 0, n * stride, kernel_size, kernel_size, colour, lw=2.5)
    axes[0].set_title(f"{grid}×{grid} input → {o_grid}×{o_grid}\nreads per cell (0 = never read)")
    for ax, name, image in zip(axes[1:], ("max pooling", "average pooling"), pooled, strict=True):
        ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\n{H}×{W} → {oh}×{ow}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------- images side by side
Panel = torch.Tensor | tuple[torch.Tensor, dict]  # an image, or an image and imshow's arguments for it


def image_panels(panels: Mapping[str, Panel] | Sequence[tuple[str, Panel]], *, ncols: int,
                 figsize: tuple[float, float], vmin: float = 0.0, vmax: float = 1.0, fontsize: float = 10.0,
                 title: str | None = None) -> Figure:
    """Grey-scale images side by side, ``ncols`` per row, each titled with its key: ``panels`` maps titles to images,
    or is a list of (title, image) pairs (titles may then repeat).

    All panels share one scale, black at ``vmin`` and white at ``vmax`` (not each its own range), so that brightness
    compares across panels; ``title`` goes above them all. A value may be a pair ``(image, kwargs)`` whose keyword
    arguments override ``imshow``'s for that panel (e.g. another colour map). Images are (H, W) or anything
    :func:`~dlbook.plotting.as_image` takes.
    """
    panels = list(panels.items()) if isinstance(panels, Mapping) else list(panels)
    rows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=figsize, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")  # unused
    for ax, (name, panel) in zip(axes.flat, panels, strict=False):
        image, style = panel if isinstance(panel, tuple) else (panel, {})
        ax.imshow(as_image(image), **{"cmap": "gray", "vmin": vmin, "vmax": vmax, **style})
        ax.set_title(name, fontsize=fontsize)
        ax.set_xticks([])  # a frame, no ticks
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ resampling
def sample_positions(n_in: int, rows: Mapping[str, Sequence[float] | torch.Tensor]) -> Figure:
    """Where each output pixel of a 1-D resampling reads its input: the ``n_in`` input pixels as unit squares with
    their centres (blue, at 0, 1, ..., ``n_in - 1``) and, below them, one orange dot per output pixel at the input
    coordinate it samples. One row per entry of ``rows`` (title -> those coordinates), on a shared axis.
    """
    fig, axes = plt.subplots(len(rows), 1, figsize=(8.0, 1.5 * len(rows) + 0.3), sharex=True, squeeze=False)
    for ax, (title, source) in zip(axes[:, 0], rows.items(), strict=True):
        for c in range(n_in):
            ax.add_patch(Rectangle((c - 0.5, 0.55), 1, 0.9, facecolor="#deebf7", edgecolor="#6baed6"))
        ax.scatter(range(n_in), [1] * n_in, s=60, color="tab:blue", zorder=3, label="input pixel centre")
        ax.scatter(source, [0] * len(source), s=30, color="tab:orange", zorder=3,
                   label="where an output pixel samples")
        ax.set_yticks([])
        ax.set_ylim(-0.5, 1.9)
        ax.set_title(title, fontsize=10)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), fontsize=9, ncol=2, loc="upper center", frameon=False)
    axes[-1, 0].set_xlabel("position in input pixel coordinates")
    axes[-1, 0].set_xlim(-0.7, n_in - 0.3)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the legend above the rows
    return fig


def lp_pooling(window: torch.Tensor, norm_type: float, value: float, curve: tuple[torch.Tensor, torch.Tensor],
               lp_map: torch.Tensor, ratio: torch.Tensor) -> Figure:
    """Lp pooling between the sum and the maximum.

    Left: ``curve = (ps, Lp of the window at each p)`` on a log axis, between the window's sum (the value at p = 1)
    and its maximum (the limit p → ∞), with a dot at ``value``, the Lp of ``window`` for ``norm_type``. Middle: a
    photo pooled with that p (``lp_map``). Right: ``ratio`` = Lp / max pool per window, on a log colour scale from 1
    (one value dominates) to 16 (a 4×4 window of 16 equal values at p = 1).
    """
    fig, axes = _new_figure((10.0, 3.4), gridspec_kw={"width_ratios": [1.25, 1, 1]}, layout="constrained")
    axes[0].plot(curve[0].numpy(), curve[1].numpy(), color="tab:blue")
    axes[0].axhline(window.sum().item(), color="gray", linestyle=":", label="sum ($p = 1$)")
    axes[0].axhline(window.max().item(), color=MARK, linestyle="--", label=r"max ($p = \infty$)")
    axes[0].plot([min(norm_type, 100.0)], [value], "o", color="tab:blue", markersize=8)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("norm_type $p$")
    p = r"\infty" if norm_type == float("inf") else f"{norm_type:g}"
    axes[0].set_title(f"one 4×4 window: $L_{{{p}}}$ = {value:.2f}")
    axes[0].legend(fontsize=9, loc="upper right")
    axes[1].imshow(lp_map.numpy(), cmap="gray")
    axes[1].set_title(f"lp_pool2d(photo, {norm_type:g}, 4)\nrange {lp_map.min():.2f} … {lp_map.max():.2f}")
    image = axes[2].imshow(ratio.numpy(), cmap="viridis", norm=LogNorm(1, 16))
    axes[2].set_title(f"$L_p$ / max pool: mean ratio {ratio.mean():.2f}")
    fig.colorbar(image, ax=axes[2], fraction=0.046, ticks=[1, 2, 4, 8, 16], format="%g")
    for ax in axes[1:]:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


# ------------------------------------------------------------------------------------------- backpropagation
def neuron_chain_rule(loss: Tensor, weight: Tensor, factors: Sequence[float],
                      curve: tuple[np.ndarray, np.ndarray]) -> Figure:
    """Backpropagation through one neuron, ``L = (tanh(w x + b) - t)²``, after ``loss.backward()``.

    Top: the graph of ``loss`` with every node's value and gradient (:func:`draw_graph`). Bottom left: the chain rule
    for ∂L/∂w with this point's numbers, ``factors`` = (∂L/∂y, ∂y/∂z, ∂z/∂w) = (2(y − t), 1 − y², x), and their
    product, the engine's ``weight.grad``. Bottom right: ``curve = (w values, L at each)`` with the tangent at
    ``weight``, whose slope is that gradient.
    """
    fig = plt.figure(figsize=(8.5, 5.2))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.35, 1], width_ratios=[1.25, 1])
    draw_graph(loss, values=True, ax=fig.add_subplot(grid[0, :]))
    text = fig.add_subplot(grid[1, 0])
    text.axis("off")
    slope, w = weight.grad.item(), weight.item()
    numbers = [f"{f:.3f}".rstrip("0").rstrip(".") for f in factors]
    lines = [r"$\dfrac{\partial L}{\partial w} = \dfrac{\partial L}{\partial y}\cdot\dfrac{\partial y}{\partial z}"
             r"\cdot\dfrac{\partial z}{\partial w}$", r"$\qquad = 2(y - t)\cdot(1 - y^2)\cdot x$",
             r"$\qquad = " + r"\cdot".join(numbers) + "$", f"$\\qquad = {slope:.3f}$"]
    for k, line in enumerate(lines):
        text.text(0.0, 0.92 - 0.27 * k, line, fontsize=13, va="center")
    ax = fig.add_subplot(grid[1, 1])
    ax.plot(*curve)
    span = np.array([w - 0.6, w + 0.6])
    ax.plot(span, loss.item() + slope * (span - w), color="#c44e52", lw=2)
    ax.plot([w], [loss.item()], "o", color="#c44e52")
    ax.set(xlabel="$w$", ylabel="$L$", ylim=(-0.3, 2.6))
    ax.set_title(rf"tangent slope = $\partial L/\partial w$ = {slope:.3f}")
    fig.tight_layout()
    return fig


def gradient_norms(norms: Mapping[str, Mapping[str, np.ndarray]], title: str, max_depth: int = 32) -> Figure:
    """Gradient size layer by layer, one line per activation, on a log scale shared by both panels.

    ``norms`` maps an activation's name to ``{"activations": ‖∂L/∂h_l‖, "weights": ‖∂L/∂W_l‖}``, each (depth,)
    with layer 1 first (what :func:`dlbook.autograd.layer_gradient_norms` returns). The dotted line is 1.
    """
    colours = {"sigmoid": "#8172b3", "tanh": "#4c72b0", "relu": "#c44e52"}
    fig, axes = _new_figure((8.5, 3.4), ncols=2, sharey=True)
    for name, result in norms.items():
        for ax, key in zip(axes, ("activations", "weights"), strict=True):
            layers = np.arange(1, len(result[key]) + 1)
            ax.semilogy(layers, result[key], "o-", ms=3, color=colours.get(name), label=name)
    axes[0].set(xlabel="layer $l$ (1 = next to the input)", ylabel="gradient norm",
                title=r"$\|\partial L/\partial h_l\|$, reaching layer $l$")
    axes[1].set(xlabel="layer $l$", title=r"$\|\partial L/\partial W_l\|$, of the weights")
    for ax in axes:
        ax.set_ylim(1e-30, 1e8)
        ax.set_xlim(0.5, max_depth + 0.5)
        ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def conv_backward_one_hot(x: np.ndarray, g_out: np.ndarray, dx: np.ndarray, dw: np.ndarray, row: int,
                          column: int) -> Figure:
    """The backward pass of a 2-D convolution when the upstream gradient ``g_out`` is 1 at output (row, column):
    the input ``x`` with that output's window outlined, ``g_out``, the input gradient ``dx`` (the kernel, pasted on
    the window) and the weight gradient ``dw`` (the window), every value written in its cell (zeros of ``g_out`` and
    ``dx`` left blank)."""
    fig, axes = _new_figure((8.5, 2.9), ncols=4, gridspec_kw={"width_ratios": [x.shape[1], g_out.shape[1],
                                                                                 dx.shape[1], dw.shape[1]]})
    panels = [("input $x$", x, "Greys", (0, 2.5), False), (r"$\partial L/\partial y$", g_out, "Greys", (0, 2.5), True),
              (r"$\partial L/\partial x$", dx, "RdBu_r", (-3, 3), True),
              (r"$\partial L/\partial w$", dw, "Greys", (0, 2.5), False)]
    for ax, (name, values, cmap, (low, high), skip_zeros) in zip(axes, panels, strict=True):
        ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
        _write_values(ax, values, fontsize=9, skip=values == 0 if skip_zeros else None)
        ax.set_title(f"{name} ({values.shape[0]}×{values.shape[1]})")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(True)  # a frame around every grid
    _outline(axes[0], row, column, *dw.shape, colour="#c44e52", lw=2.5)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ padding and stride
def read_count_grid(counts: torch.Tensor | np.ndarray, title: str, *, padding: int = 0, unread: Sequence[int] = (),
                    vmax: float | None = None, frame: int = 3, figsize: tuple[float, float] = (5.6, 5.9)) -> Figure:
    """How many windows of a convolution read each pixel: ``counts`` (i, i) written in the cells of the input, the
    colour growing with the count (up to ``vmax``, default the largest count). The ``padding`` cells around the input
    are dashed; rows and columns in ``unread`` (read by no window) are hatched red. The axes always show ``frame``
    cells around the input, so that the grid does not move when the padding changes.
    """
    counts = np.asarray(counts)
    i, vmax = counts.shape[0], vmax or max(float(counts.max()), 1.0)
    cmap = plt.get_cmap("viridis")
    fig, (ax,) = _new_figure(figsize, ncols=1)
    cells: dict[str, list[Rectangle]] = {"padding": [], "read": [], "unread": []}  # drawn in this order
    read: list[tuple[int, int, int]] = []  # (column, row, count) of the read cells
    for r in range(-padding, i + padding):
        for c in range(-padding, i + padding):
            kind = "padding" if not (0 <= r < i and 0 <= c < i) else "unread" if r in unread or c in unread else "read"
            cells[kind].append(Rectangle((c - 0.5, r - 0.5), 1, 1))
            if kind == "read":
                read.append((c, r, int(counts[r, c])))
    values = [v for _, _, v in read]
    colours = [cmap(v / vmax) for v in values]
    write_numbers(ax, np.array([(c, r) for c, r, _ in read]).reshape(-1, 2), [str(v) for v in values], 11,
                  ["white" if v < 0.6 * vmax else "black" for v in values])
    # one artist per kind of cell, not one per cell: a slider redraws this figure on every move
    styles = {"padding": dict(facecolor="none", edgecolor="0.6", linestyle="--", linewidth=0.7),
              "unread": dict(facecolor="#f4a6a6", edgecolor="#c0392b", hatch="////"),
              "read": dict(facecolor=colours, edgecolor="white")}
    for kind, squares in cells.items():
        ax.add_collection(PatchCollection(squares, **styles[kind]), autolim=False)
    ax.set_xlim(-frame - 0.6, i + frame - 0.4)
    ax.set_ylim(i + frame - 0.4, -frame - 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set(xticks=[], yticks=[])  # no ticks at all: hidden ones are still made and measured to place the title
    ax.set_title(title, fontsize=12)
    fig.tight_layout()
    return fig


def _window_strip(ax: Axes, i: int, before: int, after: int, k: int, s: int, label: str) -> None:
    """One strip of :func:`window_strips`: cells drawn at their input index t (padding at t < 0 and t >= i)."""
    for t in range(-before, i + after):
        inside = 0 <= t < i
        ax.add_patch(Rectangle((t, 0), 1, 1, fc="#cfe3f5" if inside else "white", ec="0.4",
                               ls="-" if inside else "--"))
        if inside:
            ax.text(t + 0.5, 0.5, str(t), ha="center", va="center", fontsize=10)
    for j, start in enumerate(range(-before, i + after - k + 1, s)):  # every window that fits
        y = 1.3 + 0.35 * (j % 2)
        ax.plot([start + 0.1, start + k - 0.1], [y, y], lw=4, color=plt.cm.tab10(j % 10), solid_capstyle="butt")
    ax.text(-1.6, 0.5, label, ha="right", va="center", fontsize=11)


def window_strips(input_size: int, kernel_size: int, stride: int, paddings: Mapping[str, tuple[int, int]],
                  title: str, xlim: tuple[float, float] = (-5.2, 11.2)) -> Figure:
    """Where the windows of a 1-D convolution sit, one strip per entry of ``paddings`` (label -> (cells padded
    before, cells padded after)): the input cells numbered by index (blue), the padding cells dashed, and above them
    one bar per window, in alternating heights so that overlapping windows stay apart."""
    fig, axes = plt.subplots(len(paddings), 1, figsize=(6.6, 1.45 * len(paddings)), squeeze=False)
    for ax, (label, (before, after)) in zip(axes[:, 0], paddings.items(), strict=True):
        _window_strip(ax, input_size, before, after, kernel_size, stride, label)
        ax.set_xlim(*xlim)
        ax.set_ylim(-0.1, 1.9)
        ax.axis("off")
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def receptive_field_map(grad: torch.Tensor, field: int, title: str) -> Figure:
    """What one output of a stack of layers sees: ``grad`` (n, n), the gradient of the centre output with respect to
    the input (how much each input pixel counts, log-scaled), and the ``field``×``field`` receptive field the
    formula predicts, dashed, centred on the input's centre."""
    fig, (ax,) = _new_figure((5.6, 5.4), ncols=1)
    ax.imshow(torch.log1p(grad).numpy(), cmap="magma", vmin=0)
    centre = (grad.shape[0] - 1) / 2
    ax.add_patch(Rectangle((centre - field / 2, centre - field / 2), field, field, fill=False, ec="#4fc3f7",
                           ls="--", lw=1.5))
    ax.set_title(title, fontsize=12)
    ax.set_xticks([0, int(centre), grad.shape[1] - 1])
    ax.set_yticks([0, int(centre), grad.shape[0] - 1])
    fig.tight_layout()
    return fig


def downsampled_stripes(row: torch.Tensor, frequency: float, results: Mapping[str, torch.Tensor],
                        shown: int = 60) -> Figure:
    """Stripes of ``frequency`` cycles per pixel, down-sampled by 2 in several ways.

    Top: the first ``shown`` values of one input ``row`` as a curve (an image of 2-pixel stripes would itself alias
    on screen), with the samples that keeping every 2nd pixel reads. Below, one strip per entry of ``results`` (name
    -> the down-sampled (1, 1, h, w) image), titled with its amplitude (max − min)/2; the input's is 0.5.
    """
    fig, axes = plt.subplots(len(results) + 1, 1, figsize=(8.0, 7.0))
    cols = np.arange(shown)
    values = row[:shown].numpy()
    axes[0].plot(cols, values, color="#999999", marker=".", linewidth=0.8, label="input row")
    axes[0].plot(cols[::2], values[::2], color="tab:orange", marker="o", label="every 2nd pixel")
    axes[0].set_title(f"input: {frequency} cycles per pixel (first {shown} of {len(row)} columns)", fontsize=9)
    axes[0].legend(fontsize=9, loc="upper right", framealpha=1)
    axes[0].set_ylim(-0.1, 1.45)
    axes[0].set_yticks([0, 1])
    for ax, (name, y) in zip(axes[1:], results.items(), strict=True):
        ax.imshow(y[0, 0].numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        half_range = (y.max() - y.min()).item() / 2
        ax.set_title(f"{name}   ({y.shape[-2]}×{y.shape[-1]}; amplitude (max − min)/2 = {half_range:.3f}, "
                     "input 0.5)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ convolution
def impulse_response(impulse: torch.Tensor, response: torch.Tensor, centre: tuple[float, float],
                     name: str) -> Figure:
    """An ``impulse`` (H, W), one pixel at 1, and a convolution's ``response`` to it, with the response's centre
    of mass (row, column) marked by a red cross: it sits on the impulse for an odd kernel and half a pixel off for an
    even one. Ticks at every pixel, so that the shift can be read off."""
    fig, axes = _new_figure((6.4, 3.3), ncols=2)
    r, c = divmod(int(impulse.argmax()), impulse.shape[1])
    axes[0].imshow(impulse.numpy(), cmap="gray_r")
    axes[0].set_title(f"input impulse ({impulse.shape[0]}×{impulse.shape[1]}) at ({r}, {c})")
    axes[1].imshow(response.numpy(), cmap="gray_r", vmin=0, vmax=float(response.max()))
    axes[1].plot([centre[1]], [centre[0]], "r+", markersize=18, markeredgewidth=2)
    axes[1].set_title(f"{name}\ncentre of mass ({centre[0]:.1f}, {centre[1]:.1f})")
    for ax in axes:
        ax.set_xticks(range(impulse.shape[1]))
        ax.set_yticks(range(impulse.shape[0]))
        ax.tick_params(labelsize=9)
    fig.tight_layout()
    return fig


def filtered_photo(photo: torch.Tensor, kernel: torch.Tensor, output: torch.Tensor, name: str,
                   signed: bool = False) -> Figure:
    """A ``photo`` (H, W), the ``kernel`` (k, k) with its weights written in while they stay legible (k <= 5), and
    the ``output`` of the convolution: grey on [0, 1], or, if ``signed`` (edge detectors, whose outputs are positive
    or negative), a diverging colour map centred on 0."""
    fig, axes = _new_figure((9.6, 3.5), gridspec_kw={"width_ratios": [1, 0.8, 1]})
    axes[0].imshow(photo.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"input ({photo.shape[0]}×{photo.shape[1]})")
    show_kernel(kernel, title=name, ax=axes[1], fmt="{:.2f}" if kernel.shape[0] <= 5 else "")
    m = float(output.abs().max())
    style = dict(cmap="RdBu_r", vmin=-m, vmax=m) if signed else dict(cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(output.numpy(), **style)
    axes[2].set_title(f"output ({output.shape[0]}×{output.shape[1]})")
    for ax in (axes[0], axes[2]):
        ax.axis("off")
        ax.set(xticks=[], yticks=[])  # no ticks at all: hidden ones are still made and measured to place the title
    # twice: the first pass lays the photos out before they shrink to their square shape and left their titles above
    # the top of the figure; a second pass brings the titles inside it (a test checks every frame's edges)
    fig.tight_layout()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ regularization
def ridge_fit(points: tuple[torch.Tensor, torch.Tensor], curves: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
              strength: float, strengths: Sequence[float], errors: Mapping[str, Sequence[float]],
              noise_var: float, degree: int) -> Figure:
    """A polynomial fit under an L2 penalty of ``strength``, and its error at every strength.

    Left: the training ``points`` (x, y), ``curves = (x, true function, fit)`` on a dense grid. Right: ``errors``
    (name, e.g. "training" -> one mean squared error per entry of ``strengths``) on log-log axes, with the noise
    variance (the best a fit can do on new points) dotted and the errors at ``strength`` circled.
    """
    i = list(strengths).index(strength)
    fig, (ax1, ax2) = _new_figure((9.0, 3.4), ncols=2)
    ax1.plot(curves[0], curves[1], "k--", lw=1, label="true function")
    ax1.plot(curves[0], curves[2], color="C3", label="fit")
    ax1.scatter(*points, s=16, zorder=3, label="training points")
    ax1.set(ylim=(-2.5, 2.5), xlabel="$x$", title=rf"degree-{degree} fit, $\lambda$ = {strength:g}")
    ax1.legend(fontsize=9, loc="upper left")
    for (name, err), marker in zip(errors.items(), "os", strict=False):
        ax2.loglog(strengths, err, f"{marker}-", ms=4, label=name)
    ax2.axhline(noise_var, color="gray", lw=0.8, ls=":", label="noise variance")
    ax2.plot([strength] * len(errors), [err[i] for err in errors.values()], "o", ms=9, mfc="none", color="k")
    ax2.set(xlabel=r"$\lambda$", ylabel="mean squared error",
            title=", ".join(f"{name} {err[i]:.3g}" for name, err in errors.items()))
    ax2.legend(fontsize=9)
    fig.tight_layout()
    return fig


def decay_paths(l2: torch.Tensor, decoupled: torch.Tensor, weight_decay: float, lr: float) -> Figure:
    """The same ``weight_decay`` λ in Adam (as an L2 gradient, ``l2``) and in AdamW (``decoupled``): each (steps + 1,
    2), the mean of a busy weight (noisy gradient, column 0) and of a quiet one (no gradient, column 1) per step, with
    the pure decay (1 − ηλ)^t (``lr`` η) dotted."""
    fig, axes = _new_figure((9.0, 3.2), ncols=2, sharey=True)
    names = ("Adam + L2 (weight_decay)", "AdamW (decoupled)")
    for ax, path, name in zip(axes, (l2, decoupled), names, strict=True):
        t = torch.arange(len(path))
        ax.plot(t, path[:, 0], color="C0", label="busy weight (noisy gradient)")
        ax.plot(t, path[:, 1], color="C3", label="quiet weight (no gradient)")
        ax.plot(t, (1 - lr * weight_decay) ** t, "k:", lw=1, label=r"$(1-\eta\lambda)^t$")
        ax.set(title=rf"{name}, $\lambda$ = {weight_decay:g}", xlabel="step", ylim=(-0.1, 1.3))
    axes[0].set_ylabel("mean weight")
    axes[1].legend(fontsize=9, loc="upper right")
    fig.tight_layout()
    return fig


def sparse_weights(weights: Mapping[str, torch.Tensor], true_weights: torch.Tensor, strength: float) -> Figure:
    """Weight vectors fitted under penalties of one ``strength``, a bar per feature, one panel per entry of
    ``weights`` (penalty name -> (d,) weights): the exact zeros crossed in red, the ``true_weights`` as black
    dashes, each panel titled with its count of exact zeros."""
    j = np.arange(len(true_weights))
    fig, axes = _new_figure((9.0, 3.0), ncols=len(weights), sharey=True)
    for ax, (name, w) in zip(axes, weights.items(), strict=True):
        w = np.asarray(w)
        zero = w == 0
        ax.bar(j, w, color="C0")
        ax.plot(j[zero], w[zero], "x", color="C3", ms=6, mew=2, label="exactly 0")
        ax.plot(j, true_weights, "k_", ms=10, mew=2, label="true weight")
        ax.axhline(0, color="gray", lw=0.6)
        ax.set(title=rf"{name}, $\lambda$ = {strength:g}: {int(zero.sum())} exact zeros", xlabel="feature",
               ylim=(-2, 2.4), xticks=range(0, len(j), 2))
    axes[0].set_ylabel("weight")
    axes[-1].legend(fontsize=9, loc="upper right")
    fig.tight_layout()
    return fig


def clipped_descent(curvature: torch.Tensor, minimum: torch.Tensor, penalised_minimum: torch.Tensor,
                    paths: Mapping[str, torch.Tensor], shown: int = 200,
                    limits: tuple[tuple[float, float], tuple[float, float]] = ((-5, 2.5), (-1.5, 3.5))) -> Figure:
    """Gradient descent on the bowl L(w) = ½ (w − w*)ᵀ A (w − w*), ``curvature`` A (2, 2), ``minimum`` w*, drawn as
    contours over ``limits`` (w₁ range, w₂ range): the first ``shown`` iterates of each of ``paths`` (label ->
    (steps + 1, 2), drawn grey, blue, red; the title gives where the last one ends), the minimum of L (star) and
    that of L plus an L2 penalty (``penalised_minimum``, plus)."""
    u, v = torch.meshgrid(torch.linspace(*limits[0], 120), torch.linspace(*limits[1], 100), indexing="xy")
    diff = torch.stack([u - minimum[0], v - minimum[1]])  # (2, 100, 120)
    bowl = 0.5 * torch.einsum("iyx,ij,jyx->yx", diff, curvature, diff)
    fig, (ax,) = _new_figure((8.4, 3.6), ncols=1)
    ax.contour(u, v, bowl, levels=[0.1, 0.5, 1, 2, 4, 8, 16, 32], colors="0.8", linewidths=0.8)
    for (label, path), colour in zip(paths.items(), ("0.5", "C0", "C3"), strict=False):
        ax.plot(*path[:shown].T, ".-", color=colour, ms=3, label=label)
    ax.plot(*minimum.tolist(), "k*", ms=12, label="minimum of $L$")
    ax.plot(*penalised_minimum.tolist(), "C0P", ms=9, label="minimum of $L$ + L2")
    last = list(paths.values())[-1]
    ax.set(xlim=limits[0], ylim=limits[1], aspect="equal", xlabel="$w_1$", ylabel="$w_2$",
           title=f"first {shown} steps shown; after {len(last) - 1} steps at ({last[-1, 0]:.3f}, {last[-1, 1]:.3f})")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def smooth_fit(points: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, truth: torch.Tensor, fit: torch.Tensor,
               slope: torch.Tensor, error: float) -> Figure:
    """A network fitted to a few ``points`` (x, y), and its slope: left, the ``fit`` and the ``truth`` on the dense
    grid ``x`` (titled with the squared ``error`` between them); right, the ``slope`` f′(x) on that grid, with the
    training inputs marked on the axis, titled with the mean of f′²."""
    fig, (ax1, ax2) = _new_figure((9.0, 3.2), ncols=2)
    ax1.plot(x, truth, "k--", lw=1, label="true function")
    ax1.plot(x, fit, color="C3", label="network")
    ax1.scatter(*points, s=16, zorder=3, label="training points")
    ax1.set(ylim=(-1.8, 1.8), xlabel="$x$", title=f"mean squared error vs the true function: {error:.3f}")
    ax1.legend(fontsize=9, loc="lower right")
    ax2.plot(x, slope, color="C2")
    ax2.plot(points[0], torch.zeros(len(points[0])), "|", color="C0", ms=10, label="training $x$")
    ax2.set(ylim=(-25, 25), xlabel="$x$", ylabel="$f'(x)$",
            title=f"slope; mean $f'^2$ = {float(slope.pow(2).mean()):.2f}")
    ax2.legend(fontsize=9)
    fig.tight_layout()
    return fig


def dropout_runs(histories: Mapping[float, Any], p: float) -> Figure:
    """Training runs with dropout, ``histories`` (drop probability -> a history with ``epoch_steps`` and the lists
    ``"train_loss"``, ``"val_loss"``, ``"val_accuracy"``, one entry per evaluation; 0.0 is the run without dropout).
    Left, middle: the training and validation loss of the run with ``p`` against the run without. Right: every run's
    final validation loss (``p``'s bar red), labelled with its validation accuracy."""
    runs = {f"$p$ = {p:g}": histories[p], "no dropout": histories[0.0]}
    fig, axes = _new_figure((10.0, 3.2))
    for ax, key, colour in ((axes[0], "train_loss", "C0"), (axes[1], "val_loss", "C1")):
        for (label, hist), style in zip(runs.items(), (dict(color=colour), dict(color="0.4", ls=":")), strict=True):
            ax.plot(hist.epoch_steps, hist[key], label=label, **style)
        ax.legend(fontsize=9)
    axes[0].set(yscale="log", xlabel="step", ylabel="cross-entropy", ylim=(1e-3, 3), title="training")
    low = 0.95 * min(min(h["val_loss"]) for h in histories.values())  # the first evaluations would dwarf the rest
    axes[1].set(xlabel="step", ylim=(low, low + 0.7), title="validation")
    finals = [h["val_loss"][-1] for h in histories.values()]
    bars = axes[2].bar([f"{q:g}" for q in histories], finals, color=["C3" if q == p else "0.7" for q in histories])
    axes[2].bar_label(bars, [f"{h['val_accuracy'][-1]:.1%}" for h in histories.values()], fontsize=9)
    axes[2].set(xlabel="drop probability $p$", ylabel="final validation loss",
                ylim=(0.95 * min(finals), max(finals) + 0.3 * (max(finals) - min(finals)) + 0.01),
                title=f"after {histories[p].epoch_steps[-1]} steps (labels: accuracy)")
    fig.tight_layout()
    return fig


def early_stop(steps: Sequence[int], val_loss: Sequence[float], stop: int, best: int, patience: int) -> Figure:
    """Early stopping on one run: the validation loss per evaluation (``steps`` gives each one's training step),
    the evaluation ``stop`` where training ends (red line, the rest shaded) and the ``best`` one, whose weights are
    kept (star)."""
    fig, (ax,) = _new_figure((6.4, 3.0), ncols=1)
    ax.plot(steps, val_loss, color="C1", label="validation loss ($p$ = 0)")
    ax.axvspan(steps[stop], steps[-1], color="0.9", label="not trained")
    ax.plot(steps[best], val_loss[best], "k*", ms=12, label="weights kept")
    ax.axvline(steps[stop], color="C3", lw=1, label="stop")
    ax.set(xlabel="step", ylabel="validation cross-entropy", ylim=(0.95 * min(val_loss), 0.95 * min(val_loss) + 0.5),
           title=f"patience {patience}: stop at step {steps[stop]}, keep step {steps[best]}")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def checkerboard(flat: torch.Tensor, transposed: torch.Tensor, resized: torch.Tensor, kernel_size: int,
                 stride: int) -> Figure:
    """Checkerboard artefacts of up-sampling by ``stride`` with a constant ``kernel_size``×``kernel_size`` kernel:
    ``flat``, the interior of the transposed convolution of an input of ones (grey from 0 to 2, titled with its
    range: one value if the output is flat), then a photo up-sampled by that transposed convolution
    (``transposed``) and by nearest up-sampling followed by the convolution (``resized``)."""
    k = f"{kernel_size}×{kernel_size}"
    return image_panels({
        f"flat input, transposed conv\nvalues {flat.min():.2f} … {flat.max():.2f}": (flat, dict(vmax=2)),
        f"transposed conv\n{k} kernel, stride {stride}": transposed,
        f"nearest ×{stride}, then {k} conv": resized,
    }, ncols=3, figsize=(9.6, 3.9))


def downsampling(photo: torch.Tensor, factor: int, down: Mapping[str, torch.Tensor], space_to_depth: torch.Tensor,
                 back: Mapping[str, torch.Tensor], shuffled: torch.Tensor) -> Figure:
    """Down-sampling a ``photo`` (1, 1, H, W) by ``factor`` r, and what comes back. First row: each of ``down``
    (name -> (1, 1, H/r, W/r)), titled with its shape, then the r² channels of ``space_to_depth`` (1, r², H/r, W/r)
    as a mosaic (tile (a, b) is channel a·r + b). Second row: each of ``back`` (name -> that result brought back to
    (1, 1, H, W)), titled with its root-mean-square error against the photo, then ``shuffled``, the mosaic put back
    by pixel shuffle, titled with its largest error."""
    def rms(image):
        return (image - photo).pow(2).mean().sqrt().item()

    return image_panels(
        [(f"{name}\n(1, {y.shape[-2]}, {y.shape[-1]})", y) for name, y in down.items()]
        + [(f"space-to-depth\n({factor * factor}, {space_to_depth.shape[-2]}, {space_to_depth.shape[-1]})",
            image_grid(space_to_depth[0], factor))]
        + [(f"nearest ×{factor}: RMS error {rms(b):.3f}", b) for b in back.values()]
        + [(f"pixel_shuffle: max error {(shuffled - photo).abs().max().item():.3f}", shuffled)],
        ncols=4, figsize=(10.0, 5.6))


def upsampling(low: torch.Tensor, original: torch.Tensor, results: Mapping[str, torch.Tensor],
               errors: Mapping[str, float]) -> Figure:
    """Up-sampling an image ``low`` back to the size of the ``original`` it was pooled from: ``low``, then each of
    ``results`` (name -> the up-sampled image) titled with its error (``errors``, name -> a number), four to a row,
    with the ``original`` first in the second row."""
    panels = [(f"{name}\nerror {errors[name]:.3f}", y) for name, y in results.items()]
    panels.insert(0, (f"input ({low.shape[-2]}×{low.shape[-1]})", low))
    panels.insert(4, (f"original ({original.shape[-2]}×{original.shape[-1]})", original))
    return image_panels(panels, ncols=4, figsize=(10.0, 5.8), fontsize=9)
