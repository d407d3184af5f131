"""dlbook.transformer: positions, layer norm, GELU, the pre-LN block against nn.TransformerEncoderLayer, GPT/BERT
masking, the 80/10/10 rule, sampling and generation, data and a short training run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook.attention import causal_mask
from dlbook.transformer import (
    CharTokenizer,
    TinyBERT,
    TinyGPT,
    TrainSettings,
    TransformerBlock,
    TransformerConfig,
    feed_forward,
    gelu,
    generate,
    get_batch,
    layer_norm,
    lm_pairs,
    load_tiny_corpus,
    mask_tokens,
    next_token_nll,
    next_token_probs,
    sample_next,
    sinusoidal_positional_encoding,
    token_cross_entropy,
    train_lm,
)
from tensors import TOL, randn64

DT = torch.float64


# --- positional encoding ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T,D", [(1, 1), (5, 4), (7, 6), (9, 5), (50, 16)])
def test_sinusoidal_matches_the_formula(T, D):
    pe = sinusoidal_positional_encoding(T, D, dtype=DT)
    assert pe.shape == (T, D)
    for t in range(T):
        for j in range(D):
            i = j // 2
            angle = t / 10000 ** (2 * i / D)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(pe[t, j].item() - expected) < 1e-12


def test_sinusoidal_shift_is_a_rotation_of_each_pair():
    """PE[t + k] is PE[t] with every (sin, cos) pair rotated by an angle that depends on k only."""
    D, k = 8, 3
    pe = sinusoidal_positional_encoding(40, D, dtype=DT)
    for i in range(D // 2):
        w = 1 / 10000 ** (2 * i / D)
        rot = torch.tensor([[math.cos(k * w), -math.sin(k * w)], [math.sin(k * w), math.cos(k * w)]], dtype=DT)
        pairs = pe[:, 2 * i : 2 * i + 2]  # (T, 2) = (sin, cos)
        torch.testing.assert_close(pairs[:-k] @ rot, pairs[k:], **TOL)


def test_sinusoidal_positions_are_distinct_and_bounded():
    pe = sinusoidal_positional_encoding(64, 16, dtype=DT)
    assert pe.abs().max() <= 1
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0] * 8, dtype=DT))
    dist = torch.cdist(pe, pe)
    assert dist[~torch.eye(64, dtype=torch.bool)].min() > 0.1


# --- layer norm, GELU, feed-forward -------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), n_norm=st.integers(1, 2), affine=st.booleans(),
       eps=st.sampled_from([1e-5, 1e-2]), seed=st.integers(0, 10_000))
def test_layer_norm_matches_torch(shape, n_norm, affine, eps, seed):
    n_norm = min(n_norm, len(shape))
    x = randn64(*shape, seed=seed)
    ns = tuple(shape[-n_norm:])
    w = randn64(*ns, seed=seed + 1) if affine else None
    b = randn64(*ns, seed=seed + 2) if affine else None
    ours, ref = layer_norm(x, ns, w, b, eps), F.layer_norm(x, ns, w, b, eps)
    torch.testing.assert_close(ours, ref, **TOL)
    inputs = [t for t in (x, w, b) if t is not None]
    cot = randn64(*ref.shape, seed=seed + 3, requires_grad=False)
    for a, c in zip(torch.autograd.grad(ours, inputs, cot), torch.autograd.grad(ref, inputs, cot), strict=True):
        torch.testing.assert_close(a, c, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    x = torch.linspace(-6, 6, 301, dtype=DT, requires_grad=True)
    torch.testing.assert_close(gelu(x, approximate), F.gelu(x, approximate=approximate), **TOL)
    assert torch.autograd.gradcheck(lambda t: gelu(t, approximate), (x[::30].detach().requires_grad_(),))
    torch.testing.assert_close(torch.autograd.grad(gelu(x, approximate).sum(), x)[0],
                               torch.autograd.grad(F.gelu(x, approximate=approximate).sum(), x)[0], **TOL)


def test_feed_forward_is_linear_gelu_linear_per_position():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.Linear(10, 6)).double()
    x = randn64(2, 5, 6, requires_grad=False)
    out = feed_forward(x, net[0].weight, net[0].bias, net[2].weight, net[2].bias)
    torch.testing.assert_close(out, net(x), **TOL)
    torch.testing.assert_close(out[:, 2], net(x[:, 2]), **TOL)  # no position sees another


# --- the Transformer block ----------------------------------------------------------------------------------------

def _block_pair(D=8, heads=2, d_ff=16, seed=0):
    torch.manual_seed(seed)
    theirs = nn.TransformerEncoderLayer(D, heads, d_ff, dropout=0.0, activation="gelu", batch_first=True,
                                        norm_first=True, dtype=DT)
    with torch.no_grad():
        for p in theirs.parameters():  # biases and norms start at 0 and 1: randomise so every parameter matters
            p.add_(0.1 * torch.randn_like(p))
    ours = TransformerBlock(D, heads, d_ff).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("masks", ["none", "causal", "padding", "both"])
def test_block_matches_torch_encoder_layer(masks):
    ours, theirs = _block_pair()
    x = randn64(3, 6, 8, seed=1)
    kpm = torch.zeros(3, 6, dtype=torch.bool)
    kpm[1, 4:] = True
    args = {"none": {}, "causal": dict(mask=~causal_mask(6)), "padding": dict(src_key_padding_mask=kpm),
            "both": dict(mask=~causal_mask(6), src_key_padding_mask=kpm)}[masks]
    ref = theirs(x, src_mask=args.get("mask"), src_key_padding_mask=args.get("src_key_padding_mask"))
    out = ours(x, attn_mask=args.get("mask"), key_padding_mask=args.get("src_key_padding_mask"))
    torch.testing.assert_close(out, ref, **TOL)
    cot = randn64(*ref.shape, seed=2, requires_grad=False)
    g_ours = torch.autograd.grad(out, [x, *ours.parameters()], cot)
    g_ref = torch.autograd.grad(ref, [x, *theirs.parameters()], cot)
    names = ["x"] + [n for n, _ in ours.named_parameters()]
    for name, a, b in zip(names, g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)


def test_block_parameter_names_match_torch():
    ours, theirs = _block_pair()
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_block_returns_weights_per_head():
    ours, _ = _block_pair()
    x = randn64(2, 5, 8, requires_grad=False)
    out, w = ours(x, need_weights=True)
    assert out.shape == (2, 5, 8) and w.shape == (2, 2, 5, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 5, dtype=DT), **TOL)


# --- GPT and BERT -------------------------------------------------------------------------------------------------

def _config(**kw):
    base = dict(vocab_size=11, block_size=12, d_model=16, n_heads=2, n_layers=2, d_ff=32)
    base.update(kw)
    return TransformerConfig(**base)


def _tokens(B=2, T=10, V=11, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "none"])
def test_gpt_output_at_t_ignores_tokens_after_t(positional):
    torch.manual_seed(0)
    model = TinyGPT(_config(positional=positional)).double().eval()
    x = _tokens()
    logits = model(x)
    assert logits.shape == (2, 10, 11)
    for t in range(10):
        changed = x.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 + torch.arange(10 - t - 1)) % 11  # every later token differs
        torch.testing.assert_close(model(changed)[:, : t + 1], logits[:, : t + 1], **TOL)
        if t + 1 < 10:
            assert not torch.allclose(model(changed)[:, t + 1:], logits[:, t + 1:])


def test_gpt_gradient_never_flows_from_the_future():
    torch.manual_seed(0)
    model = TinyGPT(_config()).double().eval()
    x = _tokens(B=1)
    emb = model.tok_emb(x).detach().requires_grad_()  # (1, T, D)
    pos = model.positions(10).to(DT)

    def logits_from(e):
        h = e + pos
        for block in model.blocks:
            h = block(h, attn_mask=~causal_mask(10))
        return model.head(model.norm(h))

    jac = torch.autograd.functional.jacobian(lambda e: logits_from(e)[0, :, 0], emb)  # (T, 1, T, D)
    influence = jac.abs().sum(dim=(1, 3))  # (T out, T in)
    assert torch.equal(influence.triu(1), torch.zeros_like(influence))  # nothing above the diagonal
    assert (influence.diagonal() > 0).all()


def test_bert_sees_both_directions():
    torch.manual_seed(0)
    model = TinyBERT(_config()).double().eval()
    x = _tokens()
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    assert not torch.allclose(model(changed)[:, 0], model(x)[:, 0])  # position 0 sees the last token


def test_bert_padding_is_invisible():
    torch.manual_seed(0)
    model = TinyBERT(_config()).double().eval()
    x = _tokens()
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[:, 7:] = True
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 3) % 11
    torch.testing.assert_close(model(changed, key_padding_mask=pad)[:, :7], model(x, key_padding_mask=pad)[:, :7],
                               **TOL)


def test_without_positions_bert_is_permutation_equivariant_and_with_them_it_is_not():
    torch.manual_seed(0)
    x = _tokens()
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    plain = TinyBERT(_config(positional="none")).double().eval()
    torch.testing.assert_close(plain(x[:, perm]), plain(x)[:, perm], **TOL)
    for positional in ("learned", "sinusoidal"):
        model = TinyBERT(_config(positional=positional)).double().eval()
        if positional == "learned":
            with torch.no_grad():
                model.pos_emb.weight.normal_()
        assert not torch.allclose(model(x[:, perm]), model(x)[:, perm])


def test_return_attention_gives_one_map_per_layer():
    torch.manual_seed(0)
    model = TinyGPT(_config()).double().eval()
    logits, maps = model(_tokens(), return_attention=True)
    assert len(maps) == 2 and all(m.shape == (2, 2, 10, 10) for m in maps)
    assert torch.equal(maps[0].triu(1), torch.zeros_like(maps[0]))  # causal: no weight on later positions
    torch.testing.assert_close(logits, model(_tokens()), **TOL)


def test_model_rejects_too_long_and_bad_input():
    model = TinyGPT(_config())
    with pytest.raises(ValueError, match="block_size"):
        model(_tokens(T=13))
    with pytest.raises(TypeError, match="tokens"):
        model(torch.zeros(2, 3))


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_heads=3), "n_heads"), (dict(vocab_size=0), "vocab_size"), (dict(positional="rotary"), "positional"),
    (dict(dropout=1.0), "dropout"), (dict(block_size=1.5), "block_size"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _config(**kwargs)


def test_token_cross_entropy():
    V = 7
    logits = torch.zeros(2, 3, V, dtype=DT)
    targets = torch.tensor([[1, 2, -100], [-100, 0, 6]])
    assert abs(token_cross_entropy(logits, targets).item() - math.log(V)) < 1e-12
    logits[0, 0, 1] = 50.0
    expected = (0.0 + 3 * math.log(V)) / 4  # one confident right answer, three uniform ones; -100 ignored
    assert abs(token_cross_entropy(logits, targets).item() - expected) < 1e-9
    with pytest.raises(ValueError, match="targets"):
        token_cross_entropy(logits, targets[:, :2])


# --- the 80/10/10 rule --------------------------------------------------------------------------------------------

def test_mask_tokens_statistics():
    tokens = torch.randint(0, 50, (400, 500), generator=torch.Generator().manual_seed(0))
    m = mask_tokens(tokens, mask_id=50, vocab_size=50, generator=torch.Generator().manual_seed(1))
    chosen = m.labels != -100
    n, c = tokens.numel(), chosen.sum().item()

    def within(count, total, p):  # 5 standard deviations of a binomial
        return abs(count - total * p) < 5 * math.sqrt(total * p * (1 - p))

    assert within(c, n, 0.15)
    assert within(m.masked.sum().item(), c, 0.8)
    assert within(m.randomized.sum().item(), c, 0.1)
    assert within(m.kept.sum().item(), c, 0.1)
    assert torch.equal(m.masked | m.randomized | m.kept, chosen)
    assert not (m.masked & m.randomized).any() and not (m.masked & m.kept).any()
    assert torch.equal(m.inputs[~chosen], tokens[~chosen])
    assert torch.equal(m.labels[chosen], tokens[chosen])
    assert (m.inputs[m.masked] == 50).all()
    assert torch.equal(m.inputs[m.kept], tokens[m.kept])
    assert (m.inputs[m.randomized] < 50).all()
    assert (m.inputs[m.randomized] != tokens[m.randomized]).float().mean() > 0.9  # random tokens, mostly different


def test_mask_tokens_is_deterministic_with_a_generator_and_respects_its_arguments():
    tokens = torch.randint(0, 9, (4, 30), generator=torch.Generator().manual_seed(0))
    a = mask_tokens(tokens, 9, 9, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(tokens, 9, 9, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    none = mask_tokens(tokens, 9, 9, mask_prob=0.0)
    assert torch.equal(none.inputs, tokens) and (none.labels == -100).all()
    every = mask_tokens(tokens, 9, 9, mask_prob=1.0, mask_ratio=1.0, random_ratio=0.0)
    assert (every.inputs == 9).all() and torch.equal(every.labels, tokens)


@pytest.mark.parametrize("kwargs,match", [
    (dict(mask_prob=1.5), "mask_prob"), (dict(mask_ratio=-0.1), "mask_ratio"),
    (dict(mask_ratio=0.8, random_ratio=0.3), "random_ratio"), (dict(mask_id=-1), "mask_id"),
    (dict(vocab_size=0), "vocab_size"),
])
def test_mask_tokens_bad_arguments(kwargs, match):
    args = dict(mask_id=9, vocab_size=9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mask_tokens(torch.zeros(3, 4, dtype=torch.long), **args)


def test_mask_tokens_rejects_float_tokens():
    with pytest.raises(TypeError, match="tokens"):
        mask_tokens(torch.zeros(3, 4), 9, 9)


# --- sampling -----------------------------------------------------------------------------------------------------

def test_sample_next_is_deterministic_with_a_generator():
    logits = torch.randn(5, 20, generator=torch.Generator().manual_seed(0), dtype=DT)
    a = sample_next(logits, 0.9, 5, torch.Generator().manual_seed(7))
    b = sample_next(logits, 0.9, 5, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (5,) and a.dtype == torch.long
    draws = {tuple(sample_next(logits, 1.0, None, torch.Generator().manual_seed(s)).tolist()) for s in range(10)}
    assert len(draws) > 1


def test_temperature_zero_and_top_1_are_greedy():
    logits = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(1), dtype=DT)
    greedy = logits.argmax(-1)
    assert torch.equal(sample_next(logits, 0.0), greedy)
    assert torch.equal(sample_next(logits, 5.0, top_k=1, generator=torch.Generator().manual_seed(0)), greedy)
    assert sample_next(logits, 0.0).shape == (3, 4)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_samples_follow_softmax_of_logits_over_temperature(temperature):
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=DT)
    n = 20000
    ids = sample_next(logits.expand(n, 4), temperature, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=4).double() / n
    p = torch.softmax(logits / temperature, -1)
    assert (freq - p).abs().max() < 5 * math.sqrt(0.25 / n)


def test_top_k_keeps_only_the_k_best():
    logits = torch.tensor([0.5, 3.0, -1.0, 2.0, 1.0], dtype=DT)
    ids = sample_next(logits.expand(5000, 5), 10.0, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(ids.tolist()) == {1, 3}
    assert set(sample_next(logits.expand(500, 5), 1.0, top_k=99, generator=torch.Generator().manual_seed(0))
               .tolist()) == {0, 1, 2, 3, 4}  # k larger than V keeps every token


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(temperature=-1.0), ValueError, "temperature"), (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"), (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), TypeError, "top_k"), (dict(generator=7), TypeError, "generator"),
])
def test_sample_next_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sample_next(torch.zeros(3, 5), **kwargs)
    with pytest.raises(TypeError, match="logits"):
        sample_next(torch.zeros(3, 5, dtype=torch.long))


# --- generation ---------------------------------------------------------------------------------------------------

def _gpt(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyGPT(_config(**kw)).double().eval()


def test_generate_is_deterministic_and_keeps_the_prompt():
    model = _gpt()
    prompt = torch.tensor([1, 2, 3])
    a = generate(model, prompt, 15, generator=torch.Generator().manual_seed(0))
    b = generate(model, prompt, 15, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (18,) and torch.equal(a[:3], prompt)
    batch = generate(model, prompt.repeat(4, 1), 5, generator=torch.Generator().manual_seed(0))
    assert batch.shape == (4, 8)


def test_greedy_generation_matches_a_manual_loop_and_one_parallel_pass():
    """Generating is sequential (one call per token), but the logits it used at every step are exactly those a single
    parallel pass over the finished sequence computes: that is why training can be parallel."""
    model = _gpt()
    prompt = torch.tensor([[4, 0]])
    out = generate(model, prompt, 8, temperature=0.0)
    seq = prompt
    step_logits = []
    for _ in range(8):
        logits = model(seq)[:, -1]
        step_logits.append(logits)
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    parallel = model(out[:, :-1])  # (1, 9, V): one call
    torch.testing.assert_close(parallel[:, 1:], torch.stack(step_logits, dim=1), **TOL)


def test_generate_makes_one_model_call_per_new_token_and_crops_the_context():
    model = _gpt()
    lengths = []
    handle = model.register_forward_hook(lambda mod, inputs, out: lengths.append(inputs[0].shape[1]))
    generate(model, torch.zeros(20, dtype=torch.long), 6, generator=torch.Generator().manual_seed(0))
    handle.remove()
    assert lengths == [12] * 6  # the prompt is longer than block_size=12: only the last 12 tokens are read


def test_generate_reads_exactly_the_last_block_size_tokens():
    """The next token depends on the last block_size tokens only: it is the model's choice on the explicitly cropped
    context, a change before the window changes nothing, and a change at the window's first token changes the
    scores."""
    model = _gpt()
    T = model.config.block_size
    prompt = torch.randint(0, 7, (T + 5,), generator=torch.Generator().manual_seed(1))
    nxt = generate(model, prompt, 1, temperature=0.0)[-1]
    assert nxt == model(prompt[None, -T:])[0, -1].argmax()
    outside, inside = prompt.clone(), prompt.clone()
    outside[-T - 1] = (outside[-T - 1] + 1) % 7
    inside[-T] = (inside[-T] + 1) % 7
    seq = generate(model, prompt, 4, temperature=0.0)
    assert torch.equal(generate(model, outside, 4, temperature=0.0)[-4:], seq[-4:])
    assert not torch.allclose(model(inside[None, -T:])[0, -1], model(prompt[None, -T:])[0, -1])


def test_next_token_nll_matches_one_call_per_token():
    model = _gpt()
    T = model.config.block_size
    tokens = torch.randint(0, 7, (2 * T + 3,), generator=torch.Generator().manual_seed(2))
    nll = next_token_nll(model, tokens)
    assert nll.shape == (len(tokens) - 1,)
    for t in range(1, len(tokens)):
        context = tokens[max(0, t - T):t]
        expected = -torch.log_softmax(model(context[None])[0, -1], dim=-1)[tokens[t]]
        torch.testing.assert_close(nll[t - 1], expected, **TOL)
    short = tokens[:5]
    torch.testing.assert_close(next_token_nll(model, short), nll[:4], **TOL)
    with pytest.raises(ValueError, match="tokens"):
        next_token_nll(model, tokens[:1])
    with pytest.raises(ValueError, match="causal"):
        next_token_nll(TinyBERT(model.config), tokens)


def test_lm_pairs_shift_by_one():
    x, y = lm_pairs(torch.arange(6))
    assert x.tolist() == [0, 1, 2, 3, 4] and y.tolist() == [1, 2, 3, 4, 5]
    x, y = lm_pairs(torch.arange(8).reshape(2, 4))
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="tokens"):
        lm_pairs(torch.tensor([3]))
    with pytest.raises(TypeError, match="tokens"):
        lm_pairs([1, 2, 3])


def test_generate_restores_training_mode_and_rejects_bad_input():
    model = _gpt().train()
    generate(model, torch.tensor([1]), 2)
    assert model.training
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.tensor([1]), -1)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, torch.zeros(0, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="prompt"):
        generate(model, torch.zeros(3), 2)


# --- data and training --------------------------------------------------------------------------------------------

def test_tiny_corpus_is_shipped_and_small():
    text = load_tiny_corpus()
    assert 3000 < len(text.encode()) < 10000
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyz .,:\n")
    speakers = {line.split(":")[0] for line in text.strip().split("\n")}
    assert speakers == {"cook", "captain", "gardener"}


def test_char_tokenizer_round_trip_and_errors():
    tok = CharTokenizer.from_text("hello world", extra="#")
    assert tok.chars == " dehlorw#" and tok.vocab_size == 9
    assert tok.decode(tok.encode("low door")) == "low door"
    assert tok.encode("#").item() == 8
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.encode("hi!")
    with pytest.raises(ValueError, match="ids"):
        tok.decode([0, 9])
    with pytest.raises(ValueError, match="chars"):
        CharTokenizer("aa")


def test_get_batch_windows_and_targets():
    data = torch.arange(100)
    x, y = get_batch(data, 8, 5, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8)
    assert torch.equal(y, x + 1)  # with data = 0..99, the next token is the index + 1
    x2, _ = get_batch(data, 8, 5, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(5), 8, 2)


def _tiny_data():
    text = load_tiny_corpus()
    tok = CharTokenizer.from_text(text, extra="#")
    data = tok.encode(text)
    return tok, data[:2000], data[2000:2600]


def test_train_lm_causal_learns():
    tok, train, val = _tiny_data()
    torch.manual_seed(0)
    model = TinyGPT(TransformerConfig(vocab_size=tok.vocab_size, block_size=16, d_model=32, n_heads=2, n_layers=1,
                                      d_ff=64))
    history = train_lm(model, train, val, TrainSettings(steps=60, batch_size=8, lr=1e-2, eval_every=20),
                       generator=torch.Generator().manual_seed(0))
    assert history.epoch_steps == [20, 40, 60] and set(history.metrics) == {"loss", "val_loss"}
    assert history["val_loss"][-1] < math.log(tok.vocab_size) - 0.8  # far better than a uniform guess
    assert history["loss"][-1] < history["loss"][0]
    assert not model.training


def test_train_lm_masked_runs_and_checks_the_objective():
    tok, train, val = _tiny_data()
    mask_id = tok.encode("#").item()
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, block_size=16, d_model=16, n_heads=2, n_layers=1, d_ff=32)
    settings_ = TrainSettings(steps=20, batch_size=4, eval_every=10, objective="masked", mask_id=mask_id)
    history = train_lm(TinyBERT(cfg), train, val, settings_, generator=torch.Generator().manual_seed(0))
    assert len(history["val_loss"]) == 2 and all(math.isfinite(v) for v in history["val_loss"])
    with pytest.raises(ValueError, match="objective"):
        train_lm(TinyGPT(cfg), train, val, settings_, generator=torch.Generator())
    with pytest.raises(ValueError, match="mask_id"):
        TrainSettings(objective="masked")
    with pytest.raises(ValueError, match="objective"):
        TrainSettings(objective="denoise")
    with pytest.raises(ValueError, match="steps"):
        TrainSettings(steps=0)
    with pytest.raises(ValueError, match="steps"):
        TrainSettings(steps=30, eval_every=20)


def test_next_token_probs_is_the_distribution_sample_next_draws_from():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]], dtype=torch.float64)
    p = next_token_probs(logits, 0.7, top_k=3)
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.5]) / 0.7, dim=-1).to(torch.float64)
    assert torch.allclose(p[0, :3], expected) and torch.all(p[0, 3:] == 0)
    assert torch.equal(next_token_probs(logits, 0.0), torch.tensor([[1.0, 0, 0, 0, 0]], dtype=torch.float64))
    probs = [next_token_probs(logits, t) for t in (0.5, 1, 2)]
    entropy = [-(q * q.clamp_min(1e-300).log()).sum().item() for q in probs]
    assert entropy[0] < entropy[1] < entropy[2]
    draws = sample_next(logits.expand(20000, 5), 0.7, top_k=3, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).double() / len(draws)
    assert torch.allclose(freq, p[0], atol=0.015)
    with pytest.raises(ValueError, match="temperature"):
        next_token_probs(logits, -1.0)
