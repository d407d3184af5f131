"""dlbook.pooling against torch.nn.functional (float64, values, indices and gradients, ties included)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlbook.arithmetic import pool_output_size
from dlbook.pooling import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    first_max_position,
    global_avg_pool2d,
    global_max_pool2d,
    lp_pool2d,
    max_pool2d,
)
from tensors import TOL, randn64


def _ties(*shape, seed=0, levels=3):
    """Small integers: most windows hold several equal maxima."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, shape, generator=g).to(torch.float64).requires_grad_(True)


def _assert_same(ours, ref, inputs, seed=1):
    """Values equal (to 1e-10) and gradients equal under a random upstream gradient."""
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL)
    cot = randn64(*ref.shape, seed=seed, requires_grad=False)  # every output position matters
    g_ours = torch.autograd.grad(ours, inputs, cot)
    g_ref = torch.autograd.grad(ref, inputs, cot)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, equal_nan=True, **TOL)


def _torch_accepts(theirs, ours, *args):
    """Whether PyTorch's pool accepts the arguments; where it refuses them, ours must refuse them too (ValueError)."""
    try:
        theirs(*args)
    except RuntimeError:
        with pytest.raises(ValueError):
            ours(*args)
        return False
    return True


# --- max pooling -----------------------------------------------------------------------------------------------

MAX_GRID = [
    (k, s, p, d, c)
    for k, s, p, d, c in itertools.product([1, 2, 3, 4], [None, 1, 2, 3], [0, 1, 2], [1, 2], [False, True])
    if p <= k // 2
]


@pytest.mark.parametrize("k,s,p,d,ceil_mode", MAX_GRID)
def test_max_pool_matches_torch_on_grid(k, s, p, d, ceil_mode):
    x = randn64(2, 3, 9, 8)
    ours, idx = max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    assert torch.equal(idx, ref_idx)
    _assert_same(ours, ref, (x,))


@pytest.mark.parametrize("k,s,p,d,ceil_mode", MAX_GRID)
def test_max_pool_ties_send_the_gradient_where_torch_does(k, s, p, d, ceil_mode):
    x = _ties(2, 2, 9, 8, seed=k + 10 * d)
    ours, idx = max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    assert torch.equal(idx, ref_idx)
    _assert_same(ours, ref, (x,))


def test_max_pool_tie_goes_to_the_first_maximum_in_row_major_order():
    # one 3x3 window; the maximum 5 appears at (0, 2), (1, 0) and (2, 1): row-major order picks (0, 2)
    x = torch.tensor([[[[1.0, 0.0, 5.0], [5.0, 2.0, 0.0], [3.0, 5.0, 4.0]]]], dtype=torch.float64, requires_grad=True)
    for f in (max_pool2d, F.max_pool2d):
        y, idx = f(x, 3, return_indices=True)
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert idx.item() == 2
        expected = torch.zeros_like(x)
        expected[0, 0, 0, 2] = 1.0
        assert torch.equal(grad, expected)


def test_constant_input_overlapping_windows():
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    ours, ref = max_pool2d(x, 2, 1), F.max_pool2d(x, 2, 1)
    _assert_same(ours, ref, (x,))
    (grad,) = torch.autograd.grad(max_pool2d(x, 2, 1).sum(), x)
    # every window's winner is its own top-left corner: rows/cols 0..2 get one output each
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[:3, :3] = 1.0
    assert torch.equal(grad[0, 0], expected)


def test_max_pool_nan_like_torch():
    nan = float("nan")
    x = torch.tensor([[[[1.0, nan, 0.0, 2.0], [nan, 2.0, 3.0, 1.0]]]], dtype=torch.float64)
    ours, idx = max_pool2d(x, 2, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, 2, return_indices=True)
    torch.testing.assert_close(ours, ref, equal_nan=True)
    assert torch.equal(idx, ref_idx)
    assert torch.isnan(ours[0, 0, 0, 0]) and idx[0, 0, 0, 0].item() == 4  # the last NaN of the window


def test_window_wholly_in_the_padding_and_real_minus_inf_like_torch():
    # dilation 2, padding 1, H = 1: the window rows are -1 and 1, both off the input -> output -inf
    x = torch.tensor([[[[0.7]]]], dtype=torch.float64)
    for args in [((2, 1), 1, (1, 0), (2, 1)), ((2, 2), 1, (1, 1), (2, 2))]:
        ours, idx = max_pool2d(x, *args, return_indices=True)
        ref, ref_idx = F.max_pool2d(x, *args, return_indices=True)
        assert torch.equal(ours, ref) and torch.equal(idx, ref_idx)
    # a real -inf beats the padding: its index is reported, not the padding's
    x = torch.full((1, 1, 3, 3), float("-inf"), dtype=torch.float64)
    ours, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert torch.equal(ours, ref) and torch.equal(idx, ref_idx)


def test_first_max_position():
    w = torch.tensor([[0.0, 3.0, 3.0, 1.0], [float("nan"), 1.0, float("nan"), 5.0], [-1.0, -1.0, -1.0, -1.0]])
    assert first_max_position(w).flatten().tolist() == [1, 2, 0]


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 10), W=st.integers(1, 10),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 3), dw=st.integers(1, 3),
       ceil_mode=st.booleans(), ties=st.booleans(), seed=st.integers(0, 10_000))
def test_max_pool_matches_torch_hypothesis(B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode, ties, seed):
    x = _ties(B, C, H, W, seed=seed) if ties else randn64(B, C, H, W, seed=seed)
    args = ((kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
    assume(_torch_accepts(F.max_pool2d, max_pool2d, x, *args))
    ours, idx = max_pool2d(x, *args, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, *args, return_indices=True)
    assert torch.equal(idx, ref_idx)
    if torch.isinf(ref).any():
        # A dilated window wholly in the padding (output -inf): PyTorch's backward then indexes outside the
        # input and aborts the process, so compare the values and indices only.
        assert torch.equal(ours, ref)
    else:
        _assert_same(ours, ref, (x,), seed=seed + 1)
    assert ours.shape[-2:] == (pool_output_size(H, kh, sh, ph, dh, ceil_mode),
                               pool_output_size(W, kw, sw, pw, dw, ceil_mode))


def test_max_pool_gradcheck():
    x = randn64(1, 2, 6, 5)
    assert torch.autograd.gradcheck(lambda x: max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), True), (x,))


# --- average pooling -------------------------------------------------------------------------------------------

AVG_GRID = [
    (k, s, p, c, cip, div)
    for k, s, p, c, cip, div in itertools.product([1, 2, 3, 4], [None, 1, 2, 3], [0, 1, 2], [False, True],
                                                  [True, False], [None, 3])
    if p <= k // 2
]


@pytest.mark.parametrize("k,s,p,ceil_mode,count_include_pad,divisor_override", AVG_GRID)
def test_avg_pool_matches_torch_on_grid(k, s, p, ceil_mode, count_include_pad, divisor_override):
    x = randn64(2, 3, 9, 8)
    ours = avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)
    ref = F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)
    _assert_same(ours, ref, (x,))


def test_count_include_pad_changes_only_the_border():
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    with_pad = avg_pool2d(x, 3, 1, 1, count_include_pad=True)[0, 0]
    without = avg_pool2d(x, 3, 1, 1, count_include_pad=False)[0, 0]
    assert torch.equal(without, torch.ones(4, 4, dtype=torch.float64))  # only real pixels are averaged
    assert with_pad[0, 0].item() == pytest.approx(4 / 9)  # corner: 4 real ones and 5 padded zeros
    assert with_pad[1, 1].item() == 1.0


def test_ceil_mode_window_past_the_padding_is_not_counted():
    # 5x5 input, k=3, s=2, p=1, ceil: 3 windows; the last one covers row 3, 4 and the padding row 5 -> 3 rows
    x = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    ours = avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    torch.testing.assert_close(ours, F.avg_pool2d(x, 3, 2, 1, ceil_mode=True))
    assert ours[0, 0, -1, -1].item() == pytest.approx(1 / 4)  # 1 real pixel over 2x2 counted positions


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 10), W=st.integers(1, 10),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       ph=st.integers(0, 2), pw=st.integers(0, 2), ceil_mode=st.booleans(), cip=st.booleans(),
       div=st.sampled_from([None, 1, 2, 7]), seed=st.integers(0, 10_000))
def test_avg_pool_matches_torch_hypothesis(B, C, H, W, kh, kw, sh, sw, ph, pw, ceil_mode, cip, div, seed):
    x = randn64(B, C, H, W, seed=seed)
    args = ((kh, kw), (sh, sw), (ph, pw), ceil_mode, cip, div)
    assume(_torch_accepts(F.avg_pool2d, avg_pool2d, x, *args))
    _assert_same(avg_pool2d(x, *args), F.avg_pool2d(x, *args), (x,), seed=seed + 1)


def test_avg_pool_gradcheck():
    x = randn64(1, 2, 5, 6)
    assert torch.autograd.gradcheck(lambda x: avg_pool2d(x, 3, 2, 1, True, False), (x,))


# --- Lp pooling ------------------------------------------------------------------------------------------------

NORMS = [1, 2, 3, 0.5, 1.5, -1, math.inf, -math.inf]


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("k,s,ceil_mode", [(2, None, False), (3, 2, True), (3, 1, False), ((2, 3), (1, 2), True)])
def test_lp_pool_matches_torch_positive_inputs(norm_type, k, s, ceil_mode):
    x = (randn64(2, 3, 7, 8, requires_grad=False).abs() + 0.1).requires_grad_(True)
    _assert_same(lp_pool2d(x, norm_type, k, s, ceil_mode), F.lp_pool2d(x, norm_type, k, s, ceil_mode), (x,))


@pytest.mark.parametrize("norm_type", [1, 2, 3, -1, math.inf, -math.inf])
def test_lp_pool_matches_torch_signed_inputs(norm_type):
    """No absolute value: for p=1 a window's sum may be negative; for odd p a negative power sum gives NaN."""
    x = randn64(2, 2, 6, 6, seed=3)
    ours, ref = lp_pool2d(x, norm_type, 2), F.lp_pool2d(x, norm_type, 2)
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL)
    if norm_type in (1, 2, math.inf, -math.inf):  # finite everywhere: compare gradients as well
        _assert_same(ours, ref, (x,))


def test_lp_pool_is_sum_at_p1_norm_at_p2_max_at_large_p():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    assert lp_pool2d(x, 1, 2).item() == pytest.approx(10.0)  # the sum, not the mean 2.5
    assert lp_pool2d(x, 2, 2).item() == pytest.approx(math.sqrt(30.0))
    values = [lp_pool2d(x, p, 2).item() for p in (1, 2, 4, 8, 16, 64)]
    assert all(a > b for a, b in itertools.pairwise(values))  # decreasing in p ...
    assert values[-1] == pytest.approx(4.0, rel=0.03) and lp_pool2d(x, math.inf, 2).item() == 4.0  # ... to the max
    x_neg = -x
    assert lp_pool2d(x_neg, 1, 2).item() == pytest.approx(-10.0)  # no absolute value at finite p
    assert lp_pool2d(x_neg, math.inf, 2).item() == 4.0  # but p=inf is max |x|


@pytest.mark.parametrize("norm_type", [0.5, 1, 2, 3, math.inf])
def test_lp_pool_scales_with_its_input_unlike_a_normalisation(norm_type):
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.1
    y = lp_pool2d(x, norm_type, 2)
    for c in (0.5, 3.0):
        torch.testing.assert_close(lp_pool2d(c * x, norm_type, 2), c * y, **TOL)  # homogeneous of degree 1
        torch.testing.assert_close(F.lp_pool2d(c * x, norm_type, 2), c * y, **TOL)
        assert not torch.allclose(lp_pool2d(c * x, norm_type, 2), y)  # a normalisation would not change
    # Dividing each window by its pooled value is the normalisation: then every window pools to 1.
    per_window = y.repeat_interleave(2, -2).repeat_interleave(2, -1)  # (2, 3, 6, 6)
    torch.testing.assert_close(lp_pool2d(x / per_window, norm_type, 2), torch.ones_like(y), **TOL)


def test_lp_pool_zero_window_has_zero_gradient_like_torch():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 2:, 2:] = 1.0
    x.requires_grad_(True)
    for p in (2, 3, 0.5):  # at p < 1 the derivative of x^p at 0 is infinite: NaN in both
        _assert_same(lp_pool2d(x, p, 2), F.lp_pool2d(x, p, 2), (x,))
    for p in (2, 3):
        (grad,) = torch.autograd.grad(lp_pool2d(x, p, 2).sum(), x)
        assert torch.isfinite(grad).all() and grad[0, 0, :2, :2].abs().sum() == 0


def test_lp_pool_ceil_mode_scales_partial_windows_like_torch():
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    ours = lp_pool2d(x, 1, 2, ceil_mode=True)
    torch.testing.assert_close(ours, F.lp_pool2d(x, 1, 2, ceil_mode=True))
    assert ours[0, 0, 1, 1].item() == 4.0  # one pixel of value 1, scaled up to a full 2x2 window


@settings(max_examples=50, deadline=None)
@given(H=st.integers(1, 8), W=st.integers(1, 8), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ceil_mode=st.booleans(),
       p=st.sampled_from([1, 2, 3, 0.75, 2.5, math.inf]), seed=st.integers(0, 10_000))
def test_lp_pool_matches_torch_hypothesis(H, W, kh, kw, sh, sw, ceil_mode, p, seed):
    x = (randn64(2, 2, H, W, seed=seed, requires_grad=False).abs() + 0.05).requires_grad_(True)
    args = (p, (kh, kw), (sh, sw), ceil_mode)
    assume(_torch_accepts(F.lp_pool2d, lp_pool2d, x, *args))
    _assert_same(lp_pool2d(x, *args), F.lp_pool2d(x, *args), (x,), seed=seed + 1)


def test_lp_pool_gradcheck():
    x = (randn64(1, 1, 5, 5, requires_grad=False).abs() + 0.2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: lp_pool2d(x, 3, 2, 1), (x,))


# --- adaptive and global pooling -------------------------------------------------------------------------------

@pytest.mark.parametrize("output_size", [1, 2, 3, (2, 5), (None, 3), (4, None), 7, (9, 8), (10, 11)])
def test_adaptive_pools_match_torch(output_size):
    x = randn64(2, 3, 7, 8)
    _assert_same(adaptive_avg_pool2d(x, output_size), F.adaptive_avg_pool2d(x, output_size), (x,))
    xt = _ties(2, 3, 7, 8)
    ours, idx = adaptive_max_pool2d(xt, output_size, return_indices=True)
    ref, ref_idx = F.adaptive_max_pool2d(xt, output_size, return_indices=True)
    assert torch.equal(idx, ref_idx)
    _assert_same(ours, ref, (xt,))


@settings(max_examples=40, deadline=None)
@given(H=st.integers(1, 9), W=st.integers(1, 9), oh=st.integers(1, 9), ow=st.integers(1, 9),
       seed=st.integers(0, 10_000))
def test_adaptive_pools_match_torch_hypothesis(H, W, oh, ow, seed):
    x = _ties(1, 2, H, W, seed=seed, levels=4)
    _assert_same(adaptive_avg_pool2d(x, (oh, ow)), F.adaptive_avg_pool2d(x, (oh, ow)), (x,), seed=seed)
    _assert_same(adaptive_max_pool2d(x, (oh, ow)), F.adaptive_max_pool2d(x, (oh, ow)), (x,), seed=seed)


def test_global_pools():
    x = _ties(2, 3, 5, 4, levels=2)
    _assert_same(global_avg_pool2d(x), F.adaptive_avg_pool2d(x, 1), (x,))
    _assert_same(global_max_pool2d(x), F.adaptive_max_pool2d(x, 1), (x,))
    assert global_max_pool2d(x).shape == (2, 3, 1, 1)
    (grad,) = torch.autograd.grad(global_max_pool2d(x).sum(), x)
    assert torch.equal(grad.sum(dim=(-2, -1)), torch.ones(2, 3, dtype=torch.float64))  # one winner per channel


def test_unbatched_inputs():
    x = randn64(3, 7, 6)
    torch.testing.assert_close(max_pool2d(x, 2), F.max_pool2d(x, 2))
    y, i = max_pool2d(x, 3, 2, 1, return_indices=True)
    y_ref, i_ref = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    torch.testing.assert_close(y, y_ref)
    assert torch.equal(i, i_ref)
    torch.testing.assert_close(avg_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1))
    torch.testing.assert_close(lp_pool2d(x.abs(), 2, 2), F.lp_pool2d(x.abs(), 2, 2))
    torch.testing.assert_close(adaptive_avg_pool2d(x, 2), F.adaptive_avg_pool2d(x, 2))
    torch.testing.assert_close(global_max_pool2d(x), F.adaptive_max_pool2d(x, 1))


def test_pooling_has_no_parameters_and_is_per_channel():
    x = randn64(1, 3, 6, 6, requires_grad=False)
    y = max_pool2d(x, 2)
    for c in range(3):  # each channel is pooled on its own: no mixing across channels
        assert torch.equal(y[:, c], max_pool2d(x[:, c : c + 1], 2)[:, 0])
    assert sum(p.numel() for p in torch.nn.MaxPool2d(2).parameters()) == 0


# --- bad arguments -----------------------------------------------------------------------------------------------

def _x(*shape):
    return torch.zeros(*shape, dtype=torch.float64)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: max_pool2d(_x(1, 1, 5, 5), 0), ValueError, "kernel_size"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 2.0), TypeError, "kernel_size"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 2, stride=0), ValueError, "stride"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 3, padding=2), ValueError, "padding"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 3, padding=-1), ValueError, "padding"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 2, dilation=0), ValueError, "dilation"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: max_pool2d(_x(1, 1, 2, 2), 3), ValueError, "input"),
    (lambda: max_pool2d(_x(1, 1, 5, 5), 3, dilation=3), ValueError, "dilation"),
    (lambda: max_pool2d(_x(5, 5), 2), ValueError, "input"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 2), TypeError, "input"),
    (lambda: max_pool2d(torch.zeros(1, 1, 4, 4, dtype=torch.long), 2), TypeError, "input"),
    (lambda: avg_pool2d(_x(1, 1, 5, 5), 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: avg_pool2d(_x(1, 1, 5, 5), 2, count_include_pad="yes"), TypeError, "count_include_pad"),
    (lambda: avg_pool2d(_x(1, 1, 5, 5), 2, padding=2), ValueError, "padding"),
    (lambda: lp_pool2d(_x(1, 1, 5, 5), 0, 2), ValueError, "norm_type"),
    (lambda: lp_pool2d(_x(1, 1, 5, 5), "2", 2), TypeError, "norm_type"),
    (lambda: lp_pool2d(_x(1, 1, 5, 5), 2, 6), ValueError, "input"),
    (lambda: adaptive_avg_pool2d(_x(1, 1, 5, 5), 0), ValueError, "output_size"),
    (lambda: adaptive_max_pool2d(_x(1, 1, 5, 5), (1, 2, 3)), TypeError, "output_size"),
    (lambda: global_avg_pool2d(_x(5)), ValueError, "input"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_torch_agrees_these_are_errors():
    """What we refuse for its size or padding, PyTorch refuses too."""
    for call in (lambda f: f(_x(1, 1, 5, 5), 3, padding=2), lambda f: f(_x(1, 1, 2, 2), 3),
                 lambda f: f(_x(1, 1, 5, 5), 3, dilation=3)):
        with pytest.raises(RuntimeError):
            call(F.max_pool2d)
        with pytest.raises(ValueError):
            call(max_pool2d)
    with pytest.raises(ValueError):
        F.lp_pool2d(_x(1, 1, 5, 5), 0, 2)


# --- ceil_mode: a window may be wider than the input -------------------------------------------------------------

def _pools(k, s, p, d):
    """(ours, PyTorch's) for each pool, in ceil_mode; Lp pooling takes no padding and no dilation."""
    return {
        "max": (lambda x: max_pool2d(x, k, s, p, d, True), lambda x: F.max_pool2d(x, k, s, p, d, True)),
        "avg": (lambda x: avg_pool2d(x, k, s, p, True), lambda x: F.avg_pool2d(x, k, s, p, True)),
        "avg without pad": (lambda x: avg_pool2d(x, k, s, p, True, False),
                            lambda x: F.avg_pool2d(x, k, s, p, True, False)),
        "lp": (lambda x: lp_pool2d(x, 2, k, s, True), lambda x: F.lp_pool2d(x, 2, k, s, True)),
    }


def test_ceil_mode_pools_an_input_narrower_than_the_kernel_like_torch():
    # 11 x 3 input, kernel 4 (stride 4): ceil_mode gives 3 x 1 windows, the last column of each window off the input
    x = (randn64(2, 3, 11, 3, requires_grad=False).abs() + 0.1).requires_grad_(True)
    for name, (ours, theirs) in _pools(4, None, 0, 1).items():
        assert theirs(x).shape == ours(x).shape == (2, 3, 3, 1), name
        _assert_same(ours(x), theirs(x), (x,))


@pytest.mark.parametrize("pool", ["max", "avg", "avg without pad", "lp"])
def test_ceil_mode_narrow_inputs_exhaustive(pool):
    """Every width narrower than the padded kernel's span, in ceil_mode: PyTorch's values, shapes and gradients, or
    a refusal where PyTorch refuses."""
    compared = 0
    for W, k, s, p, d in itertools.product(range(1, 6), range(2, 7), range(1, 4), range(0, 3), (1, 2)):
        if p > k // 2 or W + 2 * p >= d * (k - 1) + 1 or (pool != "max" and d > 1) or (pool == "lp" and p > 0):
            continue  # padding PyTorch refuses (see test_bad_arguments), a wide enough input, or no such argument
        x = (randn64(2, 2, 7, W, seed=W + 7 * k, requires_grad=False).abs() + 0.1).requires_grad_(True)
        ours, theirs = _pools((3, k), (2, s), (1, p), (1, d))[pool]
        if _torch_accepts(theirs, ours, x):
            ref = theirs(x)
            if torch.isinf(ref).any():  # a dilated window wholly in the padding: PyTorch's backward aborts
                assert torch.equal(ours(x), ref)
            else:
                _assert_same(ours(x), ref, (x,))
            compared += 1
    assert compared > 10

