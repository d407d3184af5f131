"""In-context learning (上下文学习) you can watch: an attention-only model that learns to copy from its context.

Chapter: ``book/attention/seq2seq-icl.ipynb``.

A sequence of random tokens followed by its repetition can only be predicted in its second half, and only by
looking back: the token after the current one is the token that followed its *previous occurrence*. Olsson et al.
(2022) found that Transformers learn this with two heads in two layers, an **induction head** (归纳头) working with a
previous-token head: in layer 1 each position copies in which token came before it; in layer 2 the current token
is matched against those copies, so the head attends to the position *after* the previous occurrence and copies
its token to the output. Nothing in the weights stores the sequence: it is read from the context at run time.

Dimension letters: ``B`` batch, ``T`` sequence length, ``D`` model width, ``V`` vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook._checks import check_tensor, positive_int
from dlbook.attention import MultiheadAttention, causal_mask
from dlbook.transformer import layer_norm

__all__ = ["AttentionOnlyLM", "repeated_tokens", "RepeatedBatches", "next_token_loss", "per_position_loss",
           "induction_targets"]


class AttentionOnlyLM(nn.Module):
    """Token embedding + learned positions -> ``n_layers`` of ``x + MHA(LN(x))`` with a causal mask -> LN -> scores.

    No feed-forward networks: everything the model computes is attention and the residual stream, as in the
    two-layer attention-only models of Olsson et al. ``forward(tokens)`` maps (B, T) ids to logits (B, T, V) and a
    list with each layer's attention weights (B, heads, T, T).
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 64, n_heads: int = 2, n_layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(positive_int(vocab_size, "vocab_size"), d_model)
        self.pos = nn.Embedding(positive_int(max_len, "max_len"), d_model)
        self.attn = nn.ModuleList(MultiheadAttention(d_model, n_heads) for _ in range(positive_int(n_layers,
                                                                                                     "n_layers")))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers + 1))
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        T, D = tokens.shape[1], self.pos.embedding_dim
        x = self.embed(tokens) + self.pos.weight[:T]  # (B, T, D)
        blocked = ~causal_mask(T, device=tokens.device)  # (T, T), nn.* convention: True = blocked
        maps = []
        for attn, norm in zip(self.attn, self.norms, strict=False):
            h = layer_norm(x, (D,), norm.weight, norm.bias)  # (B, T, D)
            a, w = attn(h, h, h, attn_mask=blocked, average_attn_weights=False)  # (B, T, D), (B, heads, T, T)
            x = x + a
            maps.append(w)
        norm = self.norms[-1]
        return self.head(layer_norm(x, (D,), norm.weight, norm.bias)), maps  # (B, T, V)


def repeated_tokens(count: int, length: int, vocab_size: int, *, min_half: int, max_half: int | None = None,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sequences of ``length`` random tokens whose last ``2 L`` tokens are a random run of ``L`` tokens
    twice; ``L`` is drawn uniformly from ``min_half..max_half`` (default ``length // 2``) for each sequence, and the
    tokens before the run are random too. Every token is drawn uniformly from ``0..vocab_size-1``.

    Returns the tokens (N, T) and ``L`` (N,). Because ``L`` varies, no fixed offset finds the previous copy: the
    model must find it by its content.
    """
    T, N = positive_int(length, "length"), positive_int(count, "count")
    top = T // 2 if max_half is None else max_half
    if not 1 <= positive_int(min_half, "min_half") <= top <= T // 2:
        raise ValueError(f"need 1 <= min_half <= max_half <= length // 2, got {min_half}, {max_half}, {T}")
    half = torch.randint(min_half, top + 1, (N,), generator=generator)  # (N,)
    tokens = torch.randint(0, positive_int(vocab_size, "vocab_size"), (N, T), generator=generator)  # (N, T)
    t = torch.arange(T)  # (T,)
    second = t >= T - half[:, None]  # (N, T): the positions of the repeat
    source = torch.where(second, t - half[:, None], t)  # (N, T): each repeated token comes from L positions back
    return tokens.gather(1, source), half  # (N, T), (N,)


@dataclass(frozen=True)
class RepeatedBatches:
    """``count`` batches of ``batch_size`` fresh :func:`repeated_tokens` sequences at every pass (one epoch of
    :func:`dlbook.training.train`), ``L`` from ``min_half..length // 2``; every draw comes from ``generator``."""

    count: int
    batch_size: int
    length: int
    vocab_size: int
    min_half: int
    generator: torch.Generator

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return (repeated_tokens(self.batch_size, self.length, self.vocab_size, min_half=self.min_half,
                                generator=self.generator)[0] for _ in range(self.count))


def next_token_loss(model: AttentionOnlyLM, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ``tokens[:, t + 1]`` from ``tokens[:, :t + 1]``, over every position."""
    logits = model(tokens[:, :-1])[0]  # (B, T-1, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())


@torch.no_grad()
def per_position_loss(model: AttentionOnlyLM, tokens: torch.Tensor) -> torch.Tensor:
    """The cross-entropy of the prediction of ``tokens[:, t]`` for ``t = 1..T-1``, averaged over the batch: (T-1,)."""
    check_tensor(tokens, "tokens", (2,), floating=False)
    logits = model(tokens[:, :-1])[0]  # (B, T-1, V)
    return nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none").mean(0)  # (T-1,)


def induction_targets(tokens: torch.Tensor) -> torch.Tensor:
    """For each position ``t`` of (B, T) tokens: the position *after* the latest earlier occurrence of
    ``tokens[:, t]`` — where an induction head looks — or -1 if the token has not occurred before; (B, T)."""
    check_tensor(tokens, "tokens", (2,), floating=False)
    T = tokens.shape[1]
    same = (tokens[:, :, None] == tokens[:, None, :]) & causal_mask(T, device=tokens.device).tril(-1)  # (B, T, T)
    j = torch.arange(T, device=tokens.device)  # (T,)
    latest = torch.where(same, j, -1).amax(-1)  # (B, T): the last j < t with the same token, or -1
    return torch.where(latest >= 0, latest + 1, -1)  # (B, T)
