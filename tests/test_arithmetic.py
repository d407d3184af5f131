"""dlbook.arithmetic against the shapes PyTorch's layers actually produce, over exhaustive small grids."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    effective_kernel_size,
    pad_output_size,
    pool_output_size,
    read_counts,
    receptive_field,
    same_padding,
    size_keeping_padding,
    tf_same_padding,
    unpool_output_size,
    unread_positions,
)

DT = torch.float64
RAISED = "raises"


def _torch_or_raises(fn):
    """The output height PyTorch produces, or RAISED if PyTorch refuses the arguments."""
    try:
        return fn().shape[-2]
    except (RuntimeError, ValueError):
        return RAISED


def _ours_or_raises(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return RAISED


def torch_conv(i, k, s, p, d):
    x = torch.zeros(1, 1, i, 1, dtype=DT)
    w = torch.zeros(1, 1, k, 1, dtype=DT)
    return _torch_or_raises(lambda: F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1)))


def torch_max_pool(i, k, s, p, d, ceil_mode):
    x = torch.zeros(1, 1, i, i, dtype=DT)
    pool = lambda: torch.nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)(x)  # noqa: E731
    return _torch_or_raises(pool)


def torch_avg_pool(i, k, s, p, ceil_mode):
    x = torch.zeros(1, 1, i, i, dtype=DT)
    return _torch_or_raises(lambda: torch.nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil_mode)(x))


def torch_conv_transpose(i, k, s, p, op, d):
    x = torch.zeros(1, 1, i, i, dtype=DT)
    w = torch.zeros(1, 1, k, k, dtype=DT)
    return _torch_or_raises(lambda: F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op, dilation=d))


# ---------------------------------------------------------------------------------------------------- convolution


def test_conv_output_size_exhaustive():
    """Every i <= 12, k <= 5, s <= 4, p <= 4 (also more than k // 2: convolution allows it), d <= 3."""
    refused = 0
    for i, k, s, p, d in itertools.product(range(1, 13), range(1, 6), range(1, 5), range(0, 5), range(1, 4)):
        expected = torch_conv(i, k, s, p, d)
        refused += expected == RAISED
        assert _ours_or_raises(conv_output_size, i, k, s, p, d) == expected, (i, k, s, p, d)
    assert refused > 0  # the grid does reach kernels larger than the padded input


def test_conv_output_size_both_dimensions_of_a_layer():
    layer = torch.nn.Conv2d(1, 1, (3, 5), stride=(2, 3), padding=(1, 2), dilation=(2, 1))
    y = layer(torch.zeros(1, 1, 11, 17))
    assert y.shape[-2:] == (conv_output_size(11, 3, 2, 1, 2), conv_output_size(17, 5, 3, 2, 1))


@pytest.mark.parametrize("k", range(1, 7))
@pytest.mark.parametrize("d", range(1, 4))
@pytest.mark.parametrize("i", [1, 2, 5, 8])
def test_conv_output_size_padding_strings(i, k, d):
    x = torch.zeros(1, 1, i, i, dtype=DT)
    w = torch.zeros(1, 1, k, k, dtype=DT)
    assert conv_output_size(i, k, 1, "same", d) == F.conv2d(x, w, padding="same", dilation=d).shape[-1] == i
    valid = _torch_or_raises(lambda: F.conv2d(x, w, padding="valid", dilation=d))
    assert _ours_or_raises(conv_output_size, i, k, 1, "valid", d) == valid


def test_conv_same_with_stride_is_refused_like_pytorch():
    with pytest.raises(RuntimeError, match="strided"):
        F.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3), padding="same", stride=2)
    with pytest.raises(ValueError, match=r"s=2"):
        conv_output_size(8, 3, 2, "same")


@settings(max_examples=60, deadline=None)
@given(i=st.integers(1, 64), k=st.integers(1, 9), s=st.integers(1, 7), p=st.integers(0, 9), d=st.integers(1, 5))
def test_conv_output_size_hypothesis(i, k, s, p, d):
    assert _ours_or_raises(conv_output_size, i, k, s, p, d) == torch_conv(i, k, s, p, d)


@pytest.mark.parametrize("i,k,s,p,d,expected", [
    (5, 3, 1, 0, 1, 3),   # valid: i - k + 1
    (5, 3, 1, 1, 1, 5),   # same
    (5, 3, 1, 2, 1, 7),   # full: i + k - 1
    (7, 3, 2, 1, 1, 4),   # (7 + 2 - 3) / 2 + 1
    (6, 3, 2, 1, 1, 3),   # floor((6 + 2 - 3) / 2) + 1: one padded row unread
    (7, 3, 1, 0, 2, 3),   # the dilated kernel spans 5
    (1, 1, 5, 0, 1, 1),
    (3, 3, 1, 0, 1, 1),   # the kernel exactly fills the input
])
def test_conv_output_size_known_values(i, k, s, p, d, expected):
    assert conv_output_size(i, k, s, p, d) == expected


def test_effective_kernel_size():
    assert [effective_kernel_size(3, d) for d in (1, 2, 3)] == [3, 5, 7]
    assert effective_kernel_size(1, 9) == 1
    with pytest.raises(ValueError, match="^d "):
        effective_kernel_size(3, 0)


# ---------------------------------------------------------------------------------------------------- pooling


def test_max_pool_output_size_exhaustive():
    """MaxPool2d over every i <= 12, k <= 5, s <= 4, p <= k // 2 + 1 (one over the limit), d <= 3, both ceil modes."""
    dropped = refused = 0
    for i, k, s, d, ceil_mode in itertools.product(range(1, 13), range(1, 6), range(1, 5), range(1, 4), (False, True)):
        for p in range(0, k // 2 + 2):
            expected = torch_max_pool(i, k, s, p, d, ceil_mode)
            assert _ours_or_raises(pool_output_size, i, k, s, p, d, ceil_mode) == expected, (i, k, s, p, d, ceil_mode)
            refused += expected == RAISED
            if ceil_mode and expected != RAISED:
                span = d * (k - 1) + 1
                dropped += (-(-(i + 2 * p - span) // s) + 1) != expected  # the ceil count minus a dropped window
    assert dropped > 0, "the grid must reach ceil_mode windows that would start in the right padding"
    assert refused > 0


def test_avg_pool_output_size_exhaustive():
    for i, k, s, ceil_mode in itertools.product(range(1, 13), range(1, 6), range(1, 5), (False, True)):
        for p in range(0, k // 2 + 2):
            expected = torch_avg_pool(i, k, s, p, ceil_mode)
            assert _ours_or_raises(pool_output_size, i, k, s, p, 1, ceil_mode) == expected, (i, k, s, p, ceil_mode)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("i", [4, 5, 7, 8])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_default_stride_is_kernel_size(i, k, ceil_mode):
    x = torch.zeros(1, 1, i, i, dtype=DT)
    assert pool_output_size(i, k, ceil_mode=ceil_mode) == F.max_pool2d(x, k, ceil_mode=ceil_mode).shape[-1]
    assert pool_output_size(i, k, None, ceil_mode=ceil_mode) == pool_output_size(i, k, k, ceil_mode=ceil_mode)


def test_ceil_mode_drops_window_starting_in_right_padding():
    # i=5, k=2, s=2, p=1: the padded row is 7 cells; ceil((5 + 2 - 2) / 2) + 1 = 4 windows would start at 0, 2, 4, 6,
    # but cell 6 is right padding (i + p = 6), so PyTorch keeps 3.
    x = torch.arange(25, dtype=DT).reshape(1, 1, 5, 5)
    y = F.max_pool2d(x, 2, 2, 1, ceil_mode=True)
    assert y.shape[-1] == pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=False) == 3
    # i=6, k=3, s=2, p=1: the 4th window starts at 6 < i + p = 7 and still reads the last input cell.
    assert pool_output_size(6, 3, 2, 1, ceil_mode=True) == 4
    assert F.max_pool2d(torch.zeros(1, 1, 6, 6, dtype=DT), 3, 2, 1, ceil_mode=True).shape[-1] == 4


@settings(max_examples=60, deadline=None)
@given(i=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 6), d=st.integers(1, 4), ceil_mode=st.booleans(),
       data=st.data())
def test_pool_output_size_hypothesis(i, k, s, d, ceil_mode, data):
    p = data.draw(st.integers(0, k // 2))
    assert _ours_or_raises(pool_output_size, i, k, s, p, d, ceil_mode) == torch_max_pool(i, k, s, p, d, ceil_mode)


# ---------------------------------------------------------------------------------------------------- transposed


def test_conv_transpose_output_size_exhaustive():
    """Every i <= 7, k <= 5, s <= 4, p <= 4, output_padding <= 3 (valid and not), d <= 3."""
    with_large_op = refused = 0
    for i, k, s, p, op, d in itertools.product(range(1, 8), range(1, 6), range(1, 5), range(0, 5), range(0, 4),
                                               range(1, 4)):
        expected = torch_conv_transpose(i, k, s, p, op, d)
        assert _ours_or_raises(conv_transpose_output_size, i, k, s, p, op, d) == expected, (i, k, s, p, op, d)
        refused += expected == RAISED
        with_large_op += expected != RAISED and op >= s  # allowed only because op < d
    assert with_large_op > 0 and refused > 0


@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("p", [0, 1])
def test_output_padding_recovers_every_size_a_stride_folds_together(s, k, p):
    """A stride-s convolution maps s input sizes to one output size; output_padding = 0 .. s-1 gives each back."""
    o = 5
    sources = [i for i in range(1, 40) if _ours_or_raises(conv_output_size, i, k, s, p) == o]
    assert len(sources) == s
    back = [conv_transpose_output_size(o, k, s, p, op) for op in range(s)]
    assert back == sources
    for op, i in enumerate(back):  # and PyTorch's ConvTranspose2d agrees, given output_size
        layer = torch.nn.ConvTranspose2d(1, 1, k, stride=s, padding=p)
        assert layer(torch.zeros(1, 1, o, o), output_size=[i, i]).shape[-1] == i
        assert torch_conv_transpose(o, k, s, p, op, 1) == i


@settings(max_examples=60, deadline=None)
@given(i=st.integers(1, 30), k=st.integers(1, 7), s=st.integers(1, 6), p=st.integers(0, 8), d=st.integers(1, 4),
       data=st.data())
def test_conv_transpose_output_size_hypothesis(i, k, s, p, d, data):
    op = data.draw(st.integers(0, max(s, d)))
    assert _ours_or_raises(conv_transpose_output_size, i, k, s, p, op, d) == torch_conv_transpose(i, k, s, p, op, d)


# ---------------------------------------------------------------------------------------------------- unpooling


def test_unpool_output_size_exhaustive():
    """F.max_unpool2d's output size, default and requested, over every i <= 6, k <= 4, s <= 3, p <= 3."""
    refused = 0
    for i, k, s, p in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(0, 4)):
        x = torch.zeros(1, 1, i, 1, dtype=DT)
        indices = torch.zeros(1, 1, i, 1, dtype=torch.int64)
        for requested in (None, *range(0, (i + 1) * s + k)):
            size = None if requested is None else (requested, 1)
            expected = _torch_or_raises(lambda: F.max_unpool2d(x, indices, (k, 1), (s, 1), (p, 0), size))  # noqa: B023
            assert _ours_or_raises(unpool_output_size, i, k, s, p, requested) == expected, (i, k, s, p, requested)
            refused += expected == RAISED
    assert refused > 0


# ---------------------------------------------------------------------------------------------------- F.pad


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_output_size_exhaustive(mode):
    """F.pad's output width, or its refusal, for every n <= 5 and pads -6 .. 6 on both sides."""
    refused = 0
    for n, before, after in itertools.product(range(1, 6), range(-6, 7), range(-6, 7)):
        ours = _ours_or_raises(pad_output_size, n, before, after, mode)
        if mode == "circular" and before * after < 0:
            assert ours == RAISED  # F.pad computes wrong values for these: refused
            continue
        x = torch.zeros(1, 1, 1, n, dtype=DT)
        try:
            expected = F.pad(x, (before, after, 0, 0), mode).shape[-1]
        except (RuntimeError, ValueError):
            expected = RAISED
        assert ours == expected, (n, before, after, mode)
        refused += expected == RAISED
    assert refused > 0


# ---------------------------------------------------------------------------------------------------- same padding


@pytest.mark.parametrize("k", range(1, 8))
@pytest.mark.parametrize("d", range(1, 4))
def test_same_padding_matches_pytorch_values(k, d):
    """Pad by same_padding by hand, convolve with no padding: the same numbers as F.conv2d(padding='same')."""
    g = torch.Generator().manual_seed(k * 10 + d)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=DT)
    w = torch.randn(4, 3, k, k, generator=g, dtype=DT)
    before, after = same_padding(k, 1, d)
    assert before + after == d * (k - 1) and after - before in (0, 1)
    ours = F.conv2d(F.pad(x, (before, after, before, after)), w, dilation=d)
    torch.testing.assert_close(ours, F.conv2d(x, w, padding="same", dilation=d), rtol=0, atol=1e-12)
    layer = torch.nn.Conv2d(3, 4, k, padding="same", dilation=d, bias=False, dtype=DT)
    with torch.no_grad():
        layer.weight.copy_(w)
    torch.testing.assert_close(ours, layer(x), rtol=0, atol=1e-12)


def test_same_padding_even_kernel_puts_the_extra_cell_after():
    assert same_padding(2) == (0, 1)
    assert same_padding(4) == (1, 2)
    assert same_padding(3) == (1, 1)
    assert same_padding(2, d=2) == (1, 1)  # effective size 3: symmetric again
    x = torch.zeros(1, 1, 4, 4, dtype=DT)
    x[0, 0, 0, 0] = 1.0  # an impulse in the top-left corner
    w = torch.ones(1, 1, 2, 2, dtype=DT)
    y = F.conv2d(x, w, padding="same")
    # Padding after means output (0, 0) reads input rows/cols 0..1: the impulse is seen only at (0, 0).
    assert y[0, 0].nonzero().tolist() == [[0, 0]]


@pytest.mark.parametrize("s", [2, 3])
def test_same_padding_refuses_stride(s):
    with pytest.raises(ValueError, match=f"s={s}"):
        same_padding(3, s)


@pytest.mark.parametrize("i", range(1, 14))
@pytest.mark.parametrize("k", range(1, 6))
@pytest.mark.parametrize("s", range(1, 5))
@pytest.mark.parametrize("d", [1, 2])
def test_tf_same_padding(i, k, s, d):
    before, after = tf_same_padding(i, k, s, d)
    total = before + after
    assert before == total // 2 and after == total - before
    x = torch.zeros(1, 1, i, 1, dtype=DT)
    w = torch.zeros(1, 1, k, 1, dtype=DT)
    y = F.conv2d(F.pad(x, (0, 0, before, after)), w, stride=(s, 1), dilation=(d, 1))
    assert y.shape[-2] == -(-i // s)  # TensorFlow's "SAME": ceil(i / s) outputs
    if total > 0:  # and it is the least padding that gives them
        assert _ours_or_raises(conv_output_size, i + total - 1, k, s, 0, d) in (RAISED, -(-i // s) - 1)
    if s == 1:
        assert (before, after) == same_padding(k, 1, d)


def test_tf_same_padding_known_values():
    # The documented TensorFlow rule: i=4, k=3, s=2 pads (0, 1) where PyTorch's padding=1 pads (1, 1).
    assert tf_same_padding(4, 3, 2) == (0, 1)
    assert tf_same_padding(5, 3, 2) == (1, 1)
    assert tf_same_padding(8, 1, 2) == (0, 0)


@pytest.mark.parametrize("s", range(1, 5))
@pytest.mark.parametrize("d", [1, 2])
def test_size_keeping_padding_is_the_least_that_keeps_the_size(s, d):
    """Against PyTorch's shapes: p keeps i cells, p - 1 does not; at s = 1 an odd total padding is refused."""
    for i, k in itertools.product(range(1, 14), range(1, 6)):
        if s == 1 and d * (k - 1) % 2:
            with pytest.raises(ValueError, match=f"^k={k} with d={d}"):
                size_keeping_padding(i, k, s, d)
            continue
        p = size_keeping_padding(i, k, s, d)
        assert torch_conv(i, k, s, p, d) == i, (i, k, s, d, p)
        if p > 0:
            assert torch_conv(i, k, s, p - 1, d) in (RAISED, *range(i)), (i, k, s, d, p)
        if s == 1:
            assert (p, p) == same_padding(k, 1, d)  # independent of i


def test_size_keeping_padding_grows_with_the_input_at_a_stride():
    assert [size_keeping_padding(i, 3, s=2) for i in (8, 16, 32)] == [5, 9, 17]  # about (s - 1) i / 2
    assert {size_keeping_padding(i, 3) for i in (8, 16, 32)} == {1}


# ---------------------------------------------------------------------------------------------------- reads


def _grad_counts(i, k, s, p, d):
    """How often F.conv2d reads each input cell: the gradient of the summed output under an all-ones kernel."""
    x = torch.zeros(1, 1, i, 1, dtype=DT, requires_grad=True)
    w = torch.ones(1, 1, k, 1, dtype=DT)
    F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1)).sum().backward()
    return tuple(int(v) for v in x.grad[0, 0, :, 0].round())


def test_read_counts_and_unread_positions_exhaustive():
    some_unread = 0
    for i, k, s, p, d in itertools.product(range(1, 11), range(1, 5), range(1, 5), range(0, 3), range(1, 4)):
        if torch_conv(i, k, s, p, d) == RAISED:
            with pytest.raises(ValueError):
                read_counts(i, k, s, p, d)
            continue
        counts = _grad_counts(i, k, s, p, d)
        assert read_counts(i, k, s, p, d) == counts, (i, k, s, p, d)
        unread = unread_positions(i, k, s, p, d)
        assert unread == tuple(x for x, c in enumerate(counts) if c == 0)
        some_unread += bool(unread)
    assert some_unread > 0


def test_stride_leaves_the_last_rows_unread():
    # (i + 2p - k) mod s = (8 - 3) mod 2 = 1: the last input row is never read.
    assert unread_positions(8, 3, 2) == (7,)
    assert unread_positions(7, 3, 2) == ()
    assert unread_positions(8, 1, 3) == (1, 2, 4, 5, 7)  # a stride larger than the kernel skips between windows
    assert read_counts(5, 3) == (1, 2, 3, 2, 1)  # border cells are read less: no padding
    assert read_counts(5, 3, p=1) == (2, 3, 3, 3, 2)  # "same" padding: still less at the border
    assert read_counts(5, 3, p=2) == (3, 3, 3, 3, 3)  # "full" padding: every cell read k times


# ---------------------------------------------------------------------------------------------------- receptive field


def _grad_receptive_field(ks, ss, ds):
    n = receptive_field(ks, ss, ds) + 5  # long enough for the first output cell of the last layer
    x = torch.zeros(1, 1, n, dtype=DT, requires_grad=True)
    y = x
    for k, s, d in zip(ks, ss, ds, strict=True):
        y = F.conv1d(y, torch.ones(1, 1, k, dtype=DT), stride=s, dilation=d)
    y[0, 0, 0].backward()  # the first output cell sees input cells 0 .. r - 1
    support = x.grad[0, 0].nonzero().flatten()
    return int(support.max() - support.min() + 1)


@pytest.mark.parametrize("ks,ss,ds,expected", [
    ([3], [1], [1], 3),
    ([3, 3], [1, 1], [1, 1], 5),
    ([3, 3, 3], [1, 1], None, None),  # bad lengths, checked below
    ([3, 3, 3], [1, 1, 1], [1, 2, 4], 15),  # dilations doubling: exponential growth
    ([2, 2, 2], [2, 2, 2], [1, 1, 1], 8),
    ([7, 3, 3], [2, 1, 1], [1, 1, 1], 15),
])
def test_receptive_field(ks, ss, ds, expected):
    if expected is None:
        with pytest.raises(ValueError, match="^s "):
            receptive_field(ks, ss, ds)
    else:
        assert receptive_field(ks, ss, ds) == expected == _grad_receptive_field(ks, ss, ds)


@settings(max_examples=60, deadline=None)
@given(layers=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=4))
def test_receptive_field_hypothesis(layers):
    ks, ss, ds = (list(t) for t in zip(*layers, strict=True))
    assert receptive_field(ks, ss, ds) == _grad_receptive_field(ks, ss, ds)


def test_receptive_field_defaults():
    assert receptive_field([3, 3, 3]) == 7
    assert receptive_field([5], d=[2]) == 9


# ---------------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("fn,kwargs,exc,match", [
    (conv_output_size, dict(i=0, k=3), ValueError, "^i must"),
    (conv_output_size, dict(i=5, k=0), ValueError, "^k must"),
    (conv_output_size, dict(i=5, k=3, s=0), ValueError, "^s must"),
    (conv_output_size, dict(i=5, k=3, p=-1), ValueError, "^p must"),
    (conv_output_size, dict(i=5, k=3, d=0), ValueError, "^d must"),
    (conv_output_size, dict(i=5, k=3, p="full"), ValueError, "^p must"),
    (conv_output_size, dict(i=5, k=7), ValueError, "^k=7"),
    (conv_output_size, dict(i=5, k=3, d=3), ValueError, "^k=3 with d=3"),
    (conv_output_size, dict(i=5.0, k=3), TypeError, "^i must"),
    (conv_output_size, dict(i=5, k=True), TypeError, "^k must"),
    (pool_output_size, dict(i=5, k=3, p=2), ValueError, "^p=2"),
    (pool_output_size, dict(i=5, k=3, s=0), ValueError, "^s must"),
    (pool_output_size, dict(i=2, k=5, p=0), ValueError, "no pooling window"),
    (pool_output_size, dict(i=5, k=3, ceil_mode=1), TypeError, "^ceil_mode"),
    (conv_transpose_output_size, dict(i=5, k=3, s=2, output_padding=2), ValueError, "^output_padding=2"),
    (conv_transpose_output_size, dict(i=5, k=3, output_padding=1), ValueError, "^output_padding=1"),
    (conv_transpose_output_size, dict(i=5, k=3, output_padding=-1), ValueError, "^output_padding must"),
    (conv_transpose_output_size, dict(i=1, k=3, p=2), ValueError, "p=2 crops"),
    (same_padding, dict(k=0), ValueError, "^k must"),
    (same_padding, dict(k=3, d=0), ValueError, "^d must"),
    (tf_same_padding, dict(i=0, k=3), ValueError, "^i must"),
    (size_keeping_padding, dict(i=8, k=2), ValueError, "^k=2 with d=1"),
    (size_keeping_padding, dict(i=8, k=3, s=0), ValueError, "^s must"),
    (read_counts, dict(i=3, k=5), ValueError, "^k=5"),
    (receptive_field, dict(k=[]), ValueError, "^k must"),
    (receptive_field, dict(k=[3, 0]), ValueError, r"^k\[1\]"),
    (receptive_field, dict(k=[3, 3], d=[1]), ValueError, "^d must"),
    (receptive_field, dict(k=[3], s=[0]), ValueError, r"^s\[0\]"),
])
def test_bad_arguments(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(**kwargs)
