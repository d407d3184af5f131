"""Regularization (正则化): penalties, weight decay, clipping, dropout, early stopping.

Chapter: ``book/training/regularization.ipynb``.

Five different things are often lumped together as "penalising the gradient". They act
at different places:

* a **penalty term** on the loss changes *what* is minimised: ``L(w) + λ/2·||w||²``
  (L2, :func:`l2_penalty`) or ``L(w) + λ·||w||₁`` (L1, :func:`l1_penalty`);
* **weight decay** (权重衰减) shrinks the weights at every step, ``w ← (1 − ηλ)·w − η·g``.
  Under plain SGD it *is* the L2 penalty (:func:`sgd_step_with_l2`,
  :func:`sgd_step_with_weight_decay`); under Adam it is not (:func:`adam_step` with
  ``decoupled=False`` is ``torch.optim.Adam(weight_decay=λ)``, with ``decoupled=True``
  it is ``torch.optim.AdamW``);
* the **proximal step** of the L1 penalty, soft thresholding (:func:`soft_threshold`),
  sets small weights to exactly zero (:func:`l1_proximal_step`,
  :func:`lasso_regression`);
* **gradient clipping** (梯度裁剪) rescales the gradient when its norm exceeds a bound: it
  limits the *size of a step*; with full-batch gradients not the solution, while
  clipping each mini-batch gradient shifts where SGD settles (:func:`get_total_norm`,
  :func:`clip_grad_norm_`, :func:`clip_gradients`);
* a **penalty on an input gradient** adds to the loss how fast something changes with
  the *input*: the model's outputs (the squared Frobenius norm of the input Jacobian,
  :func:`input_gradient_penalty`; with ``center=1`` and one output, the gradient
  penalty of WGAN-GP) or the loss itself (double backpropagation,
  :func:`double_backprop_penalty`).

Also here: **dropout** (:func:`dropout`, :class:`Dropout`), **early stopping**
(:func:`early_stopping`), and the small problems the chapter measures them on:
polynomial regression (:func:`legendre_features`, :func:`ridge_regression`) and a
full-batch run of the book's training loop (:func:`fit_full_batch`).

Conventions: parameters and gradients are sequences of tensors of any shape; the data
loss of the regressions is ``L(w) = 1/(2N)·||X w − y||²``; every "step" function is
pure — it returns new tensors and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from dlbook import _checks
from dlbook._checks import (
    check_tensor,
    dim_size,
    divides,
    flag,
    has_shape,
    instance,
    non_negative_int,
    number,
    positive_int,
    probability,
    same_shape,
    tensors,
)
from dlbook.training import History, train

__all__ = [
    "l2_penalty",
    "l1_penalty",
    "sgd_step_with_l2",
    "sgd_step_with_weight_decay",
    "AdamState",
    "adam_init",
    "adam_step",
    "soft_threshold",
    "l1_proximal_step",
    "get_total_norm",
    "clip_grad_norm_",
    "clip_gradients",
    "input_gradient_penalty",
    "double_backprop_penalty",
    "dropout_mask",
    "apply_dropout_mask",
    "dropout",
    "Dropout",
    "EarlyStop",
    "early_stopping",
    "legendre_features",
    "ridge_regression",
    "lasso_regression",
    "fit_full_batch",
]

Tensors = torch.Tensor | Iterable[torch.Tensor]


def _pairs(params: object, grads: object, names: tuple[str, str] = ("params", "grads")
           ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``params`` and ``grads`` as lists of tensors: one gradient, of the same shape, per parameter."""
    ps, gs = tensors(params, names[0]), tensors(grads, names[1])
    if len(ps) != len(gs):
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got {len(ps)} and {len(gs)}")
    for i, (p, g) in enumerate(zip(ps, gs, strict=True)):
        same_shape(g, p, f"{names[1]}[{i}]", f"{names[0]}[{i}]")
    return ps, gs


# ---------------------------------------------------------------- penalty terms
def l2_penalty(parameters: Tensors, strength: float) -> torch.Tensor:
    """The L2 penalty ``λ/2 · Σ_w ||w||²`` over all ``parameters``; its gradient is
    ``λ·w``.

    Add it to the loss: ``data_loss + l2_penalty(model.parameters(), λ)``. The factor
    1/2 makes the gradient ``λ·w`` — exactly what ``torch.optim.SGD(weight_decay=λ)``
    adds to each gradient. Returns a 0-dim tensor (0 for no parameters).
    """
    strength = number(strength, "strength", minimum=0.0)
    ps = tensors(parameters, "parameters")
    if not ps:
        return torch.tensor(0.0)
    return strength / 2 * sum((p * p).sum() for p in ps)  # ()


def l1_penalty(parameters: Tensors, strength: float) -> torch.Tensor:
    """The L1 penalty ``λ · Σ_w ||w||₁``; its (sub)gradient is ``λ·sign(w)``.

    The gradient has the same size ``λ`` however small a weight is, so the penalty can
    push a weight all the way to zero — but a plain gradient step overshoots zero and
    oscillates around it; the proximal step (:func:`l1_proximal_step`) lands on zero
    exactly. Returns a 0-dim tensor (0 for no parameters).
    """
    strength = number(strength, "strength", minimum=0.0)
    ps = tensors(parameters, "parameters")
    if not ps:
        return torch.tensor(0.0)
    return strength * sum(p.abs().sum() for p in ps)  # ()


# ---------------------------------------------------------------- SGD
@torch.no_grad()
def sgd_step_with_l2(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float,
    weight_decay: float,
) -> list[torch.Tensor]:
    """One SGD step on ``L(w) + λ/2·||w||²``: ``w ← w − η·(g + λ·w)``, ``g`` = ∇L(w).

    This is ``torch.optim.SGD(lr=η, weight_decay=λ)`` (without momentum). Returns new
    tensors.
    """
    ps, gs = _pairs(params, grads)
    lr, weight_decay = number(lr, "lr", minimum=0.0), number(weight_decay, "weight_decay", minimum=0.0)
    return [p - lr * (g + weight_decay * p) for p, g in zip(ps, gs, strict=True)]


@torch.no_grad()
def sgd_step_with_weight_decay(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float,
    weight_decay: float,
) -> list[torch.Tensor]:
    """One SGD step with weight decay: shrink, then step, ``w ← (1 − η·λ)·w − η·g``.

    Expanding the brackets gives ``w − η·(g + λ·w)``, the step of
    :func:`sgd_step_with_l2`: under SGD, weight decay and the L2 penalty are one
    method written two ways. Returns new tensors.
    """
    ps, gs = _pairs(params, grads)
    lr, weight_decay = number(lr, "lr", minimum=0.0), number(weight_decay, "weight_decay", minimum=0.0)
    return [(1 - lr * weight_decay) * p - lr * g for p, g in zip(ps, gs, strict=True)]


# ---------------------------------------------------------------- Adam / AdamW
@dataclass(frozen=True)
class AdamState:
    """Adam's memory: the step count ``t`` and, per parameter, the running means ``m``
    of the gradient and ``v`` of its square (``exp_avg``, ``exp_avg_sq`` in PyTorch).
    """

    step: int
    exp_avg: tuple[torch.Tensor, ...]
    exp_avg_sq: tuple[torch.Tensor, ...]


def adam_init(params: Sequence[torch.Tensor]) -> AdamState:
    """The state before the first step: ``t = 0``, ``m = v = 0``."""
    ps = tensors(params, "params")
    zeros = tuple(torch.zeros_like(p).detach() for p in ps)
    return AdamState(0, zeros, tuple(z.clone() for z in zeros))


@torch.no_grad()
def adam_step(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    state: AdamState,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> tuple[list[torch.Tensor], AdamState]:
    """One Adam step; returns the new parameters and state (nothing changes in place).

    With ``g`` the gradient of the loss and ``t`` the new step count:

    .. math::

        g' = g + λ w \\;\\text{(only if not decoupled)}, \\quad
        m = β_1 m + (1-β_1) g', \\quad v = β_2 v + (1-β_2) g'^2,

        w \\leftarrow w' - η \\, \\frac{m / (1-β_1^t)}{\\sqrt{v / (1-β_2^t)} + ε},
        \\quad w' = (1 - ηλ)\\, w \\text{ if decoupled, else } w .

    ``decoupled=False`` is ``torch.optim.Adam(weight_decay=λ)``: the L2 gradient
    ``λw`` is divided by ``√v`` too, so a weight with large gradients is hardly
    decayed. ``decoupled=True`` is ``torch.optim.AdamW(weight_decay=λ)``: every weight
    shrinks by the same factor ``1 − ηλ`` per step. (No ``amsgrad`` or ``maximize``.)
    """
    ps, gs = _pairs(params, grads)
    state = instance(state, AdamState, "state")
    _pairs(ps, state.exp_avg, ("params", "state.exp_avg"))  # one running mean per parameter
    lr, eps = number(lr, "lr", minimum=0.0), number(eps, "eps", minimum=0.0)
    weight_decay, decoupled = number(weight_decay, "weight_decay", minimum=0.0), flag(decoupled, "decoupled")
    beta1, beta2 = _betas(betas)
    t = state.step + 1
    new_params, new_m, new_v = [], [], []
    for p, g, m, v in zip(ps, gs, state.exp_avg, state.exp_avg_sq, strict=True):
        if decoupled:
            p = p * (1 - lr * weight_decay)  # AdamW: shrink the weight itself
        else:
            g = g + weight_decay * p  # Adam: the L2 gradient joins the loss gradient
        m = beta1 * m + (1 - beta1) * g  # running mean of the gradient
        v = beta2 * v + (1 - beta2) * g * g  # running mean of its square
        m_hat = m / (1 - beta1**t)  # bias correction: m and v start at 0
        v_hat = v / (1 - beta2**t)
        new_params.append(p - lr * m_hat / (v_hat.sqrt() + eps))
        new_m.append(m)
        new_v.append(v)
    return new_params, AdamState(t, tuple(new_m), tuple(new_v))


def _betas(betas: object) -> tuple[float, float]:
    """Adam's decay rates ``(β1, β2)``, each in [0, 1)."""
    if not (isinstance(betas, tuple | list) and len(betas) == 2):
        raise TypeError(f"betas must be a pair of numbers, got {betas!r}")
    beta1, beta2 = (number(b, "betas", minimum=0.0) for b in betas)
    if beta1 >= 1 or beta2 >= 1:
        raise ValueError(f"betas must be in [0, 1), got {tuple(betas)!r}")
    return beta1, beta2


# ---------------------------------------------------------------- L1: proximal step
def soft_threshold(input: torch.Tensor, lambd: float = 0.5) -> torch.Tensor:
    """Soft thresholding (软阈值), the proximal operator of ``λ·||w||₁``:
    ``sign(w)·max(|w| − λ, 0)``.

    Every entry moves towards 0 by ``λ``; an entry within ``λ`` of 0 becomes exactly
    0. PyTorch ships it as ``torch.nn.functional.softshrink(input, lambd=0.5)``; the
    arguments mirror it.
    """
    input, lambd = check_tensor(input, "input"), number(lambd, "lambd", minimum=0.0)
    return torch.sign(input) * torch.clamp(input.abs() - lambd, min=0.0)  # as input


@torch.no_grad()
def l1_proximal_step(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float,
    strength: float,
) -> list[torch.Tensor]:
    """One proximal-gradient (ISTA) step on ``L(w) + λ·||w||₁``: a gradient step on
    ``L``, then soft thresholding by ``η·λ``: ``w ← soft_threshold(w − η·g, η·λ)``.

    Unlike a (sub)gradient step on the penalty, which jumps back and forth across
    zero, this puts a weight at exactly 0 whenever the loss gradient cannot hold it
    away from 0. Returns new tensors.
    """
    ps, gs = _pairs(params, grads)
    lr, strength = number(lr, "lr", minimum=0.0), number(strength, "strength", minimum=0.0)
    return [soft_threshold(p - lr * g, lr * strength) for p, g in zip(ps, gs, strict=True)]


# ---------------------------------------------------------------- clipping
def _p_norm(x: torch.Tensor, p: float) -> torch.Tensor:
    """``(Σ |x|^p)^(1/p)`` over all entries, or ``max |x|`` for ``p = inf``."""
    if math.isinf(p):
        return x.abs().max() if x.numel() else x.new_zeros(())
    return (x.abs() ** p).sum() ** (1 / p)  # ()


def get_total_norm(tensors: Tensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> torch.Tensor:
    """The p-norm of all ``tensors`` seen as one long vector
    (``torch.nn.utils.get_total_norm``).

    Computed as the norm of the per-tensor norms, which is the same number. Returns
    ``tensor(0.)`` for no tensors; raises ``RuntimeError`` (as PyTorch does) if
    ``error_if_nonfinite`` and the norm is nan or inf.
    """
    ts = _checks.tensors(tensors, "tensors")  # the parameter's name (PyTorch's) hides the imported helper
    p = number(norm_type, "norm_type", minimum=0.0, strict=True, allow_inf=True)
    if not ts:
        return torch.tensor(0.0)
    norms = torch.stack([_p_norm(t.detach(), p) for t in ts])  # (number of tensors,)
    total = _p_norm(norms, p)  # ()
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(f"the total norm of order {p} is {float(total)}: set error_if_nonfinite=False to clip")
    return total


def _clip_coefficient(total: torch.Tensor, max_norm: float) -> torch.Tensor:
    # 1e-6 keeps a zero gradient from dividing by zero (PyTorch's constant); the clamp
    # means clipping only ever shrinks a gradient, never enlarges it.
    return torch.clamp(max_norm / (total + 1e-6), max=1.0)  # ()


def clip_grad_norm_(parameters: Tensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> torch.Tensor:
    """Scale the gradients of ``parameters`` **in place** so that their total norm is
    at most ``max_norm``; return the total norm *before* clipping. Mirrors
    ``torch.nn.utils.clip_grad_norm_`` (without ``foreach``).

    .. math::

        \\|g\\| = \\Big(\\sum_{\\text{all entries}} |g|^p\\Big)^{1/p}, \\qquad
        g \\leftarrow g \\cdot \\min\\!\\Big(1,
        \\frac{\\text{max\\_norm}}{\\|g\\| + 10^{-6}}\\Big).

    The direction of the step is kept and only its length is capped; parameters
    without a gradient are skipped.
    """
    ps = tensors(parameters, "parameters")
    max_norm = number(max_norm, "max_norm", minimum=0.0, allow_inf=True)
    grads = [p.grad for p in ps if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if grads:
        coef = _clip_coefficient(total, max_norm)
        for g in grads:
            g.mul_(coef.to(g.dtype))  # in place, as PyTorch: optimisers read p.grad
    return total


def clip_gradients(grads: Sequence[torch.Tensor], max_norm: float,
                   norm_type: float = 2.0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The pure twin of :func:`clip_grad_norm_`.

    Returns ``(clipped, total)``: clipped copies of ``grads`` and their total norm
    before clipping; ``grads`` is left unchanged.
    """
    gs = tensors(grads, "grads")
    max_norm = number(max_norm, "max_norm", minimum=0.0, allow_inf=True)
    total = get_total_norm(gs, norm_type)
    if not gs:
        return [], total
    coef = _clip_coefficient(total, max_norm)
    return [g * coef.to(g.dtype) for g in gs], total


# ---------------------------------------------------------------- gradient penalty
def _input_and_output(model: object, x: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` as a leaf that records its gradient, and ``model(x)``."""
    model, x = instance(model, Callable, "model"), check_tensor(x, "x", min_ndim=1)  # x (B, ...): batch dimension first
    if not x.requires_grad:  # a leaf that records its gradient; the caller's x stays
        x = x.detach().requires_grad_(True)
    out = check_tensor(model(x), "model(x)", min_ndim=1)  # (B, ...)
    return x, dim_size(out, 0, x.shape[0], "model(x)", " (one output per example)")  # (B, ...), (B, ...)


def input_gradient_penalty(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
    center: float | None = None,
) -> torch.Tensor:
    """A penalty on how fast the model's **output** changes with its **input**: the
    squared Frobenius norm of each example's input Jacobian, differentiable in the
    model's parameters (thanks to ``create_graph=True``).

    For inputs ``x`` (B, ...) and outputs ``f(x)`` (B, K) (other output shapes are
    flattened to K numbers per example), let ``Jᵢ = ∂f(xᵢ)/∂xᵢ`` (K, D) and
    ``||Jᵢ||²_F = Σₖ ||∇ₓ fₖ(xᵢ)||²``:

    * ``center=None``: ``mean_i ||Jᵢ||²_F`` — Jacobian regularisation; for one output
      per example (K = 1) it is ``mean_i ||∇ₓ f(xᵢ)||²``. It flattens the function
      where it is evaluated. The contractive autoencoder (Rifai et al.) puts the same
      norm on its encoder;
    * ``center=c``: ``mean_i (||Jᵢ||_F − c)²`` — for a scalar critic and ``c = 1`` the
      WGAN-GP term (Gulrajani et al.), evaluated between real and generated samples.

    Each output k gets its own backward pass (K passes in all). Summing the outputs
    first and taking one gradient, ``∇ₓ Σₖ fₖ``, would be cheaper but wrong for K > 1:
    the outputs' gradients can cancel — for softmax probabilities ``Σₖ pₖ = 1``, so
    that gradient is identically 0. For the gradient of the *loss* with respect to
    the input (double backpropagation) see :func:`double_backprop_penalty`.

    Examples must not interact inside ``model`` (no batch norm in training mode): then
    the gradient of a batch-summed output with respect to the batch holds every
    example's own gradient. Returns a 0-dim tensor; multiply it by a strength and add
    it to the loss.
    """
    center = None if center is None else number(center, "center", minimum=0.0)
    x, out = _input_and_output(model, x)
    B = x.shape[0]
    out = out.reshape(B, -1)  # (B, K)
    rows = []  # row k of every example's Jacobian, one output at a time
    for k in range(out.shape[1]):
        # create_graph=True: the gradient is itself a node of the graph, so that the
        # penalty can be differentiated with respect to the model's parameters
        (grad,) = torch.autograd.grad(out[:, k].sum(), x, create_graph=True,
                                      retain_graph=True)  # (B, ...)
        rows.append(grad.reshape(B, -1))  # (B, D)
    jac = torch.cat(rows, dim=1)  # (B, K·D): each example's Jacobian, flattened
    if center is None:
        return jac.pow(2).sum(dim=1).mean()
    norm = jac.norm(dim=1)  # (B,); its subgradient at 0 is 0
    return ((norm - center) ** 2).mean()


def double_backprop_penalty(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
    target: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
        torch.nn.functional.cross_entropy),
) -> torch.Tensor:
    """Double backpropagation (Drucker & LeCun, 1992): ``mean_i ||∇ₓ ℓᵢ||²``, the
    squared gradient of each example's **loss** ``ℓᵢ = ℓ(f(xᵢ), yᵢ)`` with respect to
    its input, differentiable in the model's parameters.

    ``loss_fn(model(x), target)`` must be the *mean* of the examples' losses
    (PyTorch's default ``reduction="mean"``): then ``B · loss`` is ``Σᵢ ℓᵢ`` and, as
    examples do not interact, its gradient with respect to ``xᵢ`` is ``∇ₓ ℓᵢ``. By
    the chain rule ``∇ₓ ℓᵢ = Jᵢᵀ ∂ℓᵢ/∂f``: the Jacobian weighted by the error, so the
    penalty fades on examples the model already fits. Returns a 0-dim tensor.
    """
    instance(loss_fn, Callable, "loss_fn")
    x, out = _input_and_output(model, x)  # (B, ...), (B, ...)
    B = x.shape[0]
    dim_size(check_tensor(target, "target", min_ndim=1, floating=False), 0, B, "target", " (one row per example)")
    loss = loss_fn(out, target)  # (): the mean of the B example losses
    check_tensor(loss, "loss_fn's result (the mean loss)", dims=(0,))
    (grad,) = torch.autograd.grad(B * loss, x, create_graph=True)  # (B, ...)
    return grad.reshape(B, -1).pow(2).sum(dim=1).mean()


# ---------------------------------------------------------------- dropout
def dropout_mask(
    shape: Sequence[int], p: float = 0.5, *, generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None, device: torch.device | str | None = None,
) -> torch.Tensor:
    """A random 0/1 mask of ``shape``: each entry is 1 (kept) with probability
    ``1 − p``, independently."""
    p = probability(p, "p")
    u = torch.rand(tuple(shape), generator=generator, dtype=dtype,
                   device=device)  # uniform in [0, 1)
    return (u < 1 - p).to(u.dtype)  # P(u < 1 - p) = 1 - p


def apply_dropout_mask(input: torch.Tensor, mask: torch.Tensor,
                       p: float) -> torch.Tensor:
    """``input · mask / (1 − p)``: drop the masked entries, scale the rest.

    With ``P(mask = 1) = 1 − p``: ``E[output] = input · (1 − p)/(1 − p) = input``
    ("inverted dropout": the scaling happens in training, so evaluation needs none).
    ``p = 1`` drops everything and gives zeros.
    """
    p, input = probability(p, "p"), check_tensor(input, "input")
    same_shape(check_tensor(mask, "mask", floating=False), input, "mask", "input")
    if p == 1.0:
        return input * 0.0  # nothing survives (and no division by 0)
    scale = mask.to(input.dtype) / (1 - p)  # 0 or 1/(1-p): what PyTorch multiplies by
    return input * scale


def dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Dropout (丢弃法), as ``torch.nn.functional.dropout(input, p=0.5, training=True)``.

    While ``training``, zero each entry with probability ``p`` and multiply the
    survivors by ``1/(1 − p)``; otherwise (and for ``p = 0``) return ``input`` itself.
    ``generator`` makes the mask reproducible; its random stream is not PyTorch's, so
    the mask differs from ``F.dropout``'s, but its law is the same. Output shape =
    input shape.
    """
    p, training, input = probability(p, "p"), flag(training, "training"), check_tensor(input, "input")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    mask = dropout_mask(input.shape, p, generator=generator, dtype=input.dtype,
                        device=input.device)  # same shape as input
    return apply_dropout_mask(input, mask, p)


class Dropout(torch.nn.Module):
    """The layer around :func:`dropout`: drops in ``train()`` mode, passes through in
    ``eval()`` mode. Same contract as ``torch.nn.Dropout(p)``, plus a ``generator``.
    """

    def __init__(self, p: float = 0.5, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p = probability(p, "p")
        self.generator = generator

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ---------------------------------------------------------------- early stopping
@dataclass(frozen=True)
class EarlyStop:
    """Where early stopping ends a run: ``best_epoch`` (index of the lowest validation
    loss, the weights to keep), ``stop_epoch`` (index of the last epoch trained), and
    whether the patience ran out (``stopped``)."""

    best_epoch: int
    stop_epoch: int
    stopped: bool


def early_stopping(val_losses: Sequence[float], patience: int,
                   min_delta: float = 0.0) -> EarlyStop:
    """Replay early stopping (早停) over a history of validation losses, one per epoch.

    An epoch *improves* when its loss is below ``best − min_delta``. Training stops at
    the first epoch that ends ``patience`` epochs without an improvement; the weights
    to keep are those of the best epoch. If the patience never runs out,
    ``stop_epoch`` is the last epoch and ``stopped`` is False.
    """
    losses = [float(v) for v in val_losses]
    if not losses:
        raise ValueError("val_losses must hold at least one loss")
    patience = positive_int(patience, "patience")
    min_delta = number(min_delta, "min_delta", minimum=0.0)
    best, best_epoch = losses[0], 0
    for epoch, loss in enumerate(losses[1:], start=1):
        if loss < best - min_delta:
            best, best_epoch = loss, epoch
        elif epoch - best_epoch >= patience:
            return EarlyStop(best_epoch, epoch, True)
    return EarlyStop(best_epoch, len(losses) - 1, False)


# ---------------------------------------------------------------- regressions
def legendre_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Legendre polynomials ``P_0(x) … P_degree(x)`` of points ``x`` (N,) in [-1, 1]:
    shape (N, degree + 1).

    Bonnet's recursion ``(n+1) P_{n+1} = (2n+1) x P_n − n P_{n−1}``. On [-1, 1] they
    are far better conditioned than ``1, x, x², …``, so a degree-15 fit is still well
    posed.
    """
    if check_tensor(x, "x").ndim != 1:
        raise TypeError(f"x must be a 1-D floating-point tensor (N,), got shape {tuple(x.shape)}")
    degree = non_negative_int(degree, "degree")
    cols = [torch.ones_like(x), x]  # P_0, P_1: each (N,)
    for n in range(1, degree):
        cols.append(((2 * n + 1) * x * cols[n] - n * cols[n - 1]) / (n + 1))
    return torch.stack(cols[: degree + 1], dim=1)  # (N, degree + 1)


def _design(features: object, targets: object) -> tuple[torch.Tensor, torch.Tensor]:
    if check_tensor(features, "features").ndim != 2:
        raise TypeError(f"features must be a 2-D floating-point tensor (N, D), got shape {tuple(features.shape)}")
    return features, has_shape(targets, "targets", features.shape[:1]).to(features.dtype)


def ridge_regression(features: torch.Tensor, targets: torch.Tensor,
                     strength: float) -> torch.Tensor:
    """The minimiser of ``1/(2N)·||X w − y||² + λ/2·||w||²`` (ridge regression, L2).

    Setting the gradient ``Xᵀ(Xw − y)/N + λw`` to zero gives
    ``(XᵀX/N + λI) w = Xᵀy/N``. Shapes: features X (N, D), targets y (N,) -> weights
    (D,). ``strength=0`` is least squares (needs XᵀX invertible).
    """
    X, y = _design(features, targets)
    strength = number(strength, "strength", minimum=0.0)
    N, D = X.shape
    A = X.T @ X / N + strength * torch.eye(D, dtype=X.dtype)  # (D, D)
    return torch.linalg.solve(A, X.T @ y / N)  # (D,)


def lasso_regression(features: torch.Tensor, targets: torch.Tensor, strength: float,
                     *, max_steps: int = 50_000, tol: float = 1e-12) -> torch.Tensor:
    """The minimiser of ``1/(2N)·||X w − y||² + λ·||w||₁`` (the lasso, L1), by
    proximal gradient descent (ISTA), starting from ``w = 0``.

    Each step is :func:`l1_proximal_step` with step size ``η = 1/L``, ``L`` the
    largest eigenvalue of ``XᵀX/N`` (the gradient's Lipschitz constant); it stops when
    no weight moves by more than ``tol``. Same objective as scikit-learn's
    ``Lasso(alpha=λ, fit_intercept=False)``. Shapes: X (N, D), y (N,) -> weights (D,).
    """
    X, y = _design(features, targets)
    strength, tol = number(strength, "strength", minimum=0.0), number(tol, "tol", minimum=0.0)
    max_steps = positive_int(max_steps, "max_steps")
    N, D = X.shape
    gram, xty = X.T @ X / N, X.T @ y / N  # (D, D), (D,); gradient: gram @ w - xty
    lipschitz = float(torch.linalg.eigvalsh(gram).max())
    if lipschitz <= 0:
        return X.new_zeros(D)
    w = X.new_zeros(D)  # (D,)
    for _ in range(max_steps):
        (w_next,) = l1_proximal_step([w], [gram @ w - xty], 1.0 / lipschitz, strength)
        if float((w_next - w).abs().max()) <= tol:
            return w_next
        w = w_next
    return w


# ---------------------------------------------------------------- training loop
def fit_full_batch(
    model: torch.nn.Module,
    train_set: tuple[torch.Tensor, torch.Tensor],
    val_set: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int,
    lr: float = 1e-3,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.nn.functional.cross_entropy,
    penalty: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
    eval_every: int = 10,
) -> History:
    """Train ``model`` in place with Adam on the whole training set at every step, with the book's one loop
    (:func:`dlbook.training.train`); return its history.

    The objective is ``loss_fn(model(x), y) + penalty(model, x)`` — a penalty is a term added to the loss, e.g.
    ``lambda m, x: l2_penalty(m.parameters(), 1e-3)``. One epoch of the loop is ``eval_every`` steps (which must
    divide ``steps``); after each, in ``eval()`` mode and without the penalty, the history records
    ``"train_loss"``, ``"val_loss"`` and, for integer class labels, ``"val_accuracy"``; ``epoch_steps`` says when.
    """
    instance(model, torch.nn.Module, "model")
    divides(positive_int(eval_every, "eval_every"), positive_int(steps, "steps"), "eval_every", "steps")

    def objective(m, batch):
        x, y = batch
        return loss_fn(m(x), y) + (penalty(m, x) if penalty is not None else 0.0)

    @torch.no_grad()
    def measure(m):
        m.eval()
        (x, y), (xv, yv) = train_set, val_set
        out_val = m(xv)  # (B_val, K) or (B_val, ...)
        record = {"train_loss": float(loss_fn(m(x), y)), "val_loss": float(loss_fn(out_val, yv))}
        if not yv.is_floating_point():  # class labels
            record["val_accuracy"] = float((out_val.argmax(dim=1) == yv).double().mean())
        return record

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return train(model, [train_set] * eval_every, objective, optimizer, epochs=steps // eval_every, evaluate=measure)
