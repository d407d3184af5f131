"""Convolution (卷积): the 2-D convolution layer of a CNN, written out.

Chapter: ``book/convnets/convolution.ipynb``.

What deep learning calls "convolution" is a **cross-correlation** (互相关): slide a kernel over the input and, at every
position, take the sum of element-wise products. For an input ``x`` of shape (B, C, H, W) and a weight of shape
(O, C/G, kH, kW), output channel ``o`` at position ``(i, j)`` is

.. math::

    y[b, o, i, j] = \\text{bias}[o] + \\sum_{c, u, v} w[o, c, u, v]\\; x_p[b, g(o) \\cdot C/G + c,\\;
    i s_h + u d_h,\\; j s_w + v d_w]

where ``x_p`` is the zero-padded input, ``s`` the stride, ``d`` the dilation and ``g(o)`` the group of output
channel ``o``. There is no flip of the kernel; :func:`convolve2d` shows the flipped, mathematical convolution.

Public functions mirror ``torch.nn.functional.conv2d``: same names, order and defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dlbook._checks import check_tensor, divides, has_shape, one_of, pair, positive_int, same_dtype
from dlbook.arithmetic import conv_output_size, same_padding

__all__ = [
    "conv2d",
    "conv2d_loops",
    "conv_patches",
    "cross_correlate2d",
    "convolve2d",
    "resolve_padding",
    "conv_matrix",
    "classic_kernel",
    "CLASSIC_KERNELS",
]

IntPair = int | Sequence[int]


def resolve_padding(
    padding: IntPair | str, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Turn a ``padding`` argument into explicit ``(top, bottom, left, right)`` zero padding.

    ``"valid"`` means no padding. ``"same"`` pads a total of ``d * (k - 1)`` per dimension so that, at stride 1,
    the output has the input's size; when that total is odd the extra row/column goes to the bottom/right, as in
    PyTorch. Like PyTorch, ``"same"`` is refused for strides other than 1 (by :func:`dlbook.arithmetic.same_padding`).
    """
    if isinstance(padding, str) and one_of(padding, "padding", ("valid", "same")) == "same":
        return tuple(p for k, s, d in zip(kernel_size, stride, dilation, strict=True) for p in same_padding(k, s, d))
    ph, pw = (0, 0) if padding == "valid" else pair(padding, "padding", minimum=0)
    return (ph, ph, pw, pw)


def _conv_args(input, weight, bias, stride, padding, dilation, groups):
    """Check the arguments once, for both implementations.

    Returns the stride and dilation pairs, the zero padding in ``F.pad``'s order (left, right, top, bottom) and the
    output size (H_out, W_out).
    """
    C, (H, W) = check_tensor(input, "input", (3, 4)).shape[-3], input.shape[-2:]
    O, _, kh, kw = check_tensor(weight, "weight", (4,)).shape
    pair((kh, kw), "the weight's kernel size")
    G = divides(positive_int(groups, "groups"), C, "groups", "the input's channels")
    divides(G, O, "groups", "the weight's output channels")
    has_shape(check_tensor(weight, "weight"), "weight", (O, C // G, kh, kw))  # (O, C/G, kH, kW)
    same_dtype(input, weight, "input", "weight")
    if bias is not None:
        has_shape(check_tensor(bias, "bias"), "bias", (O,))
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    pads = resolve_padding(padding, (kh, kw), stride, dilation)
    # the output size, and the refusal of a kernel larger than the padded input, come from dlbook.arithmetic
    out = tuple(map(conv_output_size, (H, W), (kh, kw), stride, (pads[:2], pads[2:]), dilation))
    return stride, pads[2:] + pads[:2], dilation, out


def conv_patches(
    x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> torch.Tensor:
    """Every window the kernel visits, as a view: (B, C, H, W) -> (B, C, H_out, W_out, kH, kW).

    ``Tensor.unfold(dim, size, step)`` *is* the sliding window: it steps a window of ``size`` along ``dim``
    ``step`` elements at a time. A dilated kernel spans ``d * (k - 1) + 1`` pixels and reads every ``d``-th one.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    windows = x.unfold(2, span_h, sh).unfold(3, span_w, sw)  # (B, C, H_out, W_out, span_h, span_w)
    return windows[..., ::dh, ::dw]  # (B, C, H_out, W_out, kH, kW)


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D cross-correlation, vectorised: the same result as ``torch.nn.functional.conv2d``.

    Shapes: input (B, C, H, W) or (C, H, W); weight (O, C/groups, kH, kW); bias (O,) or None;
    output (B, O, H_out, W_out) with ``H_out = floor((H + pad_top + pad_bottom - d(kH - 1) - 1) / s) + 1``.

    The input is zero-padded and every window is gathered (:func:`conv_patches`) into one column of a patch matrix
    (im2col); then a single matrix product multiplies each filter, flattened to a row, by every column.
    """
    stride, pad, dilation, _ = _conv_args(input, weight, bias, stride, padding, dilation, groups)
    x = input.unsqueeze(0) if input.ndim == 3 else input  # (B, C, H, W)
    O, Cg, kh, kw = weight.shape
    G = groups
    xp = F.pad(x, pad)  # (B, C, H', W'): zeros around
    cols = conv_patches(xp, (kh, kw), stride, dilation)  # (B, C, Ho, Wo, kH, kW), a view: nothing copied yet
    B, C, Ho, Wo = cols.shape[:4]
    # the patch matrix: one column per output position, (channel, kernel row, kernel column) down each column
    cols = cols.permute(0, 1, 4, 5, 2, 3).reshape(B, G, Cg * kh * kw, Ho * Wo)  # (B, G, C/G*kH*kW, Ho*Wo)
    rows = weight.reshape(G, O // G, Cg * kh * kw)  # (G, O/G, C/G*kH*kW): one filter per row
    # (filters x patch) @ (patch x positions) lands in the output's own layout: no transpose afterwards
    y = (rows @ cols).reshape(B, O, Ho, Wo)  # (B, O, Ho, Wo)
    if bias is not None:
        y = y + bias.view(1, O, 1, 1)
    return y.squeeze(0) if input.ndim == 3 else y


def conv2d_loops(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D cross-correlation with explicit loops, for reading, not for speed. Same contract as :func:`conv2d`.

    One output number = one window of the padded input times one filter, summed. Slow (Python loops over every
    output element): use it on inputs of a few dozen pixels.
    """
    (sh, sw), pad, (dh, dw), (Ho, Wo) = _conv_args(input, weight, bias, stride, padding, dilation, groups)
    x = F.pad(input.unsqueeze(0) if input.ndim == 3 else input, pad)  # (B, C, H', W'): zeros around
    O, Cg, kh, kw = weight.shape
    y = x.new_zeros(x.shape[0], O, Ho, Wo)  # (B, O, Ho, Wo)
    for b in range(x.shape[0]):
        for o in range(O):
            g = o // (O // groups)  # the group this filter belongs to sees only its own input channels
            channels = slice(g * Cg, (g + 1) * Cg)
            for i in range(Ho):
                for j in range(Wo):
                    # rows i*sh, i*sh + dh, ... and columns j*sw, j*sw + dw, ...: the first kH and kW of them
                    window = x[b, channels, i * sh :: dh, j * sw :: dw][:, :kh, :kw]  # (C/G, kH, kW)
                    y[b, o, i, j] = (window * weight[o]).sum()  # window times filter, summed
    if bias is not None:
        y = y + bias.view(1, O, 1, 1)
    return y.squeeze(0) if input.ndim == 3 else y


def _single_channel(image: object, kernel: object, mode: str, *, flipped: bool) -> torch.Tensor:
    """Cross-correlate one image (H, W) with one kernel (kH, kW), with the kernel flipped first if ``flipped``.

    The zero padding follows ``scipy.signal``: none for ``"valid"``, ``k - 1`` on every side for ``"full"``;
    ``"same"`` centres the output on the ``"full"`` result, padding ``k - 1`` in total. When that is odd the extra
    row goes after; flipping the kernel (true convolution) moves it before.
    """
    kh, kw = check_tensor(kernel, "kernel", (2,)).shape
    check_tensor(image, "image", (2,))
    total = {"valid": (0, 0), "full": (2 * (kh - 1), 2 * (kw - 1)), "same": (kh - 1, kw - 1)}  # rows, columns
    rows, cols = total[one_of(mode, "mode", tuple(total))]
    top, left = (rows - rows // 2, cols - cols // 2) if flipped else (rows // 2, cols // 2)  # an odd extra: after
    x = F.pad(image, (left, cols - left, top, rows - top))  # (H', W')
    k = kernel.flip(0, 1) if flipped else kernel
    return conv2d(x[None, None], k[None, None])[0, 0]  # (H_out, W_out)


def cross_correlate2d(image: torch.Tensor, kernel: torch.Tensor, mode: str = "valid") -> torch.Tensor:
    """Single-channel cross-correlation (no kernel flip): ``out[i, j] = sum_{u,v} image[i+u, j+v] * kernel[u, v]``.

    Shapes: image (H, W), kernel (kH, kW). ``mode`` as in ``scipy.signal.correlate2d``: ``"valid"`` (no padding,
    output (H-kH+1, W-kW+1)), ``"full"`` (every overlap, output (H+kH-1, W+kW-1)) or ``"same"`` (output (H, W)).
    """
    return _single_channel(image, kernel, mode, flipped=False)


def convolve2d(image: torch.Tensor, kernel: torch.Tensor, mode: str = "full") -> torch.Tensor:
    """Single-channel *true* convolution: cross-correlation with the kernel flipped in both axes.

    ``out[i, j] = sum_{u,v} image[i-u, j-v] * kernel[u, v]``, the discrete form of
    ``(f * g)(x) = ∫ f(t) g(x - t) dt``. Shapes and ``mode`` as in ``scipy.signal.convolve2d``; the default
    ``"full"`` is the mode in which convolution is commutative and associative.
    """
    return _single_channel(image, kernel, mode, flipped=True)


def conv_matrix(kernel: torch.Tensor, input_shape: tuple[int, int]) -> torch.Tensor:
    """The matrix ``M`` with ``M @ x.flatten() == cross_correlate2d(x, kernel).flatten()`` for ``x`` of ``input_shape``.

    Shape (H_out * W_out, H * W). Each row holds the kernel's weights at the positions of one window and zeros
    elsewhere: a convolution *is* a matrix multiplication, by a sparse matrix whose rows share the same few weights.
    """
    kh, kw = check_tensor(kernel, "kernel", (2,)).shape
    H, W = pair(tuple(input_shape), "input_shape")
    Ho, Wo = conv_output_size(H, kh), conv_output_size(W, kw)  # refuses a kernel larger than the input
    M = kernel.new_zeros(Ho * Wo, H * W)  # (H_out*W_out, H*W)
    for i in range(Ho):
        for j in range(Wo):
            window = M[i * Wo + j].view(H, W)  # this row, seen as an image
            window[i : i + kh, j : j + kw] = kernel
    return M


CLASSIC_KERNELS = ("box blur", "gaussian blur", "sharpen", "edges (Sobel x)", "outline (Laplacian)")


def classic_kernel(name: str, size: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A hand-made image-processing kernel of shape (size, size), ``size`` odd and >= 3.

    * ``"box blur"``: every weight ``1/size²`` — the window's mean.
    * ``"gaussian blur"``: ``exp(-(u²+v²)/(2σ²))`` normalised to sum 1, with ``σ = size/5``.
    * ``"sharpen"``: ``2·identity − box blur`` — the pixel plus its difference from the local mean (unsharp mask).
    * ``"edges (Sobel x)"``: smoothing down the columns times a central difference along the rows, so it answers to
      vertical edges (for size 3 this is the Sobel kernel ``[[1,0,-1],[2,0,-2],[1,0,-1]]``, up to sign and scale).
    * ``"outline (Laplacian)"``: ``box blur − identity``, scaled: zero on flat regions, large on outlines.
    """
    one_of(name, "name", CLASSIC_KERNELS)
    if positive_int(size, "size") < 3 or size % 2 == 0:
        raise ValueError(f"size must be odd and >= 3, got {size}")
    r = size // 2
    u = torch.arange(-r, r + 1, dtype=torch.float64)  # (size,)
    identity = torch.zeros(size, size, dtype=torch.float64)
    identity[r, r] = 1.0
    box = torch.full((size, size), 1.0 / size**2, dtype=torch.float64)
    if name == "box blur":
        k = box
    elif name == "gaussian blur":
        sigma = size / 5
        g = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma**2))
        k = g / g.sum()
    elif name == "sharpen":
        k = 2 * identity - box
    elif name == "edges (Sobel x)":
        smooth = r + 1 - u.abs()  # 1 2 1 for size 3: a triangle across the rows
        diff = -torch.sign(u) * (r + 1 - u.abs())  # 1 0 -1 for size 3 (correlation: left minus right)
        k = torch.outer(smooth, diff)
        k = k / k.abs().sum() * 2
    else:
        k = (box - identity) * size
    k = torch.where(k == 0, torch.zeros_like(k), k)  # no -0.0 in printed kernels
    return k.to(dtype)
