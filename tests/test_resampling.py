"""dlbook.resampling against torch.nn.functional (float64, values and gradients), and the identities of the chapter:
space-to-depth is invertible and is a strided convolution (Darknet's reorg is another permutation); binomial
blur-then-subsample attenuates an alias by |cos(pi f)|^(n-1); a transposed convolution is the gradient of a convolution
and makes a flat input flat exactly when its kernel's stride-phase sums are equal.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from dlbook.arithmetic import conv_transpose_output_size
from dlbook.conv import conv2d
from dlbook.pooling import max_pool2d
from dlbook.resampling import (
    bilinear_source,
    binomial_kernel,
    blur_downsample,
    conv_transpose2d,
    conv_transpose2d_loops,
    conv_transpose2d_zero_insertion,
    darknet_reorg,
    insert_zeros,
    max_unpool2d,
    passthrough,
    pixel_shuffle,
    pixel_unshuffle,
    space_to_depth_weight,
    stride_phase_sums,
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


def _darknet_reorg_loops(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Darknet's reorg_cpu(x, w, h, c, batch, stride, forward=0, out), transcribed line by line (src/blas.c), as
    forward_reorg_layer calls it with the layer's input sizes; the output buffer is then read as (C s^2, H/s, W/s)."""
    B, C, H, W = x.shape
    flat = x.reshape(-1)
    out = torch.empty_like(flat)
    out_c = C // (stride * stride)
    for b in range(B):
        for k in range(C):
            for j in range(H):
                for i in range(W):
                    in_index = i + W * (j + H * (k + C * b))
                    c2 = k % out_c
                    offset = k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + W * stride * (h2 + H * stride * (c2 + out_c * b))
                    out[in_index] = flat[out_index]
    return out.reshape(B, C * stride * stride, H // stride, W // stride)


@pytest.mark.parametrize("shape,s", [((2, 8, 4, 6), 2), ((1, 4, 2, 2), 2), ((1, 18, 6, 3), 3), ((2, 32, 4, 8), 4)])
def test_darknet_reorg_matches_the_c_loop(shape, s):
    x = randn64(*shape, requires_grad=False)
    assert torch.equal(darknet_reorg(x, s), _darknet_reorg_loops(x, s))


@pytest.mark.parametrize("shape,s", [((2, 8, 4, 6), 2), ((1, 18, 6, 3), 3), ((1, 64, 26, 26), 2)])
def test_darknet_reorg_is_a_permutation_but_not_pixel_unshuffle(shape, s):
    positions = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)
    y = darknet_reorg(positions, s)
    assert y.shape == F.pixel_unshuffle(positions, s).shape
    assert torch.equal(y.flatten().sort().values, positions.flatten())  # every position exactly once
    assert not torch.equal(y, F.pixel_unshuffle(positions, s))
    x = randn64(*shape)
    grad = torch.autograd.grad(darknet_reorg(x, s), x, y)[0]  # the gradient routes each value back: the inverse
    assert torch.equal(darknet_reorg(grad, s), y)


def test_darknet_reorg_with_one_channel_group_is_a_reordered_space_to_depth():
    # with C = s^2 the re-read buffer has one channel, so offset-major is pixel_unshuffle's order: Darknet's reorg is
    # then pixel_unshuffle of the re-read buffer, its (C, H, W) result declared (C s^2, H/s, W/s)
    x = randn64(2, 4, 6, 8, requires_grad=False)
    expected = F.pixel_unshuffle(x.reshape(2, 1, 12, 16), 2).reshape(2, 16, 3, 4)
    assert torch.equal(darknet_reorg(x, 2), expected)


@pytest.mark.parametrize("reorg", [pixel_unshuffle, darknet_reorg])
@pytest.mark.parametrize("fine_shape,deep_shape,s", [((2, 8, 6, 4), (2, 5, 3, 2), 2), ((1, 9, 9, 3), (1, 2, 3, 1), 3)])
def test_passthrough_concatenates_the_moved_fine_map_before_the_deep_one(reorg, fine_shape, deep_shape, s):
    fine, deep = randn64(*fine_shape), randn64(*deep_shape, seed=1)
    y = passthrough(fine, deep, s, reorg=reorg)
    c = fine_shape[1] * s * s
    assert y.shape == (deep_shape[0], c + deep_shape[1], *deep_shape[2:])
    assert torch.equal(y[:, :c], reorg(fine, s)) and torch.equal(y[:, c:], deep)  # concatenated, nothing added
    assert torch.equal(y, torch.cat([reorg(fine, s), deep], 1))


def test_passthrough_of_yolov2_cfg_shapes():
    # cfg/yolov2.cfg: 26×26×512 -> 1×1 conv to 64 -> reorg 2 -> 13×13×256, routed with 13×13×1024: 1280 channels
    assert passthrough(torch.zeros(1, 64, 26, 26), torch.zeros(1, 1024, 13, 13), reorg=darknet_reorg).shape == (
        1, 1280, 13, 13)
    assert passthrough(torch.zeros(1, 512, 26, 26), torch.zeros(1, 1024, 13, 13)).shape == (1, 3072, 13, 13)


@pytest.mark.parametrize("deep_shape", [(1, 5, 4, 4), (2, 5, 3, 3), (1, 5, 3, 4, 1)])
def test_passthrough_rejects_a_deep_map_on_another_grid(deep_shape):
    with pytest.raises(ValueError, match="deep"):
        passthrough(randn64(1, 4, 6, 6), randn64(*deep_shape), 2)


# --- anti-aliasing: binomial blur, then subsample ----------------------------------------------------------------

def test_binomial_kernel_values():
    assert binomial_kernel(1).tolist() == [[1.0]]
    assert torch.equal(binomial_kernel(2), torch.full((2, 2), 0.25, dtype=torch.float64))
    assert torch.equal(binomial_kernel(3)[1], torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 8)
    assert torch.equal(binomial_kernel(5)[2] / binomial_kernel(5)[2, 0], torch.tensor([1.0, 4, 6, 4, 1]).double())
    for n in range(1, 9):
        assert binomial_kernel(n).sum().item() == pytest.approx(1.0, abs=1e-15)
    assert binomial_kernel(3, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("taps", [1, 2, 3, 4, 5, 7])
def test_binomial_gain_is_a_power_of_cos(taps):
    row = binomial_kernel(taps)[0] / binomial_kernel(taps)[0].sum()  # (n,) the 1-D filter
    for f in (0.0, 0.1, 0.3, 0.45, 0.5):
        n = torch.arange(taps, dtype=torch.float64)
        gain = torch.abs(torch.sum(row * torch.exp(-2j * math.pi * f * n))).item()
        assert gain == pytest.approx(abs(math.cos(math.pi * f)) ** (taps - 1), abs=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate", "constant"])
@pytest.mark.parametrize("taps,stride", [(1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (3, 3), (5, (2, 3))])
def test_blur_downsample_matches_torch(taps, stride, mode):
    x = randn64(2, 3, 12, 11)
    before, after = (taps - 1) // 2, taps // 2
    s = (stride, stride) if isinstance(stride, int) else stride
    ref = F.conv2d(F.pad(x, (before, after, before, after), mode=mode), binomial_kernel(taps).expand(3, 1, taps, taps),
                   stride=s, groups=3)
    ours = blur_downsample(x, taps, stride, padding_mode=mode)
    _assert_same(ours, ref, (x,))
    assert ours.shape[-2:] == x[..., :: s[0], :: s[1]].shape[-2:]


def test_blur_downsample_special_cases():
    x = randn64(2, 3, 8, 10, requires_grad=False)
    assert torch.equal(blur_downsample(x, 1), x[..., ::2, ::2])  # one tap: plain sub-sampling
    torch.testing.assert_close(blur_downsample(x, 2), F.avg_pool2d(x, 2), **TOL)  # the box: average pooling
    with pytest.raises(ValueError, match="padding_mode|mode"):
        blur_downsample(x, 3, padding_mode="mirror")


@pytest.mark.parametrize("taps", [1, 2, 3, 5])
@pytest.mark.parametrize("f,r", [(0.45, 2), (0.4, 2), (0.3, 3)])
def test_blur_downsample_attenuates_the_alias_by_cos_power(taps, f, r):
    N = 240  # f N whole: the stripes are periodic, and circular padding makes the blur an exact filter
    x = (0.5 + 0.5 * torch.cos(2 * math.pi * f * torch.arange(N, dtype=torch.float64))).expand(1, 1, 6, N)
    y = blur_downsample(x, taps, (1, r), padding_mode="circular")[0, 0, 0]  # (N / r,)
    alias = abs(r * f - round(r * f))
    spectrum = torch.fft.rfft(y).abs() / (len(y) / 2)
    assert int(spectrum[1:].argmax()) + 1 == round(alias * len(y))  # the stripes now look like the folded frequency
    assert spectrum[round(alias * len(y))].item() == pytest.approx(0.5 * abs(math.cos(math.pi * f)) ** (taps - 1),
                                                                   abs=1e-10)


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
    assume(int(H * sh) >= 1 and int(W * sw) >= 1)  # an empty output is refused: see test_bad_arguments
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

# the two implementations meant for use (matrix product + col2im; zero insertion + stride-1 convolution), and the
# stamping loops, which are for reading
BOTH = {"matmul-col2im": conv_transpose2d, "zero-insertion": conv_transpose2d_zero_insertion}
IMPLS = {**BOTH, "stamps": conv_transpose2d_loops}

CT_GRID = [(k, s, p, op, d, g) for k, s, p, op, d, g in
           itertools.product([1, 2, 3, 4], [1, 2, 3], [0, 1, 2], [0, 1, 2], [1, 2], [1, 2])
           if op < max(s, d) and 3 * s - 2 * p + d * (k - 1) + op + 1 >= 1]  # valid for a 4x5 input


def _ct_tensors(B, G, c_per, o_per, H, W, kh, kw, bias, seed=0):
    x = randn64(B, G * c_per, H, W, seed=seed)
    w = randn64(G * c_per, o_per, kh, kw, seed=seed + 1)
    b = randn64(G * o_per, seed=seed + 2) if bias else None
    return x, w, b


@pytest.mark.parametrize("impl", sorted(BOTH))
@pytest.mark.parametrize("k,s,p,op,d,groups", CT_GRID)
def test_conv_transpose_matches_torch_on_grid(k, s, p, op, d, groups, impl):
    x, w, b = _ct_tensors(2, groups, 2, 2, 4, 5, k, k, True)
    args = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    ref = F.conv_transpose2d(x, w, b, **args)
    _assert_same(BOTH[impl](x, w, b, **args), ref, (x, w, b))
    assert ref.shape[-2:] == tuple(conv_transpose_output_size(n, k, s, p, op, d) for n in (4, 5))


@pytest.mark.parametrize("args", [dict(), dict(stride=2), dict(stride=2, padding=1, output_padding=1),
                                  dict(stride=(3, 2), padding=(1, 0), dilation=(1, 2), groups=2),
                                  dict(dilation=3, output_padding=2), dict(stride=2, padding=3)])
@pytest.mark.parametrize("bias", [True, False])
def test_stamping_loops_match_torch(args, bias):
    x, w, b = _ct_tensors(2, args.get("groups", 1), 2, 3, 3, 4, 3, 4, bias)
    inputs = tuple(t for t in (x, w, b) if t is not None)
    _assert_same(conv_transpose2d_loops(x, w, b, **args), F.conv_transpose2d(x, w, b, **args), inputs)


@pytest.mark.parametrize("impl", sorted(IMPLS))
@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), G=st.integers(1, 2), c_per=st.integers(1, 2), o_per=st.integers(1, 2),
       H=st.integers(1, 6), W=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3), pw=st.integers(0, 3),
       dh=st.integers(1, 3), dw=st.integers(1, 3), oph=st.integers(0, 2), opw=st.integers(0, 2),
       bias=st.booleans(), seed=st.integers(0, 10_000))
def test_conv_transpose_matches_torch_hypothesis(B, G, c_per, o_per, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oph, opw,
                                                 bias, impl, seed):
    x, w, b = _ct_tensors(B, G, c_per, o_per, H, W, kh, kw, bias, seed)
    args = dict(stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw), groups=G, dilation=(dh, dw))
    fits = oph < max(sh, dh) and opw < max(sw, dw) and min((H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1,
                                                           (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1) >= 1
    if fits:
        inputs = tuple(t for t in (x, w, b) if t is not None)
        _assert_same(IMPLS[impl](x, w, b, **args), F.conv_transpose2d(x, w, b, **args), inputs, seed=seed)
    else:  # output_padding too large, or padding that crops everything: refused by both
        with pytest.raises(RuntimeError):
            F.conv_transpose2d(x, w, b, **args)
        with pytest.raises(ValueError):
            IMPLS[impl](x, w, b, **args)


def _conv_input_gradient(x_shape, w, y, **args):
    """d<conv2d(x, w), y>/dx: what backpropagation sends to the input of a convolution."""
    x = torch.zeros(x_shape, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(F.conv2d(x, w, **args), x, grad_outputs=y)
    return grad


@pytest.mark.parametrize("impl", sorted(BOTH))
@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), G=st.integers(1, 2), c_per=st.integers(1, 2), o_per=st.integers(1, 2),
       H=st.integers(1, 9), W=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), seed=st.integers(0, 10_000))
def test_conv_transpose_is_the_gradient_of_conv(B, G, c_per, o_per, H, W, kh, kw, sh, sw, ph, pw, dh, dw, seed,
                                                impl):
    assume(H + 2 * ph >= dh * (kh - 1) + 1 and W + 2 * pw >= dw * (kw - 1) + 1)  # the convolution exists
    w = randn64(G * o_per, c_per, kh, kw, seed=seed, requires_grad=False)  # conv2d weight (O, C/G, kH, kW)
    x_shape = (B, G * c_per, H, W)
    Ho, Wo = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = randn64(B, G * o_per, Ho, Wo, seed=seed + 1, requires_grad=False)
    # the rows/columns that the stride's floor dropped come back as output_padding
    oph, opw = (H + 2 * ph - dh * (kh - 1) - 1) % sh, (W + 2 * pw - dw * (kw - 1) - 1) % sw
    args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=G)
    ours = BOTH[impl](y, w, output_padding=(oph, opw), **args)  # the same weight tensor, read as (C_in, ...)
    torch.testing.assert_close(ours, _conv_input_gradient(x_shape, w, y, **args), **TOL)


@pytest.mark.parametrize("impl", sorted(BOTH))
@pytest.mark.parametrize("s,p,d,k", [(1, 0, 1, 3), (2, 0, 1, 3), (2, 1, 1, 4), (3, 1, 2, 3), (2, 2, 1, 5)])
def test_conv_transpose_is_the_gradient_of_conv_grid(s, p, d, k, impl):
    w = randn64(3, 2, k, k, requires_grad=False)
    x_shape = (2, 2, 11, 10)
    Ho, Wo = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in x_shape[-2:])
    op = tuple((n + 2 * p - d * (k - 1) - 1) % s for n in x_shape[-2:])
    y = randn64(2, 3, Ho, Wo, seed=5, requires_grad=False)
    ours = BOTH[impl](y, w, stride=s, padding=p, output_padding=op, dilation=d)
    assert ours.shape == x_shape
    torch.testing.assert_close(ours, _conv_input_gradient(x_shape, w, y, stride=s, padding=p, dilation=d), **TOL)


@pytest.mark.parametrize("impl", sorted(BOTH))
def test_conv_transpose_is_not_an_inverse(impl):
    x = randn64(1, 1, 8, 8, requires_grad=False)
    w = randn64(1, 1, 3, 3, seed=3, requires_grad=False)
    back = BOTH[impl](conv2d(x, w, stride=2, padding=1), w, stride=2, padding=1, output_padding=1)
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


def test_constant_kernel_checkerboard_exactly_when_the_stride_does_not_divide_k():
    ones = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    for k, s, even in [(3, 2, False), (4, 2, True), (5, 2, False), (6, 3, True), (2, 2, True)]:
        out = conv_transpose2d(ones, torch.ones(1, 1, k, k, dtype=torch.float64), stride=s)[0, 0]
        interior = out[k:-k, k:-k]  # away from the border
        assert bool(interior.min() == interior.max()) is even, (k, s)


def _flat_interior(kernel: torch.Tensor, stride: tuple[int, int], n: int = 9) -> torch.Tensor:
    kh, kw = kernel.shape
    out = conv_transpose2d(torch.ones(1, 1, n, n, dtype=torch.float64), kernel[None, None], stride=stride)[0, 0]
    return out[kh - 1 : (n - 1) * stride[0] + 1, kw - 1 : (n - 1) * stride[1] + 1]  # where every stamp lands


@settings(max_examples=60, deadline=None)
@given(kh=st.integers(1, 7), kw=st.integers(1, 7), sh=st.integers(1, 4), sw=st.integers(1, 4), seed=st.integers(0, 999))
def test_a_flat_input_gives_the_tiled_stride_phase_sums(kh, kw, sh, sw, seed):
    g = torch.Generator().manual_seed(seed)
    kernel = torch.randint(-3, 4, (kh, kw), generator=g).double()  # integers: exact sums
    inner = _flat_interior(kernel, (sh, sw))  # rows kh-1 .., columns kw-1 ..
    P = stride_phase_sums(kernel, (sh, sw))
    rows = torch.arange(kh - 1, kh - 1 + inner.shape[0]) % sh
    cols = torch.arange(kw - 1, kw - 1 + inner.shape[1]) % sw
    assert torch.equal(inner, P[rows[:, None], cols[None, :]])


def test_flatness_is_equal_phase_sums_not_divisibility():
    def sep(row):
        r = torch.tensor(row, dtype=torch.float64)
        return r[:, None] * r[None, :]

    for k in range(1, 8):
        for s in range(1, 5):
            P = stride_phase_sums(torch.ones(k, k, dtype=torch.float64), s)
            assert bool((P == P.flatten()[0]).all()) == (k % s == 0), (k, s)  # constant kernel: flat iff s | k
    assert _flat_interior(sep([1, 2, 3, 4]), (2, 2)).unique().tolist() == [16.0, 24.0, 36.0]  # s | k, not flat
    assert _flat_interior(sep([1, 3, 3, 1]), (2, 2)).unique().tolist() == [16.0]  # s | k, flat
    assert _flat_interior(sep([1, 2, 1]), (2, 2)).unique().tolist() == [4.0]  # s does not divide k, flat


@pytest.mark.parametrize("impl", sorted(BOTH))
def test_output_padding_adds_computed_rows_at_the_bottom_right(impl):
    x, w = randn64(1, 2, 4, 5, requires_grad=False), randn64(2, 3, 3, 3, seed=1, requires_grad=False)
    for s, p in [(2, 1), (2, 0), (3, 0), (3, 1), (3, 2)]:
        for q in range(1, s):
            small = BOTH[impl](x, w, stride=s, padding=p)
            big = BOTH[impl](x, w, stride=s, padding=p, output_padding=q)
            assert big.shape[-2:] == (small.shape[-2] + q, small.shape[-1] + q)
            assert torch.equal(big[..., : small.shape[-2], : small.shape[-1]], small)
            # the extra rows are stamped rows that padding would have cut (q <= p), zeros beyond every stamp
            extra = big[..., small.shape[-2] :, :].abs().sum(dim=(0, 1, 3))  # (q,)
            assert (extra[: min(q, p)] > 0).all() and (extra[p:] == 0).all(), (s, p, q)


def test_unbatched():
    x, w, b = _ct_tensors(1, 1, 2, 3, 4, 4, 3, 3, True)
    for impl in IMPLS.values():
        torch.testing.assert_close(impl(x[0], w, b, stride=2), F.conv_transpose2d(x[0], w, b, stride=2))
    torch.testing.assert_close(upsample_bilinear(x[0], 2), F.interpolate(x, scale_factor=2, mode="bilinear")[0])


@pytest.mark.parametrize("impl", sorted(BOTH))
def test_gradcheck(impl):
    x, w, b = _ct_tensors(1, 1, 2, 2, 3, 3, 3, 2, True)
    assert torch.autograd.gradcheck(lambda x, w, b: BOTH[impl](x, w, b, 2, 1, 1, 1, (1, 2)), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: upsample_bilinear(x, 1.5), (x,))


def _matmul_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("H,W,k,s,p,op,d,groups", [(8, 8, 3, 2, 1, 1, 1, 1), (5, 7, 4, 3, 0, 2, 1, 2),
                                                   (6, 6, 3, 1, 1, 0, 2, 1), (4, 4, 2, 2, 0, 0, 1, 1)])
def test_the_matrix_product_multiplies_each_weight_by_each_input_pixel_once(H, W, k, s, p, op, d, groups):
    """B C_in (C_out/G) k^2 H W multiply-adds; the zero-insertion convolution does H_out W_out / (H W) times as many."""
    B, Cin, Cog = 2, 4, 3
    x, w = randn64(B, Cin, H, W, requires_grad=False), randn64(Cin, Cog, k, k, seed=1, requires_grad=False)
    args = dict(stride=s, padding=p, output_padding=op, dilation=d, groups=groups)
    Ho, Wo = (conv_transpose_output_size(n, k, s, p, op, d) for n in (H, W))
    direct = _matmul_flops(lambda: conv_transpose2d(x, w, **args))
    zero_inserted = _matmul_flops(lambda: conv_transpose2d_zero_insertion(x, w, **args))
    assert direct == 2 * B * Cin * Cog * k * k * H * W
    assert zero_inserted == 2 * B * Cin * Cog * k * k * Ho * Wo


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
    (lambda: darknet_reorg(_x(1, 2, 4, 4), 2), ValueError, "stride"),
    (lambda: darknet_reorg(_x(1, 4, 5, 4), 2), ValueError, "stride"),
    (lambda: darknet_reorg(_x(4, 4, 4), 2), ValueError, "input"),
    (lambda: darknet_reorg(_x(1, 4, 4, 4), 2.0), TypeError, "stride"),
    (lambda: binomial_kernel(0), ValueError, "taps"),
    (lambda: blur_downsample(_x(1, 1, 4, 4), 0), ValueError, "taps"),
    (lambda: blur_downsample(_x(1, 1, 4, 4), 3, stride=0), ValueError, "stride"),
    (lambda: blur_downsample(_x(4, 4), 3), ValueError, "input"),
    (lambda: stride_phase_sums(_x(1, 3, 3), 2), ValueError, "kernel"),
    (lambda: stride_phase_sums(_x(3, 3), 0), ValueError, "stride"),
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
    (lambda: conv_transpose2d_loops(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3), ValueError, "padding"),
    (lambda: insert_zeros(_x(1, 1, 3, 3), 0), ValueError, "stride"),
    (lambda: transposed_kernel(_x(3, 1, 3, 3), groups=2), ValueError, "groups"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("impl", sorted(BOTH))
@pytest.mark.parametrize("args,exc,match", [
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3, 3), stride=2, output_padding=2), ValueError, "output_padding"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3, 3), output_padding=1), ValueError, "output_padding"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3, 3), padding=3), ValueError, "padding"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3, 3), padding=-1), ValueError, "padding"),
    (dict(input=_x(1, 2, 3, 3), weight=_x(1, 1, 3, 3)), ValueError, r"weight must have shape \(2, 1, 3, 3\)"),
    (dict(input=_x(1, 3, 3, 3), weight=_x(3, 1, 3, 3), groups=2), ValueError, "groups"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 2, 3, 3), bias=_x(3)), ValueError, "bias"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3, 3), stride=0), ValueError, "stride"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3, 3), dilation=1.0), TypeError, "dilation"),
    (dict(input=_x(1, 1, 3, 3).float(), weight=_x(1, 1, 3, 3)), TypeError, "dtype"),
    (dict(input=_x(3, 3), weight=_x(1, 1, 3, 3)), ValueError, "input"),
    (dict(input=_x(1, 1, 3, 3), weight=_x(1, 1, 3)), ValueError, "weight"),
])
def test_conv_transpose_bad_arguments(impl, args, exc, match):
    with pytest.raises(exc, match=match):
        BOTH[impl](**args)


@pytest.mark.parametrize("impl", sorted(BOTH))
def test_torch_agrees_these_are_errors(impl):
    for ours, theirs in [
        (lambda: pixel_shuffle(_x(1, 3, 4, 4), 2), lambda: F.pixel_shuffle(_x(1, 3, 4, 4), 2)),
        (lambda: pixel_unshuffle(_x(1, 1, 5, 4), 2), lambda: F.pixel_unshuffle(_x(1, 1, 5, 4), 2)),
        (lambda: BOTH[impl](_x(1, 1, 3, 3), _x(1, 1, 3, 3), stride=2, output_padding=2),
         lambda: F.conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), stride=2, output_padding=2)),
        (lambda: BOTH[impl](_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3),
         lambda: F.conv_transpose2d(_x(1, 1, 3, 3), _x(1, 1, 3, 3), padding=3)),
    ]:
        with pytest.raises(ValueError):
            ours()
        with pytest.raises(RuntimeError):
            theirs()
