"""dlbook.ngram: counts, smoothed probability tables (rows sum to 1, a hand computation), cross-entropy,
sampling, and bad arguments."""

from __future__ import annotations

import math

import pytest
import torch

from dlbook.ngram import ngram_counts, ngram_cross_entropy, ngram_generate, ngram_probs


def test_counts_of_a_small_sequence():
    tokens = torch.tensor([0, 1, 0, 1, 1])  # bigrams: 01, 10, 01, 11
    counts = ngram_counts(tokens, 2, 2)
    assert torch.equal(counts, torch.tensor([[0.0, 2.0], [1.0, 1.0]], dtype=torch.float64))
    assert ngram_counts(tokens, 3, 2).sum() == 3
    assert ngram_counts(tokens[:1], 2, 2).sum() == 0  # too short for one bigram


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("interpolate", [True, False])
def test_rows_are_distributions(n, interpolate):
    tokens = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(n))
    probs = ngram_probs(tokens, n, 5, 0.3, interpolate=interpolate)
    assert probs.shape == (5,) * n
    torch.testing.assert_close(probs.sum(-1), torch.ones((5,) * (n - 1), dtype=torch.float64))
    assert probs.min() > 0


def test_add_k_matches_a_hand_computation():
    tokens = torch.tensor([0, 1, 0, 1, 1])  # after 0: 1 twice; after 1: 0 once, 1 once
    probs = ngram_probs(tokens, 2, 3, k=0.5, interpolate=False)  # (N(h c) + k) / (N(h) + k V)
    assert probs[0, 1].item() == pytest.approx((2 + 0.5) / (2 + 1.5))
    assert probs[0, 0].item() == pytest.approx(0.5 / 3.5)
    assert probs[1, 0].item() == pytest.approx(1.5 / 3.5)
    assert probs[2, 2].item() == pytest.approx(1 / 3)  # an unseen context: uniform


def test_interpolation_matches_a_hand_computation():
    tokens = torch.tensor([0, 1, 0, 1, 1])  # unigram counts: 0 twice, 1 three times
    k, V = 0.5, 3
    p1 = [(c + k * V / V) / (5 + k * V) for c in (2, 3, 0)]  # P_1(c) = (N(c) + k V / V) / (N + k V)
    probs = ngram_probs(tokens, 2, V, k)
    assert probs[0, 1].item() == pytest.approx((2 + k * V * p1[1]) / (2 + k * V))
    assert probs[2, 0].item() == pytest.approx(p1[0])  # an unseen context falls back on P_1


def test_cross_entropy_by_hand_and_uniform():
    tokens = torch.tensor([0, 1, 0, 1, 1])
    probs = ngram_probs(tokens, 2, 3, k=0.5, interpolate=False)
    expected = -(math.log(2.5 / 3.5) + math.log(1.5 / 3.5) + math.log(2.5 / 3.5) + math.log(1.5 / 3.5)) / 4
    assert ngram_cross_entropy(probs, tokens) == pytest.approx(expected)
    uniform = torch.full((4, 4), 0.25, dtype=torch.float64)
    assert ngram_cross_entropy(uniform, torch.tensor([0, 3, 2, 1])) == pytest.approx(math.log(4))


def test_more_context_fits_a_repeating_text_better():
    tokens = torch.tensor([0, 1, 2, 0, 2, 1] * 30)  # the next token depends on the previous two, not on one
    ce = [ngram_cross_entropy(ngram_probs(tokens, n, 3, 0.1), tokens[2:]) for n in (1, 2, 3)]
    assert ce[0] > ce[1] > ce[2] and ce[2] < 0.1


def test_generate_follows_the_table_and_is_seeded():
    probs = torch.zeros(3, 3, dtype=torch.float64)
    probs[0, 1] = probs[1, 2] = probs[2, 0] = 1.0  # a deterministic cycle 0 -> 1 -> 2 -> 0
    out = ngram_generate(probs, torch.tensor([2, 0]), 5)
    assert out.tolist() == [2, 0, 1, 2, 0, 1, 2]
    soft = ngram_probs(torch.randint(0, 4, (100,), generator=torch.Generator().manual_seed(0)), 3, 4)
    a = ngram_generate(soft, torch.tensor([1, 2]), 20, generator=torch.Generator().manual_seed(1))
    b = ngram_generate(soft, torch.tensor([1, 2]), 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (22,)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ngram_counts(torch.tensor([0, 1]), 0, 2), ValueError, "n"),
    (lambda: ngram_counts(torch.tensor([0, 1]), 2, 0), ValueError, "vocab_size"),
    (lambda: ngram_counts(torch.tensor([0, 5]), 2, 3), ValueError, "tokens"),
    (lambda: ngram_counts(torch.tensor([0.0, 1.0]), 2, 3), TypeError, "tokens"),
    (lambda: ngram_counts(torch.tensor([0, 1]), 2.0, 3), TypeError, "n"),
    (lambda: ngram_counts(torch.tensor([0, 1]), 8, 30), ValueError, "too large"),
    (lambda: ngram_probs(torch.tensor([0, 1]), 2, 3, k=0), ValueError, "k"),
    (lambda: ngram_probs(torch.tensor([0, 1]), 2, 3, k=-1.0), ValueError, "k"),
    (lambda: ngram_cross_entropy(torch.ones(3, 2), torch.tensor([0, 1])), TypeError, "probs"),
    (lambda: ngram_cross_entropy(torch.full((3, 3), 1 / 3), torch.tensor([0])), ValueError, "tokens"),
    (lambda: ngram_generate(torch.full((3, 3, 3), 1 / 3), torch.tensor([0]), 2), ValueError, "prompt"),
    (lambda: ngram_generate(torch.full((3, 3), 1 / 3), torch.tensor([0]), -1), ValueError, "max_new_tokens"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
