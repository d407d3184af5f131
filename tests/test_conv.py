"""dlbook.conv against torch.nn.functional.conv2d (float64, values and gradients) and scipy.signal."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.conv import (
    CLASSIC_KERNELS,
    classic_kernel,
    conv2d,
    conv2d_loops,
    conv_matrix,
    convolve2d,
    cross_correlate2d,
    resolve_padding,
)

IMPLS = {"vectorised": conv2d, "loops": conv2d_loops}


def _tensors(B, C, H, W, O, groups, kh, kw, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(O, C // groups, kh, kw, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(O, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    return x, w, b


def _assert_matches_torch(impl, x, w, b, **args):
    ours, ref = impl(x, w, b, **args), F.conv2d(x, w, b, **args)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    cot = torch.randn_like(ref)  # a random upstream gradient, so that every output position matters
    inputs = [t for t in (x, w, b) if t is not None]
    for g_ours, g_ref in zip(torch.autograd.grad(ours, inputs, cot), torch.autograd.grad(ref, inputs, cot),
                             strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-10)


GRID = [
    (k, s, p, d, groups)
    for k, s, p, d, groups in itertools.product(
        [1, 2, 3],            # kernel size
        [1, 2, 3],            # stride
        [0, 1, 2, "same", "valid"],
        [1, 2],               # dilation
        [1, 2],               # groups
    )
    if not (p == "same" and s != 1)  # PyTorch refuses that combination: see test_bad_arguments
]


@pytest.mark.parametrize("k,s,p,d,groups", GRID)
def test_vectorised_matches_torch_on_grid(k, s, p, d, groups):
    x, w, b = _tensors(2, 4, 9, 8, 6, groups, k, k, bias=True)
    _assert_matches_torch(conv2d, x, w, b, stride=s, padding=p, dilation=d, groups=groups)


@pytest.mark.parametrize("args", [
    dict(), dict(stride=2), dict(padding=1), dict(padding="same"), dict(dilation=2), dict(groups=2),
    dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2), dict(padding="same", dilation=(2, 1)),
])
@pytest.mark.parametrize("bias", [True, False])
def test_loops_match_torch(args, bias):
    x, w, b = _tensors(2, 4, 6, 5, 4, args.get("groups", 1), 3, 2, bias=bias)
    _assert_matches_torch(conv2d_loops, x, w, b, **args)


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 2), groups=st.integers(1, 3), c_per=st.integers(1, 2), o_per=st.integers(1, 2),
    H=st.integers(1, 9), W=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
    dh=st.integers(1, 3), dw=st.integers(1, 3), bias=st.booleans(), seed=st.integers(0, 10_000),
)
def test_vectorised_matches_torch_hypothesis(B, groups, c_per, o_per, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                                             bias, seed):
    x, w, b = _tensors(B, groups * c_per, H, W, groups * o_per, groups, kh, kw, bias, seed)
    args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    if H + 2 * ph < dh * (kh - 1) + 1 or W + 2 * pw < dw * (kw - 1) + 1:  # the kernel does not fit: refused by both
        with pytest.raises(RuntimeError):
            F.conv2d(x, w, b, **args)
        with pytest.raises(ValueError, match="kernel larger than the padded input"):
            conv2d(x, w, b, **args)
    else:
        _assert_matches_torch(conv2d, x, w, b, **args)


@settings(max_examples=40, deadline=None)
@given(H=st.integers(1, 8), W=st.integers(1, 8), kh=st.integers(1, 5), kw=st.integers(1, 5),
       dh=st.integers(1, 3), dw=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_same_padding_matches_torch_hypothesis(H, W, kh, kw, dh, dw, seed):
    x, w, b = _tensors(1, 2, H, W, 3, 1, kh, kw, True, seed)
    out = conv2d(x, w, b, padding="same", dilation=(dh, dw))
    assert out.shape[-2:] == (H, W)
    _assert_matches_torch(conv2d, x, w, b, padding="same", dilation=(dh, dw))


def test_unbatched_input():
    x, w, b = _tensors(1, 3, 7, 7, 2, 1, 3, 3, True)
    for impl in IMPLS.values():
        out = impl(x[0], w, b, padding=1)
        assert out.shape == (2, 7, 7)
        torch.testing.assert_close(out, F.conv2d(x[0], w, b, padding=1))


def test_gradcheck_vectorised():
    x, w, b = _tensors(1, 2, 5, 4, 2, 1, 3, 2, True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)), (x, w, b))


def test_resolve_padding_same_puts_extra_at_the_end():
    assert resolve_padding("same", (4, 3), (1, 1), (1, 1)) == (1, 2, 1, 1)
    assert resolve_padding("same", (3, 3), (1, 1), (2, 2)) == (2, 2, 2, 2)
    assert resolve_padding("valid", (3, 3), (2, 2), (1, 1)) == (0, 0, 0, 0)
    assert resolve_padding((1, 2), (3, 3), (1, 1), (1, 1)) == (1, 1, 2, 2)


# --- bad arguments: clear errors that name the parameter -------------------------------------------------------

def _x(*shape):
    return torch.zeros(*shape, dtype=torch.float64)


@pytest.mark.parametrize("impl", IMPLS.values(), ids=IMPLS.keys())
@pytest.mark.parametrize("call,exc,match", [
    (lambda f: f(_x(1, 1, 3, 3), _x(1, 1, 5, 5)), ValueError, "kernel larger than the padded input"),
    (lambda f: f(_x(1, 1, 3, 3), _x(1, 1, 3, 3), dilation=2), ValueError, "kernel larger than the padded input"),
    (lambda f: f(_x(1, 3, 5, 5), _x(2, 2, 3, 3)), ValueError, r"weight must have shape \(2, 3, 3, 3\)"),
    (lambda f: f(_x(1, 4, 5, 5), _x(2, 2, 3, 3), groups=3), ValueError, "groups=3 must divide"),
    (lambda f: f(_x(1, 4, 5, 5), _x(3, 2, 3, 3), groups=2), ValueError, "groups=2 must divide the weight.s output"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=0), ValueError, "stride must be >= 1"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=-1), ValueError, "stride"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=1.5), TypeError, "stride must be an int"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), padding=-1), ValueError, "padding must be >= 0"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), padding="full"), ValueError, "padding must be"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=2, padding="same"), ValueError, "padding='same' needs stride"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), dilation=0), ValueError, "dilation must be >= 1"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), groups=0), ValueError, "groups must be >= 1"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 1, 3, 3), bias=_x(2)), ValueError, r"bias must have shape \(1,\)"),
    (lambda f: f(_x(5, 5), _x(1, 1, 3, 3)), ValueError, "input must have 3 or 4 dimensions"),
    (lambda f: f(_x(1, 1, 5, 5), _x(1, 3, 3)), ValueError, "weight must have 4 dimensions"),
    (lambda f: f(np.zeros((1, 1, 5, 5)), _x(1, 1, 3, 3)), TypeError, "input must be a torch.Tensor"),
    (lambda f: f(torch.zeros(1, 1, 5, 5, dtype=torch.long), _x(1, 1, 3, 3)), TypeError, "floating-point"),
    (lambda f: f(_x(1, 1, 5, 5).float(), _x(1, 1, 3, 3)), TypeError, "same dtype"),
])
def test_bad_arguments(impl, call, exc, match):
    with pytest.raises(exc, match=match):
        call(impl)


def test_torch_agrees_these_are_errors():
    """The shapes our checks reject are rejected by PyTorch as well (so we reject nothing valid)."""
    for x, w, args in [(_x(1, 1, 3, 3), _x(1, 1, 5, 5), {}), (_x(1, 3, 5, 5), _x(2, 2, 3, 3), {}),
                       (_x(1, 4, 5, 5), _x(2, 2, 3, 3), dict(groups=3)),
                       (_x(1, 1, 5, 5), _x(1, 1, 3, 3), dict(stride=2, padding="same"))]:
        with pytest.raises(RuntimeError):
            F.conv2d(x, w, **args)
        with pytest.raises(ValueError):
            conv2d(x, w, **args)


# --- single-channel correlation and true convolution -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("ks", [(1, 1), (2, 2), (3, 4), (4, 3), (5, 2)])
def test_single_channel_matches_scipy(mode, ks):
    g = torch.Generator().manual_seed(3)
    image = torch.randn(6, 7, generator=g, dtype=torch.float64)
    kernel = torch.randn(*ks, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(convolve2d(image, kernel, mode).numpy(),
                               scipy.signal.convolve2d(image.numpy(), kernel.numpy(), mode), atol=1e-12)
    np.testing.assert_allclose(cross_correlate2d(image, kernel, mode).numpy(),
                               scipy.signal.correlate2d(image.numpy(), kernel.numpy(), mode), atol=1e-12)


def test_single_channel_errors():
    with pytest.raises(ValueError, match="mode must be"):
        convolve2d(_x(3, 3), _x(2, 2), mode="circular")
    with pytest.raises(ValueError, match="image must have 2 dimensions"):
        cross_correlate2d(_x(1, 3, 3), _x(2, 2))
    with pytest.raises(ValueError, match="kernel larger than"):
        cross_correlate2d(_x(2, 2), _x(3, 3))


def test_algebra_of_true_convolution_and_cross_correlation():
    g = torch.Generator().manual_seed(5)
    a, b, c = (torch.randn(s, generator=g, dtype=torch.float64) for s in [(5, 5), (3, 3), (2, 4)])
    conv, xcorr = convolve2d, cross_correlate2d
    assert torch.allclose(conv(a, b), conv(b, a))
    assert torch.allclose(conv(conv(a, b), c), conv(a, conv(b, c)))
    assert not torch.allclose(xcorr(a, b, "full"), xcorr(b, a, "full"))
    assert not torch.allclose(xcorr(xcorr(a, b, "full"), c, "full"), xcorr(a, xcorr(b, c, "full"), "full"))
    assert torch.allclose(xcorr(a, b, "full"), torch.flip(xcorr(b, a, "full"), dims=(0, 1)))


@pytest.mark.parametrize("ka,kb", [((3, 3), (2, 4)), ((1, 5), (4, 1)), ((2, 2), (3, 3)), ((4, 3), (1, 1))])
def test_stacked_correlations_are_one_correlation_with_the_convolved_kernel(ka, kb):
    """(x ⋆ a) ⋆ b = x ⋆ (a * b) for any kernels: the law behind stacking linear convolution layers."""
    g = torch.Generator().manual_seed(sum(ka) * 10 + sum(kb))
    x = torch.randn(9, 10, generator=g, dtype=torch.float64)
    a = torch.randn(ka, generator=g, dtype=torch.float64)
    b = torch.randn(kb, generator=g, dtype=torch.float64)
    two_layers = F.conv2d(F.conv2d(x[None, None], a[None, None]), b[None, None])[0, 0]
    torch.testing.assert_close(cross_correlate2d(x, convolve2d(a, b, "full")), two_layers)
    torch.testing.assert_close(cross_correlate2d(cross_correlate2d(x, b), a), two_layers)  # order is free
    if a.numel() > 1 and b.numel() > 1:  # with a 1x1 kernel the flip changes nothing
        assert not torch.allclose(cross_correlate2d(x, cross_correlate2d(a, b, "full")), two_layers)


@pytest.mark.parametrize("shape,ks", [((5, 5), (3, 3)), ((4, 6), (2, 3)), ((3, 3), (3, 3))])
def test_conv_matrix(shape, ks):
    g = torch.Generator().manual_seed(7)
    x, k = torch.randn(*shape, generator=g, dtype=torch.float64), torch.randn(*ks, generator=g, dtype=torch.float64)
    M = conv_matrix(k, shape)
    assert M.shape == ((shape[0] - ks[0] + 1) * (shape[1] - ks[1] + 1), shape[0] * shape[1])
    torch.testing.assert_close(M @ x.flatten(), cross_correlate2d(x, k).flatten())
    with pytest.raises(ValueError, match="kernel larger than"):
        conv_matrix(k, (1, 1))


@pytest.mark.parametrize("name", CLASSIC_KERNELS)
@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_classic_kernels(name, size):
    k = classic_kernel(name, size, dtype=torch.float64)
    assert k.shape == (size, size)
    total = 0.0 if name.startswith(("edges", "outline")) else 1.0
    assert abs(float(k.sum()) - total) < 1e-12
    if name == "edges (Sobel x)":
        assert torch.allclose(k, -torch.flip(k, dims=(1,)))  # antisymmetric left-right: a horizontal derivative
    else:
        assert torch.allclose(k, k.T) and torch.allclose(k, torch.flip(k, dims=(0, 1)))


def test_sobel_3_is_the_textbook_kernel():
    sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    assert torch.allclose(classic_kernel("edges (Sobel x)", 3, dtype=torch.float64), sobel / 4)


@pytest.mark.parametrize("bad,exc", [(("blur", 3), ValueError), (("box blur", 4), ValueError),
                                     (("box blur", 1), ValueError), (("box blur", 3.0), TypeError)])
def test_classic_kernel_errors(bad, exc):
    with pytest.raises(exc, match="name|size"):
        classic_kernel(*bad)
