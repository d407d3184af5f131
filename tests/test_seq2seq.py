"""dlbook.seq2seq: the decoder block and the whole encoder–decoder against PyTorch's, causality, teacher forcing,
greedy decoding and the reversal task."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook.attention import causal_mask
from dlbook.seq2seq import DecoderBlock, Seq2SeqTransformer, greedy_decode, reversal_data, seq2seq_loss, shift_right
from tensors import TOL, randn64

D, HEADS, D_FF = 8, 2, 16


def _perturbed(module: nn.Module) -> nn.Module:
    """``module`` in float64 with every parameter moved off its initial value (norms start at exactly 1 and 0)."""
    module = module.double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _torch_decoder_layer() -> nn.TransformerDecoderLayer:
    torch.manual_seed(0)
    return _perturbed(nn.TransformerDecoderLayer(D, HEADS, D_FF, dropout=0.0, activation="gelu", batch_first=True,
                                                 norm_first=True))


@settings(max_examples=8, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 6), S=st.integers(1, 6))
def test_decoder_block_matches_torch_in_values_and_gradients(B, T, S):
    theirs = _torch_decoder_layer()
    ours = DecoderBlock(D, HEADS, D_FF).double()
    ours.load_state_dict(theirs.state_dict())
    y, memory = randn64(B, T, D, seed=1), randn64(B, S, D, seed=2)
    out, _ = ours(y, memory)
    expected = theirs(y, memory, tgt_mask=~causal_mask(T), tgt_is_causal=True)  # (B, T, D)
    torch.testing.assert_close(out, expected, **TOL)
    params = [y, memory, *ours.parameters()]
    for a, b in zip(torch.autograd.grad(out.sum(), params),
                    torch.autograd.grad(expected.sum(), [y, memory, *theirs.parameters()]), strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_cross_attention_weights_are_torch_multihead_attention_on_the_memory():
    theirs = _torch_decoder_layer()
    ours = DecoderBlock(D, HEADS, D_FF).double()
    ours.load_state_dict(theirs.state_dict())
    y, memory = randn64(2, 5, D, seed=3), randn64(2, 7, D, seed=4)
    _, cross = ours(y, memory)  # (B, heads, T, S)
    h = theirs.norm1(y)
    y1 = y + theirs.self_attn(h, h, h, attn_mask=~causal_mask(5))[0]
    _, expected = theirs.multihead_attn(theirs.norm2(y1), memory, memory, average_attn_weights=False)
    torch.testing.assert_close(cross, expected, **TOL)
    assert cross.shape == (2, HEADS, 5, 7)


def test_the_whole_model_is_nn_transformer_with_embeddings_and_a_head():
    torch.manual_seed(0)
    theirs = _perturbed(nn.Transformer(D, HEADS, 2, 2, D_FF, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True))
    ours = Seq2SeqTransformer(11, 6, D, HEADS, 2, D_FF).double()
    state = {k.replace("encoder.layers.", "encoder.").replace("decoder.layers.", "decoder.")
             .replace("encoder.norm.", "norm_memory.").replace("decoder.norm.", "norm_out."): v
             for k, v in theirs.state_dict().items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert unexpected == [] and sorted({k.split(".")[0] for k in missing}) == ["embed", "head", "src_pos", "tgt_pos"]
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randint(0, 11, (3, 6), generator=g), torch.randint(0, 11, (3, 4), generator=g)
    x = ours.embed(src) + ours.src_pos.weight[:6]
    y = ours.embed(tgt) + ours.tgt_pos.weight[:4]
    expected = ours.head(theirs(x, y, tgt_mask=~causal_mask(4), tgt_is_causal=True))  # (B, T, V)
    torch.testing.assert_close(ours(src, tgt), expected, **TOL)


@pytest.mark.parametrize("causal", [True, False])
def test_a_causal_decoder_ignores_later_target_tokens(causal):
    torch.manual_seed(0)
    model = Seq2SeqTransformer(11, 8, 16, 2, 1, 32, causal=causal).double().eval()
    src = torch.arange(8)[None] % 10
    tgt, changed = torch.arange(6)[None], torch.arange(6)[None].clone()
    changed[0, 3:] = 9  # positions 3, 4, 5
    with torch.no_grad():
        same = torch.allclose(model(src, changed)[:, :3], model(src, tgt)[:, :3], rtol=0, atol=1e-12)
    assert same == causal


def test_shift_right_puts_bos_first_and_drops_the_last_token():
    tgt = torch.tensor([[3, 4, 5], [6, 7, 8]])
    assert shift_right(tgt, 10).tolist() == [[10, 3, 4], [10, 6, 7]]
    with pytest.raises(ValueError, match="tgt"):
        shift_right(tgt[0], 10)


def test_greedy_decoding_is_the_argmax_of_a_teacher_forced_pass_on_its_own_output():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(11, 8, 16, 2, 2, 32).eval()
    src, _ = reversal_data(5, 8, 10, generator=torch.Generator().manual_seed(0))
    out = greedy_decode(model, src, 8, bos=10)  # (B, 8)
    with torch.no_grad():
        again = model(src, shift_right(out, 10)).argmax(-1)  # what each position predicts given the written prefix
    assert out.shape == (5, 8) and torch.equal(again, out)
    with pytest.raises(ValueError, match="length"):
        greedy_decode(model, src, 0, bos=10)


def test_reversal_data_reverses_and_refuses_bad_sizes():
    src, tgt = reversal_data(4, 6, 10, generator=torch.Generator().manual_seed(0))
    assert src.shape == tgt.shape == (4, 6) and int(src.max()) < 10
    assert all(tgt[:, i].equal(src[:, 5 - i]) for i in range(6))
    for kwargs, name in ((dict(count=0, length=6, n_symbols=10), "count"), (dict(count=4, length=0, n_symbols=10),
                         "length"), (dict(count=4, length=6, n_symbols=0), "n_symbols")):
        with pytest.raises(ValueError, match=name):
            reversal_data(**kwargs, generator=torch.Generator())


def test_bad_constructor_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="vocab_size"):
        Seq2SeqTransformer(0, 8)
    with pytest.raises(TypeError, match="causal"):
        DecoderBlock(8, 2, 16, causal=1)


def test_a_few_steps_of_teacher_forcing_lower_the_loss():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(11, 6, 16, 2, 1, 32)
    batch = reversal_data(64, 6, 10, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = seq2seq_loss(model, batch, bos=10).item()
    for _ in range(30):
        opt.zero_grad()
        seq2seq_loss(model, batch, bos=10).backward()
        opt.step()
    assert seq2seq_loss(model, batch, bos=10).item() < first - 0.5
