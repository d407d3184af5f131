"""Down-sampling (下采样) inside a network: four ways to halve a feature map, trained on digits, and how much a
one-pixel shift of the input changes what a stride-2 layer outputs.

Chapter: ``book/convnets/pooling.ipynb``.

The four down-sampling layers, each halving H and W of a (B, C, H, W) map:

- ``"max"``: 2×2 max pooling; ``"avg"``: 2×2 average pooling — fixed, no parameters;
- ``"conv"``: a learned 3×3 convolution with stride 2 (步长卷积) and a ReLU, an extra layer with ``C (9 C + 1)``
  parameters, the replacement of pooling in the "all convolutional net";
- ``"space_to_depth"``: :func:`dlbook.resampling.pixel_unshuffle`, which drops nothing and moves every 2×2 block into
  ``4 C`` channels, so the layer after it reads four times as many channels.

:func:`small_cnn` puts one of them after each of two convolutions; :func:`train_run` trains it with fixed seeds.
:func:`shift_change` measures shift consistency: how far ``f(shift(x))`` is from the best-aligned ``f(x)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from dlbook._checks import check_tensor, non_negative_int, number, one_of, positive_int
from dlbook.resampling import pixel_unshuffle
from dlbook.training import classification_loss, evaluate, train

__all__ = ["DOWNSAMPLERS", "SpaceToDepth", "downsampler", "small_cnn", "count_parameters", "Run", "train_run",
           "shift_change"]

DOWNSAMPLERS = ("max", "avg", "conv", "space_to_depth")


class SpaceToDepth(torch.nn.Module):
    """:func:`~dlbook.resampling.pixel_unshuffle` with factor 2 as a layer: (B, C, H, W) -> (B, 4C, H/2, W/2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_unshuffle(x, 2)


def downsampler(kind: str, channels: int, *, dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, int]:
    """The layer of ``kind`` (one of :data:`DOWNSAMPLERS`) that halves H and W of a ``channels``-channel map, and
    the number of channels it outputs (``4 * channels`` for space-to-depth, else ``channels``)."""
    C = positive_int(channels, "channels")
    if one_of(kind, "kind", DOWNSAMPLERS) == "space_to_depth":
        return SpaceToDepth(), 4 * C
    if kind == "conv":  # an extra learned layer: C * 9 * C weights and C biases
        return torch.nn.Sequential(torch.nn.Conv2d(C, C, 3, stride=2, padding=1, dtype=dtype), torch.nn.ReLU()), C
    return (torch.nn.MaxPool2d(2) if kind == "max" else torch.nn.AvgPool2d(2)), C


def small_cnn(kind: str, width: int = 8, *, classes: int = 10, size: int = 28,
              dtype: torch.dtype = torch.float32) -> torch.nn.Sequential:
    """conv 3×3 (1 -> w) · ReLU · down · conv 3×3 (-> 2w) · ReLU · down · flatten · linear (-> ``classes``).

    Input (B, 1, size, size) with ``size`` divisible by 4; output (B, classes) logits; parameters of ``dtype``.
    Both convolutions keep the size (padding 1); each "down" is ``downsampler(kind, ...)``, so only that layer
    differs between kinds, and what it passes on sets the input width of the layer after it.
    """
    w, n = positive_int(width, "width"), positive_int(size, "size")
    if n % 4:
        raise ValueError(f"size must be divisible by 4 (two halvings), got {size}")
    down1, c1 = downsampler(kind, w, dtype=dtype)
    down2, c2 = downsampler(kind, 2 * w, dtype=dtype)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, w, 3, padding=1, dtype=dtype), torch.nn.ReLU(), down1,  # (B, c1, n/2, n/2)
        torch.nn.Conv2d(c1, 2 * w, 3, padding=1, dtype=dtype), torch.nn.ReLU(), down2,  # (B, c2, n/4, n/4)
        torch.nn.Flatten(), torch.nn.Linear(c2 * (n // 4) ** 2, positive_int(classes, "classes"), dtype=dtype))


def count_parameters(model: torch.nn.Module) -> int:
    """The number of learned numbers in ``model``: the sum of ``p.numel()`` over its parameters."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class Run:
    """One run of :func:`train_run`: parameter count, test accuracy in [0, 1], wall-clock seconds of training and
    testing, and the trained model."""

    kind: str
    seed: int
    parameters: int
    accuracy: float
    seconds: float
    model: torch.nn.Module = field(repr=False, compare=False)


def train_run(kind: str, train_data: tuple[torch.Tensor, torch.Tensor], test_data: tuple[torch.Tensor, torch.Tensor],
              *, seed: int, epochs: int = 2, batch_size: int = 32, lr: float = 3e-3) -> Run:
    """Train ``small_cnn(kind)`` with Adam on ``train_data`` = (images (N, 1, H, W), labels (N,)); return its
    accuracy on ``test_data``. The network takes the images' dtype.

    ``seed`` fixes the initial weights and the order of the batches: the same arguments give the same run. All of it
    runs inside ``torch.random.fork_rng``, so the caller's global random state is left as it was.
    """
    x, y = train_data
    check_tensor(x, "train_data images", (4,))
    s = non_negative_int(seed, "seed")
    with torch.random.fork_rng():
        torch.manual_seed(s)  # the initial weights
        model = small_cnn(kind, size=x.shape[-1], dtype=x.dtype)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                             shuffle=True, generator=torch.Generator().manual_seed(s))
        optimizer = torch.optim.Adam(model.parameters(), lr=number(lr, "lr", minimum=0))
        start = time.perf_counter()
        train(model, loader, classification_loss, optimizer, epochs=epochs)
        test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*test_data), batch_size=1000)
        accuracy = evaluate(model, test_loader, torch.nn.functional.cross_entropy)["accuracy"]
    return Run(kind, s, count_parameters(model), accuracy, time.perf_counter() - start, model)


def shift_change(f: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, shift: int = 1, *,
                 dims: Sequence[int] = (-1, -2), stride: int = 2) -> torch.Tensor:
    """How much a stride-``s`` map ``f`` changes when its input moves ``shift`` pixels along each of ``dims``:

    .. math::  \\Delta = \\min_{d} \\frac{\\lVert f(\\mathrm{roll}(x, \\text{shift})) - \\mathrm{roll}(f(x), d)
               \\rVert}{\\lVert f(x) \\rVert}, \\qquad d \\in \\{\\lfloor \\text{shift}/s \\rfloor,
               \\lceil \\text{shift}/s \\rceil\\},

    per image: the output of the moved input against the best-aligned output of the unmoved one. ``images``
    (N, C, H, W) should have an empty border at least ``shift`` wide, so that the circular ``torch.roll`` is a plain
    translation. Returns (len(dims), N). 0 means ``f`` is equivariant to the shift: a shift by a multiple of ``s``
    allows that, a 1-pixel shift (half an output pixel) does not.
    """
    x = check_tensor(images, "images", (4,))
    n, s = non_negative_int(shift, "shift"), positive_int(stride, "stride")
    before = f(x)  # (N, C', H', W')
    norm = before.flatten(1).norm(dim=1)  # (N,)
    out = []
    for dim in dims:
        after = f(torch.roll(x, n, dims=dim))  # (N, C', H', W')
        changes = [(after - torch.roll(before, d, dims=dim)).flatten(1).norm(dim=1) for d in {n // s, -(-n // s)}]
        out.append(torch.stack(changes).min(dim=0).values / norm)  # (N,)
    return torch.stack(out)  # (len(dims), N)
