"""Pooling (池化): max, average and Lp pooling, and global / adaptive pooling, written out.

Chapter: ``book/convnets/pooling.ipynb``.

A pooling layer slides a window over every channel of a feature map, like a convolution, but instead of a weighted
sum with learned weights it applies a *fixed* summary to the numbers in the window. For an input ``x`` of shape
(B, C, H, W), window ``k``, stride ``s``, padding ``p`` and dilation ``d``, the window of output position ``(i, j)``
holds the input positions

.. math::

    N(i, j) = \\{(i s - p + u d,\\; j s - p + v d) : 0 \\le u < k_h,\\ 0 \\le v < k_w\\}

and the three pools compute, channel by channel,

.. math::

    \\text{max:}\\ y_{ij} = \\max_{N(i,j)} x, \\qquad
    \\text{average:}\\ y_{ij} = \\frac{1}{|N(i,j)|} \\sum_{N(i,j)} x, \\qquad
    \\text{Lp:}\\ y_{ij} = \\Big(\\sum_{N(i,j)} x^p\\Big)^{1/p}.

Lp pooling is a *sum* at ``p = 1`` (not an average), the Euclidean norm of the window at ``p = 2``, and tends to the
maximum as ``p`` grows (for non-negative inputs). It returns one norm per window and scales with its input
(``lp(c x) = c lp(x)`` for ``c > 0``): it is not a normalisation. Pooling has no parameters: nothing in it is learned.

The output size per dimension is ``floor((H + 2p - d(k - 1) - 1) / s) + 1`` (``ceil`` instead of ``floor`` with
``ceil_mode=True``, as long as the last window still starts inside the input or the left padding); every pool takes
it, and its refusals, from :func:`dlbook.arithmetic.pool_output_size`.

Public functions mirror their ``torch.nn.functional`` twins: same names, argument order and defaults.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from dlbook._checks import check_tensor, flag, number, pair, positive_int
from dlbook.arithmetic import pool_output_size
from dlbook.conv import conv_patches

__all__ = [
    "max_pool2d",
    "avg_pool2d",
    "lp_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "first_max_position",
]

IntPair = int | Sequence[int]


def _pool_args(input, kernel_size, stride, padding, dilation, ceil_mode):
    """Normalise the arguments shared by the pools; return the pairs and the output size (H_out, W_out)."""
    check_tensor(input, "input", (3, 4))
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) else pair(stride, "stride")
    p, d = pair(padding, "padding", minimum=0), pair(dilation, "dilation")
    # the output size, and the refusal of what PyTorch refuses, come from dlbook.arithmetic
    out = tuple(map(pool_output_size, input.shape[-2:], k, s, p, d, (ceil_mode, ceil_mode)))
    return k, s, p, d, out


def _pad_to_windows(x: torch.Tensor, k, s, p, d, out, value: float) -> torch.Tensor:
    """Pad ``x`` (B, C, H, W) with ``value``: ``p`` before, and after as much as the last window reaches.

    With ``ceil_mode`` the last window may hang over the right/bottom edge by more than ``p`` (it may even be wider
    than the input); padding it to full size lets every window be read as a view by
    :func:`dlbook.conv.conv_patches`.
    """
    B, C, H, W = x.shape
    need = [(o - 1) * ss + dd * (kk - 1) + 1 for o, ss, dd, kk in zip(out, s, d, k, strict=True)]  # padded length read
    after_h, after_w = max(need[0] - H - p[0], 0), max(need[1] - W - p[1], 0)
    xp = x.new_full((B, C, p[0] + H + after_h, p[1] + W + after_w), value)  # (B, C, H', W')
    xp[:, :, p[0] : p[0] + H, p[1] : p[1] + W] = x  # a copy into the slice: the gradient flows back to x
    return xp


def first_max_position(windows: torch.Tensor, on_input: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the maximum along the last dimension, choosing as PyTorch's CPU max pooling does (checked on 2.14.1).

    ``windows`` (..., K) holds each window in row-major order; ``on_input`` (broadcastable to it, bool) marks the
    positions that lie on the input rather than on its padding (default: all). The answer is the **first** position
    on the input that equals the window's maximum, so with ties the top-left one wins and a real ``-inf`` beats the
    padding; if a window holds NaN, it is the **last** NaN (PyTorch's loop takes every NaN it meets).
    Returns (..., 1) int64.
    """
    K = windows.shape[-1]
    if on_input is None:
        on_input = torch.ones_like(windows, dtype=torch.bool)
    real = windows.masked_fill(~on_input, float("-inf"))  # (..., K) padding can never be above a real value
    is_max = on_input & (real == real.amax(-1, keepdim=True))  # (..., K) True at every tied maximum
    first_max = is_max.to(torch.uint8).argmax(-1, keepdim=True)  # (..., 1) argmax of 0/1 = its first 1
    is_nan = torch.isnan(windows)  # (..., K)
    last_nan = K - 1 - is_nan.flip(-1).to(torch.uint8).argmax(-1, keepdim=True)  # (..., 1)
    return torch.where(is_nan.any(-1, keepdim=True), last_nan, first_max)  # (..., 1)


def _input_indices(pos: torch.Tensor, on_input: torch.Tensor, k, s, p, d, W: int) -> torch.Tensor:
    """Window positions ``pos`` (B, C, Ho, Wo) as flat input indices ``row * W + col``, as PyTorch reports them."""
    Ho, Wo = pos.shape[-2:]
    top = torch.arange(Ho).view(-1, 1) * s[0] - p[0]  # (Ho, 1) first input row of each window
    left = torch.arange(Wo).view(1, -1) * s[1] - p[1]  # (1, Wo)
    # A dilated window can lie wholly in the padding; PyTorch then reports its first tap at row, col >= 0.
    first_tap = -(top.clamp(max=0) // d[0]) * k[1] - (left.clamp(max=0) // d[1])  # (Ho, Wo)
    pos = torch.where(on_input.any(-1), pos, first_tap)  # (B, C, Ho, Wo)
    rows = top + (pos // k[1]) * d[0]  # (B, C, Ho, Wo)
    cols = left + (pos % k[1]) * d[1]  # (B, C, Ho, Wo)
    return rows * W + cols  # (B, C, Ho, Wo)


def max_pool2d(
    input: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Max pooling: the largest value in each window, as ``torch.nn.functional.max_pool2d``.

    Shapes: input (B, C, H, W) or (C, H, W); output (B, C, H_out, W_out). ``stride`` defaults to ``kernel_size``.
    Padding is with ``-inf`` (a padded position never wins). With ``return_indices=True`` also returns, for every
    output, the flat index ``row * W + col`` of the winning input position (what :func:`max_unpool2d` needs).

    The gradient of an output goes to its winning input only; when several inputs tie for the maximum, the first
    one in row-major order wins (see :func:`first_max_position`), as in PyTorch's CPU kernel (2.14.1); the rule is
    an implementation choice, not mathematics.
    """
    k, s, p, d, (Ho, Wo) = _pool_args(input, kernel_size, stride, padding, dilation, ceil_mode)
    x = input.unsqueeze(0) if input.ndim == 3 else input  # (B, C, H, W)
    B, C, H, W = x.shape
    xp = _pad_to_windows(x, k, s, p, d, (Ho, Wo), float("-inf"))  # (B, C, H', W')
    windows = conv_patches(xp, k, s, d).reshape(B, C, Ho, Wo, k[0] * k[1])  # (B, C, Ho, Wo, kH*kW)
    mask = _pad_to_windows(x.new_ones(1, 1, H, W), k, s, p, d, (Ho, Wo), 0.0)  # (1, 1, H', W') 1 on the input
    on_input = conv_patches(mask, k, s, d).reshape(Ho, Wo, k[0] * k[1]) > 0  # (Ho, Wo, kH*kW)
    pos = first_max_position(windows, on_input)  # (B, C, Ho, Wo, 1)
    y = windows.gather(-1, pos).squeeze(-1)  # (B, C, Ho, Wo); gather sends the gradient to the winner only
    if not return_indices:
        return y.squeeze(0) if input.ndim == 3 else y
    indices = _input_indices(pos.squeeze(-1), on_input, k, s, p, d, W)  # (B, C, Ho, Wo)
    return (y.squeeze(0), indices.squeeze(0)) if input.ndim == 3 else (y, indices)


def _window_sums(x: torch.Tensor, k, s, p, out) -> torch.Tensor:
    """Sum of each (undilated) window of the zero-padded ``x`` (B, C, H, W) -> (B, C, Ho, Wo)."""
    xp = _pad_to_windows(x, k, s, p, (1, 1), out, 0.0)  # (B, C, H', W')
    return conv_patches(xp, k, s, (1, 1)).sum(dim=(-2, -1))  # (B, C, Ho, Wo)


def _window_counts(x: torch.Tensor, k, s, p, out, *, include_pad: bool) -> torch.Tensor:
    """How many positions of each window lie on the input (``include_pad=False``) or on the input plus its
    ``padding`` border (``include_pad=True``); positions past that, reached only with ``ceil_mode``, never count.
    """
    H, W = x.shape[-2:]
    if include_pad:
        ones = x.new_ones(1, 1, H + 2 * p[0], W + 2 * p[1])  # (1, 1, H+2p, W+2p)
        return _window_sums(ones, k, s, (0, 0), out)  # (1, 1, Ho, Wo)
    return _window_sums(x.new_ones(1, 1, H, W), k, s, p, out)  # (1, 1, Ho, Wo)


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """Average pooling: the mean of each window, as ``torch.nn.functional.avg_pool2d``.

    Shapes: input (B, C, H, W) or (C, H, W); output (B, C, H_out, W_out). ``stride`` defaults to ``kernel_size``.
    The window sum is divided by

    * ``divisor_override`` if given (a positive int here; PyTorch also accepts negative ones);
    * else, with ``count_include_pad=True`` (the default), the number of window positions on the input *or its
      zero padding* — so a corner window with ``padding=1`` averages in zeros;
    * else the number of window positions on the input itself.

    Positions beyond the padding, which only ``ceil_mode=True`` windows reach, never count.
    """
    k, s, p, _, out = _pool_args(input, kernel_size, stride, padding, 1, ceil_mode)
    include_pad = flag(count_include_pad, "count_include_pad")
    x = input.unsqueeze(0) if input.ndim == 3 else input  # (B, C, H, W)
    sums = _window_sums(x, k, s, p, out)  # (B, C, Ho, Wo)
    if divisor_override is not None:
        y = sums / positive_int(divisor_override, "divisor_override")
    else:
        y = sums / _window_counts(x, k, s, p, out, include_pad=include_pad)  # (B, C, Ho, Wo)
    return y.squeeze(0) if input.ndim == 3 else y


def lp_pool2d(
    input: torch.Tensor,
    norm_type: float,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """Power-sum pooling ``(sum over the window of x^p)^(1/p)``, as ``torch.nn.functional.lp_pool2d``.

    Shapes: input (B, C, H, W) or (C, H, W); output (B, C, H_out, W_out). ``norm_type`` is ``p``; no padding.

    What it computes, exactly as PyTorch 2.14.1 does (its ``F.lp_pool2d`` is ``avg_pool2d(x**p)`` times ``kH * kW``,
    to the power ``1/p``):

    * ``x^p`` is taken **without** an absolute value: for ``p = 1`` the result is the plain window *sum* (negative
      if the window is), and for a negative window sum with odd or fractional ``p`` the root is NaN;
    * ``p = inf`` gives ``max |x|`` and ``p = -inf`` gives ``min |x|`` over the window;
    * a ``ceil_mode`` window that hangs over the edge averages over its ``n`` positions on the input and multiplies
      by ``kH * kW``, i.e. it gives ``(kH kW / n * sum x^p)^(1/p)``, not the sum over what it covers;
    * where the window's power sum is exactly 0 the gradient is 0 (not NaN).
    """
    if number(norm_type, "norm_type", allow_inf=True) == 0:
        raise ValueError("norm_type must be a non-zero number, got 0")
    k, s, p, _, out = _pool_args(input, kernel_size, stride, 0, 1, ceil_mode)
    if math.isinf(norm_type):  # the limits p -> +inf and p -> -inf, on |x|
        sign = 1 if norm_type > 0 else -1
        return sign * max_pool2d(sign * input.abs(), k, s, 0, 1, ceil_mode)
    x = input.unsqueeze(0) if input.ndim == 3 else input  # (B, C, H, W)
    power_sums = _window_sums(x.pow(norm_type), k, s, p, out)  # (B, C, Ho, Wo)
    on_input = _window_counts(x, k, s, p, out, include_pad=False)  # (1, 1, Ho, Wo)
    total = power_sums * (k[0] * k[1] / on_input)  # (B, C, Ho, Wo); == power_sums for windows inside the input
    # Where the power sum is exactly 0, PyTorch sets the gradient to 0 instead of 0 * inf.
    live = total != 0  # (B, C, Ho, Wo)
    safe = torch.where(live, total, torch.ones_like(total))  # no 0^(1/p - 1) = inf in the backward pass
    y = torch.where(live, safe.pow(1.0 / norm_type), total.pow(1.0 / norm_type).detach())  # (B, C, Ho, Wo)
    return y.squeeze(0) if input.ndim == 3 else y


def _adaptive_size(input: torch.Tensor, output_size) -> tuple[int, int]:
    """``output_size`` as a pair of ints: an int means both dimensions, ``None`` keeps the input's size."""
    H, W = check_tensor(input, "input", (3, 4)).shape[-2:]
    size = (output_size, output_size) if output_size is None or isinstance(output_size, int) else output_size
    if isinstance(size, Sequence) and len(size) == 2:
        size = tuple(n if o is None else o for o, n in zip(size, (H, W), strict=True))
    return pair(size, "output_size")


def _adaptive_bins(x: torch.Tensor, Ho: int, Wo: int) -> Iterator[tuple[int, int, int, int, torch.Tensor]]:
    """Every bin of ``x`` (B, C, H, W) as ``(i, j, top, left, window)``: bin ``i`` of ``Ho`` covers the rows
    ``floor(i H / Ho)`` to ``ceil((i + 1) H / Ho)`` (excluded), and likewise for the columns."""
    H, W = x.shape[-2:]
    for i in range(Ho):
        r0, r1 = (i * H) // Ho, -(-((i + 1) * H) // Ho)
        for j in range(Wo):
            c0, c1 = (j * W) // Wo, -(-((j + 1) * W) // Wo)
            yield i, j, r0, c0, x[:, :, r0:r1, c0:c1]  # window (B, C, r1 - r0, c1 - c0)


def adaptive_avg_pool2d(input: torch.Tensor, output_size: int | Sequence[int | None]) -> torch.Tensor:
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Shapes: input (B, C, H, W) or (C, H, W); output (B, C, *output_size). Output cell ``(i, j)`` averages rows
    ``floor(i H / H_out)`` to ``ceil((i + 1) H / H_out)`` (and likewise columns), so the windows may differ in size
    by one and overlap. ``output_size=1`` is global average pooling.
    """
    Ho, Wo = _adaptive_size(input, output_size)
    x = input.unsqueeze(0) if input.ndim == 3 else input  # (B, C, H, W)
    y = x.new_zeros(*x.shape[:2], Ho, Wo)  # (B, C, Ho, Wo)
    for i, j, _, _, window in _adaptive_bins(x, Ho, Wo):
        y[:, :, i, j] = window.mean(dim=(-2, -1))  # (B, C)
    return y.squeeze(0) if input.ndim == 3 else y


def adaptive_max_pool2d(
    input: torch.Tensor, output_size: int | Sequence[int | None], return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Max pooling to a fixed output size, as ``torch.nn.functional.adaptive_max_pool2d`` (bins as in
    :func:`adaptive_avg_pool2d`; ties go to the first maximum in row-major order).
    """
    Ho, Wo = _adaptive_size(input, output_size)
    x = input.unsqueeze(0) if input.ndim == 3 else input  # (B, C, H, W)
    y = x.new_zeros(*x.shape[:2], Ho, Wo)  # (B, C, Ho, Wo)
    indices = torch.zeros(y.shape, dtype=torch.int64)  # (B, C, Ho, Wo) flat positions in the H*W input
    for i, j, top, left, window in _adaptive_bins(x, Ho, Wo):
        w = window.shape[-1]
        flat = window.flatten(-2)  # (B, C, h*w)
        pos = first_max_position(flat)  # (B, C, 1)
        y[:, :, i, j] = flat.gather(-1, pos)[..., 0]  # (B, C)
        indices[:, :, i, j] = (top + pos[..., 0] // w) * x.shape[-1] + left + pos[..., 0] % w
    if input.ndim == 3:
        y, indices = y.squeeze(0), indices.squeeze(0)
    return (y, indices) if return_indices else y


def global_avg_pool2d(input: torch.Tensor) -> torch.Tensor:
    """The mean of each whole channel: (B, C, H, W) -> (B, C, 1, 1). Same as ``adaptive_avg_pool2d(input, 1)``."""
    check_tensor(input, "input", (3, 4))
    return input.mean(dim=(-2, -1), keepdim=True)  # (B, C, 1, 1)


def global_max_pool2d(input: torch.Tensor) -> torch.Tensor:
    """The maximum of each whole channel: (B, C, H, W) -> (B, C, 1, 1). Same as ``adaptive_max_pool2d(input, 1)``,
    gradient included (ties: the first maximum in row-major order gets it all)."""
    check_tensor(input, "input", (3, 4))
    flat = input.flatten(-2)  # (B, C, H*W)
    return flat.gather(-1, first_max_position(flat)).unsqueeze(-1)  # (B, C, 1, 1)
