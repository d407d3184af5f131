"""Training (训练): the training loop, epochs, gradient accumulation, gradient noise and data parallelism.

Chapter: ``book/training/batch-size-epochs.ipynb``.

Mini-batch stochastic gradient descent (小批量随机梯度下降) updates the parameters θ with the gradient of the
mean loss over a batch (批) of B examples,

.. math::

    \\theta \\leftarrow \\theta - \\eta\\, \\hat g_B, \\qquad
    \\hat g_B = \\frac{1}{B} \\sum_{i \\in \\text{batch}} \\nabla_\\theta \\ell_i(\\theta),

an unbiased estimate of the full gradient ``g = (1/N) Σ_i ∇ℓ_i`` whose variance falls as 1/B. One iteration
(迭代), or step (步), is one parameter update from one mini-batch; one epoch (轮次) is one pass over the batches:
``ceil(N / B)`` iterations (``floor(N / B)`` with ``drop_last=True``).

* :func:`train` is the book's one training loop: every chapter passes in what differs — the batches, a loss
  function of ``(model, batch)``, the optimiser, an optional evaluation — and gets a :class:`History` back.
  :class:`ShuffledBatches` is a seeded batch source for a tensor of examples; :func:`evaluate` measures loss and
  accuracy. (The drawings of histories live in :mod:`dlbook.plotting`.)
* :func:`accumulate_gradients` adds up the gradients of several small batches so that one optimiser step equals
  the step of their union.
* :func:`per_example_gradients`, :func:`minibatch_gradient_variance` and :func:`predicted_gradient_variance`
  measure the noise of the gradient estimate against B.
* :func:`simulate_data_parallel` shows what data parallelism computes, in one process;
  :func:`train_data_parallel` runs ``DistributedDataParallel`` in separate processes (gloo backend, 127.0.0.1);
  :func:`train_single_process` is their one-process twin on the whole batches.
"""

from __future__ import annotations

import copy
import itertools
import math
import queue
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch

from dlbook._checks import check_tensor, number, positive_int

__all__ = [
    "History",
    "ShuffledBatches",
    "train",
    "classification_loss",
    "evaluate",
    "accumulate_gradients",
    "gradients",
    "per_example_gradients",
    "minibatch_gradient_variance",
    "predicted_gradient_variance",
    "ParallelRun",
    "simulate_data_parallel",
    "train_single_process",
    "train_data_parallel",
]

Batch = Any  # an (inputs, targets) pair, or a tensor of examples: whatever the loss function takes
# the loss of a batch; or (loss, parts): named terms of it to record, such as {"kl": ...}
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor | tuple[torch.Tensor, dict[str, Any]]]


@dataclass
class History:
    """What :func:`train` measured.

    Per optimiser step: ``step_loss`` (mean training loss of the step's examples) and ``step_examples``
    (examples seen so far). Per epoch: ``epoch_steps`` (steps done by its end) and ``metrics[name]`` for
    ``"loss"`` (mean training loss over the epoch, measured while training), each named part the loss function
    returned, and each value the evaluation returned (e.g. ``"val_loss"``). ``history[name]`` is
    ``history.metrics[name]``.
    """

    step_loss: list[float] = field(default_factory=list)
    step_examples: list[int] = field(default_factory=list)
    epoch_steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.step_loss)

    def __getitem__(self, name: str) -> list[float]:
        return self.metrics[name]


@dataclass(frozen=True)
class ShuffledBatches:
    """The rows of ``data`` (N, ...) in batches of ``batch_size``, in a new random order from ``generator`` at
    every pass — an epoch of a ``DataLoader`` with ``shuffle=True``, for a tensor held in memory."""

    data: torch.Tensor
    batch_size: int
    generator: torch.Generator

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.data), generator=self.generator)  # drawn when the epoch starts
        return (self.data[idx] for idx in order.split(self.batch_size))


def classification_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of ``model(inputs)`` (B, K) against integer ``targets`` (B,): the loss of a classifier."""
    inputs, targets = batch
    return torch.nn.functional.cross_entropy(model(inputs), targets)


def _examples(batch: Batch) -> int:
    """How many examples a batch holds: the length of its inputs."""
    return len(batch[0]) if isinstance(batch, tuple | list) else len(batch)


def accumulate_gradients(model: torch.nn.Module, loss_fn: LossFn, batches: Sequence[Batch]) -> dict[str, float]:
    """Set ``p.grad`` of every parameter to the gradient of the mean loss over the union of ``batches``; return
    that mean loss (``"loss"``) and the means of the named parts ``loss_fn`` returned.

    Each batch runs forward and backward on its own, so memory holds one batch at a time. Its loss is weighted by
    ``n_i / N`` (its share of the N examples) and ``backward`` adds the gradients up. For a loss that averages over
    the batch (PyTorch's default) this is exactly the gradient of one big batch.
    """
    if not batches:
        raise ValueError("batches must hold at least one batch")
    sizes = [_examples(batch) for batch in batches]
    model.zero_grad(set_to_none=True)
    means: dict[str, float] = {}
    for batch, n in zip(batches, sizes, strict=True):
        out = loss_fn(model, batch)
        loss, parts = out if isinstance(out, tuple) else (out, {})
        share = n / sum(sizes)  # this batch's share of the big batch's mean
        (loss * share).backward()  # adds to p.grad
        for name, value in {"loss": loss, **parts}.items():
            means[name] = means.get(name, 0.0) + float(torch.as_tensor(value).detach()) * share
    return means


def train(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    accumulation_steps: int = 1,
    progress: bool = False,
) -> History:
    """Train ``model`` in place for ``epochs`` passes over ``batches``; return the :class:`History`.

    ``batches`` is iterated once per epoch: a ``DataLoader`` with ``shuffle=True`` and a seeded ``generator``
    (or a :class:`ShuffledBatches`) draws a new order each time, and a run repeats exactly. Each optimiser step
    uses ``accumulation_steps`` consecutive batches (:func:`accumulate_gradients`); ``loss_fn(model, batch)``
    gives the loss, or ``(loss, parts)`` with named terms to record. After each epoch ``evaluate(model)`` may
    measure more (its dict goes into the history). The model is left in ``eval()`` mode.
    """
    from tqdm.auto import tqdm

    epochs, k = positive_int(epochs, "epochs"), positive_int(accumulation_steps, "accumulation_steps")
    per_epoch = math.ceil(len(batches) / k) if hasattr(batches, "__len__") else 0  # 0: unknown
    history, seen = History(), 0
    bar = tqdm(total=epochs * per_epoch or None, unit="step", desc="training", disable=not progress)
    for _epoch in range(epochs):
        model.train()
        source, sums, count = iter(batches), {}, 0
        # the next k batches make one optimiser step
        while group := list(itertools.islice(source, k)):
            means = accumulate_gradients(model, loss_fn, group)
            optimizer.step()
            n = sum(map(_examples, group))
            seen, count = seen + n, count + n
            for name, value in means.items():
                sums[name] = sums.get(name, 0.0) + value * n
            history.step_loss.append(means["loss"])
            history.step_examples.append(seen)
            bar.update(1)
        history.epoch_steps.append(history.steps)
        measured = {name: total / max(count, 1) for name, total in sums.items()}
        measured |= evaluate(model) if evaluate is not None else {}
        for name, value in measured.items():
            history.metrics.setdefault(name, []).append(value)
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, float]:
    """Mean loss and accuracy (argmax of the outputs against integer targets) of ``model`` over ``loader``.

    Runs in ``eval`` mode without gradients and puts the model back in the mode it was in. Each batch's loss is
    weighted by its size, so a smaller last batch counts for what it holds.
    """
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    try:
        for x, y in loader:
            out = model(x)  # (B, K)
            loss_sum += float(loss_fn(out, y)) * len(x)
            correct += int((out.argmax(dim=1) == y).sum())
            count += len(x)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no examples")
    return {"loss": loss_sum / count, "accuracy": correct / count}


def gradients(model: torch.nn.Module) -> list[torch.Tensor]:
    """A copy of every parameter's ``.grad`` (zeros where there is none), in ``model.parameters()`` order."""
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


# ------------------------------------------------------------------------------------------ gradient noise
def per_example_gradients(model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                          inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The gradient of each example's loss on its own, flattened: (N, P), with P the number of parameters.

    ``torch.func``: ``vmap`` runs ``grad`` of the one-example loss ``loss_fn(outputs, targets)`` over the batch
    axis. The mean of the rows is the gradient of the mean loss.
    """
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters()}

    def one_loss(p, x, y):
        out = functional_call(model, p, (x.unsqueeze(0),))  # (1, K)
        return loss_fn(out, y.unsqueeze(0))

    per = vmap(grad(one_loss), in_dims=(None, 0, 0))(params, inputs, targets)
    N = len(inputs)
    return torch.cat([g.reshape(N, -1) for g in per.values()], dim=1)


def _batch_sizes(batch_sizes: Sequence[int], n: int) -> list[int]:
    sizes = [positive_int(b, "batch_sizes") for b in batch_sizes]
    if max(sizes, default=1) > n:
        raise ValueError(f"batch_sizes must hold ints in [1, {n}], got {sizes}")
    return sizes


def minibatch_gradient_variance(per_example: torch.Tensor, batch_sizes: Sequence[int], *, draws: int,
                                generator: torch.Generator) -> dict[int, float]:
    """Measured E‖ĝ_B − g‖² for each B: the mean, over ``draws`` random batches, of the squared distance between
    the batch gradient and the full gradient.

    ``per_example`` is (N, P) from :func:`per_example_gradients`; a batch gradient is the mean of its rows. Draw
    d takes the first B examples of its own random permutation (without replacement, as an epoch does).
    """
    N = check_tensor(per_example, "per_example", (2,)).shape[0]
    draws = positive_int(draws, "draws")
    full = per_example.mean(dim=0)  # (P,)
    # one random permutation of the N examples per draw: (draws, N)
    order = torch.rand(draws, N, generator=generator).argsort(dim=1)
    out = {}
    for b in _batch_sizes(batch_sizes, N):
        # weights 1/b on each draw's first b examples: (draws, N)
        pick = torch.zeros(draws, N, dtype=per_example.dtype)
        pick.scatter_(1, order[:, :b], 1.0 / b)
        batch_grads = pick @ per_example  # (draws, P)
        out[b] = float(((batch_grads - full) ** 2).sum(dim=1).mean())
    return out


def predicted_gradient_variance(per_example: torch.Tensor, batch_sizes: Sequence[int]) -> dict[int, float]:
    """The exact E‖ĝ_B − g‖² for batches drawn without replacement from N examples:

    .. math:: \\frac{\\operatorname{tr}\\Sigma}{B}\\cdot\\frac{N - B}{N - 1}, \\qquad
        \\operatorname{tr}\\Sigma = \\frac{1}{N}\\sum_i \\lVert g_i - g\\rVert^2.

    The 1/B law, with the finite-population factor that makes it 0 at B = N (the whole data set has no sampling
    noise).
    """
    N = check_tensor(per_example, "per_example", (2,)).shape[0]
    centred = per_example - per_example.mean(dim=0)  # (N, P)
    trace = float((centred**2).sum(dim=1).mean())
    return {b: trace / b * (N - b) / max(N - 1, 1) for b in _batch_sizes(batch_sizes, N)}


# ------------------------------------------------------------------------------------------- data parallel
@dataclass(frozen=True)
class ParallelRun:
    """The result of :func:`simulate_data_parallel`, :func:`train_data_parallel` or :func:`train_single_process`.

    ``gradients[t]`` holds the gradient of every parameter used at step t (in a data-parallel run: after the
    all-reduce, as replica 0 saw it); ``parameters`` the parameters after the last step; ``ranks_agree`` whether
    every replica ended with identical parameters.
    """

    gradients: list[list[torch.Tensor]]
    parameters: list[torch.Tensor]
    ranks_agree: bool = True


def _check_batches(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], world_size: int) -> None:
    uneven = [t for t, (x, y) in enumerate(batches) if len(x) != len(y) or len(x) % world_size]
    if not batches or uneven:
        raise ValueError(f"batches must be non-empty pairs split evenly by world_size={world_size}; uneven: {uneven}")


def train_single_process(model: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                         lr: float, loss_fn=torch.nn.functional.cross_entropy) -> ParallelRun:
    """Plain SGD on a copy of ``model``, one step per whole batch: what a data-parallel run must reproduce."""
    number(lr, "lr", minimum=0.0, strict=True)
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


def simulate_data_parallel(model: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                           lr: float, world_size: int = 2,
                           loss_fn=torch.nn.functional.cross_entropy) -> ParallelRun:
    """What data-parallel SGD computes, simulated in one process: ``world_size`` replicas of ``model``, each
    with its own equal shard of every batch; an all-reduce replaces every replica's gradient by the mean of
    all of them; each replica then takes the same SGD step."""
    _check_batches(batches, world_size)
    replicas = [copy.deepcopy(model) for _ in range(world_size)]  # identical copies
    optimizers = [torch.optim.SGD(r.parameters(), lr=lr) for r in replicas]
    steps = []
    for x, y in batches:
        local = []  # each replica's gradient on its own shard
        for replica, xs, ys in zip(replicas, x.chunk(world_size), y.chunk(world_size), strict=True):
            replica.zero_grad()
            loss_fn(replica(xs), ys).backward()
            local.append(gradients(replica))
        # all-reduce: the mean over the replicas, the same on every one
        mean = [torch.stack(per_replica).mean(dim=0) for per_replica in zip(*local, strict=True)]
        for replica, opt in zip(replicas, optimizers, strict=True):
            for p, g in zip(replica.parameters(), mean, strict=True):
                p.grad = g.clone()
            opt.step()
        steps.append(mean)
    first = [p.detach().clone() for p in replicas[0].parameters()]
    agree = all(torch.equal(p, q) for r in replicas[1:] for p, q in zip(first, r.parameters(), strict=True))
    return ParallelRun(steps, first, agree)


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, model: torch.nn.Module, batches, lr: float, loss_fn,
                timeout: float, results: Any) -> None:
    """One process of :func:`train_data_parallel`: SGD with DDP on this rank's shard of every batch; the results
    go back through ``results``."""
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    # this process only: talk over the loopback interface, one thread each
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
        try:
            model = copy.deepcopy(model)  # our own copy: the tensors arrive in memory shared between ranks
            ddp = DistributedDataParallel(model)  # broadcasts rank 0's parameters: every rank starts equal
            opt = torch.optim.SGD(ddp.parameters(), lr=lr)
            grads = []
            for x, y in batches:
                opt.zero_grad()
                # backward all-reduces: every rank gets the average gradient
                loss_fn(ddp(x.chunk(world_size)[rank]), y.chunk(world_size)[rank]).backward()
                grads.append([p.grad.numpy().copy() for p in model.parameters()])
                opt.step()
            results.put(("ok", rank, grads, [p.detach().numpy().copy() for p in model.parameters()]))
        finally:
            dist.destroy_process_group()
    except Exception:  # tell the parent now instead of letting it time out
        results.put(("error", rank, traceback.format_exc(), None))


def _collect(procs: list, results: Any, timeout: float) -> dict[int, tuple[Any, Any]]:
    """Wait for every process's ``(gradients, parameters)``; raise if one fails, dies or the time runs out."""
    deadline = time.monotonic() + timeout
    outputs: dict[int, tuple[Any, Any]] = {}
    while len(outputs) < len(procs):
        try:
            status, rank, payload, params = results.get(timeout=0.2)
        except queue.Empty:
            crashed = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0) and r not in outputs]
            if crashed:  # died before it could report, e.g. at start-up
                raise RuntimeError(f"process rank {crashed[0]} exited with code {procs[crashed[0]].exitcode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the data-parallel run did not finish within timeout={timeout} s") from None
            continue
        if status != "ok":
            raise RuntimeError(f"process rank {rank} failed:\n{payload}")
        outputs[rank] = (payload, params)
    return outputs


def _stop(procs: list) -> None:
    """Give the processes a moment to exit (tearing down an interpreter with torch loaded takes seconds), then
    end those still alive — only the processes started here."""
    grace = time.monotonic() + 2.0
    for p in procs:
        p.join(timeout=max(grace - time.monotonic(), 0.0))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(5)


def train_data_parallel(model: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                        lr: float, loss_fn=torch.nn.functional.cross_entropy, world_size: int = 2,
                        timeout: float = 120.0) -> ParallelRun:
    """Train a copy of ``model`` with ``DistributedDataParallel`` in ``world_size`` separate CPU processes:
    :func:`simulate_data_parallel` for real.

    Process r gets the r-th equal shard of every batch, computes the gradient of its mean loss, and DDP
    all-reduces (averages) the gradients over the processes — gloo backend, TCP on 127.0.0.1, a free port —
    before every SGD step. ``model`` and ``loss_fn`` are pickled into freshly spawned processes: use
    ``torch.nn`` layers and a loss defined in a module (such as ``torch.nn.functional.cross_entropy``), not a
    lambda. Past ``timeout`` seconds the processes are terminated and ``TimeoutError`` is raised.
    """
    import torch.multiprocessing as mp

    world_size = positive_int(world_size, "world_size")
    number(lr, "lr", minimum=0.0, strict=True)
    number(timeout, "timeout", minimum=0.0, strict=True)
    _check_batches(batches, world_size)
    ctx = mp.get_context("spawn")  # a fresh interpreter per process: safe from Jupyter, no forked threads
    results = ctx.Queue()
    args = (world_size, _free_port(), copy.deepcopy(model), batches, lr, loss_fn, timeout, results)
    procs = [ctx.Process(target=_ddp_worker, args=(rank, *args), daemon=True) for rank in range(world_size)]
    for p in procs:
        p.start()
    try:
        outputs = _collect(procs, results, timeout)
    finally:
        _stop(procs)
    grads0, params0 = outputs[0]
    agree = all(np.array_equal(a, b) for r in range(1, world_size) for a, b in zip(params0, outputs[r][1],
                                                                                    strict=True))
    return ParallelRun([[torch.from_numpy(g) for g in step] for step in grads0],
                       [torch.from_numpy(p) for p in params0], agree)
