"""Convolution arithmetic (卷积的尺寸计算): the output sizes of convolution, pooling, transposed convolution, padding.

Chapters: ``book/convnets/padding.ipynb`` and ``book/convnets/stride.ipynb``.

Every formula here is one spatial dimension; a 2-D layer applies it to the height and the width separately. Letters:
``i`` input size, ``k`` kernel size, ``s`` stride (步长), ``p`` padding (填充) on *each* side, ``d`` dilation (膨胀),
``o`` output size. A kernel dilated by ``d`` spans ``d(k - 1) + 1`` cells (its *effective* size), so a convolution fits

.. math::

    o = \\left\\lfloor \\frac{i + 2p - d(k - 1) - 1}{s} \\right\\rfloor + 1

windows into the padded input. Pooling uses the same count, rounded up instead of down under ``ceil_mode`` (minus a
window that would start in the right padding); a transposed convolution inverts the map ``i -> o`` of a convolution
and uses ``output_padding`` to choose among the sizes a stride folds together:

.. math::

    o = (i - 1)s - 2p + d(k - 1) + \\text{output\\_padding} + 1.

Max-unpooling takes a transposed convolution's size (or one near it), and ``F.pad`` adds its pads to the size.

This module is the package's one source of these rules: :mod:`dlbook.conv`, :mod:`dlbook.pooling`,
:mod:`dlbook.resampling` and :mod:`dlbook.padding` ask it for their output sizes. Each function agrees with the
shapes PyTorch's layers produce, and refuses, with a ``ValueError`` that names the argument, what PyTorch's layers
refuse. The functions take and return plain ints: no tensors are involved.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlbook._checks import flag, int_tuple, non_negative_int, one_of, pair, positive_int

__all__ = [
    "effective_kernel_size",
    "conv_output_size",
    "pool_output_size",
    "conv_transpose_output_size",
    "unpool_output_size",
    "pad_output_size",
    "same_padding",
    "tf_same_padding",
    "size_keeping_padding",
    "read_counts",
    "unread_positions",
    "receptive_field",
]

MODES = ("constant", "reflect", "replicate", "circular")  # the padding modes of torch.nn.functional.pad


def effective_kernel_size(k: int, d: int = 1) -> int:
    """How many input cells a kernel of ``k`` taps spaced ``d`` apart spans: ``d(k - 1) + 1``."""
    return positive_int(d, "d") * (positive_int(k, "k") - 1) + 1


def conv_output_size(i: int, k: int, s: int = 1, p: int | tuple[int, int] | str = 0, d: int = 1) -> int:
    """Output size of a convolution: ``floor((i + 2p - d(k - 1) - 1) / s) + 1``.

    ``p`` may also be a pair ``(before, after)`` of unequal paddings (then ``2p`` is ``before + after``),
    ``"valid"`` (no padding) or ``"same"`` (:func:`same_padding`: only with ``s=1``, and the output then has size
    ``i``), as in ``torch.nn.Conv2d``. Raises ``ValueError`` when the dilated kernel is larger than the padded input,
    which PyTorch refuses too.

    >>> conv_output_size(7, 3, s=2, p=1), conv_output_size(7, 4, p="same"), conv_output_size(7, 4, p=(1, 2))
    (4, 7, 7)
    """
    i, s, span = positive_int(i, "i"), positive_int(s, "s"), effective_kernel_size(k, d)
    if isinstance(p, str):
        p = (0, 0) if one_of(p, "p", ("valid", "same")) == "valid" else same_padding(k, s, d)
    before, after = pair(p, "p", minimum=0)
    if span > i + before + after:
        raise ValueError(f"k={k} with d={d}: kernel larger than the padded input, {span} > {i} + {before} + {after}")
    return (i + before + after - span) // s + 1


def pool_output_size(
    i: int, k: int, s: int | None = None, p: int = 0, d: int = 1, ceil_mode: bool = False
) -> int:
    """Output size of max/average pooling, as ``torch.nn.MaxPool2d`` / ``AvgPool2d`` compute it.

    ``s=None`` means ``s = k`` (PyTorch's default stride for pooling). With ``ceil_mode=False`` this is the
    convolution formula. With ``ceil_mode=True`` the division rounds up, so a last, partial window that hangs over
    the right edge still counts — except a window that would *start* in the right padding (at or after ``i + p``),
    which PyTorch drops:

    .. math::

        o = \\left\\lceil \\frac{i + 2p - d(k - 1) - 1}{s} \\right\\rceil + 1,
        \\qquad o \\leftarrow o - 1 \\text{ if } (o - 1)s \\ge i + p.

    So in ``ceil_mode`` a window may even be wider than the input (``i=3, k=4`` gives one window). Raises
    ``ValueError`` for ``p > k // 2`` (PyTorch allows at most half the kernel as padding) and when no window fits
    (output size below 1).

    >>> pool_output_size(6, 3, s=2, p=1, ceil_mode=True)   # ceil(5/2) + 1 = 4; the 4th window starts at 6 < 7
    4
    >>> pool_output_size(5, 2, s=2, p=1, ceil_mode=True)   # ceil(5/2) + 1 = 4, but the 4th starts at 6 >= 6
    3
    """
    i, span, ceil_mode = positive_int(i, "i"), effective_kernel_size(k, d), flag(ceil_mode, "ceil_mode")
    s = k if s is None else positive_int(s, "s")
    if non_negative_int(p, "p") > k // 2:
        raise ValueError(f"p={p} is more than half the kernel, k // 2 = {k // 2}: PyTorch refuses such padding")
    o = (i + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1  # // rounds towards -inf, as PyTorch's div_rtn
    if ceil_mode and (o - 1) * s >= i + p:
        o -= 1  # the last window would start in the right padding, reading no input at all
    if o < 1:
        raise ValueError(f"no pooling window fits the input i={i}: k={k}, s={s}, p={p}, dilation={d}, {ceil_mode=}")
    return o


def conv_transpose_output_size(
    i: int, k: int, s: int = 1, p: int = 0, output_padding: int = 0, d: int = 1
) -> int:
    """Output size of a transposed convolution (转置卷积): ``(i - 1)s - 2p + d(k - 1) + output_padding + 1``.

    A stride-``s`` convolution maps ``s`` different input sizes to the same output size (the floor discards the
    remainder); ``output_padding`` (``0 <= output_padding < max(s, d)``, as PyTorch requires) picks which of them
    the transposed convolution produces. It adds cells on one side only; it is not padding of the input.

    Raises ``ValueError`` for ``output_padding >= max(s, d)`` and for an output size below 1.
    """
    i, s, p, span = positive_int(i, "i"), positive_int(s, "s"), non_negative_int(p, "p"), effective_kernel_size(k, d)
    if non_negative_int(output_padding, "output_padding") >= max(s, d):
        raise ValueError(f"output_padding={output_padding} must be smaller than the stride s={s} or the dilation d={d}")
    o = (i - 1) * s - 2 * p + span + output_padding
    if o < 1:
        raise ValueError(f"padding p={p} crops everything: (i - 1)s - 2p + d(k - 1) + output_padding + 1 = {o} < 1")
    return o


def unpool_output_size(i: int, k: int, s: int | None = None, p: int = 0, output_size: int | None = None) -> int:
    """Output size of max-unpooling (反池化), as ``torch.nn.functional.max_unpool2d`` computes it.

    By default it is the size of a transposed convolution with the pooling's ``k``, ``s`` (``None`` means
    ``s = k``) and ``p``: ``(i - 1)s - 2p + k``, which PyTorch lets be 0 but not negative. The pooling's floor may
    have dropped up to ``s - 1`` cells, so an ``output_size`` (the pooled input's size) is accepted if it lies within
    ``s`` of that default, exclusive, as PyTorch requires.
    """
    k = positive_int(k, "k")
    s = k if s is None else positive_int(s, "s")
    default = (positive_int(i, "i") - 1) * s - 2 * non_negative_int(p, "p") + k
    o = default if output_size is None else non_negative_int(output_size, "output_size")
    if o < 0:
        raise ValueError(f"padding p={p} crops everything: (i - 1)s - 2p + k = {o} < 0 (i={i}, k={k}, s={s})")
    if not default - s < o < default + s:
        raise ValueError(f"output_size={o} must lie within s={s} of the default size {default} (exclusive)")
    return o


def pad_output_size(n: int, before: int, after: int, mode: str = "constant") -> int:
    """Size of a dimension of ``n >= 1`` cells after ``torch.nn.functional.pad`` adds ``before`` and ``after`` cells
    (a negative amount crops) in ``mode``: ``n + before + after``.

    Raises ``ValueError`` for what ``F.pad`` refuses (PyTorch 2.14.1), or gets wrong:

    * ``"reflect"`` mirrors at the edge cell without repeating it, so it adds at most ``n - 1`` cells on a side;
    * ``"circular"`` wraps around at most once, so at most ``n`` cells on a side, and not with a negative amount on
      one side and a positive one on the other (``F.pad`` returns wrong values for that);
    * negative amounts must not crop more than the ``n`` cells (for ``"constant"``, the cells added on the other side
      do not count), and ``"replicate"`` must leave a cell to copy.
    """
    seen = f"pad ({before}, {after}) on a dimension of size {positive_int(n, 'n')}"
    most = {"reflect": (n - 1, "mirrors without repeating the edge cell"),
            "circular": (n, "may wrap around at most once")}
    if mode in most and max(before, after) > most[mode][0]:
        raise ValueError(f"{seen}: {mode} padding {most[mode][1]}, so it adds at most {most[mode][0]} cells on a side")
    if mode == "circular" and before * after < 0:
        raise ValueError(f"{seen}: circular padding with one negative and one positive amount (F.pad gets it wrong)")
    left = n + min(before, 0) + min(after, 0) if one_of(mode, "mode", MODES) == "constant" else n + before + after
    if left < (1 if mode == "replicate" else 0):
        raise ValueError(f"{seen}: the negative amounts crop too much, {left} cells left ({mode} padding)")
    return n + before + after


def same_padding(k: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """The ``(before, after)`` padding of PyTorch's ``padding="same"``: ``d(k - 1)`` in total, the extra one after.

    With an even effective kernel the total is odd and the padding is asymmetric: the extra row or column goes to
    the bottom/right, as ``torch.nn.Conv2d(padding="same")`` does (PyTorch 2.14.1). The padding is the same for
    every input size only at stride 1, and PyTorch defines ``padding="same"`` for stride 1 only, so ``s != 1``
    raises ``ValueError``; see :func:`size_keeping_padding` for what keeping the size costs at a stride, and
    :func:`tf_same_padding` for TensorFlow's strided ``"SAME"``.

    >>> same_padding(3), same_padding(4), same_padding(3, d=2)
    ((1, 1), (1, 2), (2, 2))
    """
    total = effective_kernel_size(k, d) - 1
    if positive_int(s, "s") != 1:
        raise ValueError(f"padding='same' needs stride=1, got s={s} (see size_keeping_padding); PyTorch refuses it")
    return total // 2, total - total // 2


def tf_same_padding(i: int, k: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """The ``(before, after)`` padding of TensorFlow's ``padding="SAME"``, which also works at stride ``s > 1``.

    TensorFlow asks for ``o = ceil(i / s)`` outputs and pads just enough for them:
    ``total = max((o - 1)s + d(k - 1) + 1 - i, 0)``, ``before = total // 2``, the rest after. The padding depends on
    ``i`` (unlike PyTorch's layer argument), and at ``s = 1`` it equals :func:`same_padding`.
    """
    i, s, span = positive_int(i, "i"), positive_int(s, "s"), effective_kernel_size(k, d)
    o = -(-i // s)  # ceil(i / s)
    total = max((o - 1) * s + span - i, 0)
    return total // 2, total - total // 2


def size_keeping_padding(i: int, k: int, s: int = 1, d: int = 1) -> int:
    """The least padding ``p`` per side that keeps the size: ``conv_output_size(i, k, s, p, d) == i``.

    From ``floor((i + 2p - d(k - 1) - 1) / s) + 1 = i``:

    .. math::

        p = \\left\\lceil \\frac{(s - 1)\\,i - s + d(k - 1) + 1}{2} \\right\\rceil
          \\approx \\frac{(s - 1)\\,i}{2}.

    At ``s = 1`` this is ``d(k - 1) / 2``, the same for every ``i`` (``ValueError`` when ``d(k - 1)`` is odd: no
    symmetric padding keeps the size then). At ``s > 1`` it grows with ``i``, and most windows read padding.

    >>> size_keeping_padding(8, 3, s=2)
    5
    """
    i, s, span = positive_int(i, "i"), positive_int(s, "s"), effective_kernel_size(k, d)
    twice = (s - 1) * i - s + span  # 2p must be at least this much
    if s == 1 and twice % 2:
        raise ValueError(f"k={k} with d={d}: d(k - 1) = {span - 1} is odd, so no symmetric padding keeps the size")
    return max(-(-twice // 2), 0)


def read_counts(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> tuple[int, ...]:
    """How many windows of a convolution read each of the ``i`` input cells (padding cells not included).

    Output ``j`` reads the padded cells ``j s + u d`` for ``u = 0 .. k - 1``, i.e. input cell ``j s + u d - p``.
    With ``p = 0`` (and ``s = d = 1``) an end cell is read once, and a cell at least ``k - 1`` cells from both
    ends ``k`` times.
    """
    counts = [0] * i
    for j in range(conv_output_size(i, k, s, p, d)):
        for u in range(k):
            x = j * s + u * d - p
            if 0 <= x < i:
                counts[x] += 1
    return tuple(counts)


def unread_positions(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> tuple[int, ...]:
    """The input cells no window of the convolution reads: what a stride (or a dilation) leaves out.

    Positions are indices into the unpadded input, ``0 .. i - 1``. When the windows overlap or touch
    (``d = 1``, ``k >= s``) these are the last ``(i + 2p - k) mod s`` cells of the padded input, minus those that
    are padding; a stride larger than the effective kernel also skips cells *between* windows, and a dilation can
    skip cells inside every window.
    """
    return tuple(x for x, count in enumerate(read_counts(i, k, s, p, d)) if count == 0)


def receptive_field(
    k: Sequence[int], s: Sequence[int] | None = None, d: Sequence[int] | None = None
) -> int:
    """Receptive field (感受野) of one output cell of a stack of convolutions: how many input cells it can see.

    Layer ``l`` adds ``d_l (k_l - 1)`` cells, measured in steps of the product of the strides before it:

    .. math::

        r = 1 + \\sum_{l} d_l (k_l - 1) \\prod_{m < l} s_m.

    ``k``, ``s`` and ``d`` list the layers from input to output; ``s`` and ``d`` default to all ones.
    """
    if isinstance(k, str) or not isinstance(k, Sequence) or len(k) == 0:
        raise ValueError(f"k must be a non-empty sequence of kernel sizes, one per layer, got {k!r}")
    s = [1] * len(k) if s is None else int_tuple(s, "s", (len(k),))  # one per layer
    d = [1] * len(k) if d is None else int_tuple(d, "d", (len(k),))
    r, jump = 1, 1
    for layer, (kl, sl, dl) in enumerate(zip(k, s, d, strict=True)):
        r += positive_int(dl, f"d[{layer}]") * (positive_int(kl, f"k[{layer}]") - 1) * jump
        jump *= positive_int(sl, f"s[{layer}]")
    return r
