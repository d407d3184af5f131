"""dlbook.resampling against torch.nn.functional (float64, values and gradients), and the identities of the chapter:
space-to-depth is invertible and is a strided convolution; a transposed convolution is the gradient of a convolution.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.arithmetic import conv_transpose_output_size
from dlbook.conv import conv2d
from dlbook.pooling import max_pool2d
from dlbook.resampling import (
    bilinear_source,
    conv_transpose2d,
    conv_transpose2d_loops,
    insert_zeros,
    max_unpool2d,
    pixel_shuffle,
    pixel_unshuffle,
    space_to_depth_weight,
    transposed_kernel,
    upsample_bilinear,
    upsample_nearest,
)
from tensors import TOL, randn64


def _assert_same(ours, ref, inputs, seed=1):
    """Values equal (to 1e-10) and gradients equal under a random upstream gradient."""
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, **TOL)
    cot = randn64(*ref.shape, seed=seed, requires_grad=False)
    for a, b in zip(torch.autograd.grad(ours, inputs, cot), torch.autograd.grad(ref, inputs, cot), strict=True):
        torch.testing.assert_close(a, b, **TOL)


# --- space-to-depth and depth-to-space -------------------------------------------------------------------------

@pytest.mark.parametrize("r", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 3, 12, 24), (3, 12, 12), (2, 2, 1, 12, 36)])
def test_pixel_unshuffle_and_shuffle_match_torch(r, shape):
    x = randn64(*shape)
    _assert_same(pixel_unshuffle(x, r), F.pixel_unshuffle(x, r), (x,))
    y = randn64(*shape[:-3], shape[-3] * r * r, 3, 5, seed=2)
    _assert_same(pixel_shuffle(y, r), F.pixel_shuffle(y, r), (y,))


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), C=st.integers(1, 3), h=st.integers(1, 5), w=st.integers(1, 5), r=st.integers(1, 4),
       seed=st.integers(0, 10_000))
def test_space_to_depth_is_exactly_invertible(B, C, h, w, r, seed):
    x = randn64(B, C, h * r, w * r, seed=seed, requires_grad=False)
    down = pixel_unshuffle(x, r)
    assert down.shape == (B, C * r * r, h, w)
    assert torch.equal(pixel_shuffle(down, r), x)  # bit for bit: nothing is computed, only moved
    assert torch.equal(pixel_unshuffle(pixel_shuffle(down, r), r), down)
    assert torch.equal(down, F.pixel_unshuffle(x, r))
    assert torch.equal(down.flatten().sort().values, x.flatten().sort().values)  # the same numbers, moved


def test_pixel_unshuffle_layout():
    x = torch.arange(16.0, dtype=torch.float64).reshape(1, 1, 4, 4)
    y = pixel_unshuffle(x, 2)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left 2x2 block, row-major, in channels
    assert y[0, 1].tolist() == [[1.0, 3.0], [9.0, 11.0]]  # channel a*r + b = 1: offset (0, 1) of every block


@pytest.mark.parametrize("C,r", [(1, 2), (3, 2), (2, 3), (1, 4)])
def test_space_to_depth_is_a_strided_one_hot_convolution(C, r):
    x = randn64(2, C, 4 * r, 3 * r, requires_grad=False)
    w = space_to_depth_weight(C, r)
    assert w.shape == (C * r * r, 1, r, r)
    assert torch.equal(conv2d(x, w, stride=r, groups=C), pixel_unshuffle(x, r))
    assert torch.equal(F.conv2d(x, w, stride=r, groups=C), F.pixel_unshuffle(x, r))


# --- nearest and bilinear ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 2, 3, 5, (2, 3), (1, 4)])
def test_upsample_nearest_matches_torch(scale):
    x = randn64(2, 3, 5, 4)
    _assert_same(upsample_nearest(x, scale), F.interpolate(x, scale_factor=scale, mode="nearest"), (x,))
    assert upsample_nearest(x[0], scale).shape == F.interpolate(x, scale_factor=scale, mode="nearest")[0].shape


def test_nearest_is_a_transposed_convolution_with_a_box_of_ones():
    x = randn64(1, 1, 4, 5, requires_grad=False)
    for r in (2, 3):
        box = torch.ones(1, 1, r, r, dtype=torch.float64)
        assert torch.equal(conv_transpose2d(x, box, stride=r), upsample_nearest(x, r))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 1.5, 2.25, (2, 3), (1.7, 0.6), 0.5])
def test_upsample_bilinear_matches_torch(scale, align_corners):
    x = randn64(2, 3, 6, 7)
    ref = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=align_corners)
    _assert_same(upsample_bilinear(x, scale, align_corners), ref, (x,))


@settings(max_examples=60, deadline=None)
@given(H=st.integers(1, 8), W=st.integers(1, 8), sh=st.floats(0.5, 4.0), sw=st.floats(0.5, 4.0),
       align_corners=st.booleans(), seed=st.integers(0, 10_000))
def test_upsample_bilinear_matches_torch_hypothesis(H, W, sh, sw, align_corners, seed):
    if int(H * sh) < 1 or int(W * sw) < 1:
        return
    x = randn64(1, 2, H, W, seed=seed)
    ref = F.interpolate(x, scale_factor=(sh, sw), mode="bilinear", align_corners=align_corners)
    _assert_same(upsample_bilinear(x, (sh, sw), align_corners), ref, (x,), seed=seed)


def test_bilinear_copies_a_dimension_whose_size_does_not_change_like_torch():
    x = randn64(1, 1, 2, 5)
    for scale in [(1.25, 2.0), (1.0, 1.1), (1.4, 1.19)]:  # 2 * 1.25 -> 2 rows, 5 * 1.1 -> 5 columns, ...
        ref = F.interpolate(x, scale_factor=scale, mode="bilinear")
        _assert_same(upsample_bilinear(x, scale), ref, (x,))


def test_bilinear_source_positions():
    # align_corners=True: the end pixels line up; False: pixel edges line up, centres fall between
    assert bilinear_source(3, 5, 5 / 3, True).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    torch.testing.assert_close(bilinear_source(2, 4, 2.0, False),
                               torch.tensor([0.0, 0.25, 0.75, 1.25], dtype=torch.float64))


def test_bilinear_interior_is_a_transposed_convolution_with_a_tent_kernel():
    """For scale 2, align_corners=False, away from the border, bilinear up-sampling is a fixed transposed conv."""
    x = randn64(1, 1, 6, 6, requires_grad=False)
    tent = torch.tensor([0.25, 0.75, 0.75, 0.25], dtype=torch.float64)
    kernel = (tent[:, None] * tent[None, :])[None, None]  # (1, 1, 4, 4)
    up = conv_transpose2d(x, kernel, stride=2, padding=1)  # (1, 1, 12, 12)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])
    assert not torch.allclose(up, ref)  # the border differs: interpolation clamps, the convolution pads with 0


# --- max-unpooling -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (2, 1, 0), (3, 3, 1), ((2, 3), (2, 2), (1, 0))])
def test_max_unpool_matches_torch(k, s, p):
    x = randn64(2, 3, 8, 9, requires_grad=False)
    y, idx = max_pool2d(x, k, s, p, return_indices=True)
    y = y.detach().requires_grad_(True)
    size = (8, 9)  # the indices count positions in an 8x9 map: tell the unpooling, or the default size may differ
    _assert_same(max_unpool2d(y, idx, k, s, p, output_size=size), F.max_unpool2d(y, idx, k, s, p, output_size=size),
                 (y,))
    x = randn64(2, 3, 8, 8, seed=3, requires_grad=False)
    y, idx = max_pool2d(x, k, s, p, return_indices=True)
    y = y.detach().requires_grad_(True)
    try:
        ref = F.max_unpool2d(y, idx, k, s, p)
    except RuntimeError:  # the default size is smaller than the pooled input: both refuse the indices
        with pytest.raises(ValueError, match="indices"):
            max_unpool2d(y, idx, k, s, p)
    else:
        _assert_same(max_unpool2d(y, idx, k, s, p), ref, (y,))


def test_max_unpool_keeps_the_maxima_in_place():
    x = randn64(1, 2, 6, 6, requires_grad=False).abs() + 0.1  # positive, so that the zeros never win
    y, idx = max_pool2d(x, 2, return_indices=True)
    up = max_unpool2d(y, idx, 2)
    assert up.shape == x.shape
    kept = up != 0
    assert int(kept.sum()) == y.numel()  # one survivor per window, zeros elsewhere
    assert torch.equal(up[kept], x[kept])
    assert torch.equal(max_pool2d(up, 2), y)  # pooling it again gives the same pooled map


# --- transposed convolution --------------------------------------------------------------------------------------

IMPLS = {"as-conv": conv_transpose2d, "stamps": conv_transpose2d_loops}

CT_GRID = [(k, s, p, op, d, g) for k, s, p, op, d, g in
           itertools.product([1, 2, 3, 4], [1, 2, 3], [0, 1, 2], [0, 1, 2], [1, 2], [1, 2])
           if op < max(s, d) and 3 * s - 2 * p + d * (k - 1) + op + 1 >= 1]  # valid for a 4x5 input


def _ct_tensors(B, G, c_per, o_per, H, W, kh, kw, bias, seed=0):
    x = randn64(B, G * c_per, H, W, seed=seed)
    w = randn64(G * c_per, o_per, kh, kw, seed=seed + 1)
    b = randn64(G * o_per, seed=seed + 2) if bias else None
    return x, w, b


@pytest.mark.parametrize("k,s,p,op,d,groups", CT_GRID)
def test_conv_transpose_matches_torch_on_grid(k, s, p, op, d, groups):
    x, w, b = _ct_tensors(2, groups, 2, 2, 4, 5, k, k, True)
    args = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    ref = F.conv_transpose2d(x, w, b, **args)
    _assert_same(conv_transpose2d(x, w, b, **args), ref, (x, w, b))
    assert ref.shape[-2:] == (conv_transpose_output_size(4, k, s, p, op, d), conv_transpose_output_size(5, k, s, p, op, d))


@pytest.mark.parametrize("args", [dict(), dict(stride=2), dict(stride=2, padding=1, output_padding=1),
                                  dict(stride=(3, 2), padding=(1, 0), dilation=(1, 2), groups=2),
                                  dict(dilation=3, output_padding=2), dict(stride=2, padding=3)])
@pytest.mark.parametrize("bias", [True, False])
def test_stamping_loops_match_torch(args, bias):
    x, w, b = _ct_tensors(2, args.get("groups", 1), 2, 3, 3, 4, 3, 4, bias)
    _assert_same(conv_transpose2d_loops(x, w, b, **args), F.conv_transpose2d(x, w, b, **args), tuple(
        t for t in (x, w, b) if t is not None))


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), G=st.integers(1, 2), c_per=st.integers(1, 2), o_per=st.integers(1, 2),
       H=st.integers(1, 6), W=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3), pw=st.integers(0, 3),
       dh=st.integers(1, 3), dw=st.integers(1, 3), oph=st.integers(0, 2), opw=st.integers(0, 2),
       bias=st.booleans(), impl=st.sampled_from(sorted(IMPLS)), seed=st.integers(0, 10_000))
def test_conv_transpose_matches_torch_hypothesis(B, G, c_per, o_per, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oph, opw,
                                                 bias, impl, seed):
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        return
    if (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1 < 1 or (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1 < 1:
        return
    x, w, b = _ct_tensors(B, G, c_per, o_per, H, W, kh, kw, bias, seed)
    args = dict(stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw), groups=G, dilation=(dh, dw))
    inputs = tuple(t for t in (x, w, b) if t is not None)
    _assert_same(IMPLS[impl](x, w, b, **args), F.conv_transpose2d(x, w, b, **args), inputs, seed=seed)


def _conv_input_gradient(x_shape, w, y, **args):
    """d<conv2d(x, w), y>/dx: what backpropagation sends to the input of a convolution."""
    x = torch.zeros(x_shape, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(F.conv2d(x, w, **args), x, grad_outputs=y)
    return grad


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), G=st.integers(1, 2), c_per=st.integers(1, 2), o_per=st.integers(1, 2),
       H=st.integers(1, 9), W=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), seed=st.integers(0, 10_000))
def test_conv_transpose_is_the_gradient_of_conv(B, G, c_per, o_per, H, W, kh, kw, sh, sw, ph, pw, dh, dw, seed):
    if H + 2 * ph < dh * (kh - 1) + 1 or W + 2 * pw < dw * (kw - 1) + 1:
        return
    w = randn64(G * o_per, c_per, kh, kw, seed=seed, requires_grad=False)  # conv2d weight (O, C/G, kH, kW)
    x_shape = (B, G * c_per, H, W)
    Ho, Wo = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = randn64(B, G * o_per, Ho, Wo, seed=seed + 1, requires_grad=False)
    # the rows/columns that the stride's floor dropped come back as output_padding
    oph, opw = (H + 2 * ph - dh * (kh - 1) - 1) % sh, (W + 2 * pw - dw * (kw - 1) - 1) % sw
    args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=G)
    ours = conv_transpose2d(y, w, output_padding=(oph, opw), **args)  # the same weight tensor, read as (C_in, ...)
    torch.testing.assert_close(ours, _conv_input_gradient(x_shape, w, y, **args), **TOL)


@pytest.mark.parametrize("s,p,d,k", [(1, 0, 1, 3), (2, 0, 1, 3), (2, 1, 1, 4), (3, 1, 2, 3), (2, 2, 1, 5)])
def test_conv_transpose_is_the_gradient_of_conv_grid(s, p, d, k):
    w = randn64(3, 2, k, k, requires_grad=False)
    x_shape = (2, 2, 11, 10)
    Ho, Wo = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in x_shape[-2:])
    op = tuple((n + 2 * p - d * (k - 1) - 1) % s for n in x_shape[-2:])
    y = randn64(2, 3, Ho, Wo, seed=5, requires_grad=False)
    ours = conv_transpose2d(y, w, stride=s, padding=p, output_padding=op, dilation=d)
    assert ours.shape == x_shape
    torch.testing.assert_close(ours, _conv_input_gradient(x_shape, w, y, stride=s, padding=p, dilation=d), **TOL)


def test_conv_transpose_is_not_an_inverse():
    x = randn64(1, 1, 8, 8, requires_grad=False)
    w = randn64(1, 1, 3, 3, seed=3, requires_grad=False)
    back = conv_transpose2d(conv2d(x, w, stride=2, padding=1), w, stride=2, padding=1, output_padding=1)
    assert back.shape == x.shape
    assert (back - x).abs().max() > 0.5  # same shape, different numbers: "deconvolution" is a misnomer


def test_the_steps():
    x = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(1, 1, 2, 3)
    z = insert_zeros(x, 2)
    assert z.shape == (1, 1, 3, 5)
    assert z[0, 0].tolist() == [[1, 0, 2, 0, 3], [0, 0, 0, 0, 0], [4, 0, 5, 0, 6]]
    assert torch.equal(insert_zeros(x, (1, 3))[0, 0, :, ::3], x[0, 0])
    w = randn64(4, 3, 2, 3, requires_grad=False)  # (C_in, C_out/G, kH, kW) with groups=2: C_out = 6
    wt = transposed_kernel(w, groups=2)
    assert wt.shape == (6, 2, 2, 3)
    # output channel 4 = group 1, its channel 1; input channel 1 of group 1 = weight row 3
    assert torch.equal(wt[4, 1], w[3, 1].flip(0, 1))


def test_checkerboard_when_the_kernel_is_not_a_multiple_of_the_stride():
    ones = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    for k, s, even in [(3, 2, False), (4, 2, True), (5, 2, False), (6, 3, True), (2, 2, True)]:
        out = conv_transpose2d(ones, torch.ones(1, 1, k, k, dtype=torch.float64), stride=s)[0, 0]
        interior = out[k:-k, k:-k]  # away from the border
        assert bool(interior.min() == interior.max()) is even, (k, s)


def test_unbatched():
    x, w, b = _ct_tensors(1, 1, 2, 3, 4, 4, 3, 3, True)
    for impl in IMPLS.values():
        torch.testing.assert_close(impl(x[0], w, b, stride=2), F.conv_transpose2d(x[0], w, b, stride=2))
    torch.testing.assert_close(upsample_bilinear(x[0], 2), F.interpolate(x, scale_factor=2, mode="bilinear")[0])


def test_gradcheck():
    x, w, b = _ct_tensors(1, 1, 2, 2, 3, 3, 3, 2, True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv_transpose2d(x, w, b, 2, 1, 1, 1, (1, 2)), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: upsample_bilinear(x, 1.5), (x,))


# --- bad arguments -----------------------------------------------------------------------------------------------

def _x(*shape):
    return torch.zeros(*shape, dtype=torch.float64)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: pixel_unshuffle(_x(1, 1, 4, 4), 0), ValueError, "downscale_factor"),
    (lambda: pixel_unshuffle(_x(1, 1, 4, 4), 2.0), TypeError, "downscale_factor"),
    (lambda: pixel_unshuffle(_x(1, 1, 4, 4), 1.5), TypeError, "downscale_factor"),
    (lambda: pixel_unshuffle(_x(1, 1, 5, 4), 2), ValueError, "downscale_factor"),
    (lambda: pixel_unshuffle(_x(4, 4), 2), ValueError, "input"),
    (lambda: pixel_shuffle(_x(1, 3, 4, 4), 2), ValueError, "upscale_factor"),
    (lambda: pixel_shuffle(_x(1, 4, 4, 4), -2), ValueError, "upscale_factor"),
    (lambda: pixel_shuffle(_x(1, 4, 4, 4), "2"), TypeError, "upscale_factor"),
    (lambda: space_to_depth_weight(0, 2), ValueError, "channels"),
    (lambda: upsample_nearest(_x(1, 1, 4, 4), 1.5), TypeError, "scale_factor"),
    (lambda: upsample_nearest(_x(1, 1, 4, 4), 0), ValueError, "scale_factor"),
    (lambda: upsample_nearest(_x(1, 1, 4, 4), (2, 0)), ValueError, "scale_factor"),
    (lambda: upsample_bilinear(_x(1, 1, 4, 4), -1.0), ValueError, "scale_factor"),
    (lambda: upsample_bilinear(_x(1, 1, 4, 4), float("inf")), ValueError, "scale_factor"),
    (lambda: upsample_bilinear(_x(1, 1, 4, 4), 0.1), ValueError, "scale_factor"),
    (lambda: upsample_bilinear(_x(1, 1, 4, 4), "2"), TypeError, "scale_factor"),
    (lambda: upsample_bilinear(_x(1, 1, 4, 4), 2, align_corners=1), TypeError, "align_corners"),
    (lambda: max_unpool2d(_x(1, 1, 2, 2), _x(1, 1, 2, 2), 2), TypeError, "indices"),
    (lambda: max_unpool2d(_x(1, 1, 2, 2), torch.zeros(1, 1, 2, 3, dtype=torch.long), 2), ValueError, "indices"),
    (lambda: max_unpool2d(_x(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16), 2), ValueError, "indices"),
    (lambda: max_unpool2d(_x(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.long), 2, output_size=(6, 4)),
     ValueError, "output_size"),
    (lambda: max_unpool2d(_x(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.long), 0), ValueError, "kernel_size"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), stride=2, output_padding=2), ValueError,
     "output_padding"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), output_padding=1), ValueError, "output_padding"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3), ValueError, "padding"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=-1), ValueError, "padding"),
    (lambda: conv_transpose2d(_x(1, 2, 3, 3), _x(1, 1, 3, 3)), ValueError, "channels"),
    (lambda: conv_transpose2d(_x(1, 3, 3, 3), _x(3, 1, 3, 3), groups=2), ValueError, "groups"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 2, 3, 3), bias=_x(3)), ValueError, "bias"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), stride=0), ValueError, "stride"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), dilation=1.0), TypeError, "dilation"),
    (lambda: conv_transpose2d(_x(1, 1, 3, 3).float(), _x(1, 1, 3, 3)), TypeError, "dtype"),
    (lambda: conv_transpose2d_loops(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3), ValueError, "padding"),
    (lambda: insert_zeros(_x(1, 1, 3, 3), 0), ValueError, "stride"),
    (lambda: transposed_kernel(_x(3, 1, 3, 3), groups=2), ValueError, "groups"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_torch_agrees_these_are_errors():
    for ours, theirs in [
        (lambda: pixel_shuffle(_x(1, 3, 4, 4), 2), lambda: F.pixel_shuffle(_x(1, 3, 4, 4), 2)),
        (lambda: pixel_unshuffle(_x(1, 1, 5, 4), 2), lambda: F.pixel_unshuffle(_x(1, 1, 5, 4), 2)),
        (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), stride=2, output_padding=2),
         lambda: F.conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), stride=2, output_padding=2)),
        (lambda: conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3),
         lambda: F.conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3)),
    ]:
        with pytest.raises(ValueError):
            ours()
        with pytest.raises(RuntimeError):
            theirs()
