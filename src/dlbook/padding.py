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

__all__ = ["PAD_MODES", "pad2d", "source_index"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def source_index(n: int, before: int, after: int, mode: str) -> torch.Tensor:
    """For one dimension of size ``n`` padded by ``before``/``after``: the source index of every output cell.

    Output cell ``t`` (``0 <= t < n + before + after``) sits at position ``j = t - before`` of the input's axis;
    ``reflect`` maps ``j`` to ``|j|`` mirrored back from the far edge, ``replicate`` clamps it, ``circular`` wraps
    it modulo ``n``. Shape (n + before + after,).
    """
    if mode not in PAD_MODES[1:]:
        raise ValueError(f"mode must be one of {PAD_MODES[1:]} for an index map, got {mode!r}")
    j = torch.arange(-before, n + after)  # (n_out,) positions along the input's axis
    if mode == "reflect":
        a = j.abs()  # (n_out,) mirror at cell 0 ...
        return torch.where(a >= n, 2 * (n - 1) - a, a)  # (n_out,) ... and at cell n - 1
    if mode == "replicate":
        return j.clamp(0, n - 1)  # (n_out,)
    return j.remainder(n)  # (n_out,) circular; remainder is never negative


def _check_dim(mode: str, name: str, n: int, before: int, after: int) -> None:
    """Refuse, per padded dimension, exactly what ``F.pad`` refuses (or gets wrong) in ``mode``."""
    seen = f"pad ({before}, {after}) on the {name} of size {n}"
    if mode == "constant":
        if n - max(-before, 0) - max(-after, 0) < 0:
            raise ValueError(f"{seen}: the negative pads crop more than the whole {name}")
    elif mode == "reflect":
        if before >= n or after >= n:
            raise ValueError(f"{seen}: reflect padding must be smaller than the {name} (pad < {n}), as in F.pad")
        if n + before + after < 0:
            raise ValueError(f"{seen}: the output {name} would be negative")
    elif mode == "replicate":
        if n + before + after < 1:
            raise ValueError(f"{seen}: replicate padding must leave at least one cell, as in F.pad")
    else:  # circular
        if before > n or after > n:
            raise ValueError(f"{seen}: circular padding may wrap around at most once (pad <= {n}), as in F.pad")
        if before * after < 0:
            raise ValueError(f"{seen}: circular padding with one negative and one positive pad on the same "
                             "dimension is not supported (F.pad returns wrong values for it)")
        if n + before + after < 0:
            raise ValueError(f"{seen}: the output {name} would be negative")


def _check_pad_args(input: object, pad: object, mode: object, value: object) -> tuple[int, int, int, int, float]:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        raise ValueError(f"input must have 3 or 4 dimensions, (C, H, W) or (B, C, H, W), got shape {tuple(input.shape)}")
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"input must have a height and width of at least 1, got shape {tuple(input.shape)}")
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    if (isinstance(pad, str) or not isinstance(pad, Sequence)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pad)):
        raise TypeError(f"pad must be a tuple of ints, got {pad!r}")
    if len(pad) not in (2, 4):
        raise ValueError(f"pad must have 2 (left, right) or 4 (left, right, top, bottom) ints, got {len(pad)}: {pad!r}")
    if len(pad) == 2 and mode != "constant" and input.ndim == 4:
        raise ValueError(f"pad of length 2 pads only the width: F.pad allows that for a 4-D input only in "
                         f"mode='constant', got mode={mode!r}; give pad=(left, right, 0, 0)")
    if value is None:
        value = 0.0
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"value must be a number, got {value!r}")
    if mode != "constant" and value != 0:
        raise ValueError(f"value={value!r} is only used by mode='constant'; mode={mode!r} takes no value, as in F.pad")
    left, right = pad[0], pad[1]
    top, bottom = (pad[2], pad[3]) if len(pad) == 4 else (0, 0)
    H, W = input.shape[-2:]
    _check_dim(mode, "width", W, left, right)
    _check_dim(mode, "height", H, top, bottom)
    if mode == "reflect" and H + top + bottom < 1 and W + left + right < 1:
        raise ValueError(f"pad {tuple(pad)} on an input of {H}x{W}: reflect padding must leave the height or the "
                         "width at least 1, as in F.pad")
    return left, right, top, bottom, value


def pad2d(
    input: torch.Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = 0.0
) -> torch.Tensor:
    """Pad the last two dimensions of ``input``, like ``torch.nn.functional.pad(input, pad, mode, value)``.

    Shapes: input (B, C, H, W) or (C, H, W); ``pad = (left, right, top, bottom)`` (or ``(left, right)`` for the width
    only); output (B, C, H + top + bottom, W + left + right). ``mode`` is ``"constant"`` (fill with ``value``),
    ``"reflect"``, ``"replicate"`` or ``"circular"``; ``value=None`` means 0, as in ``F.pad``. Differentiable: the gradient of a padded cell flows back to
    the cell it was copied from (so a border cell collects the gradient of its copies).

    Raises ``ValueError`` for what ``F.pad`` refuses: reflect pads not smaller than the dimension, circular pads
    that wrap more than once, ``value`` with a non-constant mode, a pad of length 2 in a non-constant mode on a 4-D
    input.
    """
    left, right, top, bottom, value = _check_pad_args(input, pad, mode, value)
    H, W = input.shape[-2:]
    if mode == "constant":
        # Crop first (negative pads), then place the rest in a tensor filled with value.
        kept = input[..., max(-top, 0) : H - max(-bottom, 0), max(-left, 0) : W - max(-right, 0)]  # (.., h, w)
        h, w = kept.shape[-2:]
        t, lft = max(top, 0), max(left, 0)
        out = input.new_full((*input.shape[:-2], h + t + max(bottom, 0), w + lft + max(right, 0)), value)  # (.., H', W')
        out[..., t : t + h, lft : lft + w] = kept  # differentiable: the gradient flows back to input
        return out
    rows = source_index(H, top, bottom, mode).to(input.device)  # (H',)
    cols = source_index(W, left, right, mode).to(input.device)  # (W',)
    return input[..., rows[:, None], cols[None, :]]  # (.., H', W') one gather for both dimensions
