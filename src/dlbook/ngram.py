"""Character n-gram language models: the counting baseline a tiny GPT is measured against.

Chapter: ``book/attention/transformers.ipynb``.

An n-gram model predicts the next token from the previous ``n - 1`` tokens only, by counting how often each token
followed that context in the training text. With ``N(h c)`` the number of times context ``h`` was followed by token
``c`` and ``N(h) = Σ_c N(h c)``, the *interpolated* estimate used here is

.. math::

    P_n(c \\mid h) = \\frac{N(h\\,c) + k\\,V\\,P_{n-1}(c \\mid h')}{N(h) + k\\,V}, \\qquad P_0(c) = \\frac{1}{V},

where ``h'`` is ``h`` without its oldest token and ``V`` the vocabulary size. A context seen often is dominated by
its own counts; a rare or unseen one falls back on the shorter context. With ``interpolate=False`` the prior is
uniform instead, which is add-k (Lidstone) smoothing: ``P(c | h) = (N(h c) + k) / (N(h) + k V)``.

Tables are dense: a (V,)*n tensor, whose entry ``[h_1, ..., h_{n-1}, c]`` is ``P(c | h)``. That is fine for the
small vocabularies of a character model (30**4 ≈ 810 thousand numbers) and nothing larger.
"""

from __future__ import annotations

import torch

from dlbook._checks import dim_size, integer_tensor, non_negative_int, number, positive_int

__all__ = ["ngram_counts", "ngram_probs", "ngram_cross_entropy", "ngram_generate"]

_MAX_TABLE = 10_000_000  # entries of a dense (V,)*n table: beyond this, counting needs a sparse structure


def _order_and_tokens(probs: object, tokens: object, name: str, *, prompt: bool) -> tuple[int, torch.Tensor]:
    """``n`` of a (V,)*n table from :func:`ngram_probs`, and ``tokens`` (N,) as ids in ``0..V-1``: at least ``n``
    of them to score one, or ``n - 1`` for a prompt (the context of the first new token)."""
    if not isinstance(probs, torch.Tensor) or probs.ndim < 1 or len(set(probs.shape)) != 1:
        raise TypeError(f"probs must be a (V,)*n table from ngram_probs, got {probs!r:.80}")
    tokens = integer_tensor(tokens, name, dims=(1,), values=range(probs.shape[0])).long()
    n = probs.ndim
    why = f" (n={n}: a context of n - 1 tokens{'' if prompt else ' and one to score'})"
    return n, dim_size(tokens, 0, n - prompt, name, why, at_least=True)


def ngram_counts(tokens: torch.Tensor, n: int, vocab_size: int) -> torch.Tensor:
    """How often each run of ``n`` consecutive tokens occurs in ``tokens`` (N,): a float64 tensor of shape (V,)*n.

    Entry ``[a, b, c]`` (for ``n = 3``) counts the positions ``t`` with ``tokens[t:t+3] == (a, b, c)``; the entries
    sum to ``N - n + 1`` (0 if ``N < n``).
    """
    n, vocab_size = positive_int(n, "n"), positive_int(vocab_size, "vocab_size")
    tokens = integer_tensor(tokens, "tokens", dims=(1,), values=range(vocab_size)).long()
    if vocab_size**n > _MAX_TABLE:
        raise ValueError(f"a dense table of vocab_size**n = {vocab_size}**{n} entries is too large")
    windows = tokens.unfold(0, n, 1) if tokens.numel() >= n else tokens.new_zeros(0, n)  # (N-n+1, n)
    place = vocab_size ** torch.arange(n - 1, -1, -1)  # (n,): the first token is the most significant digit
    flat = (windows * place).sum(-1)  # (N-n+1,): each window as one index into the flattened table
    counts = torch.bincount(flat, minlength=vocab_size**n).to(torch.float64)  # (V**n,)
    return counts.reshape((vocab_size,) * n)


def ngram_probs(
    tokens: torch.Tensor, n: int, vocab_size: int, k: float = 0.1, *, interpolate: bool = True
) -> torch.Tensor:
    """The table of ``P(next | previous n-1 tokens)``, shape (V,)*n, estimated from ``tokens`` (N,).

    ``interpolate=True``: ``P_n(c | h) = (N(h c) + k V P_{n-1}(c | h')) / (N(h) + k V)`` down to ``P_0 = 1/V``
    (the lower orders are counted on the same text). ``interpolate=False``: add-k smoothing
    ``(N(h c) + k) / (N(h) + k V)``. ``k > 0`` keeps every probability positive; every row ``[h, :]`` sums to 1.
    """
    n, vocab_size = positive_int(n, "n"), positive_int(vocab_size, "vocab_size")
    k = number(k, "k", minimum=0.0, strict=True)
    uniform = torch.full((vocab_size,), 1.0 / vocab_size, dtype=torch.float64)  # (V,): P_0
    probs = uniform
    for order in range(1 if interpolate else n, n + 1):
        counts = ngram_counts(tokens, order, vocab_size)  # (V,)*order
        prior = probs if interpolate else uniform
        # prior has shape (V,)*(order-1): P(c | h') for the context without its oldest token; it broadcasts over
        # that oldest token, which is the leading dimension of ``counts``.
        totals = counts.sum(-1, keepdim=True)  # (V,)*(order-1) + (1,): N(h)
        probs = (counts + k * vocab_size * prior) / (totals + k * vocab_size)  # (V,)*order
    return probs


def ngram_cross_entropy(probs: torch.Tensor, tokens: torch.Tensor) -> float:
    """Mean negative log-probability, in nats per token, of ``tokens[n-1:]``, each given its ``n - 1`` predecessors.

    ``probs`` is a (V,)*n table from :func:`ngram_probs`. The first ``n - 1`` tokens have no full context and are
    not scored, so compare models on the same positions. ``ln V`` is the value of a uniform guess.
    """
    n, tokens = _order_and_tokens(probs, tokens, "tokens", prompt=False)
    windows = tokens.unfold(0, n, 1)  # (N-n+1, n): context and next token
    p = probs[tuple(windows.T)]  # (N-n+1,): P(tokens[t] | tokens[t-n+1:t])
    return -p.log().mean().item()


def ngram_generate(
    probs: torch.Tensor, prompt: torch.Tensor, max_new_tokens: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Continue ``prompt`` (T0,) by ``max_new_tokens`` tokens drawn from the table ``probs`` (V,)*n.

    Each new token is drawn from ``P(· | last n - 1 tokens)``; the prompt must hold at least ``n - 1`` tokens.
    Everything before those ``n - 1`` tokens is invisible to the model. Returns (T0 + max_new_tokens,).
    """
    n, prompt = _order_and_tokens(probs, prompt, "prompt", prompt=True)
    seq = prompt.tolist()
    for _ in range(non_negative_int(max_new_tokens, "max_new_tokens")):
        row = probs[tuple(seq[len(seq) - n + 1:])] if n > 1 else probs  # (V,): P(· | context)
        seq.append(int(torch.multinomial(row, 1, generator=generator)))  # PyTorch checks the generator
    return torch.tensor(seq, dtype=torch.long)
