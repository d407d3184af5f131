"""BERT (Bidirectional Encoder Representations from Transformers): scoring blanks, and fine-tuning a classifier.

Chapter: ``book/attention/bert.ipynb``. The models, the masking rule and the pre-training loop are in
:mod:`dlbook.transformer` (:class:`~dlbook.transformer.TinyBERT`, :func:`~dlbook.transformer.mask_tokens`,
:func:`~dlbook.transformer.train_lm`); this module uses them.

* Filling a blank: :func:`masked_log_probs` asks a bidirectional model for ``log P(x_t | x_{≠t})`` with ``x_t``
  replaced by ``[MASK]``; :func:`causal_log_probs` asks a causal model for ``log P(x_t | x_{<t})``, all it can know.
  :func:`word_starts` is the rule that picks the blanks: the first letter of every word after the first.
* Fine-tuning (微调): :class:`EncoderClassifier` puts a classifier head (分类头) on a pre-trained encoder — the
  encoder's vectors (B, T, D) are averaged over the real positions (:func:`mean_pool`) and a linear layer maps the
  average (B, D) to class scores (B, C). :func:`fine_tune` trains all of it on a few labelled examples.

Dimension letters: ``B`` batch, ``T`` sequence length, ``D`` model width, ``V`` vocabulary size, ``C`` classes,
``P`` scored positions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from dlbook._checks import (
    check_tensor,
    dim_size,
    has_shape,
    instance,
    integer_tensor,
    non_negative_int,
    number,
    positive_int,
)
from dlbook.training import History, classification_loss, train
from dlbook.transformer import TransformerLM

__all__ = [
    "split_speaker",
    "word_starts",
    "masked_log_probs",
    "causal_log_probs",
    "pad_sequences",
    "mean_pool",
    "EncoderClassifier",
    "few_labels",
    "fine_tune",
]


def split_speaker(line: str) -> tuple[str, str]:
    """``"cook: the oven is hot."`` -> ``("cook", "the oven is hot.")``: the label and the text of a corpus line."""
    speaker, sep, said = instance(line, str, "line").partition(": ")
    if not sep or not speaker or not said:
        raise ValueError(f"line must look like 'speaker: text', got {line!r}")
    return speaker, said


def word_starts(text: str) -> torch.Tensor:
    """The positions of the blanks in ``text``: every letter that follows a space, (P,) long.

    The rule is fixed by the text alone. Before such a position, the text says that a new word begins and, through the
    earlier words, a little about which; the letters after it usually say which word it is.
    """
    instance(text, str, "text")
    return torch.tensor([t for t in range(1, len(text)) if text[t - 1] == " " and text[t].isalpha()],
                        dtype=torch.long)


def _blanks(model: TransformerLM, causal: bool, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Check the arguments of the two scorers; return ``positions`` (a causal model cannot score position 0)."""
    if instance(model, TransformerLM, "model").causal != causal:
        raise ValueError(f"model must be {'causal' if causal else 'bidirectional'} (causal={causal})")
    integer_tensor(tokens, "tokens", dims=(1,))
    return integer_tensor(positions, "positions", dims=(1,), values=range(int(causal), len(tokens)))


@torch.no_grad()
def masked_log_probs(model: TransformerLM, tokens: torch.Tensor, positions: torch.Tensor, mask_id: int
                     ) -> torch.Tensor:
    """``log P(x_t = v | every other token)`` for each ``t`` in ``positions`` (P,) and every token ``v``, from a
    bidirectional model.

    One copy of ``tokens`` (T,) per blank, with only that blank replaced by ``mask_id``: a batch (P, T) in which
    each row hides one token and shows both its sides. Returns (P, V) log-probabilities (nats); the true token's
    is ``out[p, tokens[positions[p]]]``. Call it on a model in eval mode (with dropout on, the answer is random).
    """
    positions = _blanks(model, False, tokens, positions)
    rows = torch.arange(len(positions))  # (P,)
    inputs = tokens.repeat(len(positions), 1)  # (P, T)
    inputs[rows, positions] = non_negative_int(mask_id, "mask_id")
    return torch.log_softmax(model(inputs)[rows, positions], dim=-1)  # (P, V): the blank's row only


@torch.no_grad()
def causal_log_probs(model: TransformerLM, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``log P(x_t = v | x_0 .. x_{t-1})`` for each ``t >= 1`` in ``positions`` (P,) and every token ``v``, from a
    causal model.

    One pass over ``tokens`` (T,): the output at ``t - 1`` is the prediction of token ``t``, made from the left
    context only (the causal mask hides the rest). Returns (P, V) log-probabilities (nats). Eval mode, as above.
    """
    positions = _blanks(model, True, tokens, positions)
    logp = torch.log_softmax(model(tokens[None, :-1])[0], dim=-1)  # (T-1, V): row t-1 predicts token t
    return logp[positions - 1]  # (P, V)


def pad_sequences(sequences: Sequence[torch.Tensor], pad_id: int) -> torch.Tensor:
    """Stack 1-D id tensors of different lengths into (B, T_max), filling the end of the shorter ones with
    ``pad_id``."""
    positive_int(len(sequences), "len(sequences)")
    for i, s in enumerate(sequences):
        integer_tensor(s, f"sequences[{i}]", dims=(1,))
    pad_id = non_negative_int(pad_id, "pad_id")
    return nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=pad_id)  # (B, T_max)


def mean_pool(hidden: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each sequence's vectors over its real positions: ``h̄_b = Σ_t m_bt h_bt / Σ_t m_bt`` with
    ``m_bt = 1`` where ``padding_mask`` (B, T) is ``False`` (a real token). hidden (B, T, D) -> (B, D)."""
    B, T, _ = check_tensor(hidden, "hidden", dims=(3,)).shape
    keep = (~has_shape(padding_mask, "padding_mask", (B, T))).to(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # (B, D)


class EncoderClassifier(nn.Module):
    """A classifier head on an encoder: ids (B, T) -> encoder vectors (B, T, D) -> mean over the real positions
    (B, D) -> linear layer -> class scores (B, C).

    The encoder is a copy of ``encoder`` (a :class:`~dlbook.transformer.TransformerLM`, pre-trained or not) with its
    language-model head removed, so ``encoder`` itself is left as it was. Positions holding ``pad_id`` are padding:
    no position attends to them and the mean leaves them out.
    """

    def __init__(self, encoder: TransformerLM, n_classes: int, pad_id: int) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(instance(encoder, TransformerLM, "encoder"))
        self.encoder.head = nn.Identity()  # the model now returns its final (layer-normed) vectors (B, T, D)
        self.classifier = nn.Linear(encoder.config.d_model, positive_int(n_classes, "n_classes"))
        self.pad_id = non_negative_int(pad_id, "pad_id")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = tokens == self.pad_id  # (B, T): True = padding
        hidden = self.encoder(tokens, key_padding_mask=padding)  # (B, T, D)
        return self.classifier(mean_pool(hidden, padding))  # (B, C)


def few_labels(labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """The indices (C·per_class,) of ``per_class`` examples of each class, drawn at random without replacement
    from ``labels`` (N,) — the few labelled examples a fine-tuning run may use."""
    integer_tensor(labels, "labels", dims=(1,))
    per_class, picked = positive_int(per_class, "per_class"), []
    for c in labels.unique().tolist():
        where = (labels == c).nonzero()[:, 0]  # (N_c,)
        dim_size(where, 0, per_class, f"labels of class {c}", f" (per_class={per_class})", at_least=True)
        picked.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
    return torch.cat(picked)


def fine_tune(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float,
              weight_decay: float = 0.01) -> History:
    """Train every parameter of ``model`` (the encoder and its head) on the labelled examples ``tokens`` (N, T) and
    ``labels`` (N,): ``steps`` full-batch AdamW steps on the cross-entropy, in the book's loop
    (:func:`dlbook.training.train`). Full batches make the run depend only on the model's initial weights."""
    has_shape(labels, "labels", (len(integer_tensor(tokens, "tokens", dims=(2,))),))
    optimizer = torch.optim.AdamW(model.parameters(), lr=number(lr, "lr", minimum=0.0, strict=True),
                                  weight_decay=weight_decay)
    return train(model, [(tokens, labels)], classification_loss, optimizer, epochs=positive_int(steps, "steps"))
