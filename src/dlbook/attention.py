"""Attention (注意力): scaled dot-product attention and multi-head attention, written out.

Chapter: ``book/attention/attention.ipynb``.

Attention is a *soft* dictionary lookup. Each query is compared with every key; the scores become weights with a
softmax; the answer is the weighted average of the values. For queries ``Q`` (Tq, D), keys ``K`` (Tk, D) and values
``V`` (Tk, Dv),

.. math::

    \\operatorname{Attention}(Q, K, V) = \\operatorname{softmax}\\!\\Big(\\frac{Q K^\\top}{\\sqrt{D}} + M\\Big) V

where the softmax runs over the keys (each row of weights sums to 1) and ``M`` is an optional mask added to the
scores: 0 where a query may look at a key, ``-inf`` where it may not.

Dimension letters: ``B`` batch, ``Tq``/``Tk`` query/key lengths, ``D`` model width, ``Dv`` value width, ``heads``
the number of attention heads. Leading dimensions written ``...`` are batch dimensions of any number.

Two mask conventions meet here, and they are opposite:

* :func:`scaled_dot_product_attention` follows ``torch.nn.functional.scaled_dot_product_attention``: a boolean
  ``attn_mask`` is ``True`` where a query **may attend**;
* :func:`multi_head_attention` / :class:`MultiheadAttention` follow ``torch.nn.MultiheadAttention``: a boolean
  ``attn_mask`` or ``key_padding_mask`` is ``True`` where attention is **blocked**.

A query whose every key is masked has no weights to spread. Like PyTorch's ``scaled_dot_product_attention`` (2.5 and
later), :func:`safe_softmax` gives such a row all-zero weights, so its output is a zero vector and its gradients are
zero, not NaN. (``torch.nn.MultiheadAttention`` returns NaN for such rows when it computes the weights itself.)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn

from dlbook._checks import (
    check_tensor,
    dim_size,
    divides,
    flag,
    has_shape,
    integer_tensor,
    number,
    one_of,
    positive_int,
    probability,
    same_dtype,
)

__all__ = [
    "safe_softmax",
    "causal_mask",
    "padding_mask",
    "attention_bias",
    "attention_weights",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "multi_head_attention",
    "MultiheadAttention",
]


def safe_softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax along ``dim`` in which a slice of all ``-inf`` gives all zeros instead of NaN.

    ``softmax(s)_j = exp(s_j - m) / sum_k exp(s_k - m)`` with ``m = max_k s_k``. Subtracting the maximum changes
    nothing mathematically (it cancels) but keeps ``exp`` from overflowing. When every score is ``-inf`` (a query
    with nothing it may attend to), ``m`` is ``-inf`` too and the textbook formula gives ``0/0``; here the row is 0.
    """
    check_tensor(scores, "scores")
    if scores.shape[dim] == 0:
        return scores.clone()  # no keys at all: nothing to normalise
    m = scores.detach().amax(dim=dim, keepdim=True)  # (..., 1): the shift cancels, so no gradient flows through it
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a row of all -inf: shift by 0
    e = torch.exp(scores - m)  # (..., Tk): exp(-inf) = 0 for masked keys
    total = e.sum(dim=dim, keepdim=True)  # (..., 1)
    return e / torch.where(total == 0, torch.ones_like(total), total)  # (..., Tk): an empty row stays 0


def causal_mask(Tq: int, Tk: int | None = None, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask, ``True`` where query ``i`` may attend to key ``j``: ``j <= i`` (lower triangle).

    This is the mask ``is_causal=True`` applies in PyTorch: aligned at the top-left corner, so with ``Tq > Tk``
    the last queries see every key, and with ``Tq < Tk`` the last keys are never seen.
    """
    Tq = positive_int(Tq, "Tq")
    Tk = Tq if Tk is None else positive_int(Tk, "Tk")
    return torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril()  # (Tq, Tk)


def padding_mask(lengths: torch.Tensor, Tk: int) -> torch.Tensor:
    """Boolean (B, Tk) mask, ``True`` at real tokens and ``False`` at padding (填充) after each sequence's length.

    ``lengths`` (B,) holds the number of real tokens of each sequence; a batch of sequences of unequal length is
    padded on the right to a common length ``Tk``. For :func:`scaled_dot_product_attention` index it as
    ``mask[:, None, :]`` (one row for every query); for ``nn.MultiheadAttention``'s ``key_padding_mask`` pass its
    negation ``~mask``.
    """
    Tk = positive_int(Tk, "Tk")
    lengths = integer_tensor(lengths, "lengths", dims=(1,), values=range(Tk + 1))
    return torch.arange(Tk, device=lengths.device)[None, :] < lengths[:, None]  # (B, Tk)


def _additive(mask: torch.Tensor, name: str, dtype: torch.dtype, *, true_blocks: bool) -> torch.Tensor:
    """A mask as scores to add: a boolean one as 0 / ``-inf`` (which value ``True`` means is the caller's
    convention), a floating-point one as it is."""
    if mask.dtype == torch.bool:
        blocked = mask if true_blocks else ~mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(blocked, float("-inf"))
    if mask.is_floating_point():
        return mask.to(dtype)
    raise TypeError(f"{name} must be a bool or floating-point tensor, got dtype {mask.dtype}")


def attention_bias(Tq: int, Tk: int, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                   dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The additive mask ``M``: 0 where a query may attend, ``-inf`` where it may not; broadcasts to (..., Tq, Tk).

    ``attn_mask`` as in ``F.scaled_dot_product_attention``: boolean (``True`` = may attend) or floating-point (added
    to the scores as it is). ``is_causal=True`` applies the :func:`causal_mask` and excludes ``attn_mask``.
    """
    if is_causal and attn_mask is not None:
        raise ValueError("attn_mask must be None when is_causal=True (as in PyTorch): pass one or the other")
    bias = torch.zeros(Tq, Tk, dtype=dtype, device=device)  # (Tq, Tk)
    mask = causal_mask(Tq, Tk, device=device) if is_causal else attn_mask
    if mask is None:
        return bias
    check_tensor(mask, "attn_mask", min_ndim=2, floating=False)
    if mask.shape[-2] not in (1, Tq) or mask.shape[-1] not in (1, Tk):
        raise ValueError(f"attn_mask of shape {tuple(mask.shape)} does not broadcast to the scores' (..., {Tq}, {Tk})")
    return bias + _additive(mask, "attn_mask", dtype, true_blocks=False)  # (..., Tq, Tk)


def _gqa_groups(query: torch.Tensor, kv: torch.Tensor, name: str) -> int:
    """In grouped-query attention, how many consecutive query heads (dimension -3) share one key/value head."""
    heads = check_tensor(query, "query (with enable_gqa=True)", min_ndim=3).shape[-3]
    kv_heads = check_tensor(kv, f"{name} (with enable_gqa=True)", min_ndim=3).shape[-3]
    return heads // divides(kv_heads, heads, f"enable_gqa=True: the {name} heads", "the query heads")


def attention_weights(query: torch.Tensor, key: torch.Tensor, attn_mask: torch.Tensor | None = None,
                      is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
    """The attention weights ``softmax(Q Kᵀ · scale + M)``, shape (..., Tq, Tk); each row sums to 1 (or is all 0).

    Shapes: query (..., Tq, D), key (..., Tk, D). ``scale`` defaults to ``1/sqrt(D)``. Masks as in
    :func:`attention_bias`; ``enable_gqa`` as in :func:`scaled_dot_product_attention`.
    """
    Tq, D = check_tensor(query, "query", min_ndim=2).shape[-2:]
    Tk = check_tensor(key, "key", min_ndim=2).shape[-2]
    dim_size(key, -1, D, "key", " (the query's width D)")
    same_dtype(query, key, "query", "key")
    if enable_gqa:
        key = key.repeat_interleave(_gqa_groups(query, key, "key"), dim=-3)  # (..., heads, Tk, D)
    factor = 1.0 / math.sqrt(D) if scale is None else number(scale, "scale", allow_inf=True)
    scores = (query @ key.transpose(-2, -1)) * factor  # (..., Tq, Tk): one dot product per query-key pair
    bias = attention_bias(Tq, Tk, attn_mask, is_causal, dtype=query.dtype, device=query.device)  # (..., Tq, Tk)
    return safe_softmax(scores + bias, dim=-1)  # (..., Tq, Tk)


def _dropout_weights(weights: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Zero each attention weight with probability ``p`` and scale the rest by ``1/(1-p)`` (unbiased on average)."""
    p = probability(p, "dropout_p")
    if p == 0.0:
        return weights
    if p == 1.0:
        return torch.zeros_like(weights)  # every weight dropped
    keep = torch.rand(weights.shape, generator=generator, dtype=weights.dtype, device=weights.device) >= p
    return weights * keep / (1.0 - p)  # (..., Tq, Tk)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention: the same result as ``torch.nn.functional.scaled_dot_product_attention``.

    ``softmax(Q Kᵀ / sqrt(D) + M) V``. Shapes: query (..., Tq, D), key (..., Tk, D), value (..., Tk, Dv);
    output (..., Tq, Dv). Leading dimensions broadcast.

    Args:
        attn_mask: boolean, ``True`` where a query **may attend** to a key; or floating-point, added to the scores.
            Broadcastable to (..., Tq, Tk).
        dropout_p: probability of zeroing each attention weight (the rest are scaled by ``1/(1-p)``). Like
            PyTorch, it is applied whenever it is > 0: pass 0.0 at evaluation time.
        is_causal: mask every key after the query's position (:func:`causal_mask`); excludes ``attn_mask``.
        scale: factor applied to the scores; default ``1/sqrt(D)``.
        enable_gqa: grouped-query attention: query (..., heads, Tq, D) may have a multiple of the key/value heads;
            each key/value head then serves ``heads_q / heads_kv`` consecutive query heads.
        generator: random numbers for dropout (keyword-only; PyTorch's function draws from the global generator).

    A query whose keys are all masked gets a zero output (see :func:`safe_softmax`), as in PyTorch.
    """
    weights = attention_weights(query, key, attn_mask, is_causal, scale, enable_gqa)  # (..., Tq, Tk)
    dim_size(check_tensor(value, "value", min_ndim=2), -2, key.shape[-2], "value", " (one row per key)")
    same_dtype(query, value, "query", "value")
    if enable_gqa:
        value = value.repeat_interleave(_gqa_groups(query, value, "value"), dim=-3)  # (..., heads, Tk, Dv)
    weights = _dropout_weights(weights, dropout_p, generator)  # (..., Tq, Tk)
    return weights @ value  # (..., Tq, Dv): each output row is a weighted average of value rows


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, heads, T, D/heads): the width is cut into ``num_heads`` consecutive slices, one per head."""
    B, T, D = x.shape
    num_heads = divides(positive_int(num_heads, "num_heads"), D, "num_heads", "the width D")
    return x.reshape(B, T, num_heads, D // num_heads).transpose(1, 2)  # (B, heads, T, D/heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, D/heads) -> (B, T, D): the inverse of :func:`split_heads` (heads side by side again)."""
    B, nh, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, nh * Dh)  # (B, T, D)


def _mha_bias(B, heads, Tq, Tk, key_padding_mask, attn_mask, is_causal, like: torch.Tensor) -> torch.Tensor:
    """``nn.MultiheadAttention``'s masks (``True`` = blocked) as one additive bias, (B|1, heads|1, Tq, Tk)."""
    if is_causal and attn_mask is None:
        raise ValueError("is_causal=True is only a hint in nn.MultiheadAttention: pass attn_mask=~causal_mask(T) too")
    bias = like.new_zeros(Tq, Tk)  # (Tq, Tk): nothing blocked
    if attn_mask is not None:
        m = has_shape(attn_mask, "attn_mask", (Tq, Tk), (B * heads, Tq, Tk))
        m = m.reshape(B, heads, Tq, Tk) if m.ndim == 3 else m  # (B|1, heads|1, Tq, Tk)
        bias = bias + _additive(m, "attn_mask", like.dtype, true_blocks=True)
    if key_padding_mask is not None:
        kpm = has_shape(key_padding_mask, "key_padding_mask", (B, Tk))
        kpm = _additive(kpm, "key_padding_mask", like.dtype, true_blocks=True)  # (B, Tk)
        bias = bias + kpm[:, None, None, :]  # (B, 1, 1, Tk): the same keys are hidden from every query
    return bias


def multi_head_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    num_heads: int,
    in_proj_weight: torch.Tensor,
    in_proj_bias: torch.Tensor | None,
    out_proj_weight: torch.Tensor,
    out_proj_bias: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    *,
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-head attention (多头注意力), the forward pass of ``nn.MultiheadAttention(batch_first=True)``.

    ``MultiHead(Q, K, V) = concat(head_1, ..., head_h) W_Oᵀ + b_O`` with
    ``head_i = Attention(Q W_Q,iᵀ, K W_K,iᵀ, V W_V,iᵀ)``: each head attends in its own ``D/heads``-wide subspace.

    Shapes: query (B, Tq, D), key and value (B, Tk, D); ``in_proj_weight`` (3D, D) stacks ``W_Q``, ``W_K``, ``W_V``
    (each (D, D)); ``in_proj_bias`` (3D,); ``out_proj_weight`` (D, D); ``out_proj_bias`` (D,).
    Returns the output (B, Tq, D) and, if ``need_weights``, the attention weights (B, Tq, Tk) averaged over heads
    (or (B, heads, Tq, Tk) with ``average_attn_weights=False``), else ``None``.

    Masks follow ``nn.MultiheadAttention`` — the **opposite** of :func:`scaled_dot_product_attention`:
    ``key_padding_mask`` (B, Tk) and boolean ``attn_mask`` ((Tq, Tk) or (B*heads, Tq, Tk)) are ``True`` where
    attention is **blocked**; floating-point masks are added to the scores. ``is_causal`` is, as in PyTorch, only a
    hint that ``attn_mask`` is causal: it needs ``attn_mask``. ``dropout_p`` drops attention weights (keyword-only).
    """
    B, Tq, D = check_tensor(query, "query", dims=(3,)).shape
    Tk = has_shape(key, "key", (B, None, D)).shape[1]
    has_shape(value, "value", (B, Tk, D))
    has_shape(out_proj_weight, "out_proj_weight", (D, D))
    w_q, w_k, w_v = has_shape(in_proj_weight, "in_proj_weight", (3 * D, D)).chunk(3)  # 3 x (D, D)
    b_q, b_k, b_v = in_proj_bias.chunk(3) if in_proj_bias is not None else (0.0, 0.0, 0.0)
    q = split_heads(query @ w_q.T + b_q, num_heads)  # (B, heads, Tq, D/heads)
    k = split_heads(key @ w_k.T + b_k, num_heads)  # (B, heads, Tk, D/heads)
    v = split_heads(value @ w_v.T + b_v, num_heads)  # (B, heads, Tk, D/heads)
    bias = _mha_bias(B, num_heads, Tq, Tk, key_padding_mask, attn_mask, is_causal, like=query)  # (B, heads, Tq, Tk)
    weights = attention_weights(q, k, attn_mask=bias)  # (B, heads, Tq, Tk), scale 1/sqrt(D/heads)
    weights = _dropout_weights(weights, dropout_p, generator)
    out = merge_heads(weights @ v) @ out_proj_weight.T  # (B, Tq, D): the heads' outputs mixed back together
    if out_proj_bias is not None:
        out = out + out_proj_bias
    if not need_weights:
        return out, None
    return out, (weights.mean(dim=1) if average_attn_weights else weights)  # (B, Tq, Tk) or (B, heads, Tq, Tk)


class MultiheadAttention(nn.Module):
    """A thin layer around :func:`multi_head_attention`, with the parameters of ``nn.MultiheadAttention``.

    The parameter names are PyTorch's (``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``),
    so ``ours.load_state_dict(theirs.state_dict())`` copies the weights of a ``nn.MultiheadAttention(D, heads,
    batch_first=True)``. Always batch-first: tensors are (B, T, D). Dropout on the attention weights is active in
    training mode only.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.embed_dim = positive_int(embed_dim, "embed_dim")
        self.num_heads = divides(positive_int(num_heads, "num_heads"), embed_dim, "num_heads", "embed_dim")
        self.dropout = probability(dropout, "dropout")
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))  # (3D, D): W_Q, W_K, W_V stacked
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim)) if bias else None  # (3D,)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)  # PyTorch's initialisation
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return multi_head_attention(
            query, key, value, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.out_proj.weight, self.out_proj.bias, key_padding_mask, need_weights, attn_mask,
            average_attn_weights, is_causal, dropout_p=self.dropout if self.training else 0.0,
        )


def flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    block_size: int = 128,
) -> torch.Tensor:
    """Attention one block of keys at a time: the Tq x Tk scores are never held at once.

    The idea is Rabe and Staats' (2021); FlashAttention (Dao et al. 2022) tiles it for the GPU's memory levels.

    The same result as ``F.scaled_dot_product_attention`` without dropout. Shapes: query (..., Tq, E), key
    (..., Tk, E), value (..., Tk, Ev); output (..., Tq, Ev). Keys are read in blocks of ``block_size``; only the
    (..., Tq, block_size) scores of the current block exist. For each query the loop keeps three running numbers over
    the keys seen so far: the largest score ``m``, the sum ``l = sum_j exp(s_j - m)`` and the accumulator
    ``o = sum_j exp(s_j - m) v_j``. When a block raises the maximum to ``m'``, every term summed so far was computed
    with ``m`` instead of ``m'``, so ``l`` and ``o`` are multiplied by ``exp(m - m')``; at the end ``o / l`` is the
    softmax-weighted average of the values (Rabe and Staats 2021; Dao et al. 2022).

    ``attn_mask``: boolean (``True`` = may attend) or of the query's dtype (added to the scores), broadcastable to
    (..., Tq, Tk); ``is_causal``: key ``j`` is hidden from query ``i`` when ``j > i`` (aligned at the top-left corner,
    as PyTorch does when Tq != Tk); ``scale`` defaults to ``1/sqrt(E)``. A query whose keys are all masked gets
    zeros, as in PyTorch. The backward pass is autograd's: it keeps every block's weights, so training memory still
    grows as Tq x Tk; FlashAttention's own backward recomputes them block by block instead.
    """
    query, key, value = (check_tensor(t, name, min_ndim=2) for t, name in ((query, "query"), (key, "key"),
                                                                           (value, "value")))
    block_size, is_causal = positive_int(block_size, "block_size"), flag(is_causal, "is_causal")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else number(scale, "scale")
    Tq, Tk = query.shape[-2], key.shape[-2]
    if key.shape[-1] != query.shape[-1] or value.shape[-2] != Tk:
        raise ValueError(f"key must be (..., Tk, E) and value (..., Tk, Ev) for query (..., Tq, E), got shapes "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    query = query * scale  # (..., Tq, E): scaled once here, not once per block
    if attn_mask is not None:
        if is_causal:
            raise ValueError("attn_mask must be None when is_causal=True (as in PyTorch): pass one or the other")
        check_tensor(attn_mask, "attn_mask", min_ndim=1, floating=False)
        one_of(attn_mask.dtype, "attn_mask's dtype", (torch.bool, query.dtype))
        if any(n not in (1, t) for n, t in zip(attn_mask.shape[::-1], (Tk, Tq), strict=False)):
            raise ValueError(f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to (..., {Tq}, {Tk})")
        attn_mask = torch.broadcast_to(attn_mask, (*attn_mask.shape[:-2], Tq, Tk))  # a view: nothing is copied
    rows = torch.arange(Tq, device=query.device)[:, None]  # (Tq, 1): query positions, for the causal mask
    # m: (..., Tq, 1) once a block is read, the largest score so far. It starts at the lowest finite number, not at
    # -inf, so that a query with no visible key yet computes exp(-inf - m) = 0, not exp(-inf + inf) = NaN.
    m = query.new_full((), torch.finfo(query.dtype).min)
    l = query.new_zeros(())  # (..., Tq, 1): sum of exp(score - m) over the keys read so far
    o = query.new_zeros(*query.shape[:-1], value.shape[-1])  # (..., Tq, Ev): sum of exp(score - m) * value
    # Not strict: with Tk = 0, split still gives one empty block, and the empty range skips it.
    blocks = zip(range(0, Tk, block_size), key.split(block_size, -2), value.split(block_size, -2), strict=False)
    for j, k, v in blocks:  # j: the block's first key; k (..., b, E) and v (..., b, Ev): views, nothing is copied
        s = query @ k.transpose(-2, -1)  # (..., Tq, b): the only scores that exist at a time
        if is_causal:
            s = s.masked_fill(torch.arange(j, j + k.shape[-2], device=s.device) > rows, float("-inf"))
        elif attn_mask is not None:
            blk = attn_mask[..., j:j + block_size]  # (..., Tq, b)
            s = torch.where(blk, s, float("-inf")) if blk.dtype == torch.bool else s + blk
        m_new = torch.maximum(m, s.detach().amax(-1, keepdim=True))  # (..., Tq, 1): the shift cancels in o / l
        rescale = torch.exp(m - m_new)  # (..., Tq, 1): exp(m - m'), moves the old terms to the new maximum
        p = s.sub_(m_new).exp_()  # (..., Tq, b): exp(s - m'), written over the scores, which are not needed again
        l = p.sum(-1, keepdim=True).addcmul_(l, rescale)  # (..., Tq, 1): l * rescale + this block's sum
        o = (p @ v).addcmul_(o, rescale)  # (..., Tq, Ev): o * rescale + this block's weighted values
        m = m_new
    return o / torch.where(l == 0, 1.0, l)  # (..., Tq, Ev); a query with every key masked keeps o = 0


def peak_allocated_bytes(fn: Callable[..., object], *args: object, **kwargs: object) -> int:
    """The most bytes that tensors created during ``fn(*args, **kwargs)`` held at one time (CPU).

    Read from the allocation trace of ``torch.profiler`` with ``profile_memory=True``: every allocation and free of
    PyTorch's CPU allocator during the call, in order, summed as it goes; the peak of that running sum is returned.
    Tensors that existed before the call are not counted, and neither is memory a library allocates outside
    PyTorch's allocator (e.g. a BLAS library's private buffers).
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn(*args, **kwargs)
    trace = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    return max(itertools.accumulate((nbytes for _, nbytes in trace), initial=0))


__all__ += ["flash_attention", "peak_allocated_bytes"]
