"""The training loop, gradient accumulation, gradient-noise measurements and data-parallel training."""

from __future__ import annotations

import dataclasses
import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from dlbook.training import (
    History,
    TrainConfig,
    accumulate_gradients,
    evaluate,
    fit,
    gradients,
    minibatch_gradient_variance,
    per_example_gradients,
    plot_history,
    plot_learning_curves,
    predicted_gradient_variance,
    train_data_parallel,
    train_single_process,
)

matplotlib.use("Agg")


def blobs(n: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs in 4-D: a tiny classification problem a small net learns in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[2.0, 0, 0, 1], [0, 2.0, 0, -1], [0, 0, 2.0, 0]], dtype=torch.float64)
    x = centres[y] + 0.7 * torch.randn(n, 4, generator=g, dtype=torch.float64)
    return x, y


def small_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def loader(x, y, batch_size, seed=0, shuffle=True):
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


# -------------------------------------------------------------------------------------------------- config
def test_config_is_frozen():
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=1.5), "epochs"),
        (dict(lr=0.0), "lr"),
        (dict(lr="0.1"), "lr"),
        (dict(momentum=1.0), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(accumulation_steps=0), "accumulation_steps"),
        (dict(accumulation_steps=True), "accumulation_steps"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


# ----------------------------------------------------------------------------------------------------- fit
def test_fit_reduces_the_loss_and_records_everything():
    x, y = blobs()
    model = small_net()
    before = evaluate(model, loader(x, y, 40, shuffle=False), F.cross_entropy)
    config = TrainConfig(epochs=6, lr=0.2, progress=False)
    history = fit(model, loader(x, y, 16), F.cross_entropy, config, val_loader=loader(x, y, 50, shuffle=False))
    assert isinstance(history, History) and history.config is config
    assert history.steps_per_epoch == math.ceil(120 / 16) == 8
    assert history.steps == 6 * 8 == len(history.step_examples)
    assert history.step_examples[-1] == 6 * 120 and history.step_examples[7] == 120
    assert len(history.epoch_loss) == len(history.val_loss) == len(history.val_accuracy) == 6
    assert history.val_loss[-1] < 0.5 * before["loss"]
    assert history.epoch_loss[-1] < history.epoch_loss[0]
    assert history.val_accuracy[-1] > 0.9 > before["accuracy"]


@pytest.mark.parametrize("batch_size", [1, 7, 16, 120])
def test_equal_epochs_use_every_example_equally_often_whatever_the_batch_size(batch_size):
    """An epoch is one pass: ceil(N/B) iterations that together use each of the N examples exactly once. So at equal
    epochs a large batch sees the very same examples as a small one, only in fewer, averaged steps."""
    x, _ = blobs()
    index = torch.arange(len(x))  # the targets carry each example's index
    seen: list[int] = []

    def recording_loss(out, targets):
        seen.extend(targets.tolist())
        return out.pow(2).mean()

    model = torch.nn.Linear(4, 3).double()
    history = fit(model, loader(x, index, batch_size), recording_loss, TrainConfig(epochs=3, progress=False))
    assert history.steps == 3 * math.ceil(len(x) / batch_size)
    assert np.bincount(seen, minlength=len(x)).tolist() == [3] * len(x)
    seen.clear()
    dropping = DataLoader(TensorDataset(x, index), batch_size=batch_size, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(0))
    fit(model, dropping, recording_loss, TrainConfig(epochs=1, progress=False))
    assert len(seen) == len(x) - len(x) % batch_size == len(set(seen))  # drop_last: the remainder is left out


def test_fit_is_deterministic():
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = small_net(seed=3)
        h = fit(model, loader(x, y, 10, seed=5), F.cross_entropy, TrainConfig(epochs=3, lr=0.1, momentum=0.9,
                                                                                 progress=False))
        runs.append((h.step_loss, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other = small_net(seed=3)
    h = fit(other, loader(x, y, 10, seed=6), F.cross_entropy, TrainConfig(epochs=3, lr=0.1, progress=False))
    assert h.step_loss != runs[0][0]  # a different shuffle gives a different run: the check above can fail


def test_fit_shows_a_progress_bar_unless_disabled(capsys):
    x, y = blobs(30)
    fit(small_net(), loader(x, y, 10), F.cross_entropy, TrainConfig(epochs=2, progress=True))
    assert "6/6" in capsys.readouterr().err  # tqdm writes to stderr outside a notebook
    fit(small_net(), loader(x, y, 10), F.cross_entropy, TrainConfig(epochs=2, progress=False))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("k, small", [(2, 10), (4, 8), (3, 16)])
def test_fit_with_accumulation_equals_the_bigger_batch(k, small):
    x, y = blobs(100)
    # The same seed gives the same permutation whatever the batch size, so k consecutive small batches are
    # exactly one big batch; at the end of an epoch the last group is smaller on both sides.
    a, b = small_net(), small_net()
    ha = fit(a, loader(x, y, small, seed=2), F.cross_entropy,
             TrainConfig(epochs=3, lr=0.3, momentum=0.5, accumulation_steps=k, progress=False))
    hb = fit(b, loader(x, y, small * k, seed=2), F.cross_entropy, TrainConfig(epochs=3, lr=0.3, momentum=0.5,
                                                                                progress=False))
    assert ha.steps_per_epoch == hb.steps_per_epoch == math.ceil(100 / (small * k))
    np.testing.assert_allclose(ha.step_loss, hb.step_loss, rtol=1e-12)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 29), max_size=4, unique=True), seed=st.integers(0, 1000))
def test_accumulate_gradients_equals_one_big_batch(cuts, seed):
    x, y = blobs(30, seed=seed)
    model = small_net(seed)
    edges = [0, *sorted(cuts), 30]
    pieces = [(x[i:j], y[i:j]) for i, j in zip(edges[:-1], edges[1:], strict=True)]  # unequal sizes
    loss = accumulate_gradients(model, F.cross_entropy, pieces)
    small = gradients(model)
    big = accumulate_gradients(model, F.cross_entropy, [(x, y)])
    assert loss == pytest.approx(big, rel=1e-12)
    for a, b in zip(small, gradients(model), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()  # and the big batch is what plain backward gives
    for a, p in zip(small, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-12)


def test_unweighted_accumulation_would_be_wrong():
    """The n_i / N weights matter: summing the micro-batch means of unequal batches is not the big-batch mean."""
    x, y = blobs(30)
    model = small_net()
    accumulate_gradients(model, F.cross_entropy, [(x, y)])
    big = gradients(model)
    model.zero_grad()
    for i, j in [(0, 5), (5, 30)]:
        (F.cross_entropy(model(x[i:j]), y[i:j]) / 2).backward()
    naive = gradients(model)
    assert max(float((a - b).abs().max()) for a, b in zip(big, naive, strict=True)) > 1e-3


def test_evaluate_weights_batches_and_restores_the_mode():
    x, y = blobs(50)
    model = small_net()
    model.train()
    chunked = evaluate(model, loader(x, y, 16, shuffle=False), F.cross_entropy)  # batches of 16, 16, 16, 2
    whole = evaluate(model, [(x, y)], F.cross_entropy)
    assert chunked["loss"] == pytest.approx(whole["loss"], rel=1e-12)
    with torch.no_grad():
        expected = float((model(x).argmax(1) == y).double().mean())
    assert chunked["accuracy"] == pytest.approx(expected)
    assert model.training
    model.eval()
    evaluate(model, [(x, y)], F.cross_entropy)
    assert not model.training


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: fit(lambda x: x, [], F.cross_entropy, TrainConfig()), TypeError, "model"),
        (lambda: fit(small_net(), 3, F.cross_entropy, TrainConfig()), TypeError, "loader"),
        (lambda: fit(small_net(), [], F.cross_entropy, {"lr": 0.1}), TypeError, "config"),
        (lambda: evaluate(small_net(), [], F.cross_entropy), ValueError, "loader"),
        (lambda: accumulate_gradients(small_net(), F.cross_entropy, []), ValueError, "batches"),
    ],
)
def test_bad_arguments_name_the_parameter(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------------------------------- plots
def test_plots_return_figures_and_check_their_arguments():
    x, y = blobs(40)
    histories = {}
    for b in (8, 20):
        histories[f"B={b}"] = fit(small_net(), loader(x, y, b), F.cross_entropy,
                                  TrainConfig(epochs=2, progress=False), val_loader=[(x, y)])
    fig = plot_history(histories["B=8"], title="t")
    assert len(fig.axes) == 3 and len(fig.axes[0].lines[0].get_xdata()) == 10
    for axis in ("epoch", "step", "examples"):
        fig = plot_learning_curves(histories, x=axis, highlight="B=20")
        xs = fig.axes[0].lines[-1].get_xdata()
        assert list(xs) == {"epoch": [1, 2], "step": [2, 4], "examples": [40, 80]}[axis]
    with pytest.raises(ValueError, match="x"):
        plot_learning_curves(histories, x="time")
    with pytest.raises(ValueError, match="metric"):
        plot_learning_curves(histories, metric="accuracy")
    with pytest.raises(ValueError, match="highlight"):
        plot_learning_curves(histories, highlight="B=3")


# ------------------------------------------------------------------------------------------ gradient noise
def test_per_example_gradients_are_the_pieces_of_the_batch_gradient():
    x, y = blobs(20)
    model = small_net()
    per = per_example_gradients(model, F.cross_entropy, x, y)  # (N, P)
    n_params = sum(p.numel() for p in model.parameters())
    assert per.shape == (20, n_params)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    full = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(per.mean(0), full, rtol=1e-10, atol=1e-12)
    model.zero_grad()
    F.cross_entropy(model(x[3:4]), y[3:4]).backward()
    torch.testing.assert_close(per[3], torch.cat([p.grad.flatten() for p in model.parameters()]))


def test_gradient_variance_follows_the_one_over_b_law():
    x, y = blobs(60)
    per = per_example_gradients(small_net(), F.cross_entropy, x, y)
    sizes = [1, 2, 4, 8, 15, 30, 60]
    measured = minibatch_gradient_variance(per, sizes, draws=3000, generator=torch.Generator().manual_seed(0))
    predicted = predicted_gradient_variance(per, sizes)
    assert predicted[60] == 0.0 and measured[60] < 1e-25  # the whole data set: no noise at all
    for b in sizes[:-1]:
        assert measured[b] == pytest.approx(predicted[b], rel=0.1), b
    assert predicted[2] == pytest.approx(predicted[1] / 2 * (58 / 59), rel=1e-12)


def test_gradient_variance_rejects_bad_arguments():
    per = torch.zeros(10, 3)
    with pytest.raises(ValueError, match="batch_sizes"):
        predicted_gradient_variance(per, [0])
    with pytest.raises(ValueError, match="batch_sizes"):
        minibatch_gradient_variance(per, [11], draws=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="draws"):
        minibatch_gradient_variance(per, [1], draws=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="per_example"):
        predicted_gradient_variance(torch.zeros(10), [1])


# ------------------------------------------------------------------------------------------- data parallel
def _parallel_batches():
    x, y = blobs(48, seed=1)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]


@pytest.mark.timeout(240)
def test_data_parallel_equals_one_process_on_the_combined_batch():
    model = small_net(seed=4)
    batches = _parallel_batches()
    before = [p.detach().clone() for p in model.parameters()]
    ddp = train_data_parallel(model, batches, lr=0.5, world_size=2, timeout=180)
    one = train_single_process(model, batches, lr=0.5)
    assert ddp.ranks_agree
    assert len(ddp.gradients) == len(one.gradients) == 3
    for step_ddp, step_one in zip(ddp.gradients, one.gradients, strict=True):
        for a, b in zip(step_ddp, step_one, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(ddp.parameters, one.parameters, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert not torch.equal(one.parameters[0], before[0])  # the runs trained: the comparison is not trivial
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))  # caller's model untouched


@pytest.mark.timeout(60)
def test_data_parallel_run_is_bounded_in_time():
    with pytest.raises(TimeoutError, match="timeout"):
        train_data_parallel(small_net(), _parallel_batches(), lr=0.1, timeout=0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(world_size=0), "world_size"),
        (dict(world_size=5), "world_size"),  # 16 examples do not split evenly into 5
        (dict(lr=0.0), "lr"),
        (dict(timeout=0), "timeout"),
    ],
)
def test_data_parallel_rejects_bad_arguments(kwargs, match):
    args = dict(lr=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        train_data_parallel(small_net(), _parallel_batches(), **args)


def test_single_process_rejects_empty_batches():
    with pytest.raises(ValueError, match="batches"):
        train_single_process(small_net(), [], lr=0.1)
