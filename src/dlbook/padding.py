"""Padding (填充): add cells around a feature map before a convolution, so that its windows reach the border.

Chapter: ``book/convnets/padding.ipynb``.

:func:`pad2d` mirrors ``torch.nn.functional.pad`` for images: input (B, C, H, W) or (C, H, W), ``pad`` =
``(left, right)`` or ``(left, right, top, bottom)`` — the *last* dimension first, as in ``F.pad``. Four modes
fill the new cells differently. For one row ``a b c d`` padded by 2 on each side:

=============  ===================  ==================================================
mode           result               the new cell at position ``j`` (``n`` = row length)
=============  ===================  ==================================================
constant       ``0 0 a b c d 0 0``  ``value``
reflect        ``c b a b c d c b``  mirror at the edge cell, without repeating it
replicate      ``a a a b c d d d``  the nearest edge cell: ``clamp(j, 0, n - 1)``
circular       ``c d a b c d a b``  wrap around: ``j mod n``
=============  ===================  ==================================================

Every non-constant mode is one gather: build, per dimension, the index of the source cell of every output cell,
then index the input with it. A negative pad crops, as in ``F.pad``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlbook._checks import check_tensor, int_tuple, one_of, pair
from dlbook.arithmetic import MODES as PAD_MODES
from dlbook.arithmetic import pad_output_size

__all__ = ["PAD_MODES", "pad2d", "source_index"]


def source_index(n: int, before: int, after: int, mode: str) -> torch.Tensor:
    """For one dimension of size ``n`` padded by ``before``/``after``: the source index of every output cell.

    Output cell ``t`` (``0 <= t < n + before + after``) sits at position ``j = t - before`` of the input's axis;
    ``reflect`` maps ``j`` to ``|j|`` mirrored back from the far edge, ``replicate`` clamps it, ``circular`` wraps
    it modulo ``n``. Shape (n + before + after,).
    """
    one_of(mode, "mode", PAD_MODES[1:])  # constant padding copies no cell
    j = torch.arange(-before, n + after)  # (n_out,) positions along the input's axis
    if mode == "reflect":
        a = j.abs()  # (n_out,) mirror at cell 0 ...
        return torch.where(a >= n, 2 * (n - 1) - a, a)  # (n_out,) ... and at cell n - 1
    if mode == "replicate":
        return j.clamp(0, n - 1)  # (n_out,)
    return j.remainder(n)  # (n_out,) circular; remainder is never negative


def pad2d(
    input: torch.Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = 0.0
) -> torch.Tensor:
    """Pad the last two dimensions of ``input``, like ``torch.nn.functional.pad(input, pad, mode, value)``.

    Shapes: input (B, C, H, W) or (C, H, W); ``pad = (left, right, top, bottom)`` (or ``(left, right)`` for the width
    only); output (B, C, H + top + bottom, W + left + right). ``mode`` is ``"constant"`` (fill with ``value``),
    ``"reflect"``, ``"replicate"`` or ``"circular"``; ``value=None`` means 0, as in ``F.pad``. Differentiable: the
    gradient of a padded cell flows back to the cell it was copied from (so a border cell collects the gradient of its
    copies).

    Raises ``ValueError`` for what ``F.pad`` refuses: the sizes :func:`dlbook.arithmetic.pad_output_size` refuses
    (reflect pads not smaller than the dimension, circular pads that wrap more than once, ...), ``value`` with a
    non-constant mode, a pad of length 2 in a non-constant mode on a 4-D input.
    """
    check_tensor(input, "input", (3, 4), floating=False)
    H, W = pair(tuple(input.shape[-2:]), "input's height and width")
    # F.pad takes a pair (left, right) for a 4-D input only in mode "constant"
    lengths = (2, 4) if one_of(mode, "mode", PAD_MODES) == "constant" or input.ndim == 3 else (4,)
    left, right, top, bottom = (*int_tuple(pad, "pad", lengths), 0, 0)[:4]
    value = 0.0 if value is None else value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value must be a number or None, got {value!r}")
    if mode != "constant":
        one_of(value, "value", (0,))  # as in F.pad, only mode "constant" fills the border with a value
    Ho, Wo = pad_output_size(H, top, bottom, mode), pad_output_size(W, left, right, mode)  # what F.pad refuses
    if mode == "reflect" and Ho < 1 and Wo < 1:
        raise ValueError(f"pad {tuple(pad)} on an input of {H}x{W}: reflect padding must leave a cell, as in F.pad")
    if mode == "constant":
        # Crop first (negative pads), then place the rest in a tensor filled with value.
        kept = input[..., max(-top, 0) : H - max(-bottom, 0), max(-left, 0) : W - max(-right, 0)]  # (.., h, w)
        out = input.new_full((*input.shape[:-2], Ho, Wo), value)  # (.., H', W')
        out[..., max(top, 0) : max(top, 0) + kept.shape[-2], max(left, 0) : max(left, 0) + kept.shape[-1]] = kept
        return out  # the copy into the slice is differentiable: the gradient flows back to input
    rows = source_index(H, top, bottom, mode).to(input.device)  # (H',)
    cols = source_index(W, left, right, mode).to(input.device)  # (W',)
    return input[..., rows[:, None], cols[None, :]]  # (.., H', W') one gather for both dimensions
