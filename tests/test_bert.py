"""Tests of dlbook.bert: blanks scored by a bidirectional and a causal model, pooling, and fine-tuning."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlbook.bert import (
    EncoderClassifier,
    causal_log_probs,
    few_labels,
    fine_tune,
    masked_log_probs,
    mean_pool,
    pad_sequences,
    split_speaker,
    word_starts,
)
from dlbook.transformer import TinyBERT, TinyGPT, TransformerConfig
from tensors import randn64

V, MASK, PAD = 12, 10, 11


def _config(**kw):
    return TransformerConfig(**{"vocab_size": V, "block_size": 16, "d_model": 16, "n_heads": 2, "n_layers": 2,
                                "d_ff": 32, **kw})


def _models(seed=0):
    torch.manual_seed(seed)
    return TinyBERT(_config()).eval(), TinyGPT(_config()).eval()


def _tokens(T=9, seed=0):
    return torch.randint(0, MASK, (T,), generator=torch.Generator().manual_seed(seed))


def test_split_speaker_and_bad_lines():
    assert split_speaker("cook: the oven is hot.") == ("cook", "the oven is hot.")
    assert split_speaker("a: b: c") == ("a", "b: c")
    for line in ("no colon", ": text", "cook: "):
        with pytest.raises(ValueError, match="line"):
            split_speaker(line)
    with pytest.raises(TypeError, match="line"):
        split_speaker(3)


def test_word_starts_against_a_regex():
    import re

    for text in ("the oven is hot.", " a  bc d", "x", "", "one, two 3 four"):
        expected = [m.start() for m in re.finditer(r"(?<= )[a-z]", text)]
        assert word_starts(text).tolist() == expected
        assert word_starts(text).dtype == torch.long
    with pytest.raises(TypeError, match="text"):
        word_starts(["a", "b"])


def test_masked_log_probs_equals_one_forward_per_blank():
    bert, _ = _models()
    tokens, positions = _tokens(), torch.tensor([0, 3, 8])
    out = masked_log_probs(bert, tokens, positions, MASK)  # (P, V)
    assert out.shape == (3, V)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    for row, t in enumerate(positions.tolist()):  # independent: mask one position, run the model on that alone
        x = tokens.clone()
        x[t] = MASK
        with torch.no_grad():
            expected = torch.log_softmax(bert(x[None])[0, t], dim=-1)
        torch.testing.assert_close(out[row], expected, rtol=1e-5, atol=1e-5)


def test_masked_log_probs_ignores_the_hidden_token_and_reads_the_right_side():
    bert, _ = _models()
    tokens, at = _tokens(), torch.tensor([4])
    other = tokens.clone()
    other[4] = (tokens[4] + 1) % MASK  # a different token in the blank: hidden, so nothing changes
    torch.testing.assert_close(masked_log_probs(bert, tokens, at, MASK), masked_log_probs(bert, other, at, MASK))
    right = tokens.clone()
    right[7] = (tokens[7] + 1) % MASK  # a different token to the right: a bidirectional model sees it
    assert not torch.allclose(masked_log_probs(bert, tokens, at, MASK), masked_log_probs(bert, right, at, MASK))


def test_causal_log_probs_is_the_next_token_distribution_and_ignores_the_right_side():
    _, gpt = _models()
    tokens, positions = _tokens(), torch.tensor([1, 5, 8])
    out = causal_log_probs(gpt, tokens, positions)  # (P, V)
    for row, t in enumerate(positions.tolist()):  # independent: the prefix alone
        with torch.no_grad():
            expected = torch.log_softmax(gpt(tokens[None, :t])[0, -1], dim=-1)
        torch.testing.assert_close(out[row], expected, rtol=1e-5, atol=1e-5)
    changed = tokens.clone()
    changed[5:] = (tokens[5:] + 1) % MASK  # the blank at 5 and everything after it
    torch.testing.assert_close(causal_log_probs(gpt, changed, torch.tensor([5])), out[1:2])


def test_blank_scorers_reject_bad_input():
    bert, gpt = _models()
    tokens = _tokens()
    with pytest.raises(ValueError, match="positions"):
        masked_log_probs(bert, tokens, torch.tensor([9]), MASK)
    with pytest.raises(ValueError, match="positions"):
        causal_log_probs(gpt, tokens, torch.tensor([0]))  # nothing to the left of position 0
    with pytest.raises(TypeError, match="positions"):
        causal_log_probs(gpt, tokens, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="tokens"):
        masked_log_probs(bert, tokens[None], torch.tensor([1]), MASK)
    with pytest.raises(ValueError, match="mask_id"):
        masked_log_probs(bert, tokens, torch.tensor([1]), -1)
    with pytest.raises(ValueError, match="model must be bidirectional"):
        masked_log_probs(gpt, tokens, torch.tensor([1]), MASK)
    with pytest.raises(ValueError, match="model must be causal"):
        causal_log_probs(bert, tokens, torch.tensor([1]))
    with pytest.raises(TypeError, match="model"):
        causal_log_probs(torch.nn.Linear(2, 2), tokens, torch.tensor([1]))


def test_pad_sequences():
    out = pad_sequences([torch.tensor([1, 2, 3]), torch.tensor([4])], PAD)
    assert out.tolist() == [[1, 2, 3], [4, PAD, PAD]]
    with pytest.raises(ValueError, match="sequences"):
        pad_sequences([], PAD)
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        pad_sequences([torch.tensor([1]), torch.tensor([1.0])], PAD)
    with pytest.raises(ValueError, match="pad_id"):
        pad_sequences([torch.tensor([1])], -1)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**16))
def test_mean_pool_is_the_mean_of_the_real_positions(B, T, D, seed):
    lengths = torch.randint(0, T + 1, (B,), generator=torch.Generator().manual_seed(seed))
    assume(bool((lengths > 0).all()))
    hidden = randn64(B, T, D, seed=seed, requires_grad=False)
    padding = torch.arange(T)[None, :] >= lengths[:, None]  # (B, T)
    out = mean_pool(hidden, padding)
    expected = torch.stack([hidden[b, : lengths[b]].mean(0) for b in range(B)])  # independent: slice and mean
    torch.testing.assert_close(out, expected)


def test_mean_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="hidden"):
        mean_pool(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="padding_mask"):
        mean_pool(torch.zeros(2, 3, 4), torch.zeros(3, 2, dtype=torch.bool))


def test_classifier_copies_the_encoder_and_ignores_padding():
    bert, _ = _models()
    before = {k: v.clone() for k, v in bert.state_dict().items()}
    torch.manual_seed(1)
    clf = EncoderClassifier(bert, 3, PAD).eval()
    x = torch.tensor([[1, 2, 3, PAD, PAD], [4, 5, 6, 7, 8]])
    with torch.no_grad():
        out = clf(x)
        alone = clf(x[:1, :3])  # the first line without its padding
    assert out.shape == (2, 3)
    torch.testing.assert_close(out[:1], alone, rtol=1e-5, atol=1e-5)
    # the encoder's weights are the pre-trained ones, copied: training the classifier leaves `bert` as it was
    torch.testing.assert_close(clf.encoder.tok_emb.weight, bert.tok_emb.weight)
    fine_tune(clf, x, torch.tensor([0, 2]), steps=3, lr=1e-2)
    assert all(torch.equal(v, before[k]) for k, v in bert.state_dict().items())
    assert not torch.equal(clf.encoder.tok_emb.weight, bert.tok_emb.weight)
    with pytest.raises(TypeError, match="encoder"):
        EncoderClassifier(torch.nn.Linear(2, 2), 3, PAD)
    with pytest.raises(ValueError, match="n_classes"):
        EncoderClassifier(bert, 0, PAD)


def test_fine_tune_lowers_the_loss_and_repeats_exactly():
    bert, _ = _models()
    x = torch.randint(0, MASK, (6, 8), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        clf = EncoderClassifier(bert, 3, PAD)
        runs.append((fine_tune(clf, x, y, steps=20, lr=3e-3), clf))
    (h1, c1), (h2, c2) = runs
    assert h1.step_loss == h2.step_loss  # deterministic: full batches, the same initial weights
    assert h1.step_loss[-1] < 0.5 * h1.step_loss[0]
    assert all(torch.equal(a, b) for a, b in zip(c1.parameters(), c2.parameters(), strict=True))
    with pytest.raises(ValueError, match="labels"):
        fine_tune(c1, x, y[:5], steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="steps"):
        fine_tune(c1, x, y, steps=0, lr=1e-3)
    with pytest.raises(ValueError, match="lr"):
        fine_tune(c1, x, y, steps=1, lr=0.0)


def test_few_labels_draws_per_class_without_replacement_and_repeats():
    labels = torch.tensor([0, 1, 2] * 5 + [1])
    a = few_labels(labels, 3, torch.Generator().manual_seed(0))
    b = few_labels(labels, 3, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and len(set(a.tolist())) == 9
    assert sorted(labels[a].tolist()) == [0] * 3 + [1] * 3 + [2] * 3
    with pytest.raises(ValueError, match="labels of class 0.*per_class=6"):
        few_labels(labels, 6, torch.Generator())
    with pytest.raises(ValueError, match="per_class"):
        few_labels(labels, 0, torch.Generator())
    with pytest.raises(TypeError, match="labels"):
        few_labels(labels.float(), 1, torch.Generator())
