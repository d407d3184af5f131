"""The training loop, gradient accumulation, gradient-noise measurements and data-parallel training."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from dlbook.plotting import plot_history, plot_learning_curves
from dlbook.training import (
    History,
    ShuffledBatches,
    accumulate_gradients,
    classification_loss,
    evaluate,
    gradients,
    minibatch_gradient_variance,
    per_example_gradients,
    predicted_gradient_variance,
    simulate_data_parallel,
    train,
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


def fit(model, batches, epochs, lr=0.1, momentum=0.0, **kwargs):
    """The loop with plain SGD and the cross-entropy of a classifier, as the chapter runs it."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return train(model, batches, classification_loss, optimizer, epochs=epochs, **kwargs)


def validation(data):
    def measure(model):
        result = evaluate(model, data, F.cross_entropy)
        return {"val_loss": result["loss"], "val_accuracy": result["accuracy"]}
    return measure


# ------------------------------------------------------------------------------------------------ the loop
def test_train_reduces_the_loss_and_records_everything():
    x, y = blobs()
    model = small_net()
    before = evaluate(model, loader(x, y, 40, shuffle=False), F.cross_entropy)
    history = fit(model, loader(x, y, 16), epochs=6, lr=0.2, evaluate=validation(loader(x, y, 50, shuffle=False)))
    assert isinstance(history, History)
    assert history.epoch_steps == [8 * e for e in range(1, 7)] and 8 == math.ceil(120 / 16)
    assert history.steps == 6 * 8 == len(history.step_examples)
    assert history.step_examples[-1] == 6 * 120 and history.step_examples[7] == 120
    assert set(history.metrics) == {"loss", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == len(history["val_loss"]) == len(history["val_accuracy"]) == 6
    assert history["val_loss"][-1] < 0.5 * before["loss"]
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9 > before["accuracy"]
    assert not model.training  # left in eval mode


def test_the_epoch_loss_is_the_mean_of_the_step_losses_weighted_by_batch_size():
    x, y = blobs(50)
    history = fit(small_net(), loader(x, y, 16), epochs=2)  # batches of 16, 16, 16, 2
    weights = np.array([16, 16, 16, 2] * 2, dtype=float)
    per_step = np.array(history.step_loss) * weights
    np.testing.assert_allclose(history["loss"], [per_step[:4].sum() / 50, per_step[4:].sum() / 50], rtol=1e-12)


def test_named_parts_of_the_loss_are_recorded_per_epoch():
    x, y = blobs(40)

    def loss_with_parts(model, batch):
        data = classification_loss(model, batch)
        penalty = 0.01 * sum(p.pow(2).sum() for p in model.parameters())
        return data + penalty, {"data": data, "penalty": penalty}

    model = small_net()
    history = train(model, loader(x, y, 10), loss_with_parts, torch.optim.SGD(model.parameters(), lr=0.1), epochs=3)
    assert set(history.metrics) == {"loss", "data", "penalty"}
    np.testing.assert_allclose(history["loss"], np.add(history["data"], history["penalty"]), rtol=1e-12)
    assert min(history["penalty"]) > 0


@pytest.mark.parametrize("batch_size", [1, 7, 16, 120])
def test_equal_epochs_use_every_example_equally_often_whatever_the_batch_size(batch_size):
    """An epoch is one pass: ceil(N/B) iterations that together use each of the N examples exactly once. So at equal
    epochs a large batch sees the very same examples as a small one, only in fewer, averaged steps."""
    x, _ = blobs()
    index = torch.arange(len(x))  # the targets carry each example's index
    seen: list[int] = []

    def recording_loss(model, batch):
        inputs, targets = batch
        seen.extend(targets.tolist())
        return model(inputs).pow(2).mean()

    model = torch.nn.Linear(4, 3).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train(model, loader(x, index, batch_size), recording_loss, optimizer, epochs=3)
    assert history.steps == 3 * math.ceil(len(x) / batch_size)
    assert np.bincount(seen, minlength=len(x)).tolist() == [3] * len(x)
    seen.clear()
    dropping = DataLoader(TensorDataset(x, index), batch_size=batch_size, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(0))
    train(model, dropping, recording_loss, optimizer, epochs=1)
    assert len(seen) == len(x) - len(x) % batch_size == len(set(seen))  # drop_last: the remainder is left out


def test_train_is_deterministic():
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = small_net(seed=3)
        h = fit(model, loader(x, y, 10, seed=5), epochs=3, lr=0.1, momentum=0.9)
        runs.append((h.step_loss, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    h = fit(small_net(seed=3), loader(x, y, 10, seed=6), epochs=3, lr=0.1)
    assert h.step_loss != runs[0][0]  # a different shuffle gives a different run: the check above can fail


def test_shuffled_batches_draw_a_new_order_every_pass_from_their_generator():
    data = torch.arange(10)
    batches = ShuffledBatches(data, 4, torch.Generator().manual_seed(0))
    first, second = list(batches), list(batches)
    assert len(batches) == 3 and [len(b) for b in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10)) == sorted(torch.cat(second).tolist())
    assert not torch.equal(torch.cat(first), torch.cat(second))
    again = ShuffledBatches(data, 4, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(list(again)), torch.cat(first))  # the same seed, the same order


def test_train_shows_a_progress_bar_only_when_asked(capsys):
    x, y = blobs(30)
    fit(small_net(), loader(x, y, 10), epochs=2, progress=True)
    assert "6/6" in capsys.readouterr().err  # tqdm writes to stderr outside a notebook
    fit(small_net(), loader(x, y, 10), epochs=2)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("k, small", [(2, 10), (4, 8), (3, 16)])
def test_train_with_accumulation_equals_the_bigger_batch(k, small):
    x, y = blobs(100)
    # The same seed gives the same permutation whatever the batch size, so k consecutive small batches are
    # exactly one big batch; at the end of an epoch the last group is smaller on both sides.
    a, b = small_net(), small_net()
    ha = fit(a, loader(x, y, small, seed=2), epochs=3, lr=0.3, momentum=0.5, accumulation_steps=k)
    hb = fit(b, loader(x, y, small * k, seed=2), epochs=3, lr=0.3, momentum=0.5)
    assert ha.epoch_steps == hb.epoch_steps == [e * math.ceil(100 / (small * k)) for e in (1, 2, 3)]
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
    loss = accumulate_gradients(model, classification_loss, pieces)["loss"]
    small = gradients(model)
    big = accumulate_gradients(model, classification_loss, [(x, y)])["loss"]
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
    accumulate_gradients(model, classification_loss, [(x, y)])
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
        (lambda: fit(small_net(), [], epochs=0), ValueError, "epochs"),
        (lambda: fit(small_net(), [], epochs=1.5), TypeError, "epochs"),
        (lambda: fit(small_net(), [], epochs=1, accumulation_steps=0), ValueError, "accumulation_steps"),
        (lambda: fit(small_net(), [], epochs=1, accumulation_steps=True), TypeError, "accumulation_steps"),
        (lambda: evaluate(small_net(), [], F.cross_entropy), ValueError, "loader"),
        (lambda: accumulate_gradients(small_net(), classification_loss, []), ValueError, "batches"),
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
        histories[f"B={b}"] = fit(small_net(), loader(x, y, b), epochs=2, evaluate=validation([(x, y)]))
    fig = plot_history(histories["B=8"], title="t")
    assert len(fig.axes) == 3 and len(fig.axes[0].lines[0].get_xdata()) == 10 and len(fig.axes[1].lines) == 2
    for axis in ("epoch", "step", "examples"):
        fig = plot_learning_curves(histories, x=axis, highlight="B=20")
        xs = fig.axes[0].lines[-1].get_xdata()
        assert list(xs) == {"epoch": [1, 2], "step": [2, 4], "examples": [40, 80]}[axis]
    with pytest.raises(ValueError, match="x"):
        plot_learning_curves(histories, x="time")
    with pytest.raises(ValueError, match="metric"):
        plot_learning_curves(histories, metric="accuracy")  # the histories hold "val_accuracy"
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
    simulated = simulate_data_parallel(model, batches, lr=0.5, world_size=2)
    assert ddp.ranks_agree
    for step_ddp, step_sim in zip(ddp.gradients, simulated.gradients, strict=True):
        for a, b in zip(step_ddp, step_sim, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert len(ddp.gradients) == len(one.gradients) == 3
    for step_ddp, step_one in zip(ddp.gradients, one.gradients, strict=True):
        for a, b in zip(step_ddp, step_one, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(ddp.parameters, one.parameters, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert not torch.equal(one.parameters[0], before[0])  # the runs trained: the comparison is not trivial
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))  # caller's model untouched


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_simulated_data_parallel_equals_one_process_on_the_whole_batch(world_size):
    model = small_net(seed=4)
    batches = _parallel_batches()
    simulated = simulate_data_parallel(model, batches, lr=0.5, world_size=world_size)
    one = train_single_process(model, batches, lr=0.5)
    assert simulated.ranks_agree and len(simulated.gradients) == 3
    for step_sim, step_one in zip(simulated.gradients, one.gradients, strict=True):
        for a, b in zip(step_sim, step_one, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(simulated.parameters, one.parameters, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the all-reduce is what makes it so: one shard's own gradient is not the whole batch's
    x, y = batches[0]
    shard = small_net(seed=4)
    F.cross_entropy(shard(x[:8]), y[:8]).backward()
    assert not torch.allclose(shard[0].weight.grad, one.gradients[0][0])


def test_simulated_data_parallel_needs_equal_shards():
    with pytest.raises(ValueError, match="world_size"):
        simulate_data_parallel(small_net(), _parallel_batches(), lr=0.1, world_size=3)


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
