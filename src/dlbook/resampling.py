"""Down-sampling (下采样) and up-sampling (上采样): changing a feature map's height and width by a factor.

Chapter: ``book/convnets/resampling.ipynb``.

Down-sampling by ``r`` takes (B, C, H, W) to (B, C', H/r, W/r). Strided pooling (:mod:`dlbook.pooling`) and
strided convolution (:func:`dlbook.conv.conv2d` with ``stride=r``) summarise or filter each window and drop the rest;
**space-to-depth** (:func:`pixel_unshuffle`) drops nothing: it moves every ``r x r`` block of pixels into ``r^2``
channels, (B, C, H, W) -> (B, C r^2, H/r, W/r), and :func:`pixel_shuffle` moves them back exactly.
:func:`darknet_reorg` is the rearrangement that Darknet's ``reorg`` layer (YOLOv2's passthrough) actually computes:
another bijection, with a different interleaving of channels and space. :func:`passthrough` is how YOLOv2 uses it:
a finer map rearranged to the grid of a deeper one and concatenated with it along the channels.

Keeping every ``r``-th pixel folds frequencies above the new Nyquist limit onto lower ones (aliasing).
:func:`blur_downsample` low-passes with a :func:`binomial_kernel` before it subsamples, as anti-aliased
down-sampling does; the box of ``taps=2`` is average pooling.

Up-sampling by ``r`` goes the other way:

* :func:`upsample_nearest` copies each pixel into an ``r x r`` block;
* :func:`upsample_bilinear` interpolates between the four nearest input pixels;
* :func:`pixel_shuffle` (depth-to-space) turns ``r^2`` channels into an ``r x r`` block;
* :func:`max_unpool2d` puts each value back where :func:`dlbook.pooling.max_pool2d` found it, zeros elsewhere;
* the **transposed convolution** (转置卷积), three ways with the same result:
  :func:`conv_transpose2d_zero_insertion` inserts ``s - 1`` zeros between input pixels, pads the border with
  ``d (k - 1) - p`` zeros (plus ``output_padding`` at the bottom/right), and runs an ordinary stride-1 convolution
  with the kernel flipped and its in/out channels swapped; :func:`conv_transpose2d_loops` adds one scaled copy of
  the kernel per input pixel; :func:`conv_transpose2d` multiplies by the transposed weight matrix and sums the
  stamps into place with col2im (``fold``), which is the transpose of :func:`dlbook.conv.conv2d`'s im2col and
  matrix product. It is the gradient of :func:`dlbook.conv.conv2d` with respect to its input, which is why it is
  also called "backward convolution"; it is *not* an inverse of convolution, whatever the name "deconvolution"
  suggests. :func:`stride_phase_sums` says what it makes of a flat input, which is where checkerboard artefacts
  come from.

Public functions mirror their ``torch.nn.functional`` twins (``pixel_shuffle``, ``pixel_unshuffle``,
``max_unpool2d``, ``conv_transpose2d``; ``upsample_nearest`` and ``upsample_bilinear`` mirror
``interpolate(input, scale_factor=..., mode="nearest" | "bilinear", align_corners=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from dlbook._checks import (
    check_tensor,
    divides,
    flag,
    has_shape,
    int_tuple,
    number,
    pair,
    positive_int,
    same_dtype,
    same_shape,
)
from dlbook.arithmetic import conv_transpose_output_size, unpool_output_size
from dlbook.conv import conv2d
from dlbook.padding import pad2d

__all__ = [
    "pixel_unshuffle",
    "pixel_shuffle",
    "space_to_depth_weight",
    "darknet_reorg",
    "passthrough",
    "binomial_kernel",
    "blur_downsample",
    "upsample_nearest",
    "upsample_bilinear",
    "bilinear_source",
    "max_unpool2d",
    "insert_zeros",
    "transposed_kernel",
    "conv_transpose2d",
    "conv_transpose2d_zero_insertion",
    "conv_transpose2d_loops",
    "stride_phase_sums",
]

IntPair = int | Sequence[int]


def pixel_unshuffle(input: torch.Tensor, downscale_factor: int) -> torch.Tensor:
    """Space-to-depth: every ``r x r`` block of pixels becomes ``r^2`` channels, as
    ``torch.nn.functional.pixel_unshuffle``.

    Shapes: input (*, C, H, W) with H and W divisible by ``r``; output (*, C r^2, H/r, W/r). Output channel
    ``c r^2 + a r + b`` holds the pixels at offset ``(a, b)`` of every block of input channel ``c``:

    .. math::  y[c r^2 + a r + b,\\ i,\\ j] = x[c,\\ i r + a,\\ j r + b]

    Nothing is lost: :func:`pixel_shuffle` with the same ``r`` gives the input back exactly.
    """
    *lead, C, H, W = check_tensor(input, "input", range(3, 9)).shape
    r = positive_int(downscale_factor, "downscale_factor")
    divides(divides(r, H, "downscale_factor", "the input's height"), W, "downscale_factor", "the input's width")
    x = input.reshape(-1, C, H // r, r, W // r, r)  # (N, C, H/r, a, W/r, b): row = i r + a, col = j r + b
    x = x.permute(0, 1, 3, 5, 2, 4)  # (N, C, a, b, H/r, W/r)
    return x.reshape(*lead, C * r * r, H // r, W // r)  # (*, C r^2, H/r, W/r)


def pixel_shuffle(input: torch.Tensor, upscale_factor: int) -> torch.Tensor:
    """Depth-to-space: every ``r^2`` channels become one channel of ``r x r`` blocks, as
    ``torch.nn.functional.pixel_shuffle`` — the exact inverse of :func:`pixel_unshuffle`.

    Shapes: input (*, C r^2, H, W); output (*, C, H r, W r), with ``y[c, i r + a, j r + b] = x[c r^2 + a r + b, i, j]``.
    After a convolution that makes ``C r^2`` channels this is the "sub-pixel convolution" up-sampler.
    """
    *lead, Cr2, H, W = check_tensor(input, "input", range(3, 9)).shape
    r = positive_int(upscale_factor, "upscale_factor")
    C = Cr2 // divides(r * r, Cr2, "upscale_factor**2", "the input's channels")
    x = input.reshape(-1, C, r, r, H, W)  # (N, C, a, b, H, W)
    x = x.permute(0, 1, 4, 2, 5, 3)  # (N, C, H, a, W, b)
    return x.reshape(*lead, C, H * r, W * r)  # (*, C, H r, W r)


def space_to_depth_weight(channels: int, downscale_factor: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The kernel that makes a strided convolution *be* :func:`pixel_unshuffle`.

    Returns (C r^2, 1, r, r): filter ``c r^2 + a r + b`` is 1 at ``(a, b)`` and 0 elsewhere. With
    ``conv2d(x, weight, stride=r, groups=C)`` each filter picks one pixel of every block of its channel, which is
    space-to-depth written as a (fixed, one-hot) strided convolution.
    """
    C = positive_int(channels, "channels")
    r = positive_int(downscale_factor, "downscale_factor")
    eye = torch.eye(r * r, dtype=dtype)  # (r^2, r^2): row a r + b is one-hot at a r + b
    return eye.reshape(1, r * r, 1, r, r).expand(C, r * r, 1, r, r).reshape(C * r * r, 1, r, r)  # (C r^2, 1, r, r)


def darknet_reorg(input: torch.Tensor, stride: int) -> torch.Tensor:
    """Darknet's ``reorg`` layer (YOLOv2's passthrough), forward direction: the shape of space-to-depth, not its layout.

    Shapes: input (B, C, H, W) with ``C`` divisible by ``s^2`` and ``H``, ``W`` by ``s``; output
    (B, C s^2, H/s, W/s). In Redmon's original Darknet, ``forward_reorg_layer`` calls
    ``reorg_cpu(x, w=W, h=H, c=C, ..., forward=0)``, which reads the input buffer as if it had shape (C', H s, W s)
    with ``C' = C / s^2`` and fills a (C, H, W) buffer with

    .. math::  out[k, j, i] = x'[k \\bmod C',\\ j s + \\lfloor o / s \\rfloor,\\ i s + (o \\bmod s)],
               \\qquad o = \\lfloor k / C' \\rfloor,

    a space-to-depth of the *re-read* buffer with the offset as the slow channel index; the layer then declares
    that buffer to be (C s^2, H/s, W/s). Every number is only moved, so it is a permutation and exactly invertible,
    but the channels at output position (j, i) are not the ``s x s`` block at (j, i) of the input.
    """
    B, C, H, W = check_tensor(input, "input", (4,)).shape
    s = positive_int(stride, "stride")
    Cp = C // divides(s * s, C, "stride**2", "the channels")  # C' = C / s^2
    divides(divides(s, H, "stride", "the height"), W, "stride", "the width")
    x = input.reshape(B, Cp, H, s, W, s)  # the buffer read as (B, C', H s, W s), rows j s + a, cols i s + b
    x = x.permute(0, 3, 5, 1, 2, 4)  # (B, a, b, C', H, W): channel k = (a s + b) C' + c'
    return x.reshape(B, C * s * s, H // s, W // s)  # the (B, C, H, W) buffer, declared (B, C s^2, H/s, W/s)


def passthrough(fine: torch.Tensor, deep: torch.Tensor, stride: int = 2, *,
                reorg: Callable[[torch.Tensor, int], torch.Tensor] = pixel_unshuffle) -> torch.Tensor:
    """YOLOv2's passthrough: a finer feature map rearranged to a deeper map's grid, then concatenated before it.

    Shapes: fine (B, C_f, H s, W s), deep (B, C_d, H, W) -> (B, C_f s^2 + C_d, H, W). Nothing is added or pooled:
    channels ``0 .. C_f s^2 - 1`` are ``reorg(fine, s)``, the rest are ``deep`` unchanged, and the layers after it
    learn what to make of both. Darknet writes it as three layers: ``[route]`` back to the fine map, ``[reorg]
    stride=s``, and ``[route] layers=-1,-k``, which concatenates its layers' outputs along the channels in the order
    listed (the reorg's first). ``reorg`` is :func:`pixel_unshuffle` (the paper's "stacking adjacent features into
    different channels") or :func:`darknet_reorg` (what Darknet's code computes).
    """
    moved = reorg(fine, stride)  # (B, C_f s^2, H, W)
    has_shape(deep, "deep", (moved.shape[0], None, *moved.shape[2:]))  # the same batch and grid as the moved map
    return torch.cat([moved, deep], dim=1)  # (B, C_f s^2 + C_d, H, W)


def binomial_kernel(taps: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The (taps, taps) binomial blur: the outer product of the row ``C(n-1, i) / 2^(n-1)``, ``i = 0 .. n-1``.

    ``taps=1``: [1] (no blur); ``2``: the box [1, 1]/2; ``3``: [1, 2, 1]/4; ``5``: [1, 4, 6, 4, 1]/16. The row is
    the box convolved with itself ``n - 2`` times, so its gain at ``f`` cycles per pixel is ``|cos(pi f)|^(n-1)``:
    1 at ``f = 0`` (the kernel sums to 1) and, for ``n >= 2``, 0 at the Nyquist frequency ``f = 1/2``.
    """
    n = positive_int(taps, "taps")
    row = torch.tensor([math.comb(n - 1, i) for i in range(n)], dtype=dtype) / 2 ** (n - 1)  # (n,)
    return row[:, None] * row[None, :]  # (n, n)


def blur_downsample(input: torch.Tensor, taps: int, stride: IntPair = 2, *,
                    padding_mode: str = "reflect") -> torch.Tensor:
    """Blur every channel with :func:`binomial_kernel` ``(taps)``, then keep every ``stride``-th pixel.

    Shapes: input (B, C, H, W); output (B, C, ceil(H / s_h), ceil(W / s_w)) — the size of ``x[..., ::s, ::s]``.
    The input is padded by ``(taps - 1) // 2`` before and ``taps // 2`` after in each dimension (``padding_mode`` as
    in :func:`dlbook.padding.pad2d`), then convolved depthwise (``groups=C``) with stride ``s``: the "BlurPool"
    of anti-aliased networks, which uses the same padding with ``"reflect"``. Special cases: ``taps=1`` is plain
    decimation ``x[..., ::s, ::s]``; ``taps=2, stride=2`` on even sizes is ``avg_pool2d(x, 2)`` (the padded
    row and column are never read).
    """
    check_tensor(input, "input", (4,))
    n = positive_int(taps, "taps")
    s = pair(stride, "stride")
    C = input.shape[1]
    before, after = (n - 1) // 2, n // 2
    x = pad2d(input, (before, after, before, after), mode=padding_mode)  # (B, C, H + n - 1, W + n - 1)
    weight = binomial_kernel(n, dtype=input.dtype).expand(C, 1, n, n)  # (C, 1, n, n) one blur per channel
    return conv2d(x, weight, stride=s, groups=C)  # (B, C, ceil(H/s), ceil(W/s))


def upsample_nearest(input: torch.Tensor, scale_factor: IntPair) -> torch.Tensor:
    """Nearest-neighbour up-sampling by a whole factor: each pixel becomes an ``s_h x s_w`` block.

    Shapes: input (B, C, H, W) or (C, H, W); output (B, C, H s_h, W s_w), ``y[i, j] = x[floor(i / s_h),
    floor(j / s_w)]``. Same as ``interpolate(input, scale_factor=s, mode="nearest")``; ``scale_factor`` must be a
    positive int or a pair of them here (a fractional factor would copy some pixels more often than others).
    """
    H, W = check_tensor(input, "input", (3, 4)).shape[-2:]
    sh, sw = pair(scale_factor, "scale_factor")  # whole factors only
    rows = torch.arange(H * sh) // sh  # (H sh,) source row of each output row
    cols = torch.arange(W * sw) // sw  # (W sw,)
    return input[..., rows, :][..., cols]  # (B, C, H sh, W sw)


def _scale_pair(scale_factor: object) -> tuple[float, float]:
    """``scale_factor`` as ``(s_h, s_w)``: one positive number for both dimensions, or a pair of them."""
    both = isinstance(scale_factor, Sequence) and not isinstance(scale_factor, str)
    values = tuple(scale_factor) if both else (scale_factor, scale_factor)
    if len(values) != 2:
        raise TypeError(f"scale_factor must be a positive number or a pair of them, got {scale_factor!r}")
    sh, sw = (number(v, "scale_factor", minimum=0.0, strict=True) for v in values)
    return sh, sw


def bilinear_source(n_in: int, n_out: int, scale: float, align_corners: bool) -> torch.Tensor:
    """Where output position ``i`` samples the input, in input pixel coordinates (n_out,), float64.

    ``align_corners=True``: the first and last pixel *centres* of input and output line up,
    ``src = i (n_in - 1) / (n_out - 1)``. ``align_corners=False``: pixels are squares and their *edges* line up,
    ``src = (i + 1/2) / scale - 1/2``, clamped at 0 (PyTorch's rule; ``scale`` is the requested factor).
    Where the output has the input's size (a factor such as 1.2 on 2 pixels), PyTorch copies: ``src = i``.
    """
    i = torch.arange(n_out, dtype=torch.float64)  # (n_out,)
    if n_out == n_in:
        return i
    if align_corners:
        return i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros(n_out, dtype=torch.float64)
    return ((i + 0.5) / scale - 0.5).clamp(min=0.0)  # (n_out,)


def _lerp_along(x: torch.Tensor, dim: int, src: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at the fractional positions ``src``."""
    n = x.shape[dim]
    lo = src.floor().long().clamp(max=n - 1)  # (n_out,) left neighbour
    hi = (lo + 1).clamp(max=n - 1)  # (n_out,) right neighbour (the last pixel is its own neighbour)
    frac = (src - lo).to(x.dtype)  # (n_out,) weight of the right neighbour
    shape = [1] * x.ndim
    shape[dim] = -1
    frac = frac.view(shape)
    return x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac


def upsample_bilinear(input: torch.Tensor, scale_factor: float | Sequence[float],
                      align_corners: bool = False) -> torch.Tensor:
    """Bilinear up-sampling: each output pixel is a weighted mean of the four nearest input pixels.

    Shapes: input (B, C, H, W) or (C, H, W); output (B, C, floor(H s_h), floor(W s_w)). Same as
    ``interpolate(input, scale_factor=s, mode="bilinear", align_corners=align_corners)`` (note that the old
    ``F.upsample_bilinear`` always used ``align_corners=True``). Interpolating along the rows and then along the
    columns is the same as weighting the four neighbours by ``(1 - a)(1 - b), (1 - a) b, a (1 - b), a b``.
    """
    H, W = check_tensor(input, "input", (3, 4)).shape[-2:]
    flag(align_corners, "align_corners")
    sh, sw = _scale_pair(scale_factor)
    Ho, Wo = pair((math.floor(H * sh), math.floor(W * sw)), "the output size floor(input size * scale_factor)")
    y = _lerp_along(input, -2, bilinear_source(H, Ho, sh, align_corners))  # (B, C, Ho, W)
    return _lerp_along(y, -1, bilinear_source(W, Wo, sw, align_corners))  # (B, C, Ho, Wo)


def max_unpool2d(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    output_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Max-unpooling (反池化): put every value back at the position its max-pooling found, zeros elsewhere.

    Shapes: input and indices (B, C, H, W) or (C, H, W), as returned by
    ``max_pool2d(..., return_indices=True)``; output (B, C, H_out, W_out) with
    ``H_out = (H - 1) s - 2p + k`` unless ``output_size`` (the pooled input's size, (H_out, W_out) or the full
    shape) says otherwise. Same as ``torch.nn.functional.max_unpool2d``. It is not a convolution: nothing is
    interpolated; everything but the remembered maxima is 0.
    """
    check_tensor(input, "input", (3, 4))
    if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64:
        raise TypeError(f"indices must be an int64 tensor (from max_pool2d(return_indices=True)), got {indices!r}")
    same_shape(indices, input, "indices", "input")
    k = pair(kernel_size, "kernel_size")
    s, p = k if stride is None else pair(stride, "stride"), pair(padding, "padding", minimum=0)
    # output_size: (H_out, W_out), or the full output shape as PyTorch also takes it
    sizes = (None, None) if output_size is None else int_tuple(output_size, "output_size", (2, input.ndim))[-2:]
    Ho, Wo = map(unpool_output_size, input.shape[-2:], k, s, p, sizes)  # the pooled input's size, by default
    if indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < Ho * Wo:
        raise ValueError(f"indices must lie in [0, {Ho * Wo}) for a {Ho}x{Wo} output, "
                         f"got values from {int(indices.min())} to {int(indices.max())}")
    flat = input.flatten(-2)  # (B, C, H*W)
    out = flat.new_zeros(*flat.shape[:-1], Ho * Wo)  # (B, C, Ho*Wo)
    out = out.scatter(-1, indices.flatten(-2), flat)  # each value to its remembered position
    return out.unflatten(-1, (Ho, Wo))  # (B, C, Ho, Wo)


def insert_zeros(input: torch.Tensor, stride: IntPair) -> torch.Tensor:
    """Put ``s - 1`` zeros between neighbouring pixels: (B, C, H, W) -> (B, C, (H - 1) s_h + 1, (W - 1) s_w + 1).

    The first step of a transposed convolution with stride ``s`` ("fractionally strided": after this, a stride-1
    convolution moves ``1/s`` of an input pixel per output pixel).
    """
    check_tensor(input, "input", (3, 4))
    sh, sw = pair(stride, "stride")
    H, W = input.shape[-2:]
    out = input.new_zeros(*input.shape[:-2], (H - 1) * sh + 1, (W - 1) * sw + 1)  # (B, C, H', W')
    out[..., ::sh, ::sw] = input  # the original pixels, s apart
    return out


def transposed_kernel(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """The kernel of the stride-1 convolution inside :func:`conv_transpose2d_zero_insertion`: swap in/out channels
    and flip.

    ``weight`` (C_in, C_out/G, kH, kW), laid out as ``torch.nn.functional.conv_transpose2d`` wants it, becomes
    (C_out, C_in/G, kH, kW) with both spatial axes reversed, so that
    ``w'[g, o, c, u, v] = w[g, c, o, kH - 1 - u, kW - 1 - v]`` within each group ``g``.
    """
    Cin, Cog, kh, kw = check_tensor(weight, "weight", (4,)).shape
    G = divides(positive_int(groups, "groups"), Cin, "groups", "the weight's input channels (its first dimension)")
    w = weight.reshape(G, Cin // G, Cog, kh, kw)  # (G, C_in/G, C_out/G, kH, kW)
    w = w.transpose(1, 2)  # (G, C_out/G, C_in/G, kH, kW)
    return w.reshape(G * Cog, Cin // G, kh, kw).flip(-2, -1)  # (C_out, C_in/G, kH, kW)


def _transpose_args(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """Check the arguments once, for the three implementations; return the pairs, the groups and (H_out, W_out)."""
    Cin, (H, W) = check_tensor(input, "input", (3, 4)).shape[-3], input.shape[-2:]
    _, Cog, kh, kw = check_tensor(weight, "weight", (4,)).shape
    has_shape(check_tensor(weight, "weight"), "weight", (Cin, Cog, kh, kw))  # (C_in, C_out/G, kH, kW)
    G = divides(positive_int(groups, "groups"), Cin, "groups", "the input's channels")
    same_dtype(input, weight, "input", "weight")
    if bias is not None:
        has_shape(check_tensor(bias, "bias"), "bias", (G * Cog,))
    s, p, d = pair(stride, "stride"), pair(padding, "padding", minimum=0), pair(dilation, "dilation")
    op = pair(output_padding, "output_padding", minimum=0)
    # the output size, and the refusals of output_padding and of padding that crops everything, from arithmetic
    out = tuple(map(conv_transpose_output_size, (H, W), (kh, kw), s, p, op, d))
    return s, p, op, d, G, out


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Transposed convolution as what its name says, the transpose of a convolution's matrix: a matrix product with
    the weight matrix transposed, then col2im. The same result as ``torch.nn.functional.conv_transpose2d``.

    Shapes: input (B, C_in, H, W) or (C_in, H, W); weight (C_in, C_out/G, kH, kW); bias (C_out,) or None;
    output (B, C_out, H_out, W_out) with ``H_out = (H - 1) s - 2p + d (kH - 1) + output_padding + 1``.

    Read as a :func:`dlbook.conv.conv2d` weight, the same tensor is a convolution from C_out to C_in channels, which
    computes ``W im2col(.)``: one row of ``W`` per filter, one column of ``im2col`` per window. Its transpose,
    ``col2im(W^T .)``, runs the two steps backwards:

    1. per group ``g``, the matrix product ``cols = W_g^T X_g``: the group's filters as a (C_in/G, C_out/G kH kW)
       matrix ``W_g``, transposed, times its input read as ``X_g`` (C_in/G, H W). Column ``(i, j)`` of ``cols`` is
       the stamp of input pixel ``(i, j)``: ``sum_c x[c, i, j] w[c, o, u, v]`` for every ``(o, u, v)``;
    2. col2im (``torch.nn.functional.fold``): add tap ``(u, v)`` of stamp ``(i, j)`` to canvas pixel
       ``(i s + u d, j s + v d)``. The canvas, ``(H - 1) s + d (kH - 1) + 1`` rows, is where stamps land;
    3. cut ``p`` rows/columns from each border, keeping ``output_padding`` of the cut ones at the bottom/right
       (rows beyond the canvas, if ``output_padding > p``, are zeros: no stamp reaches them);
    4. add the bias.

    Every product is a weight times an input pixel, ``B C_in (C_out/G) kH kW H W`` of them; the stride-1 convolution
    of :func:`conv_transpose2d_zero_insertion` computes ``H_out W_out / (H W)`` (about ``s^2``) times as many, most
    of them with inserted zeros. Same numbers as :func:`conv_transpose2d_loops`, all stamps at once.
    """
    s, p, op, d, G, _ = _transpose_args(input, weight, bias, stride, padding, output_padding, groups, dilation)
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input  # (B, C_in, H, W)
    B, Cin, H, W = x.shape
    _, Cog, kh, kw = weight.shape
    xg = x.reshape(B, G, Cin // G, H * W)  # (B, G, C_in/G, H W): X_g, one column per input pixel
    wg = weight.reshape(G, Cin // G, Cog * kh * kw)  # (G, C_in/G, C_out/G kH kW): W_g, one row per input channel
    cols = wg.transpose(1, 2) @ xg  # (B, G, C_out/G kH kW, H W): W_g^T X_g, broadcast over the batch
    cols = cols.reshape(B, G * Cog * kh * kw, H * W)  # (B, C_out kH kW, H W): fold's layout, channel-major
    canvas = ((H - 1) * s[0] + d[0] * (kh - 1) + 1, (W - 1) * s[1] + d[1] * (kw - 1) + 1)  # where stamps land
    y = F.fold(cols, canvas, (kh, kw), dilation=d, stride=s)  # (B, C_out, *canvas): summed
    # negative amounts crop p from every border; output_padding - p at the bottom/right is > 0 only where the kept
    # rows run past the canvas: zeros, padded here because fold infers its H x W grid of stamps from its output size
    y = F.pad(y, (-p[1], op[1] - p[1], -p[0], op[0] - p[0]))  # (B, C_out, H_out, W_out)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)  # one bias per output channel
    return y.squeeze(0) if unbatched else y


def conv_transpose2d_zero_insertion(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Transposed convolution as a stride-1 convolution of a zero-inserted input, the same result as
    ``torch.nn.functional.conv_transpose2d`` and :func:`conv_transpose2d`.

    Shapes: input (B, C_in, H, W) or (C_in, H, W); weight (C_in, C_out/G, kH, kW); bias (C_out,) or None;
    output (B, C_out, H_out, W_out) with ``H_out = (H - 1) s - 2p + d (kH - 1) + output_padding + 1``.

    Four steps (per dimension):

    1. :func:`insert_zeros`: ``s - 1`` zeros between neighbouring inputs -> length ``(H - 1) s + 1``;
    2. pad each border with ``d (k - 1) - p`` zeros (crop if that is negative) and add ``output_padding`` more
       rows/columns at the bottom/right;
    3. :func:`transposed_kernel`: swap the kernel's in/out channels and flip it in both spatial axes;
    4. an ordinary stride-1 :func:`dlbook.conv.conv2d` with dilation ``d`` and the same groups.
    """
    s, p, op, d, G, _ = _transpose_args(input, weight, bias, stride, padding, output_padding, groups, dilation)
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input  # (B, C_in, H, W)
    kh, kw = weight.shape[-2:]
    z = insert_zeros(x, s)  # (B, C_in, (H-1)s+1, (W-1)s+1)
    bh, bw = d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1]  # border of each side
    z = F.pad(z, (bw, bw + op[1], bh, bh + op[0]))  # (B, C_in, H', W'); a negative amount crops
    y = conv2d(z, transposed_kernel(weight, G), bias, stride=1, padding=0, dilation=d, groups=G)  # (B, C_out, Ho, Wo)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d_loops(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Transposed convolution as stamping, for reading: same contract as :func:`conv_transpose2d`.

    Each input pixel ``x[c, i, j]`` adds a copy of its kernel, scaled by its value, to the output at rows
    ``i s + u d`` and columns ``j s + v d``; afterwards ``p`` rows/columns are cut from each border (and
    ``output_padding`` of the cut ones kept at the bottom/right, zeros where no stamp reaches). Where ``k`` is not a
    multiple of ``s`` the stamps overlap unevenly; whether a flat input comes out flat depends on the kernel's
    stride-phase sums (:func:`stride_phase_sums`): that is where checkerboard artefacts come from.
    """
    s, p, op, d, G, (Ho, Wo) = _transpose_args(input, weight, bias, stride, padding, output_padding, groups, dilation)
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input  # (B, C_in, H, W)
    B, Cin, H, W = x.shape
    _, Cog, kh, kw = weight.shape
    span_h, span_w = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    full_h = max((H - 1) * s[0] + span_h, p[0] + Ho)  # every stamp, and the output_padding margin
    full_w = max((W - 1) * s[1] + span_w, p[1] + Wo)
    canvas = x.new_zeros(B, G, Cog, full_h, full_w)  # (B, G, C_out/G, H_full, W_full); zeros in the op margin
    xg = x.reshape(B, G, Cin // G, H, W)  # (B, G, C_in/G, H, W)
    wg = weight.reshape(G, Cin // G, Cog, kh, kw)  # (G, C_in/G, C_out/G, kH, kW)
    for i in range(H):
        for j in range(W):
            stamp = torch.einsum("bgc,gcouv->bgouv", xg[:, :, :, i, j], wg)  # (B, G, C_out/G, kH, kW)
            rows = slice(i * s[0], i * s[0] + span_h, d[0])
            cols = slice(j * s[1], j * s[1] + span_w, d[1])
            canvas[:, :, :, rows, cols] = canvas[:, :, :, rows, cols] + stamp
    y = canvas[..., p[0] : p[0] + Ho, p[1] : p[1] + Wo].reshape(B, G * Cog, Ho, Wo)  # (B, C_out, Ho, Wo)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.squeeze(0) if unbatched else y


def stride_phase_sums(kernel: torch.Tensor, stride: IntPair) -> torch.Tensor:
    """What a transposed convolution with ``kernel`` and ``stride`` makes of an input of ones, away from the border.

    Shapes: kernel (kH, kW); output (s_h, s_w). With padding 0, output pixel ``(y, x)`` receives tap ``(u, v)`` of
    the stamp of every input pixel with ``y = i s_h + u`` and ``x = j s_w + v``; where all stamps land (the
    interior) it is therefore ``P[y mod s_h, x mod s_w]`` with

    .. math::  P[a, b] = \\sum_{u \\equiv a \\ (\\mathrm{mod}\\ s_h),\\ v \\equiv b \\ (\\mathrm{mod}\\ s_w)} w[u, v].

    The output of a flat input is flat exactly when all entries of ``P`` are equal. For a constant kernel the entry
    counts taps, ``ceil(k/s)`` or ``floor(k/s)`` per dimension, so it is flat exactly when ``s`` divides ``k``; for
    any other kernel that divisibility is neither necessary nor sufficient.
    """
    check_tensor(kernel, "kernel", (2,))
    sh, sw = pair(stride, "stride")
    kh, kw = kernel.shape
    padded = kernel.new_zeros(-(-kh // sh) * sh, -(-kw // sw) * sw)  # round k up to a multiple of s
    padded[:kh, :kw] = kernel
    return padded.reshape(-1, sh, padded.shape[1] // sw, sw).sum(dim=(0, 2))  # (s_h, s_w)
