"""Transformers (Transformer): positions, the pre-LN block, a tiny GPT and a tiny BERT, sampling, and training.

Chapter: ``book/attention/transformers.ipynb``. Attention itself is in :mod:`dlbook.attention`.

A Transformer turns a sequence of token ids (B, T) into one vector per position (B, T, D) and then into scores over
the vocabulary (B, T, V). Each block does two things, each added back to its input (a *residual* connection):

.. math::

    x \\leftarrow x + \\operatorname{MHA}(\\operatorname{LN}(x)), \\qquad
    x \\leftarrow x + \\operatorname{FFN}(\\operatorname{LN}(x))

This is the *pre-LN* arrangement (layer norm before each sub-layer), used by GPT-2 and many later models: it trains
without a learning-rate warm-up at this size. Attention lets positions exchange information; the feed-forward
network (FFN) transforms each position on its own.

Attention treats its inputs as a *set*: without position information, shuffling the tokens only shuffles the
outputs. :func:`sinusoidal_positional_encoding` adds the position to every token's vector.

Two objectives, one architecture:

* **GPT** (:class:`TinyGPT`): a causal language model. Position ``t`` may only attend to positions ``<= t`` and is
  trained to predict token ``t + 1``. It generates text one token at a time (:func:`generate`, :func:`sample_next`),
  keeping the keys and values of the positions already read (a key–value cache, :func:`cached_block_forward`).
* **BERT** (:class:`TinyBERT`): a bidirectional encoder trained as a masked language model. 15% of the positions are
  chosen; of those 80% become ``[MASK]``, 10% a random token, 10% stay; the model predicts the original tokens at the
  chosen positions (:func:`mask_tokens`).

Dimension letters: ``B`` batch, ``T`` sequence length, ``D`` model width, ``V`` vocabulary size.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from dlbook._checks import (
    check_tensor,
    dim_size,
    divides,
    flag,
    has_shape,
    instance,
    integer_tensor,
    non_negative_int,
    number,
    one_of,
    positive_int,
    probability,
)
from dlbook.attention import MultiheadAttention, causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from dlbook.training import History, train

__all__ = [
    "sinusoidal_positional_encoding",
    "layer_norm",
    "gelu",
    "feed_forward",
    "TransformerBlock",
    "cached_block_forward",
    "TransformerConfig",
    "TransformerLM",
    "TinyGPT",
    "TinyBERT",
    "token_cross_entropy",
    "MaskedTokens",
    "mask_tokens",
    "next_token_probs",
    "sample_next",
    "generate",
    "next_token_nll",
    "CharTokenizer",
    "load_tiny_corpus",
    "lm_pairs",
    "get_batch",
    "TrainSettings",
    "train_lm",
]


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions: positions, normalisation, the position-wise feed-forward network


def sinusoidal_positional_encoding(length: int, d_model: int, base: float = 10000.0, *,
                                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The fixed positional encoding of "Attention is all you need", shape (T, D).

    ``PE[t, 2i] = sin(t / base^(2i/D))`` and ``PE[t, 2i+1] = cos(t / base^(2i/D))``: column pair ``i`` is a clock
    turning at angular speed ``base^(-2i/D)`` — the first pair once every ``2π`` positions, the last almost not at all.
    Every position gets a different pattern, and a shift by ``k`` positions is the same rotation of every pair,
    whatever ``t`` is. An odd ``D`` drops the last cosine column.
    """
    length, d_model = positive_int(length, "length"), positive_int(d_model, "d_model")
    base = number(base, "base", minimum=1.0, strict=True)
    t = torch.arange(length, dtype=torch.float64)[:, None]  # (T, 1)
    i = torch.arange(0, d_model, 2, dtype=torch.float64)[None, :]  # (1, ceil(D/2)): the even column indices 2i
    angle = t / base ** (i / d_model)  # (T, ceil(D/2))
    pe = torch.zeros(length, d_model, dtype=torch.float64)  # (T, D)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.to(dtype)


def layer_norm(
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalisation (层归一化), as ``torch.nn.functional.layer_norm``.

    Each vector over the last ``len(normalized_shape)`` dimensions is shifted to mean 0 and scaled to variance 1
    (the biased variance, dividing by the count), then multiplied by ``weight`` and shifted by ``bias``:
    ``y = (x - mean) / sqrt(var + eps) * weight + bias``. Unlike batch normalisation it never mixes examples or
    positions, so it behaves the same in training and at inference, at any batch size.
    """
    shape = tuple(normalized_shape)
    if not shape or tuple(input.shape[-len(shape):]) != shape:
        raise ValueError(f"normalized_shape {shape} must equal the last dimensions of input {tuple(input.shape)}")
    dims = tuple(range(-len(shape), 0))
    mean = input.mean(dim=dims, keepdim=True)  # (..., 1)
    var = ((input - mean) ** 2).mean(dim=dims, keepdim=True)  # (..., 1)
    y = (input - mean) / torch.sqrt(var + eps)  # (..., *normalized_shape)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU activation, as ``torch.nn.functional.gelu``: ``x · Φ(x)`` with ``Φ`` the standard normal CDF.

    ``approximate="tanh"`` uses ``0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))``, the form in the GPT-2 code.
    """
    if one_of(approximate, "approximate", ("none", "tanh")) == "tanh":
        return 0.5 * input * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (input + 0.044715 * input**3)))
    return input * 0.5 * (1.0 + torch.erf(input / math.sqrt(2.0)))


def feed_forward(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor | None, w2: torch.Tensor,
                 b2: torch.Tensor | None) -> torch.Tensor:
    """The position-wise feed-forward network ``FFN(x) = GELU(x W1ᵀ + b1) W2ᵀ + b2``.

    Shapes: x (..., D), w1 (D_ff, D), w2 (D, D_ff); output (..., D). The same two-layer network is applied to every
    position separately: nothing here mixes positions (that is attention's job).
    """
    h = x @ w1.T  # (..., D_ff)
    if b1 is not None:
        h = h + b1
    y = gelu(h) @ w2.T  # (..., D)
    return y + b2 if b2 is not None else y


# ---------------------------------------------------------------------------------------------------------------------
# Layers


class TransformerBlock(nn.Module):
    """A pre-LN Transformer block: ``x + MHA(LN(x))``, then ``x + FFN(LN(x))``.

    Parameters are named as in ``nn.TransformerEncoderLayer`` (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
    ``norm2``), so a ``nn.TransformerEncoderLayer(D, heads, D_ff, dropout=0.0, activation="gelu",
    batch_first=True, norm_first=True)`` can load into it. ``forward(x)`` takes (B, T, D) and masks in the
    convention of ``nn.MultiheadAttention`` (``True`` = blocked); with ``need_weights=True`` it also returns the
    attention weights (B, heads, T, T).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0,
                 layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, positive_int(dim_feedforward, "dim_feedforward"))
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.eps = layer_norm_eps

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        D = x.shape[-1]
        h = layer_norm(x, (D,), self.norm1.weight, self.norm1.bias, self.eps)  # (B, T, D)
        a, weights = self.self_attn(h, h, h, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                    need_weights=need_weights, average_attn_weights=False)  # (B, T, D)
        x = x + self.dropout(a)  # (B, T, D): residual connection
        h = layer_norm(x, (D,), self.norm2.weight, self.norm2.bias, self.eps)  # (B, T, D)
        f = feed_forward(h, self.linear1.weight, self.linear1.bias, self.linear2.weight, self.linear2.bias)
        x = x + self.dropout(f)  # (B, T, D)
        return (x, weights) if need_weights else x


def cached_block_forward(block: TransformerBlock, x: torch.Tensor,
                         past_kv: tuple[torch.Tensor, torch.Tensor] | None = None
                         ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A causal ``block`` on the newest positions only, reusing the keys and values of the earlier ones.

    ``x`` (B, t, D) holds positions ``P .. P+t-1``; ``past_kv`` the (key, value) of positions ``0 .. P-1``, each
    (B, heads, P, D/heads), or ``None`` when ``P = 0``. Returns the output (B, t, D), equal to the last ``t`` rows of
    ``block(x_all, attn_mask=~causal_mask(P + t))`` on all ``P + t`` positions, and the (key, value) of all ``P + t``
    positions. Only the ``t`` new rows go through the projections and the FFN. No dropout: this is the path for
    generation, in evaluation mode.
    """
    attn, (t, D) = block.self_attn, x.shape[-2:]
    h = layer_norm(x, (D,), block.norm1.weight, block.norm1.bias, block.eps)  # (B, t, D)
    qkv = nn.functional.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # 3 x (B, t, D)
    q, k, v = (split_heads(z, attn.num_heads) for z in qkv)  # (B, heads, t, D/heads) each
    if past_kv is not None:
        k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)  # (B, heads, P+t, D/heads)
    P = k.shape[2] - t
    visible = torch.ones(t, P + t, dtype=torch.bool, device=x.device).tril(P)  # new query i sits at P + i
    x = x + attn.out_proj(merge_heads(scaled_dot_product_attention(q, k, v, attn_mask=visible)))  # (B, t, D)
    h = layer_norm(x, (D,), block.norm2.weight, block.norm2.bias, block.eps)  # (B, t, D)
    x = x + feed_forward(h, block.linear1.weight, block.linear1.bias, block.linear2.weight, block.linear2.bias)
    return x, (k, v)


@dataclass(frozen=True)
class TransformerConfig:
    """The shape of a tiny Transformer language model.

    ``vocab_size`` V, ``block_size`` the longest context T, ``d_model`` D, ``n_heads`` (must divide D),
    ``n_layers`` blocks, ``d_ff`` the FFN width, ``dropout``, and ``positional``: ``"learned"`` (one trained vector
    per position, as in GPT and BERT), ``"sinusoidal"`` (fixed, as in the original Transformer) or ``"none"``.
    """

    vocab_size: int
    block_size: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.0
    positional: str = "learned"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_layers", "d_ff"):
            positive_int(getattr(self, name), name)
        divides(self.n_heads, self.d_model, "n_heads", "d_model")
        one_of(self.positional, "positional", ("sinusoidal", "learned", "none"))
        if probability(self.dropout, "dropout") == 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


class TransformerLM(nn.Module):
    """Token embedding + positions -> ``n_layers`` pre-LN blocks -> final layer norm -> scores over the vocabulary.

    ``causal=True`` hides every later position from each position (GPT); ``causal=False`` lets every position see
    every other (BERT). ``forward(tokens)`` maps (B, T) token ids to logits (B, T, V); with
    ``return_attention=True`` it also returns one (B, heads, T, T) weight tensor per layer. With ``use_cache=True``
    (causal models) it returns the logits and a key–value cache, and ``past_kv=cache`` continues from it: see
    :meth:`forward_cached`.
    """

    def __init__(self, config: TransformerConfig, *, causal: bool) -> None:
        super().__init__()
        self.config = instance(config, TransformerConfig, "config")
        self.causal = bool(causal)
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        if c.positional == "learned":
            self.pos_emb = nn.Embedding(c.block_size, c.d_model)
        self.register_buffer("sinusoid", sinusoidal_positional_encoding(c.block_size, c.d_model), persistent=False)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.d_ff, dropout=c.dropout) for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)
        self.apply(_init_weights)

    def positions(self, T: int, start: int = 0) -> torch.Tensor:
        """The (T, D) vectors of positions ``start .. start+T-1`` added to the token embeddings (zeros for
        ``positional="none"``)."""
        if self.config.positional == "learned":
            return self.pos_emb.weight[start:start + T]
        if self.config.positional == "sinusoidal":
            return self.sinusoid[start:start + T]
        return self.sinusoid.new_zeros(T, self.config.d_model)

    def forward(
        self,
        tokens: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        return_attention: bool = False,
        *,
        past_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        use_cache: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        B, T = integer_tensor(tokens, "tokens", dims=(2,)).shape
        P = past_kv[0][0].shape[2] if past_kv else 0  # positions already in the cache
        if P + T > self.config.block_size:
            raise ValueError(f"tokens: {P} cached + T={T} positions exceed block_size={self.config.block_size}")
        if flag(use_cache, "use_cache") or past_kv is not None:
            if not self.causal or key_padding_mask is not None or return_attention:
                raise ValueError("use_cache and past_kv need a causal model, no key_padding_mask, no return_attention")
            return self.forward_cached(tokens, past_kv)
        x = self.tok_emb(tokens) + self.positions(T).to(self.tok_emb.weight.dtype)  # (B, T, D)
        mask = ~causal_mask(T, device=tokens.device) if self.causal else None  # (T, T): True = blocked
        maps = []
        for block in self.blocks:
            x, w = block(x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=True)  # (B, T, D)
            maps.append(w)  # (B, heads, T, T)
        D = x.shape[-1]
        logits = self.head(layer_norm(x, (D,), self.norm.weight, self.norm.bias, self.norm.eps))  # (B, T, V)
        return (logits, maps) if return_attention else logits

    def forward_cached(self, tokens: torch.Tensor, past_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                       ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Logits (B, t, V) for ``tokens`` (B, t) read as positions ``P .. P+t-1`` by a causal model, and the
        key–value cache extended to ``P + t`` positions: one (key, value) per block, each (B, heads, P+t, D/heads).

        ``past_kv`` is the cache of the first ``P`` positions (``None`` or ``[]``: ``P = 0``). The logits equal the
        last ``t`` rows of ``forward`` on all ``P + t`` tokens. ``forward(tokens, past_kv=cache, use_cache=True)``
        checks the arguments and calls this.
        """
        past_kv = past_kv or [None] * len(self.blocks)
        if len(past_kv) != len(self.blocks):
            raise ValueError(f"past_kv must hold one (key, value) per block: {len(self.blocks)}, not {len(past_kv)}")
        P, t = (0 if past_kv[0] is None else past_kv[0][0].shape[2]), tokens.shape[1]
        x = self.tok_emb(tokens) + self.positions(t, start=P).to(self.tok_emb.weight.dtype)  # (B, t, D)
        cache = []
        for block, past in zip(self.blocks, past_kv, strict=True):
            x, kv = cached_block_forward(block, x, past)  # (B, t, D), 2 x (B, heads, P+t, D/heads)
            cache.append(kv)
        logits = self.head(layer_norm(x, (x.shape[-1],), self.norm.weight, self.norm.bias, self.norm.eps))
        return logits, cache  # (B, t, V), n_layers x (key, value)


class TinyGPT(TransformerLM):
    """A causal Transformer language model: position ``t`` sees tokens ``0..t`` and predicts token ``t + 1``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config, causal=True)


class TinyBERT(TransformerLM):
    """A bidirectional Transformer encoder with a masked-language-model head: every position sees every token."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config, causal=False)


def _init_weights(module: nn.Module) -> None:
    # Small initial weights (std 0.02, as in GPT-2): the untrained model predicts a nearly uniform distribution.
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------------------------------------
# Objectives


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, T, V) logits against (B, T) target ids; targets equal to -100 are ignored.

    For GPT the target at ``t`` is the token at ``t + 1``; for BERT it is the original token at the chosen
    positions and -100 elsewhere. The loss is in nats per predicted token: ``ln V`` for a uniform guess.
    """
    B, T, V = check_tensor(logits, "logits", dims=(3,)).shape
    has_shape(targets, "targets", (B, T))
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


class MaskedTokens(NamedTuple):
    """The output of :func:`mask_tokens`. All fields have the shape of the input tokens.

    ``inputs``: the corrupted tokens the model reads; ``labels``: the original token at chosen positions, -100
    elsewhere; ``masked``, ``randomized``, ``kept``: which chosen positions became ``[MASK]``, a random token, or
    stayed as they were.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    masked: torch.Tensor
    randomized: torch.Tensor
    kept: torch.Tensor


def mask_tokens(
    tokens: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    mask_prob: float = 0.15,
    *,
    mask_ratio: float = 0.8,
    random_ratio: float = 0.1,
    generator: torch.Generator | None = None,
) -> MaskedTokens:
    """BERT's corruption for the masked language model (the 80/10/10 rule).

    Each position is chosen with probability ``mask_prob``. A chosen position becomes ``mask_id`` with probability
    ``mask_ratio``, a token drawn uniformly from ``0..vocab_size-1`` with probability ``random_ratio``, and stays
    unchanged otherwise. The model must predict the original token at every chosen position — including the
    unchanged ones, so it cannot learn "only [MASK] positions matter", and the random ones, so it must doubt every
    input token a little. ``[MASK]`` never occurs when the model is used later, which is why not all chosen
    positions become ``[MASK]``.
    """
    integer_tensor(tokens, "tokens")
    mask_id, vocab_size = non_negative_int(mask_id, "mask_id"), positive_int(vocab_size, "vocab_size")
    mask_prob, mask_ratio = probability(mask_prob, "mask_prob"), probability(mask_ratio, "mask_ratio")
    if probability(random_ratio, "random_ratio") + mask_ratio > 1.0:
        raise ValueError(f"mask_ratio + random_ratio must be <= 1, got {mask_ratio} + {random_ratio}")
    # Every tensor below has the shape of ``tokens``, e.g. (B, T).
    u_choose = torch.rand(tokens.shape, generator=generator).to(tokens.device)  # uniform in [0, 1)
    u_action = torch.rand(tokens.shape, generator=generator).to(tokens.device)
    random_tokens = torch.randint(0, vocab_size, tokens.shape, generator=generator).to(tokens)
    chosen = u_choose < mask_prob  # the positions the model must predict
    masked = chosen & (u_action < mask_ratio)  # 80%: [MASK]
    randomized = chosen & (u_action >= mask_ratio) & (u_action < mask_ratio + random_ratio)  # 10%: random
    kept = chosen & ~masked & ~randomized  # 10%: unchanged
    inputs = torch.where(masked, torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(randomized, random_tokens, inputs)
    labels = torch.where(chosen, tokens, torch.full_like(tokens, -100))  # -100: ignored by the loss
    return MaskedTokens(inputs, labels, masked, randomized, kept)


# ---------------------------------------------------------------------------------------------------------------------
# Generation


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """The distribution the next token is drawn from, for each row of ``logits`` (..., V); returns (..., V).

    ``softmax(logits / temperature)`` over the ``top_k`` highest-scoring tokens (ties with the k-th are kept; a
    ``top_k`` larger than V keeps them all), zero elsewhere. A temperature below 1 sharpens it towards the most likely
    token, above 1 flattens it towards uniform; ``temperature=0`` is greedy decoding: all the mass on the argmax.
    """
    z = check_tensor(logits, "logits", min_ndim=1).detach()  # (..., V)
    temperature = number(temperature, "temperature", minimum=0.0)
    top_k = None if top_k is None else positive_int(top_k, "top_k")
    if top_k is not None and top_k < z.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest score of each row
        z = z.masked_fill(z < kth, float("-inf"))  # (..., V)
    if temperature == 0:
        return torch.nn.functional.one_hot(z.argmax(dim=-1), z.shape[-1]).to(z.dtype)  # (..., V)
    return torch.softmax(z / temperature, dim=-1)  # (..., V)


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token id from each row of ``logits`` (..., V) with the distribution :func:`next_token_probs` gives;
    returns ids of shape (...). ``temperature=0`` takes the argmax, with no randomness. The same ``generator`` state
    gives the same draw.
    """
    probs = next_token_probs(logits, temperature, top_k)  # (..., V)
    if temperature == 0:
        return probs.argmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1]).cpu()  # (N, V)
    return torch.multinomial(flat, 1, generator=generator)[:, 0].reshape(logits.shape[:-1]).to(logits.device)


@torch.no_grad()
def generate(
    model: TransformerLM,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ``prompt`` (T0,) or (B, T0) by ``max_new_tokens`` tokens, one model call per new token.

    Each step runs the model on the last ``block_size`` tokens, takes the scores at the last position, draws the next
    token with :func:`sample_next` and appends it. The steps cannot run in parallel: step ``n + 1`` needs the token
    chosen at step ``n``. Returns the prompt followed by the new tokens, (T0 + n,) or (B, T0 + n).

    ``use_cache=True`` (a causal model only) keeps every layer's keys and values of the positions already read, a
    key–value cache: the first call reads the prompt, each later call only the newest token, at the next position.
    That holds while the sequence fits in ``block_size``. Beyond it the window slides: every token moves to a new
    (absolute) position, and the token that leaves the window had shaped every later key from the second block on,
    so no cached key stays valid; from then on each step reads the last ``block_size`` tokens in full, as with
    ``use_cache=False``. Both paths compute the same logits up to rounding, hence the same tokens unless two scores
    tie within rounding error.
    """
    dim_size(integer_tensor(prompt, "prompt", dims=(1, 2)), -1, 1, "prompt", " (at least one token)", at_least=True)
    use_cache, was_training = flag(use_cache, "use_cache"), model.training
    model.eval()
    seq = prompt[None] if prompt.ndim == 1 else prompt  # (B, T0)
    T, cache = model.config.block_size, None
    for _ in range(non_negative_int(max_new_tokens, "max_new_tokens")):
        if use_cache and seq.shape[1] <= T:
            new = seq if cache is None else seq[:, -1:]  # (B, t): the tokens the cache has not read yet
            logits, cache = model(new, past_kv=cache, use_cache=True)  # (B, t, V), n_layers x (key, value)
        else:
            logits = model(seq[:, -T:])  # (B, <=T, V): the whole window, recomputed
        nxt = sample_next(logits[:, -1, :], temperature, top_k, generator)  # (B,): only the last position predicts
        seq = torch.cat([seq, nxt[:, None]], dim=1)  # (B, T+1)
    model.train(was_training)
    return seq[0] if prompt.ndim == 1 else seq


@torch.no_grad()
def next_token_nll(model: TransformerLM, tokens: torch.Tensor) -> torch.Tensor:
    """``-ln P(tokens[t] | tokens[max(0, t - T):t])`` for ``t = 1 .. N-1``, with ``T`` the model's block size.

    Every token of ``tokens`` (N,) after the first is scored once, given as many preceding tokens as the context
    holds: the first window's positions predict tokens 1..T, and each later token is the last prediction of the
    window of the T tokens before it. Returns (N-1,) values in nats; their mean is the per-token cross-entropy of the
    whole text, the measure to compare with a model of shorter context on the same positions.
    """
    dim_size(integer_tensor(tokens, "tokens", dims=(1,)), 0, 2, "tokens", " (a context and a token)", at_least=True)
    if not model.causal:
        raise ValueError("next_token_nll needs a causal model (a bidirectional one sees the token it predicts)")
    was_training = model.training
    model.eval()
    T = model.config.block_size
    head = tokens[: T + 1]  # (<=T+1,): one window scores tokens 1..T
    logp = torch.log_softmax(model(head[None, :-1])[0], dim=-1)  # (<=T, V)
    nll = [-logp.gather(-1, head[1:, None])[:, 0]]  # (<=T,)
    if tokens.numel() > T + 1:
        windows = tokens[1:-1].unfold(0, T, 1)  # (N-T-1, T): tokens[s:s+T] for s = 1..N-T-1
        logp = torch.log_softmax(model(windows)[:, -1], dim=-1)  # (N-T-1, V): each predicts tokens[s+T]
        nll.append(-logp.gather(-1, tokens[T + 1:, None])[:, 0])  # (N-T-1,)
    model.train(was_training)
    return torch.cat(nll)  # (N-1,)


# ---------------------------------------------------------------------------------------------------------------------
# Data and training


@dataclass(frozen=True)
class CharTokenizer:
    """Characters as tokens: the id of a character is its index in ``chars``.

    ``CharTokenizer.from_text(text, extra="█")`` takes every distinct character of ``text`` in sorted order and
    appends ``extra`` symbols (e.g. a ``[MASK]`` symbol that never occurs in the text).
    """

    chars: str

    def __post_init__(self) -> None:
        if not isinstance(self.chars, str) or not self.chars or len(set(self.chars)) != len(self.chars):
            raise ValueError(f"chars must be a non-empty string that repeats no character, got {self.chars!r}")

    @classmethod
    def from_text(cls, text: str, extra: str = "") -> CharTokenizer:
        return cls("".join(sorted(set(text))) + "".join(c for c in extra if c not in text))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """(len(text),) long tensor of ids; a character outside the vocabulary raises ValueError naming it."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"text has characters outside the vocabulary: {unknown!r}")
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        ids = ids if isinstance(ids, torch.Tensor) else torch.tensor(list(ids), dtype=torch.long)
        ids = integer_tensor(ids, "ids", dims=(1,), values=range(len(self.chars)))
        return "".join(self.chars[i] for i in ids.tolist())


def load_tiny_corpus() -> str:
    """The book's own small training text (about 5 KB): three speakers — a cook, a captain, a gardener — one line
    each, in lower case. Shipped in ``dlbook/data_files/tiny_corpus.txt``."""
    return (importlib.resources.files("dlbook") / "data_files" / "tiny_corpus.txt").read_text(encoding="utf-8")


def lm_pairs(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split windows of T+1 tokens (..., T+1) into inputs (..., T) and next-token targets (..., T).

    ``inputs = tokens[..., :-1]`` and ``targets = tokens[..., 1:]``: the target of position ``t`` is the token at
    ``t + 1``, so one window of T+1 tokens holds T training examples.
    """
    dim_size(check_tensor(tokens, "tokens", min_ndim=1, floating=False), -1, 2, "tokens", " (T+1)", at_least=True)
    return tokens[..., :-1], tokens[..., 1:]  # (..., T), (..., T)


def get_batch(data: torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``block_size`` tokens from ``data`` (N,), and the same windows shifted by one.

    Returns ``x`` (B, T) and ``y`` (B, T), where ``y[b, t]`` is the token that follows ``x[b, t]`` in the text: the
    target of position ``t`` is the next token. One window therefore holds T training examples at once.
    """
    block_size, batch_size = positive_int(block_size, "block_size"), positive_int(batch_size, "batch_size")
    data = check_tensor(data, "data", dims=(1,), floating=False)
    dim_size(data, 0, block_size + 1, "data", f" (a window of block_size={block_size} and one more)", at_least=True)
    starts = torch.randint(0, data.numel() - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size + 1)  # (T+1,)
    return lm_pairs(data[starts[:, None] + offsets])  # (B, T), (B, T)


@dataclass(frozen=True)
class TrainSettings:
    """Settings of :func:`train_lm`: optimiser steps, windows per step, AdamW learning rate and weight decay,
    how often to measure the validation loss (``eval_every`` must divide ``steps``), on how many windows, and — for
    ``objective="masked"`` — BERT's masking parameters."""

    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    eval_every: int = 50
    eval_windows: int = 64
    objective: str = "causal"
    mask_id: int | None = None
    mask_prob: float = 0.15

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_windows"):
            positive_int(getattr(self, name), name)
        divides(self.eval_every, self.steps, "eval_every", "steps")
        number(self.lr, "lr", minimum=0.0, strict=True)
        if one_of(self.objective, "objective", ("causal", "masked")) == "masked" and self.mask_id is None:
            raise ValueError("mask_id must be given for objective='masked'")


@dataclass(frozen=True)
class _Windows:
    """``count`` batches of ``batch_size`` random windows of ``data`` at every pass (one epoch of the loop), as
    inputs and targets for ``settings.objective``; every draw comes from ``generator``."""

    data: torch.Tensor
    count: int
    batch_size: int
    block_size: int
    vocab_size: int
    settings: TrainSettings
    generator: torch.Generator

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return (self.draw() for _ in range(self.count))

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = get_batch(self.data, self.block_size, self.batch_size, self.generator)  # (B, T), (B, T)
        if self.settings.objective == "causal":
            return x, y
        # BERT: random replacements are drawn from the whole vocabulary, as in BERT's code
        m = mask_tokens(x, self.settings.mask_id, self.vocab_size, self.settings.mask_prob, generator=self.generator)
        return m.inputs, m.labels


def _lm_loss(model: TransformerLM, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    inputs, targets = batch  # (B, T), (B, T)
    return token_cross_entropy(model(inputs), targets)


def train_lm(
    model: TransformerLM,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    settings: TrainSettings,
    *,
    generator: torch.Generator,
) -> History:
    """Train ``model`` with AdamW on random windows of ``train_data`` in the book's one loop
    (:func:`dlbook.training.train`); return its history.

    ``settings.objective="causal"`` (GPT): predict every next token. ``"masked"`` (BERT): corrupt the window with
    :func:`mask_tokens` and predict the original tokens at the chosen positions. One epoch of the loop is
    ``eval_every`` steps; after each, the history records ``"loss"`` (the mean training loss of those steps) and
    ``"val_loss"``, the loss on a fixed set of ``eval_windows`` windows of ``val_data``; ``epoch_steps`` says when.
    """
    instance(settings, TrainSettings, "settings")
    if model.causal != (settings.objective == "causal"):
        raise ValueError(f"objective={settings.objective!r} does not fit a model with causal={model.causal}")
    T, V = model.config.block_size, model.config.vocab_size
    val_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    val_batch = _Windows(val_data, 1, settings.eval_windows, T, V, settings, val_gen).draw()  # the same every time

    @torch.no_grad()
    def validate(m: TransformerLM) -> dict[str, float]:
        m.eval()
        return {"val_loss": _lm_loss(m, val_batch).item()}

    batches = _Windows(train_data, settings.eval_every, settings.batch_size, T, V, settings, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return train(model, batches, _lm_loss, optimizer, epochs=settings.steps // settings.eval_every,
                 evaluate=validate)
