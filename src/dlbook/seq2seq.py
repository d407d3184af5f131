"""Encoder–decoder (编码器–解码器) Transformer: cross-attention, teacher forcing and greedy decoding.

Chapter: ``book/attention/seq2seq-icl.ipynb``. The blocks are those of :mod:`dlbook.transformer`; attention itself
is :class:`dlbook.attention.MultiheadAttention`.

The original Transformer (Vaswani et al. 2017) was built for translation: an **encoder** reads the whole source
sentence with bidirectional self-attention and turns it into a *memory* (B, S, D), one vector per source token; a
**decoder** writes the target one token at a time. Each decoder block has three sub-layers, each added back to its
input (pre-LN, as in the rest of the book):

.. math::

    y \\leftarrow y + \\operatorname{SelfAttn}_{\\text{causal}}(\\operatorname{LN}(y)), \\quad
    y \\leftarrow y + \\operatorname{CrossAttn}(\\operatorname{LN}(y), \\text{memory}), \\quad
    y \\leftarrow y + \\operatorname{FFN}(\\operatorname{LN}(y))

In **cross-attention** (交叉注意力) the queries come from the decoder and the keys and values from the encoder's
memory: each target position reads the source positions it needs. The decoder's self-attention is causal, because
when the model writes, position ``t`` of the target does not exist until positions ``< t`` have been written.

Training uses **teacher forcing** (教师强制): the decoder reads the *true* previous target tokens (the target
shifted right behind a ``bos`` token) and predicts every target token in one pass (:func:`shift_right`).

Dimension letters: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` model width, ``V`` vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from dlbook._checks import check_tensor, flag, positive_int
from dlbook.attention import MultiheadAttention, causal_mask
from dlbook.transformer import TransformerBlock, feed_forward, layer_norm

__all__ = ["DecoderBlock", "Seq2SeqTransformer", "shift_right", "seq2seq_loss", "greedy_decode", "reversal_data"]


class DecoderBlock(nn.Module):
    """A pre-LN decoder block: causal self-attention, cross-attention to the memory, feed-forward network.

    Parameters are named as in ``nn.TransformerDecoderLayer`` (``self_attn``, ``multihead_attn``, ``linear1``,
    ``linear2``, ``norm1``..``norm3``), so ``nn.TransformerDecoderLayer(D, heads, D_ff, dropout=0.0,
    activation="gelu", batch_first=True, norm_first=True)`` loads into it. ``forward(y, memory)`` takes the target
    (B, T, D) and the memory (B, S, D) and returns (B, T, D) and the cross-attention weights (B, heads, T, S).
    ``causal=False`` drops the mask on the self-attention: only to show what goes wrong without it.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, *, causal: bool = True) -> None:
        super().__init__()
        self.causal = flag(causal, "causal")
        self.self_attn = MultiheadAttention(d_model, nhead)
        self.multihead_attn = MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, positive_int(dim_feedforward, "dim_feedforward"))
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))

    def forward(self, y: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        D, T = y.shape[-1], y.shape[-2]
        h = layer_norm(y, (D,), self.norm1.weight, self.norm1.bias)  # (B, T, D)
        blocked = ~causal_mask(T, device=y.device) if self.causal else None  # (T, T), True = blocked: the future
        y = y + self.self_attn(h, h, h, attn_mask=blocked, need_weights=False)[0]  # (B, T, D)
        h = layer_norm(y, (D,), self.norm2.weight, self.norm2.bias)  # (B, T, D)
        # queries from the decoder, keys and values from the encoder: every target position may read every source one
        a, cross = self.multihead_attn(h, memory, memory, average_attn_weights=False)  # (B, T, D), (B, heads, T, S)
        y = y + a
        h = layer_norm(y, (D,), self.norm3.weight, self.norm3.bias)  # (B, T, D)
        y = y + feed_forward(h, self.linear1.weight, self.linear1.bias, self.linear2.weight, self.linear2.bias)
        return y, cross


class Seq2SeqTransformer(nn.Module):
    """Embedding + learned positions -> ``n_layers`` encoder blocks (``dlbook.transformer.TransformerBlock``, no
    mask) -> memory; the same embedding -> ``n_layers`` :class:`DecoderBlock` -> scores over the vocabulary.

    Source and target share one vocabulary of ``vocab_size`` tokens and one embedding; ``max_len`` is the longest
    source or target; ``causal`` is passed to every :class:`DecoderBlock`. ``forward(src, tgt_in)`` maps (B, S) and
    (B, T) ids to logits (B, T, V).
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int = 128, *, causal: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(positive_int(vocab_size, "vocab_size"), d_model)
        self.src_pos = nn.Embedding(positive_int(max_len, "max_len"), d_model)
        self.tgt_pos = nn.Embedding(max_len, d_model)
        self.encoder = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.decoder = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff, causal=causal) for _ in range(n_layers))
        self.norm_memory, self.norm_out = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """The memory (B, S, D): every source position has read every other (no mask)."""
        x = self.embed(src) + self.src_pos.weight[: src.shape[1]]  # (B, S, D)
        for block in self.encoder:
            x = block(x)  # (B, S, D)
        return self.norm_memory(x)  # (B, S, D): pre-LN stacks end with a norm

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, V) for the decoder input (B, T), and each decoder block's cross-attention (B, heads, T, S)."""
        y = self.embed(tgt_in) + self.tgt_pos.weight[: tgt_in.shape[1]]  # (B, T, D)
        maps = []
        for block in self.decoder:
            y, cross = block(y, memory)  # (B, T, D), (B, heads, T, S)
            maps.append(cross)
        return self.head(self.norm_out(y)), maps  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src))[0]  # (B, T, V)


def shift_right(tgt: torch.Tensor, bos: int) -> torch.Tensor:
    """Teacher forcing's decoder input: ``[bos, tgt_0, ..., tgt_{T-2}]`` for targets (B, T); returns (B, T).

    Position ``t`` of the decoder reads the true tokens ``< t`` and is trained to predict ``tgt_t``, so one pass
    trains all T predictions, each as if every earlier token had been written correctly.
    """
    check_tensor(tgt, "tgt", (2,), floating=False)
    return torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)  # (B, T)


def seq2seq_loss(model: Seq2SeqTransformer, batch: tuple[torch.Tensor, torch.Tensor], *, bos: int) -> torch.Tensor:
    """Mean cross-entropy of the teacher-forced predictions for a batch of (source (B, S), target (B, T)) ids."""
    src, tgt = batch
    logits = model(src, shift_right(tgt, bos))  # (B, T, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten())


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, src: torch.Tensor, length: int, *, bos: int) -> torch.Tensor:
    """Write ``length`` target tokens for each source (B, S), each the argmax given the tokens written so far.

    The source is encoded once; the decoder runs once per new token on everything written so far (its own
    outputs, not the true tokens: at test time there are none). Returns (B, length) ids.
    """
    memory = model.encode(src)  # (B, S, D)
    out = torch.full_like(src[:, :1], bos)  # (B, 1)
    for _ in range(positive_int(length, "length")):
        logits = model.decode(out, memory)[0][:, -1]  # (B, V): the last position predicts the next token
        out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)  # (B, t+1)
    return out[:, 1:]  # (B, length): without the bos


def reversal_data(count: int, length: int, n_symbols: int, *,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random sequences of ``length`` symbols ``0..n_symbols-1`` (drawn uniformly) and their reversals.

    Returns sources and targets, both (count, length), with ``target[:, i] = source[:, length - 1 - i]``.
    """
    src = torch.randint(0, positive_int(n_symbols, "n_symbols"), (positive_int(count, "count"),
                        positive_int(length, "length")), generator=generator)  # (N, L)
    return src, src.flip(1)  # (N, L), (N, L)
