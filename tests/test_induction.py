"""dlbook.induction: the repeated-token data, induction targets against a loop, the attention-only model's causality
and its layers against nn.MultiheadAttention, the per-position loss, and bad inputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook.attention import causal_mask
from dlbook.induction import (
    AttentionOnlyLM,
    RepeatedBatches,
    induction_targets,
    next_token_loss,
    per_position_loss,
    repeated_tokens,
)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(2, 24), low=st.integers(1, 12))
def test_repeated_tokens_end_with_a_run_of_l_tokens_twice(seed, T, low):
    low = min(low, T // 2) or 1
    tokens, half = repeated_tokens(40, T, 7, min_half=max(low, 1), generator=torch.Generator().manual_seed(seed))
    assert tokens.shape == (40, T) and int(tokens.max()) < 7
    assert int(half.min()) >= low and int(half.max()) <= T // 2
    for row, n in zip(tokens, half.tolist(), strict=True):
        assert torch.equal(row[T - n:], row[T - 2 * n:T - n])


def test_repeated_tokens_refuses_bad_lengths():
    for kwargs in (dict(min_half=0), dict(min_half=3, max_half=2), dict(min_half=2, max_half=6)):
        with pytest.raises(ValueError, match="min_half"):
            repeated_tokens(4, 10, 5, **kwargs, generator=torch.Generator())
    with pytest.raises(ValueError, match="vocab_size"):
        repeated_tokens(4, 10, 0, min_half=2, generator=torch.Generator())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 15), V=st.integers(1, 6))
def test_induction_targets_match_a_loop(seed, T, V):
    tokens = torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(seed))
    expected = [[next((j + 1 for j in range(t - 1, -1, -1) if row[j] == row[t]), -1) for t in range(T)]
                for row in tokens.tolist()]
    assert induction_targets(tokens).tolist() == expected


def test_induction_targets_refuse_a_1d_tensor():
    with pytest.raises(ValueError, match="tokens"):
        induction_targets(torch.arange(5))


def test_the_model_is_causal_and_its_maps_are_causal():
    torch.manual_seed(0)
    model = AttentionOnlyLM(10, 12, d_model=16, n_heads=2).eval()
    tokens = torch.randint(0, 10, (2, 12), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 10
    with torch.no_grad():
        (a, maps), (b, _) = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])
    assert len(maps) == 2 and all(m.shape == (2, 2, 12, 12) and torch.all(m.triu(1) == 0) for m in maps)


def test_each_layer_is_pre_ln_multihead_attention_as_in_torch():
    torch.manual_seed(0)
    model = AttentionOnlyLM(10, 8, d_model=16, n_heads=2, n_layers=1).double()
    theirs = nn.MultiheadAttention(16, 2, batch_first=True).double()
    theirs.load_state_dict(model.attn[0].state_dict())
    tokens = torch.randint(0, 10, (3, 8), generator=torch.Generator().manual_seed(1))
    x = model.embed(tokens) + model.pos.weight[:8]
    h = model.norms[0](x)
    x = x + theirs(h, h, h, attn_mask=~causal_mask(8), need_weights=False)[0]
    expected = model.head(model.norms[1](x))
    torch.testing.assert_close(model(tokens)[0], expected, rtol=1e-10, atol=1e-10)


def test_per_position_loss_averages_to_the_training_loss():
    torch.manual_seed(0)
    model = AttentionOnlyLM(10, 12, d_model=16, n_heads=2)
    tokens, _ = repeated_tokens(8, 12, 10, min_half=3, generator=torch.Generator().manual_seed(0))
    per_pos = per_position_loss(model, tokens)
    assert per_pos.shape == (11,)
    torch.testing.assert_close(per_pos.mean(), next_token_loss(model, tokens).detach())


def test_repeated_batches_draw_fresh_batches_reproducibly():
    def draw(seed):
        return list(RepeatedBatches(3, 4, 10, 6, min_half=2, generator=torch.Generator().manual_seed(seed)))

    first, again = draw(0), draw(0)
    assert len(first) == 3 and all(b.shape == (4, 10) for b in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])
