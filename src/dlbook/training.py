"""Training loops (训练): mini-batch SGD, epochs, gradient accumulation and
data-parallel training.

Chapter: ``book/training/batch-size-epochs.ipynb``.

Mini-batch stochastic gradient descent (小批量随机梯度下降) updates the
parameters θ with the gradient of the mean loss over a batch (批) of B
examples,

.. math::

    \\theta \\leftarrow \\theta - \\eta\\, \\hat g_B, \\qquad
    \\hat g_B = \\frac{1}{B} \\sum_{i \\in \\text{batch}}
    \\nabla_\\theta \\ell_i(\\theta),

an unbiased estimate of the full gradient ``g = (1/N) Σ_i ∇ℓ_i`` whose
variance falls as 1/B. One iteration (迭代), or step (步), is one parameter
update from one mini-batch; one epoch (轮次) is one pass over all N examples:
``ceil(N / B)`` iterations (``floor(N / B)`` with ``drop_last=True``).

* :class:`TrainConfig` holds every setting of a run (frozen: a run is
  described by its config).
* :func:`fit` trains and returns a :class:`History`; :func:`evaluate`
  measures loss and accuracy; :func:`plot_history` and
  :func:`plot_learning_curves` draw histories (never the model).
* :func:`accumulate_gradients` adds up the gradients of several small batches
  so that one optimiser step equals the step of their union.
* :func:`per_example_gradients`, :func:`minibatch_gradient_variance` and
  :func:`predicted_gradient_variance` measure the noise of the gradient
  estimate against B.
* :func:`train_data_parallel` runs ``DistributedDataParallel`` in separate
  processes (gloo backend, 127.0.0.1); :func:`train_single_process` is its
  one-process twin on the combined batches.

The code is kept within 80 columns because the chapter shows it.
"""

from __future__ import annotations

import copy
import itertools
import math
import queue
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch

__all__ = [
    "TrainConfig",
    "History",
    "fit",
    "evaluate",
    "accumulate_gradients",
    "gradients",
    "plot_history",
    "plot_learning_curves",
    "per_example_gradients",
    "minibatch_gradient_variance",
    "predicted_gradient_variance",
    "ParallelRun",
    "train_single_process",
    "train_data_parallel",
]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`fit` needs besides the model, the data and the loss.

    Attributes:
        epochs: passes over the training data.
        lr: learning rate η of SGD.
        momentum: SGD momentum (0 = plain SGD).
        accumulation_steps: batches whose gradients are added up before each
            optimiser step (1 = none); the step then equals the step of one
            batch ``accumulation_steps`` times larger.
        progress: show a tqdm progress bar.
    """

    epochs: int = 1
    lr: float = 0.1
    momentum: float = 0.0
    accumulation_steps: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "accumulation_steps"):
            value = getattr(self, name)
            if (not isinstance(value, int) or isinstance(value, bool)
                    or value < 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if (not isinstance(self.momentum, int | float)
                or not 0 <= self.momentum < 1):
            raise ValueError(
                f"momentum must be in [0, 1), got {self.momentum!r}")


@dataclass
class History:
    """What :func:`fit` measured.

    Per optimiser step: ``step_loss`` (mean training loss of the step's
    examples) and ``step_examples`` (examples seen so far). Per epoch:
    ``epoch_loss`` (mean training loss over the epoch, measured while
    training) and, when :func:`fit` got a ``val_loader``, ``val_loss`` and
    ``val_accuracy`` at the end of the epoch.
    """

    config: TrainConfig
    steps_per_epoch: int
    step_loss: list[float] = field(default_factory=list)
    step_examples: list[int] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.step_loss)


def _check_model_loader(model: object, loader: object) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(loader, Iterable):
        raise TypeError("loader must be an iterable of (inputs, targets) "
                        f"batches, got {type(loader).__name__}")


def accumulate_gradients(model: torch.nn.Module, loss_fn: LossFn,
                         batches: Sequence[Batch]) -> float:
    """Set ``p.grad`` of every parameter to the gradient of the mean loss
    over the union of ``batches``; return that mean loss.

    Each batch runs forward and backward on its own, so memory holds one
    batch at a time. Its loss is weighted by ``n_i / N`` (its share of the N
    examples) and ``backward`` adds the gradients up. For a ``loss_fn`` that
    averages over the batch (PyTorch's default) this is exactly the gradient
    of one big batch.
    """
    if not batches:
        raise ValueError("batches must hold at least one (inputs, targets) "
                         "batch")
    sizes = [len(x) for x, _ in batches]
    total = sum(sizes)
    model.zero_grad(set_to_none=True)
    mean_loss = 0.0
    for (x, y), n in zip(batches, sizes, strict=True):
        # this batch's share of the big batch's mean loss
        loss = loss_fn(model(x), y) * (n / total)
        loss.backward()  # adds to p.grad
        mean_loss += float(loss.detach())
    return mean_loss


def gradients(model: torch.nn.Module) -> list[torch.Tensor]:
    """A copy of every parameter's ``.grad`` (zeros where there is none),
    in ``model.parameters()`` order."""
    return [p.grad.detach().clone() if p.grad is not None
            else torch.zeros_like(p) for p in model.parameters()]


def fit(
    model: torch.nn.Module,
    loader: Iterable[Batch],
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    val_loader: Iterable[Batch] | None = None,
) -> History:
    """Train ``model`` in place with mini-batch SGD as ``config`` says;
    return the :class:`History`.

    Every optimiser step uses ``config.accumulation_steps`` consecutive
    batches of ``loader`` (:func:`accumulate_gradients`). A ``DataLoader``
    with ``shuffle=True`` draws a new order at every epoch; give it a seeded
    ``generator`` for a run that repeats exactly.
    """
    from tqdm.auto import tqdm

    _check_model_loader(model, loader)
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"config must be a TrainConfig, got {type(config).__name__}")
    k = config.accumulation_steps
    per_epoch = 0  # unknown for a loader without len()
    if hasattr(loader, "__len__"):
        per_epoch = math.ceil(len(loader) / k)
    history = History(config=config, steps_per_epoch=per_epoch)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr,
                                momentum=config.momentum)
    seen = 0
    bar = tqdm(total=config.epochs * per_epoch or None, unit="step",
               disable=not config.progress, desc="training")
    with bar:
        for _epoch in range(config.epochs):
            model.train()
            batches = iter(loader)
            loss_sum, count = 0.0, 0
            # the next k batches make one optimiser step
            while group := list(itertools.islice(batches, k)):
                loss = accumulate_gradients(model, loss_fn, group)
                optimizer.step()
                n = sum(len(x) for x, _ in group)
                seen += n
                loss_sum, count = loss_sum + loss * n, count + n
                history.step_loss.append(loss)
                history.step_examples.append(seen)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            history.epoch_loss.append(loss_sum / max(count, 1))
            if val_loader is not None:
                result = evaluate(model, val_loader, loss_fn)
                history.val_loss.append(result["loss"])
                history.val_accuracy.append(result["accuracy"])
    return history


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable[Batch],
             loss_fn: LossFn) -> dict[str, float]:
    """Mean loss and accuracy (argmax of the outputs against integer
    targets) of ``model`` over ``loader``.

    Runs in ``eval`` mode without gradients and puts the model back in the
    mode it was in. Each batch's loss is weighted by its size, so a smaller
    last batch counts for what it holds.
    """
    _check_model_loader(model, loader)
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    try:
        for x, y in loader:
            out = model(x)  # (B, K)
            n = len(x)
            loss_sum += float(loss_fn(out, y)) * n
            correct += int((out.argmax(dim=1) == y).sum())
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no examples")
    return {"loss": loss_sum / count, "accuracy": correct / count}


# --------------------------------------------------------------------- plots
def plot_history(history: History, *, title: str | None = None):
    """Three panels: the loss of every step; training and validation loss
    per epoch; validation accuracy. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 2.9))
    steps = np.arange(1, history.steps + 1)
    axes[0].plot(steps, history.step_loss, lw=0.8, color="#4c72b0")
    axes[0].set(xlabel="optimiser step", ylabel="training loss",
                title="loss of each step")
    epochs = np.arange(1, len(history.epoch_loss) + 1)
    axes[1].plot(epochs, history.epoch_loss, "o-", label="train")
    if history.val_loss:
        axes[1].plot(epochs, history.val_loss, "s-", label="validation")
        axes[2].plot(epochs, history.val_accuracy, "s-", color="#55a868")
    axes[1].set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    axes[1].legend()
    axes[2].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
                title="validation accuracy")
    for ax in axes[1:]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_X_AXES = {"epoch": "epoch", "step": "optimiser steps",
           "examples": "examples seen"}
_METRICS = ("val_loss", "val_accuracy", "epoch_loss")


def _curve(history: History, x: str, metric: str):
    values = np.asarray(getattr(history, metric), dtype=float)
    epochs = np.arange(1, len(values) + 1)
    if x == "epoch":
        return epochs, values
    steps = epochs * max(history.steps_per_epoch, 1)
    if x == "step":
        return steps, values
    return np.asarray(history.step_examples)[steps - 1], values


def plot_learning_curves(
    histories: Mapping[str, History],
    *,
    x: str = "epoch",
    metric: str = "val_loss",
    highlight: str | None = None,
    ax: Any = None,
    logx: bool = False,
):
    """One curve of ``metric`` per run against ``x``; returns the Figure.

    ``metric`` is ``"val_loss"``, ``"val_accuracy"`` or ``"epoch_loss"``;
    ``x`` is ``"epoch"``, ``"step"`` or ``"examples"`` (points at the end of
    each epoch). With ``highlight``, that run is drawn in colour and the
    others in grey.
    """
    import matplotlib.pyplot as plt

    if x not in _X_AXES:
        raise ValueError(f"x must be one of {list(_X_AXES)}, got {x!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    if highlight is not None and highlight not in histories:
        raise ValueError(f"highlight must be one of the runs "
                         f"{list(histories)}, got {highlight!r}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 3.0))
    else:
        fig = ax.figure
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, h) in enumerate(histories.items()):
        xs, ys = _curve(h, x, metric)
        if highlight is None:
            ax.plot(xs, ys, "-", lw=1.4, color=colours[k % len(colours)],
                    label=name)
        elif name != highlight:
            ax.plot(xs, ys, "-", lw=0.8, color="#c8c8c8")
    if highlight is not None:
        xs, ys = _curve(histories[highlight], x, metric)
        ax.plot(xs, ys, "o-", lw=2.0, ms=3, color="#c44e52", label=highlight)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=_X_AXES[x], ylabel=metric.replace("_", " "))
    ax.legend()
    return fig


# ------------------------------------------------------------ gradient noise
def per_example_gradients(model: torch.nn.Module, loss_fn: LossFn,
                          inputs: torch.Tensor,
                          targets: torch.Tensor) -> torch.Tensor:
    """The gradient of each example's loss on its own, flattened:
    (N, P), with P the number of parameters.

    ``torch.func``: ``vmap`` runs ``grad`` of the one-example loss over the
    batch axis. The mean of the rows is the gradient of the mean loss.
    """
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters()}

    def one_loss(p, x, y):
        out = functional_call(model, p, (x.unsqueeze(0),))  # (1, K)
        return loss_fn(out, y.unsqueeze(0))

    per = vmap(grad(one_loss), in_dims=(None, 0, 0))(params, inputs, targets)
    N = len(inputs)
    return torch.cat([g.reshape(N, -1) for g in per.values()], dim=1)


def _check_batch_sizes(batch_sizes: Sequence[int], n: int) -> list[int]:
    sizes = list(batch_sizes)
    for b in sizes:
        if not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= n:
            raise ValueError(
                f"batch_sizes must hold ints in [1, {n}], got {b!r}")
    return sizes


def minibatch_gradient_variance(
    per_example: torch.Tensor, batch_sizes: Sequence[int], *, draws: int,
    generator: torch.Generator,
) -> dict[int, float]:
    """Measured E‖ĝ_B − g‖² for each B: the mean, over ``draws`` random
    batches, of the squared distance between the batch gradient and the full
    gradient.

    ``per_example`` is (N, P) from :func:`per_example_gradients`; a batch
    gradient is the mean of its rows. Draw d takes the first B examples of
    its own random permutation (without replacement, as an epoch does).
    """
    if per_example.ndim != 2:
        raise ValueError("per_example must be (N, P), got shape "
                         f"{tuple(per_example.shape)}")
    if not isinstance(draws, int) or isinstance(draws, bool) or draws < 1:
        raise ValueError(f"draws must be an int >= 1, got {draws!r}")
    N = per_example.shape[0]
    sizes = _check_batch_sizes(batch_sizes, N)
    full = per_example.mean(dim=0)  # (P,)
    # one random permutation of the N examples per draw: (draws, N)
    order = torch.rand(draws, N, generator=generator).argsort(dim=1)
    out = {}
    for b in sizes:
        # weights 1/b on each draw's first b examples: (draws, N)
        pick = torch.zeros(draws, N, dtype=per_example.dtype)
        pick.scatter_(1, order[:, :b], 1.0 / b)
        batch_grads = pick @ per_example  # (draws, P)
        out[b] = float(((batch_grads - full) ** 2).sum(dim=1).mean())
    return out


def predicted_gradient_variance(per_example: torch.Tensor,
                                batch_sizes: Sequence[int]) -> dict[int, float]:
    """The exact E‖ĝ_B − g‖² for batches drawn without replacement from N
    examples:

    .. math:: \\frac{\\operatorname{tr}\\Sigma}{B}\\cdot\\frac{N - B}{N - 1},
        \\qquad
        \\operatorname{tr}\\Sigma
        = \\frac{1}{N}\\sum_i \\lVert g_i - g\\rVert^2.

    The 1/B law, with the finite-population factor that makes it 0 at B = N
    (the whole data set has no sampling noise).
    """
    if per_example.ndim != 2:
        raise ValueError("per_example must be (N, P), got shape "
                         f"{tuple(per_example.shape)}")
    N = per_example.shape[0]
    centred = per_example - per_example.mean(dim=0)  # (N, P)
    trace = float((centred**2).sum(dim=1).mean())
    return {b: trace / b * (N - b) / max(N - 1, 1)
            for b in _check_batch_sizes(batch_sizes, N)}


# ------------------------------------------------------------- data parallel
@dataclass(frozen=True)
class ParallelRun:
    """The result of :func:`train_data_parallel` or
    :func:`train_single_process`.

    ``gradients[t]`` holds the gradient of every parameter used at step t
    (for the data-parallel run: after DDP's all-reduce, as rank 0 saw it);
    ``parameters`` the parameters after the last step; ``ranks_agree``
    whether every process ended with identical parameters.
    """

    gradients: list[list[torch.Tensor]]
    parameters: list[torch.Tensor]
    ranks_agree: bool = True


def _check_batches(batches: Sequence[Batch], world_size: int) -> None:
    if not batches:
        raise ValueError("batches must hold at least one (inputs, targets) "
                         "batch")
    for t, (x, y) in enumerate(batches):
        if len(x) != len(y) or len(x) % world_size != 0:
            raise ValueError(
                f"batches[{t}] must split evenly across world_size="
                f"{world_size} processes, got {len(x)} inputs and "
                f"{len(y)} targets")


def train_single_process(
    model: torch.nn.Module, batches: Sequence[Batch], *, lr: float,
    loss_fn: LossFn = torch.nn.functional.cross_entropy,
) -> ParallelRun:
    """Plain SGD on a copy of ``model``, one step per batch: the reference
    that a data-parallel run must reproduce."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    _check_batches(batches, 1)
    net = copy.deepcopy(model)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    grads = []
    for x, y in batches:
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        grads.append(gradients(net))
        opt.step()
    return ParallelRun(grads, [p.detach().clone() for p in net.parameters()])


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int,
                model: torch.nn.Module, batches: Sequence[Batch], lr: float,
                loss_fn: LossFn, timeout: float, results: Any) -> None:
    """One process of :func:`train_data_parallel`: SGD with DDP on this
    rank's shard of every batch; the results go back through ``results``."""
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    # this process only: talk over the loopback interface, one thread each
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
            world_size=world_size, timeout=timedelta(seconds=timeout))
        try:
            # our own copy: the tensors arrive in memory shared between ranks
            model = copy.deepcopy(model)
            # DDP broadcasts rank 0's parameters: every rank starts equal
            ddp = DistributedDataParallel(model)
            opt = torch.optim.SGD(ddp.parameters(), lr=lr)
            grads = []
            for x, y in batches:
                n = len(x) // world_size
                shard = slice(rank * n, (rank + 1) * n)
                opt.zero_grad()
                # backward all-reduces: every rank gets the average gradient
                loss_fn(ddp(x[shard]), y[shard]).backward()
                grads.append([p.grad.numpy().copy()
                              for p in model.parameters()])
                opt.step()
            params = [p.detach().numpy().copy() for p in model.parameters()]
            results.put(("ok", rank, grads, params))
        finally:
            dist.destroy_process_group()
    except Exception:  # tell the parent now instead of letting it time out
        results.put(("error", rank, traceback.format_exc(), None))


def train_data_parallel(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    *,
    lr: float,
    loss_fn: LossFn = torch.nn.functional.cross_entropy,
    world_size: int = 2,
    timeout: float = 120.0,
) -> ParallelRun:
    """Train a copy of ``model`` with ``DistributedDataParallel`` in
    ``world_size`` separate CPU processes.

    Process r gets the r-th equal shard of every batch in ``batches``,
    computes the gradient of its mean loss, and DDP all-reduces (averages)
    the gradients over the processes — gloo backend, TCP on 127.0.0.1, a free
    port — before every SGD step. Each step therefore equals one step of
    :func:`train_single_process` on the whole batch.

    ``model`` and ``loss_fn`` are pickled into freshly spawned processes: use
    ``torch.nn`` layers and a loss defined in a module (such as
    ``torch.nn.functional.cross_entropy``), not a lambda. The run is bounded
    by ``timeout`` seconds; past it the processes are terminated and
    ``TimeoutError`` is raised.
    """
    import torch.multiprocessing as mp

    if (not isinstance(world_size, int) or isinstance(world_size, bool)
            or world_size < 1):
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    _check_batches(batches, world_size)
    # spawn: a fresh interpreter per process (safe from Jupyter, no forked
    # threads)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    net = copy.deepcopy(model)
    procs = [ctx.Process(target=_ddp_worker, daemon=True,
                         args=(r, world_size, port, net, batches, lr, loss_fn,
                               timeout, results))
             for r in range(world_size)]
    deadline = time.monotonic() + timeout
    for p in procs:
        p.start()
    outputs: dict[int, tuple[Any, Any]] = {}
    try:
        while len(outputs) < world_size:
            try:
                status, rank, payload, params = results.get(timeout=0.2)
            except queue.Empty:
                crashed = [r for r, p in enumerate(procs)
                           if p.exitcode not in (None, 0) and r not in outputs]
                if crashed:  # died before it could report, e.g. at start-up
                    r = crashed[0]
                    raise RuntimeError(
                        f"process rank {r} exited with code "
                        f"{procs[r].exitcode} before reporting") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        "the data-parallel run did not finish within "
                        f"timeout={timeout} s") from None
                continue
            if status != "ok":
                raise RuntimeError(f"process rank {rank} failed:\n{payload}")
            outputs[rank] = (payload, params)
        # everything has arrived: give the processes a moment to exit
        # (tearing down an interpreter with torch loaded takes seconds),
        # then end them below
        grace = time.monotonic() + 2.0
        for p in procs:
            p.join(timeout=max(grace - time.monotonic(), 0.0))
    finally:
        for p in procs:  # only the processes started here
            if p.is_alive():
                p.terminate()
                p.join(5)
    grads0, params0 = outputs[0]
    agree = all(np.array_equal(a, b)
                for r in range(1, world_size)
                for a, b in zip(params0, outputs[r][1], strict=True))
    return ParallelRun([[torch.from_numpy(g) for g in step] for step in grads0],
                       [torch.from_numpy(p) for p in params0], agree)
