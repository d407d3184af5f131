"""One figure style for the whole book, and helpers that show images, kernels and feature maps with their shapes.

Every helper takes tensors or arrays and returns the matplotlib ``Figure`` it drew (so that
:func:`dlbook.widgets.interact` can render it into a frame); none of them keeps state between calls.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from dlbook._checks import check_tensor, non_negative_int, one_of, positive_int

__all__ = [
    "STYLE",
    "use_book_style",
    "as_image",
    "shape_title",
    "show_images",
    "show_kernel",
    "write_numbers",
    "sample_photo",
    "image_grid",
    "sliding_window_animation",
    "plot_history",
    "plot_learning_curves",
]

STYLE: dict[str, Any] = {
    "figure.dpi": 90,
    "figure.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",  # show pixels as pixels: interpolation would hide what a kernel did
    "image.cmap": "gray",
}


def use_book_style() -> None:
    """Apply :data:`STYLE` to matplotlib (called in each chapter's setup cell).

    In a notebook, figures are also rendered at twice their pixel size and shown at their size ("retina"), so that
    labels stay sharp on high-density screens and when a reader zooms.
    """
    import matplotlib as mpl

    mpl.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: no inline figures to configure
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def as_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 2-D (H, W) or (H, W, 3) NumPy array from a tensor of shape (H, W), (1, H, W), (3, H, W) or (1, C, H, W)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"cannot show an array of shape {x.shape} as an image")
    return a


def shape_title(name: str, x: torch.Tensor | np.ndarray) -> str:
    """``"name  (H×W)"`` — the title convention of the book: every picture says its shape."""
    return f"{name}  ({'×'.join(str(s) for s in tuple(x.shape))})"


def show_images(
    images: Sequence[torch.Tensor | np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    size: float = 2.6,
    cmap: str = "gray",
    symmetric: bool = False,
    suptitle: str | None = None,
):
    """Show images in a grid, each titled with its name and shape. ``symmetric`` centres the colour map on 0."""
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("images must not be empty")
    titles = list(titles) if titles is not None else [""] * n
    if len(titles) != n:
        raise ValueError(f"got {n} images but {len(titles)} titles")
    ncols = ncols or n
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles, strict=False):
        a = as_image(img)
        kwargs: dict[str, Any] = {"cmap": cmap if a.ndim == 2 else None}
        if symmetric and a.ndim == 2:
            m = float(np.abs(a).max()) or 1.0
            kwargs.update(vmin=-m, vmax=m, cmap="RdBu_r")
        ax.imshow(np.clip(a, 0, 1) if a.ndim == 3 else a, **kwargs)
        ax.set_title(shape_title(title, a) if title else "×".join(map(str, a.shape)))
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    plt.close(fig)  # returned, not shown: a notebook displays the returned figure once
    return fig


@functools.lru_cache(maxsize=4096)
def _glyphs(text: str, font_file: str, size: float) -> Any:
    """The outline of ``text`` in the font file ``font_file`` at ``size`` points, in points, centred on (0, 0);
    read-only, since every figure that writes this text in this font shares it. Blank text: an empty path."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    if not text.strip():  # TextPath fails on it; Text draws nothing
        return Path(np.zeros((1, 2)), [Path.MOVETO], readonly=True)
    path = TextPath((0, 0), text, prop=FontProperties(fname=font_file, size=size))
    box = path.get_extents()
    centred = path.transformed(Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2))
    return Path(centred.vertices, centred.codes, readonly=True)


def write_numbers(ax, xy: np.ndarray, labels: Sequence[str], fontsize: float, colours: Sequence[Any]):
    """Write ``labels[i]`` centred at ``xy[i]`` (data coordinates, shape (n, 2)) in ``colours[i]`` (or one colour for
    all), as one artist.

    The glyph outlines of all the labels go into one ``PathCollection`` (returned; its ``written`` attribute lists the
    labels), each outline made once per text and font. A figure that a slider redraws on every move draws a grid of 144
    numbers this way in about a third of the time that 144 ``Text`` artists take: each of them is laid out and
    rendered by FreeType on every draw. Meant for short numbers: no kerning across labels, no wrapping, no maths.
    """
    from matplotlib.collections import PathCollection
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.transforms import Affine2D

    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if len(labels) != len(xy):
        raise ValueError(f"write_numbers: {len(labels)} labels for {len(xy)} positions xy")
    if len(colours) not in (1, len(labels)):
        raise ValueError(f"write_numbers: colours must hold 1 colour or one per label ({len(labels)}), got "
                         f"{len(colours)}")
    font_file = findfont(FontProperties(size=fontsize))  # the font the rcParams choose now: part of the cache key
    collection = PathCollection([_glyphs(label, font_file, fontsize) for label in labels], offsets=xy,
                                offset_transform=ax.transData, facecolors=colours, edgecolors="none",
                                zorder=3)  # above the cells, as Text is
    collection.set_transform(Affine2D().scale(1 / 72) + ax.figure.dpi_scale_trans)  # points -> inches -> pixels
    collection.written = list(labels)
    ax.add_collection(collection, autolim=False)
    return collection


def show_kernel(kernel: torch.Tensor | np.ndarray, title: str = "kernel", ax=None, fmt: str = "{:.2g}",
                fontsize: float = 8):
    """Draw a small 2-D kernel as a heat map with each weight written in its cell by ``fmt``, ``fontsize`` points
    (``fmt=""``: no numbers; none either above 81 weights). Returns the figure."""
    import matplotlib.pyplot as plt

    k = as_image(kernel)
    if k.ndim != 2:
        raise ValueError(f"a kernel to show must be 2-D, got shape {k.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * k.shape[1] + 1.2, 0.45 * k.shape[0] + 1.0))
        plt.close(fig)  # returned, not shown: a notebook displays the returned figure once
    else:
        fig = ax.figure
    m = float(np.abs(k).max()) or 1.0
    ax.imshow(k, cmap="RdBu_r", vmin=-m, vmax=m)
    if k.size <= 81 and fmt:  # write the numbers only while they stay legible
        rows, cols = np.indices(k.shape)
        # the minus sign of the tick labels (U+2212), not a hyphen
        labels = [fmt.format(v).replace("-", "\N{MINUS SIGN}") for v in k.ravel()]
        write_numbers(ax, np.c_[cols.ravel(), rows.ravel()], labels, fontsize,
                      ["white" if abs(v) > 0.6 * m else "black" for v in k.ravel()])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(shape_title(title, k))
    return fig


def sample_photo(size: int | None = 128, gray: bool = True) -> torch.Tensor:
    """Grace Hopper's portrait, which matplotlib ships, as a float tensor in [0, 1].

    Shape (1, size, size) if ``gray`` else (3, size, size) (a centre crop resized by area averaging);
    ``size=None`` keeps the full photo.
    """
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = torch.from_numpy(np.asarray(mpimg.imread(f, format="jpg"), dtype=np.float64) / 255.0)  # (H, W, 3)
    x = img.permute(2, 0, 1)  # (3, H, W)
    if gray:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)  # ITU-R BT.601 luma
        x = (x * weights).sum(0, keepdim=True)  # (1, H, W)
    if size is not None:
        H, W = x.shape[-2:]
        s = min(H, W)
        top, left = (H - s) // 2, (W - s) // 2
        x = x[:, top : top + s, left : left + s]
        x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="area")[0]
    return x.to(torch.get_default_dtype()).contiguous()


def sliding_window_animation(x: torch.Tensor, kernel: torch.Tensor, interval: int = 700):
    """A ``matplotlib.animation.FuncAnimation`` of a kernel sliding over a small 2-D input (valid, stride 1).

    Left: the input (H, W) with the current window outlined and each value written in its cell; middle: the kernel;
    right: the output (H-kH+1, W-kW+1) filling in one cell per frame, with the sum of products for that cell below.
    Show it with ``IPython.display.HTML(anim.to_jshtml())``, which works offline and without a kernel.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    from dlbook.conv import cross_correlate2d

    a, k = as_image(x).astype(float), as_image(kernel).astype(float)
    if a.ndim != 2 or k.ndim != 2:
        raise ValueError("sliding_window_animation takes a 2-D input and a 2-D kernel")
    y = cross_correlate2d(torch.as_tensor(a), torch.as_tensor(k)).numpy()  # (Ho, Wo)
    fig, parts = _sliding_window_panels(a, k, y)
    shown = np.full_like(y, np.nan)  # the outputs computed so far

    def draw(frame: int):
        i, j = divmod(frame, y.shape[1])
        parts["window"].set_xy((j - 0.5, i - 0.5))
        parts["cell"].set_xy((j - 0.5, i - 0.5))
        shown[i, j] = y[i, j]
        parts["output"].set_data(shown)
        parts["values"][i][j].set_text(f"{y[i, j]:g}")
        parts["formula"].set_text(_sum_of_products(a, k, y, i, j))
        return [parts["window"], parts["cell"], parts["output"]]

    anim = animation.FuncAnimation(fig, draw, frames=y.size, interval=interval, blit=False)
    plt.close(fig)  # the animation is shown through its HTML player, not as a static figure
    return anim


def _sum_of_products(a: np.ndarray, k: np.ndarray, y: np.ndarray, i: int, j: int) -> str:
    """``y[i,j] = a·k + ... = y`` for output (i, j), negative factors in brackets, cut at 90 characters."""
    def num(v: float) -> str:
        return f"({v:g})" if v < 0 else f"{v:g}"

    kh, kw = k.shape
    terms = " + ".join(f"{num(a[i + u, j + v])}·{num(k[u, v])}" for u in range(kh) for v in range(kw))
    if len(terms) > 90:
        terms = terms[:87] + "…"
    return f"y[{i},{j}] = {terms} = {y[i, j]:g}"


def _sliding_window_panels(a: np.ndarray, k: np.ndarray, y: np.ndarray):
    """The still parts of :func:`sliding_window_animation`'s figure, and a dict of the parts each frame changes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.9), gridspec_kw={"width_ratios": [a.shape[1], k.shape[1],
                                                                                        y.shape[1]]})
    lim = max(np.abs(a).max(), 1e-9)
    klim = max(np.abs(k).max(), 1e-9) * 1.8  # pale colours, so that the numbers stay readable
    axes[0].imshow(a, cmap="Blues", vmin=-lim * 0.2, vmax=lim * 1.6)
    axes[1].imshow(k, cmap="RdBu_r", vmin=-klim, vmax=klim)
    output = axes[2].imshow(np.full_like(y, np.nan), cmap="Oranges", vmin=np.nanmin(y) - 1, vmax=np.nanmax(y) + 1)
    for ax, arr in ((axes[0], a), (axes[1], k)):
        for (i, j), v in np.ndenumerate(arr):
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=11)
    values = [[axes[2].text(j, i, "", ha="center", va="center", fontsize=11) for j in range(y.shape[1])]
              for i in range(y.shape[0])]
    for ax, name, arr in zip(axes, ("input", "kernel", "output"), (a, k, y), strict=True):
        ax.set_title(shape_title(name, arr))
        ax.set_xticks([])
        ax.set_yticks([])
    window = Rectangle((-0.5, -0.5), k.shape[1], k.shape[0], fill=False, edgecolor="crimson", linewidth=3)
    cell = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor="crimson", linewidth=3)
    axes[0].add_patch(window)
    axes[2].add_patch(cell)
    formula = fig.text(0.5, 0.03, "", ha="center", va="bottom", fontsize=10, family="monospace")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig, dict(window=window, cell=cell, output=output, values=values, formula=formula)


def image_grid(images: torch.Tensor, ncols: int, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Tile images (N, H, W) or (N, 1, H, W) into one (rows·(H+pad)-pad, ncols·(W+pad)-pad) image, row by row,
    with ``pad`` pixels of ``pad_value`` between tiles (unused tiles are ``pad_value`` too).

    One ``imshow`` of the mosaic draws many small digits far faster than one axes per digit.
    """
    check_tensor(images, "images", floating=False)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]  # (N, H, W)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {tuple(images.shape)}")
    ncols = positive_int(ncols, "ncols")
    pad = non_negative_int(pad, "pad")
    N, H, W = images.shape
    rows = max(-(-N // ncols), 1)
    out = images.new_full((rows * (H + pad) - pad, ncols * (W + pad) - pad), float(pad_value))  # mosaic
    for n in range(N):
        r, c = divmod(n, ncols)
        out[r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = images[n]
    return out


# ------------------------------------------------------------------------------------------ training histories
def plot_history(history, *, title: str | None = None):
    """Three panels of a :class:`dlbook.training.History`: the loss of every step; training and validation loss
    per epoch; validation accuracy (the last two where the history has them). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 2.9))
    axes[0].plot(np.arange(1, history.steps + 1), history.step_loss, lw=0.8, color="#4c72b0")
    axes[0].set(xlabel="optimiser step", ylabel="training loss", title="loss of each step")
    epochs = np.arange(1, len(history.epoch_steps) + 1)
    axes[1].plot(epochs, history["loss"], "o-", label="train")
    if "val_loss" in history.metrics:
        axes[1].plot(epochs, history["val_loss"], "s-", label="validation")
    if "val_accuracy" in history.metrics:
        axes[2].plot(epochs, history["val_accuracy"], "s-", color="#55a868")
    axes[1].set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    axes[1].legend()
    axes[2].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="validation accuracy")
    for ax in axes[1:]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_X_AXES = {"epoch": "epoch", "step": "optimiser steps", "examples": "examples seen"}


def _curve(history, x: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``metric`` at the end of each epoch, against the epoch, the step or the examples seen by then."""
    steps = np.asarray(history.epoch_steps)
    xs = {"epoch": np.arange(1, len(steps) + 1), "step": steps}.get(x)
    if xs is None:
        xs = np.asarray(history.step_examples)[steps - 1]
    return xs, np.asarray(history[metric], dtype=float)


def plot_learning_curves(histories: Mapping[str, Any], *, x: str = "epoch", metric: str = "val_loss",
                         highlight: str | None = None, ax: Any = None, logx: bool = False):
    """One curve of ``metric`` (any name in the histories' ``metrics``, e.g. ``"val_loss"``, ``"loss"``) per run
    against ``x``: ``"epoch"``, ``"step"`` or ``"examples"`` (points at the end of each epoch). With
    ``highlight``, that run is drawn in colour and the others in grey. Returns the Figure."""
    import matplotlib.pyplot as plt

    one_of(x, "x", tuple(_X_AXES))
    one_of(metric, "metric", tuple(next(iter(histories.values())).metrics))
    if highlight is not None:
        one_of(highlight, "highlight", tuple(histories))
    fig, ax = plt.subplots(figsize=(4.6, 3.0)) if ax is None else (ax.figure, ax)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, h) in enumerate(histories.items()):
        if highlight is None:
            ax.plot(*_curve(h, x, metric), "-", lw=1.4, color=colours[k % len(colours)], label=name)
        elif name != highlight:
            ax.plot(*_curve(h, x, metric), "-", lw=0.8, color="#c8c8c8")
    if highlight is not None:
        ax.plot(*_curve(histories[highlight], x, metric), "o-", lw=2.0, ms=3, color="#c44e52", label=highlight)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=_X_AXES[x], ylabel=metric.replace("_", " "))
    ax.legend()
    return fig
