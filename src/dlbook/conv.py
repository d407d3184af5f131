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

from dlbook._checks import check_tensor, pair, positive_int
from dlbook.arithmetic import same_padding

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
    PyTorch. Like PyTorch, ``"same"`` is refused for strides other than 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride=1 (as in PyTorch), got stride={stride}")
            (kh, kw), (dh, dw) = kernel_size, dilation
            return same_padding(kh, 1, dh) + same_padding(kw, 1, dw)
        raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    ph, pw = pair(padding, "padding", minimum=0)
    return (ph, ph, pw, pw)


def _zero_pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Place ``x`` (B, C, H, W) in a zero tensor with ``pads`` = (top, bottom, left, right) extra rows/columns."""
    top, bottom, left, right = pads
    if pads == (0, 0, 0, 0):
        return x
    B, C, H, W = x.shape
    out = x.new_zeros(B, C, H + top + bottom, W + left + right)  # (B, C, H', W')
    out[:, :, top : top + H, left : left + W] = x  # differentiable: the gradient flows back to x
    return out


def _check_conv_args(x, weight, bias, stride, padding, dilation, groups):
    """Validate arguments once, for both implementations; return the normalised values."""
    check_tensor(x, "input", (3, 4))
    check_tensor(weight, "weight", (4,))
    stride = pair(stride, "stride")
    dilation = pair(dilation, "dilation")
    groups = positive_int(groups, "groups")
    O, Cg, kh, kw = weight.shape
    C = x.shape[-3]
    if O == 0 or kh == 0 or kw == 0:
        raise ValueError(f"weight must have non-zero out_channels and kernel size, got shape {tuple(weight.shape)}")
    if C % groups != 0:
        raise ValueError(f"groups={groups} must divide the input's {C} channels")
    if O % groups != 0:
        raise ValueError(f"groups={groups} must divide the weight's {O} output channels")
    if Cg * groups != C:
        raise ValueError(
            f"channel mismatch: input has {C} channels, weight expects {Cg} per group x groups={groups} = {Cg * groups}"
        )
    if bias is not None:
        check_tensor(bias, "bias", (1,))
        if bias.shape[0] != O:
            raise ValueError(f"bias must have {O} elements (one per output channel), got {bias.shape[0]}")
    if x.dtype != weight.dtype:
        raise TypeError(f"input and weight must have the same dtype, got {x.dtype} and {weight.dtype}")
    pads = resolve_padding(padding, (kh, kw), stride, dilation)
    H, W = x.shape[-2:]
    for dim, size, before, after, k, d in (("height", H, pads[0], pads[1], kh, dilation[0]),
                                           ("width", W, pads[2], pads[3], kw, dilation[1])):
        span = d * (k - 1) + 1
        if size + before + after < span:
            raise ValueError(
                f"kernel larger than the padded input: the kernel spans {span} in {dim} "
                f"(kernel_size={k}, dilation={d}) but the padded input is {size + before + after} "
                f"({size} + padding {before}+{after})"
            )
    return stride, pads, dilation, groups


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
    stride, pads, dilation, groups = _check_conv_args(input, weight, bias, stride, padding, dilation, groups)
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input  # (B, C, H, W)
    O, Cg, kh, kw = weight.shape
    G = groups
    xp = _zero_pad(x, pads)  # (B, C, H', W')
    cols = conv_patches(xp, (kh, kw), stride, dilation)  # (B, C, Ho, Wo, kH, kW), a view: nothing copied yet
    B, C, Ho, Wo = cols.shape[:4]
    # the patch matrix: one column per output position, (channel, kernel row, kernel column) down each column
    cols = cols.permute(0, 1, 4, 5, 2, 3).reshape(B, G, Cg * kh * kw, Ho * Wo)  # (B, G, C/G*kH*kW, Ho*Wo)
    rows = weight.reshape(G, O // G, Cg * kh * kw)  # (G, O/G, C/G*kH*kW): one filter per row
    # (filters x patch) @ (patch x positions) lands in the output's own layout: no transpose afterwards
    y = (rows @ cols).reshape(B, O, Ho, Wo)  # (B, O, Ho, Wo)
    if bias is not None:
        y = y + bias.view(1, O, 1, 1)
    return y.squeeze(0) if unbatched else y


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
    stride, pads, dilation, groups = _check_conv_args(input, weight, bias, stride, padding, dilation, groups)
    unbatched = input.ndim == 3
    x = _zero_pad(input.unsqueeze(0) if unbatched else input, pads)  # (B, C, H', W')
    (sh, sw), (dh, dw) = stride, dilation
    B, C, Hp, Wp = x.shape
    O, Cg, kh, kw = weight.shape
    Ho = (Hp - dh * (kh - 1) - 1) // sh + 1
    Wo = (Wp - dw * (kw - 1) - 1) // sw + 1
    per_group = O // groups
    rows = []
    for b in range(B):
        maps = []
        for o in range(O):
            g = o // per_group  # the group this filter belongs to sees only its own input channels
            channels = slice(g * Cg, (g + 1) * Cg)
            values = []
            for i in range(Ho):
                for j in range(Wo):
                    top, left = i * sh, j * sw
                    window = x[b, channels, top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw]
                    total = (window * weight[o]).sum()  # window (C/G, kH, kW) * filter (C/G, kH, kW)
                    values.append(total + bias[o] if bias is not None else total)
            maps.append(torch.stack(values).reshape(Ho, Wo))
        rows.append(torch.stack(maps))  # (O, Ho, Wo)
    y = torch.stack(rows)  # (B, O, Ho, Wo)
    return y.squeeze(0) if unbatched else y


def _mode_padding(mode: str, kernel: torch.Tensor, *, flipped: bool) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding for ``mode``, following ``scipy.signal``.

    ``"same"`` centres the output on the ``"full"`` result. When ``k - 1`` is odd one side gets the extra row;
    flipping the kernel (true convolution) moves that extra row to the other side.
    """
    kh, kw = kernel.shape
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode == "full":
        return (kh - 1, kh - 1, kw - 1, kw - 1)
    if mode == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        if flipped:
            top, left = kh - 1 - top, kw - 1 - left
        return (top, kh - 1 - top, left, kw - 1 - left)
    raise ValueError(f"mode must be 'valid', 'full' or 'same', got {mode!r}")


def _single_channel(image: object, kernel: object, mode: str, *, flipped: bool) -> torch.Tensor:
    check_tensor(image, "image", (2,))
    check_tensor(kernel, "kernel", (2,))
    pads = _mode_padding(mode, kernel, flipped=flipped)
    if mode == "valid" and (image.shape[0] < kernel.shape[0] or image.shape[1] < kernel.shape[1]):
        raise ValueError(f"kernel {tuple(kernel.shape)} is larger than image {tuple(image.shape)} in mode='valid'")
    k = torch.flip(kernel, dims=(0, 1)) if flipped else kernel
    x = _zero_pad(image[None, None], pads)  # (1, 1, H', W')
    return conv2d(x, k[None, None])[0, 0]  # (H_out, W_out)


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
    check_tensor(kernel, "kernel", (2,))
    H, W = pair(tuple(input_shape), "input_shape")
    kh, kw = kernel.shape
    if kh > H or kw > W:
        raise ValueError(f"kernel {tuple(kernel.shape)} is larger than input_shape {(H, W)}")
    Ho, Wo = H - kh + 1, W - kw + 1
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
    if name not in CLASSIC_KERNELS:
        raise ValueError(f"name must be one of {CLASSIC_KERNELS}, got {name!r}")
    size = positive_int(size, "size")
    if size < 3 or size % 2 == 0:
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
