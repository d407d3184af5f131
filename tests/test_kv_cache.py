"""dlbook.transformer's key-value cache: the cached forward pass equals the full recomputation, generation draws the
same tokens with and without it (greedy and seeded sampling, before and after the sequence outgrows block_size), the
cached path reads one token per step, and bad arguments are refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.attention import causal_mask
from dlbook.transformer import TinyBERT, TinyGPT, TransformerBlock, TransformerConfig, cached_block_forward, generate
from tensors import TOL, randn64

BLOCK = 12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is faster than two taking turns (and much faster on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gpt(dtype=torch.float64, seed=0, **kw):
    config = dict(vocab_size=11, block_size=BLOCK, d_model=16, n_heads=2, n_layers=2, d_ff=32) | kw
    torch.manual_seed(seed)
    return TinyGPT(TransformerConfig(**config)).to(dtype).eval()


def _tokens(B, T, seed=0):
    return torch.randint(0, 11, (B, T), generator=torch.Generator().manual_seed(seed))


# --- the cached forward pass --------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(P=st.integers(0, 8), t=st.integers(1, 4), B=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cached_block_forward_equals_the_last_rows_of_a_causal_forward(P, t, B, seed):
    torch.manual_seed(seed)
    block = TransformerBlock(16, 4, 32).double().eval()
    x = randn64(B, P + t, 16, seed=seed, requires_grad=False)
    full = block(x, attn_mask=~causal_mask(P + t))  # (B, P+t, D)
    _, past = cached_block_forward(block, x[:, :P]) if P else (None, None)
    out, (k, v) = cached_block_forward(block, x[:, P:], past)
    torch.testing.assert_close(out, full[:, P:], **TOL)
    assert k.shape == v.shape == (B, 4, P + t, 4)  # (B, heads, P+t, D/heads)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "none"])
@pytest.mark.parametrize("splits", [[BLOCK], [1] * BLOCK, [5, 1, 1, 5], [11, 1], [3, 9]])
def test_cached_logits_equal_the_full_recomputation(positional, splits):
    """Feeding the sequence in pieces, each with the cache of the pieces before, gives the logits of one full pass."""
    model, seq = _gpt(positional=positional), _tokens(2, BLOCK)
    cache, pieces, start = None, [], 0
    for t in splits:
        logits, cache = model(seq[:, start:start + t], past_kv=cache, use_cache=True)  # (B, t, V)
        pieces.append(logits)
        start += t
    torch.testing.assert_close(torch.cat(pieces, dim=1), model(seq), **TOL)


def test_the_cache_holds_two_numbers_per_layer_position_and_width():
    """2 * n_layers * T * d_model numbers per sequence, as (key, value) pairs of shape (B, heads, T, D/heads)."""
    model, B, T = _gpt(), 3, 7
    _, cache = model(_tokens(B, T), use_cache=True)
    assert len(cache) == model.config.n_layers
    assert all(k.shape == v.shape == (B, 2, T, 8) for k, v in cache)
    assert sum(k.numel() + v.numel() for k, v in cache) == B * 2 * model.config.n_layers * T * model.config.d_model


@pytest.mark.parametrize("positional", ["learned", "none"])
def test_a_slid_cache_is_stale(positional):
    """Why the cache is dropped once the sequence outgrows block_size: keeping the cache of positions 1..T-1 and
    appending the next token gives other logits than reading the window seq[1:T+1] afresh — with learned positions
    every token has moved, and even without positions the second layer's keys saw the token that left the window."""
    model, seq = _gpt(positional=positional), _tokens(1, BLOCK + 1)
    _, cache = model(seq[:, :BLOCK], use_cache=True)
    slid = [(k[:, :, 1:], v[:, :, 1:]) for k, v in cache]  # drop position 0: BLOCK - 1 positions left
    stale, _ = model(seq[:, BLOCK:], past_kv=slid, use_cache=True)
    fresh = model(seq[:, 1:])[:, -1:]
    assert (stale - fresh).abs().max() > 1e-3


# --- generation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T0", [1, 5, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("sampling", [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.8, top_k=3)])
def test_generate_draws_the_same_tokens_with_and_without_the_cache(dtype, T0, B, sampling):
    """Prompts of one token, just under, at and past block_size; 20 new tokens take every case past block_size."""
    model, prompt = _gpt(dtype), _tokens(B, T0, seed=T0)
    cached = generate(model, prompt, 20, generator=torch.Generator().manual_seed(1), **sampling)
    full = generate(model, prompt, 20, generator=torch.Generator().manual_seed(1), use_cache=False, **sampling)
    assert torch.equal(cached, full) and cached.shape == (B, T0 + 20)
    single = generate(model, prompt[0], 20, generator=torch.Generator().manual_seed(1), **sampling)
    assert single.shape == (T0 + 20,)


def _positions_read(model, prompt, n, **kw):
    lengths = []
    handle = model.register_forward_hook(lambda mod, inputs, out: lengths.append(inputs[0].shape[1]))
    generate(model, prompt, n, temperature=0.0, **kw)
    handle.remove()
    return lengths


def test_the_cached_path_reads_one_token_per_step_until_the_window_is_full():
    model = _gpt()
    assert _positions_read(model, _tokens(1, 3), 6) == [3, 1, 1, 1, 1, 1]
    assert _positions_read(model, _tokens(1, 3), 6, use_cache=False) == [3, 4, 5, 6, 7, 8]
    # positions 0..9 read at once, then 10 and 11; from 13 tokens on, the whole window of 12 each step
    assert _positions_read(model, _tokens(1, 10), 5) == [10, 1, 1, 12, 12]
    assert _positions_read(model, _tokens(1, 20), 2) == [12, 12]


def test_generate_with_the_cache_restores_training_mode():
    model = _gpt().train()
    generate(model, torch.tensor([1, 2]), 3)
    assert model.training


# --- bad arguments ------------------------------------------------------------------------------------------------

def test_bad_arguments():
    model, seq = _gpt(), _tokens(2, 5)
    _, cache = model(seq, use_cache=True)
    with pytest.raises(TypeError, match="use_cache"):
        generate(model, seq, 2, use_cache="yes")
    with pytest.raises(TypeError, match="use_cache"):
        model(seq, use_cache=1)
    with pytest.raises(ValueError, match="block_size"):
        model(_tokens(2, BLOCK - 4), past_kv=cache, use_cache=True)  # 5 cached + 8 new > 12
    with pytest.raises(ValueError, match="past_kv"):
        model(seq[:, :1], past_kv=cache[:1], use_cache=True)
    with pytest.raises(ValueError, match="key_padding_mask"):
        model(seq, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool), use_cache=True)
    with pytest.raises(ValueError, match="return_attention"):
        model(seq, return_attention=True, use_cache=True)
    bert = TinyBERT(model.config)
    with pytest.raises(ValueError, match="causal"):
        bert(seq, use_cache=True)
    with pytest.raises(ValueError, match="causal"):
        generate(bert, seq, 2)
    assert generate(bert, seq, 2, use_cache=False).shape == (2, 7)  # without the cache a bidirectional model runs
