"""dlbook.attention.flash_attention against F.scaled_dot_product_attention (float64, values and gradients).

The tiled function must give PyTorch's result for every shape, mask and block size, and must never hold the
Tq x Tk scores: the largest tensor any operation produces is measured, for ours and for the plain implementation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from dlbook.attention import flash_attention, peak_allocated_bytes, scaled_dot_product_attention
from tensors import TOL, randn64


def _mask(kind: str, shape: tuple[int, ...], seed: int) -> torch.Tensor | None:
    g = torch.Generator().manual_seed(seed)
    if kind == "bool":
        return torch.rand(*shape, generator=g) < 0.6  # some rows end up fully masked
    if kind == "float":
        return torch.randn(*shape, generator=g, dtype=torch.float64)
    if kind == "float-inf":
        return torch.randn(*shape, generator=g, dtype=torch.float64).masked_fill(torch.rand(*shape, generator=g) < 0.4,
                                                                                 float("-inf"))
    return None


def _assert_matches(q, k, v, block_size, **args):
    """Values and the gradients of q, k, v equal PyTorch's."""
    ours = flash_attention(q, k, v, block_size=block_size, **args)
    ref = F.scaled_dot_product_attention(q, k, v, **args)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, **TOL)
    w = randn64(*ref.shape, seed=99, requires_grad=False)  # a random direction, so every output element matters
    grads = torch.autograd.grad((ours * w).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for name, a, b in zip("qkv", grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m, name=name: f"grad of {name}: {m}")


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), Tq=st.integers(1, 11), Tk=st.integers(1, 11),
       E=st.integers(1, 5), Ev=st.integers(1, 5), block_size=st.integers(1, 13),
       mask=st.sampled_from(["none", "bool", "float", "float-inf", "causal"]),
       scale=st.none() | st.floats(0.05, 3.0), seed=st.integers(0, 2**16))
def test_values_and_gradients_match_pytorch(batch, Tq, Tk, E, Ev, block_size, mask, scale, seed):
    q, k = randn64(*batch, Tq, E, seed=seed), randn64(*batch, Tk, E, seed=seed + 1)
    v = randn64(*batch, Tk, Ev, seed=seed + 2)
    args = dict(attn_mask=_mask(mask, (*batch, Tq, Tk), seed), is_causal=mask == "causal", scale=scale)
    _assert_matches(q, k, v, block_size, **args)


@pytest.mark.parametrize("Tq,Tk", [(3, 7), (7, 3), (5, 5), (1, 9), (9, 1)])
@pytest.mark.parametrize("block_size", [1, 2, 4, 64])
def test_causal_mask_is_aligned_at_the_top_left_when_lengths_differ(Tq, Tk, block_size):
    q, k, v = randn64(2, Tq, 4, seed=1), randn64(2, Tk, 4, seed=2), randn64(2, Tk, 3, seed=3)
    _assert_matches(q, k, v, block_size, is_causal=True)
    tril = torch.ones(Tq, Tk, dtype=torch.bool).tril()  # PyTorch's causal mask, written out
    torch.testing.assert_close(flash_attention(q, k, v, is_causal=True, block_size=block_size),
                               flash_attention(q, k, v, attn_mask=tril, block_size=block_size), **TOL)


@pytest.mark.parametrize("mask_shape", [(1, 6), (4, 1), (2, 1, 4, 6), (3, 4, 6), (2, 3, 1, 1)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_masks_broadcast_like_pytorch(mask_shape, kind):
    q, k, v = randn64(2, 3, 4, 5, seed=4), randn64(2, 3, 6, 5, seed=5), randn64(2, 3, 6, 2, seed=6)
    m = _mask(kind, mask_shape, seed=7)
    if kind == "bool":
        m[..., 0] = True
    _assert_matches(q, k, v, 4, attn_mask=m)


@pytest.mark.parametrize("kind", ["bool", "float-inf"])
def test_a_query_with_every_key_masked_gives_zeros_as_pytorch(kind):
    q, k, v = randn64(5, 4, seed=8), randn64(7, 4, seed=9), randn64(7, 3, seed=10)
    m = _mask(kind, (5, 7), seed=11)
    m[..., 0] = True if kind == "bool" else 0.0
    m[2] = False if kind == "bool" else float("-inf")  # query 2 sees no key at all
    _assert_matches(q, k, v, 3, attn_mask=m)
    assert torch.equal(flash_attention(q, k, v, attn_mask=m, block_size=3)[2], torch.zeros(3, dtype=torch.float64))


def test_no_keys_gives_zeros_as_pytorch():
    q, k, v = randn64(2, 4, seed=12), randn64(0, 4, seed=13), randn64(0, 3, seed=14)
    torch.testing.assert_close(flash_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), **TOL)


def test_float32_matches_pytorch_on_a_long_sequence():
    g = torch.Generator().manual_seed(15)
    q, k, v = (torch.randn(2, 300, 16, generator=g) * 3 for _ in range(3))  # scores large enough to need the shift
    torch.testing.assert_close(flash_attention(q, k, v, is_causal=True, block_size=64),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("args,error,match", [
    (dict(block_size=0), ValueError, "block_size"),
    (dict(block_size=2.0), TypeError, "block_size"),
    (dict(is_causal=1), TypeError, "is_causal"),
    (dict(scale="0.5"), TypeError, "scale"),
    (dict(scale=float("nan")), ValueError, "scale"),
    (dict(attn_mask=torch.ones(3, 4, dtype=torch.bool), is_causal=True), ValueError, "attn_mask"),
    (dict(attn_mask=torch.ones(3, 4, dtype=torch.int64)), ValueError, "attn_mask"),
    (dict(attn_mask=torch.ones(3, 4, dtype=torch.float32)), ValueError, "attn_mask"),
    (dict(attn_mask=[[True] * 4] * 3), TypeError, "attn_mask"),
    (dict(attn_mask=torch.ones(3, 5, dtype=torch.bool)), ValueError, "attn_mask"),
    (dict(attn_mask=torch.ones(2, 4, dtype=torch.bool)), ValueError, "attn_mask"),
    (dict(key=randn64(4, 3, seed=0)), ValueError, "key"),
    (dict(value=randn64(5, 2, seed=0)), ValueError, "value"),
    (dict(query=torch.ones(4, dtype=torch.float64)), ValueError, "query"),
    (dict(key=torch.ones(4, 2, dtype=torch.int64)), TypeError, "key"),
    (dict(value="v"), TypeError, "value"),
])
def test_bad_arguments_name_the_parameter(args, error, match):
    call = dict(query=randn64(3, 2, seed=16), key=randn64(4, 2, seed=17), value=randn64(4, 2, seed=18)) | args
    with pytest.raises(error, match=match):
        flash_attention(**call)


class _LargestOutput(TorchDispatchMode):
    """Records the number of elements of the largest tensor any operation produces while it is active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("is_causal", [False, True])
def test_the_score_matrix_is_never_materialised(is_causal):
    Tq, Tk, E, block = 256, 320, 8, 32
    q, k, v = randn64(Tq, E, seed=19), randn64(Tk, E, seed=20), randn64(Tk, E, seed=21)
    with _LargestOutput() as tiled:
        flash_attention(q, k, v, is_causal=is_causal, block_size=block).sum().backward()
    with _LargestOutput() as plain:
        scaled_dot_product_attention(q, k, v, is_causal=is_causal).sum().backward()
    assert plain.largest >= Tq * Tk  # the measure sees the full score matrix when there is one
    assert tiled.largest == Tq * block  # one block of scores, forward and backward


def test_peak_memory_grows_with_the_block_not_with_the_keys():
    short, long = torch.randn(512, 32), torch.randn(1024, 32)
    plain, plain_long = (peak_allocated_bytes(scaled_dot_product_attention, x, x, x) for x in (short, long))
    tiled, tiled_long = (peak_allocated_bytes(flash_attention, x, x, x, block_size=32) for x in (short, long))
    assert plain >= 2 * 512 * 512 * 4 and plain_long >= 3.5 * plain  # scores and weights, float32: grows as T^2
    assert tiled < plain / 8 and tiled_long < 2.2 * tiled  # twice the length: twice the memory


def test_peak_allocated_bytes_counts_what_is_alive_at_once():
    def two_at_once():
        a = torch.empty(1000, dtype=torch.float32)
        b = torch.empty(500, dtype=torch.float64)
        return a, b

    def one_after_the_other():
        torch.empty(1000, dtype=torch.float32)
        torch.empty(500, dtype=torch.float64)

    assert peak_allocated_bytes(two_at_once) == 8000
    assert peak_allocated_bytes(one_after_the_other) == 4000


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_with_a_fully_masked_row_matches_pytorch(dtype):
    g = torch.Generator().manual_seed(21)
    q, k, v = (torch.randn(2, T, 8, generator=g).to(dtype) for T in (6, 9, 9))
    m = torch.rand(6, 9, generator=g) < 0.5
    m[:, 8], m[2] = True, False  # every query but one sees the last key; query 2 sees none
    ours = flash_attention(q, k, v, attn_mask=m, block_size=4)
    assert torch.isfinite(ours).all() and torch.equal(ours[:, 2], torch.zeros_like(ours[:, 2]))
    torch.testing.assert_close(ours.double(), F.scaled_dot_product_attention(q, k, v, attn_mask=m).double(),
                               atol=2e-2, rtol=2e-2)
