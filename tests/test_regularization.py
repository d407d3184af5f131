"""dlbook.regularization against PyTorch (optimisers, clip_grad_norm_, softshrink, dropout) and scikit-learn
(ridge, lasso), in float64: values and gradients, parametrized and hypothesis-generated cases, bad arguments."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Lasso, Ridge

from dlbook.regularization import (
    AdamState,
    Dropout,
    EarlyStop,
    adam_init,
    adam_step,
    apply_dropout_mask,
    clip_grad_norm_,
    clip_gradients,
    double_backprop_penalty,
    dropout,
    dropout_mask,
    early_stopping,
    fit_full_batch,
    get_total_norm,
    input_gradient_penalty,
    l1_penalty,
    l1_proximal_step,
    l2_penalty,
    lasso_regression,
    legendre_features,
    ridge_regression,
    sgd_step_with_l2,
    sgd_step_with_weight_decay,
    soft_threshold,
)
from tensors import randn64

D64 = torch.float64
TIGHT = dict(rtol=1e-12, atol=1e-12)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _regression(seed=0, n=24, d_in=5, d_out=3):
    g = _gen(seed)
    x = torch.randn(n, d_in, generator=g, dtype=D64)
    y = torch.randn(n, d_out, generator=g, dtype=D64)
    torch.manual_seed(seed)
    model = torch.nn.Linear(d_in, d_out).double()
    return model, x, y


def _loss_and_grads(model, params, x, y):
    """The MSE of ``model`` with its parameters replaced by ``params``, and the gradients (functional call)."""
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    names = [n for n, _ in model.named_parameters()]
    out = torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (x,))
    loss = F.mse_loss(out, y)
    return loss, list(torch.autograd.grad(loss, ps))


# ==================================================================================================== penalties
@pytest.mark.parametrize("strength", [0.0, 0.1, 3.0])
def test_l2_penalty_value_and_gradient(strength):
    ps = [randn64(3, 4, seed=1), randn64(5, seed=2)]
    pen = l2_penalty(ps, strength)
    expected = strength / 2 * sum(float((p.detach() ** 2).sum()) for p in ps)
    assert math.isclose(float(pen.detach()), expected, rel_tol=1e-13, abs_tol=1e-15)
    grads = torch.autograd.grad(pen, ps)
    for p, gr in zip(ps, grads, strict=True):
        torch.testing.assert_close(gr, strength * p.detach(), **TIGHT)  # d/dw λ/2·||w||² = λ·w


@pytest.mark.parametrize("strength", [0.0, 0.1, 3.0])
def test_l1_penalty_value_and_gradient(strength):
    ps = [randn64(4, 2, seed=3), randn64(7, seed=4)]
    pen = l1_penalty(ps, strength)
    expected = strength * sum(float(p.detach().abs().sum()) for p in ps)
    assert math.isclose(float(pen.detach()), expected, rel_tol=1e-13, abs_tol=1e-15)
    for p, gr in zip(ps, torch.autograd.grad(pen, ps), strict=True):
        torch.testing.assert_close(gr, strength * torch.sign(p.detach()), **TIGHT)


def test_penalties_gradcheck_and_module_parameters():
    g = _gen(3)
    w = torch.randn(3, 3, generator=g, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: l2_penalty([t], 0.7), (w,))
    # away from 0, |w| is smooth: shift the entries away from the kink
    w1 = (torch.rand(3, 3, generator=g, dtype=D64) + 0.1) * torch.tensor([1.0, -1.0, 1.0], dtype=D64)
    assert torch.autograd.gradcheck(lambda t: l1_penalty([t], 0.7), (w1.requires_grad_(True),))
    layer = torch.nn.Linear(4, 2).double()
    pen = l2_penalty(layer.parameters(), 2.0)
    expected = float(layer.weight.detach().pow(2).sum() + layer.bias.detach().pow(2).sum())
    assert math.isclose(float(pen.detach()), expected, rel_tol=1e-13)
    assert float(l2_penalty(layer.weight, 2.0).detach()) == pytest.approx(float(layer.weight.detach().pow(2).sum()))


def test_penalties_of_nothing_are_zero():
    assert float(l2_penalty([], 1.0)) == 0.0
    assert float(l1_penalty([], 1.0)) == 0.0


@pytest.mark.parametrize("fn", [l2_penalty, l1_penalty])
def test_penalties_reject_bad_arguments(fn):
    w = [torch.ones(2, dtype=D64)]
    with pytest.raises(ValueError, match="strength"):
        fn(w, -0.1)
    with pytest.raises(ValueError, match="strength"):
        fn(w, float("nan"))
    with pytest.raises(TypeError, match="strength"):
        fn(w, "0.1")
    with pytest.raises(TypeError, match="parameters"):
        fn([torch.ones(2, dtype=torch.int64)], 0.1)
    with pytest.raises(TypeError, match="parameters"):
        fn([1.0, 2.0], 0.1)


# ==================================================================================================== SGD
@pytest.mark.parametrize("lr,weight_decay", list(itertools.product([0.01, 0.2], [0.0, 0.05, 1.0])))
def test_l2_penalty_under_sgd_is_weight_decay_step_for_step(lr, weight_decay):
    model, x, y = _regression(seed=4)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    opt_decay = torch.optim.SGD(a.parameters(), lr=lr, weight_decay=weight_decay)
    opt_plain = torch.optim.SGD(b.parameters(), lr=lr)
    ours_l2 = [p.detach().clone() for p in model.parameters()]
    ours_wd = [p.detach().clone() for p in model.parameters()]
    for _ in range(15):
        opt_decay.zero_grad()
        F.mse_loss(a(x), y).backward()
        opt_decay.step()
        opt_plain.zero_grad()
        (F.mse_loss(b(x), y) + l2_penalty(b.parameters(), weight_decay)).backward()
        opt_plain.step()
        _, g_l2 = _loss_and_grads(model, ours_l2, x, y)
        ours_l2 = sgd_step_with_l2(ours_l2, g_l2, lr, weight_decay)
        _, g_wd = _loss_and_grads(model, ours_wd, x, y)
        ours_wd = sgd_step_with_weight_decay(ours_wd, g_wd, lr, weight_decay)
        for pa, pb, p1, p2 in zip(a.parameters(), b.parameters(), ours_l2, ours_wd, strict=True):
            torch.testing.assert_close(pb.detach(), pa.detach(), **TIGHT)
            torch.testing.assert_close(p1, pa.detach(), **TIGHT)
            torch.testing.assert_close(p2, pa.detach(), **TIGHT)
    if weight_decay > 0:  # and the decay did something: the run differs from one without it
        c = copy.deepcopy(model)
        opt = torch.optim.SGD(c.parameters(), lr=lr)
        for _ in range(15):
            opt.zero_grad()
            F.mse_loss(c(x), y).backward()
            opt.step()
        assert not torch.allclose(c.weight, a.weight, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), lr=st.floats(1e-4, 1.0),
       weight_decay=st.floats(0.0, 2.0), seed=st.integers(0, 10_000))
def test_sgd_steps_match_torch_hypothesis(shape, lr, weight_decay, seed):
    w = randn64(*shape, seed=seed, requires_grad=False)
    grad = randn64(*shape, seed=seed + 1, requires_grad=False)
    p = torch.nn.Parameter(w.clone())
    p.grad = grad.clone()
    torch.optim.SGD([p], lr=lr, weight_decay=weight_decay).step()
    (a,) = sgd_step_with_l2([w], [grad], lr, weight_decay)
    (b,) = sgd_step_with_weight_decay([w], [grad], lr, weight_decay)
    torch.testing.assert_close(a, p.detach(), **TIGHT)
    torch.testing.assert_close(b, p.detach(), **TIGHT)


def test_sgd_steps_are_pure():
    w, g = torch.ones(3, dtype=D64), torch.full((3,), 2.0, dtype=D64)
    for fn in (sgd_step_with_l2, sgd_step_with_weight_decay):
        (out,) = fn([w], [g], 0.1, 0.5)
        assert torch.equal(w, torch.ones(3, dtype=D64)) and torch.equal(g, torch.full((3,), 2.0, dtype=D64))
        torch.testing.assert_close(out, torch.full((3,), 1 - 0.1 * (2 + 0.5), dtype=D64), **TIGHT)


@pytest.mark.parametrize("fn", [sgd_step_with_l2, sgd_step_with_weight_decay])
def test_sgd_steps_reject_bad_arguments(fn):
    w, g = [torch.ones(3, dtype=D64)], [torch.ones(3, dtype=D64)]
    with pytest.raises(ValueError, match="lr"):
        fn(w, g, -0.1, 0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        fn(w, g, 0.1, -1.0)
    with pytest.raises(ValueError, match="params and grads"):
        fn(w, g + g, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        fn(w, [torch.ones(4, dtype=D64)], 0.1, 0.0)
    with pytest.raises(TypeError, match="params"):
        fn("weights", g, 0.1, 0.0)


# ==================================================================================================== Adam / AdamW
ADAM_GRID = list(itertools.product(
    [False, True],            # decoupled
    [0.0, 0.01, 0.5],         # weight_decay
    [(0.9, 0.999), (0.5, 0.9)],
    [1e-8, 1e-3],             # eps
))


@pytest.mark.parametrize("decoupled,weight_decay,betas,eps", ADAM_GRID)
def test_adam_step_matches_torch_adam_and_adamw(decoupled, weight_decay, betas, eps):
    model, x, y = _regression(seed=5)
    twin = copy.deepcopy(model)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(twin.parameters(), lr=0.05, betas=betas, eps=eps, weight_decay=weight_decay)
    params = [p.detach().clone() for p in model.parameters()]
    state = adam_init(params)
    for _ in range(25):
        opt.zero_grad()
        F.mse_loss(twin(x), y).backward()
        opt.step()
        _, grads = _loss_and_grads(model, params, x, y)
        params, state = adam_step(params, grads, state, lr=0.05, betas=betas, eps=eps,
                                  weight_decay=weight_decay, decoupled=decoupled)
    assert state.step == 25
    for p_ours, p_ref, m, v in zip(params, twin.parameters(), state.exp_avg, state.exp_avg_sq, strict=True):
        torch.testing.assert_close(p_ours, p_ref.detach(), rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(m, opt.state[p_ref]["exp_avg"], rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(v, opt.state[p_ref]["exp_avg_sq"], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_l2_differs_from_adamw_exactly_when_decaying(weight_decay):
    model, x, y = _regression(seed=6)
    runs = {}
    for cls in (torch.optim.Adam, torch.optim.AdamW):
        m = copy.deepcopy(model)
        opt = cls(m.parameters(), lr=0.05, weight_decay=weight_decay)
        for _ in range(30):
            opt.zero_grad()
            F.mse_loss(m(x), y).backward()
            opt.step()
        runs[cls] = m.weight.detach()
    gap = float((runs[torch.optim.Adam] - runs[torch.optim.AdamW]).abs().max())
    if weight_decay == 0:
        assert gap == 0.0
    else:
        assert gap > 1e-3


def test_adam_divides_the_l2_strength_away_without_a_loss_gradient():
    """With a zero loss gradient Adam's L2 steps are about lr·sign(w) whatever λ is (λ cancels in m/√v): every
    weight loses about the same amount; AdamW multiplies every weight by (1 - lr·λ) per step."""
    w0 = torch.tensor([2.0, -1.0, 0.5], dtype=D64)
    zero = torch.zeros(3, dtype=D64)
    finals = {}
    for lam in (1e-2, 1.0):
        for decoupled in (False, True):
            w, state = [w0.clone()], adam_init([w0])
            for _ in range(50):
                w, state = adam_step(w, [zero], state, lr=0.01, weight_decay=lam, decoupled=decoupled)
            finals[lam, decoupled] = w[0]
    torch.testing.assert_close(finals[1e-2, False], finals[1.0, False], rtol=0, atol=1e-5)
    removed = (w0 - finals[1e-2, False]) * torch.sign(w0)  # how far each weight moved towards 0
    assert bool((removed > 0.35).all()) and bool((removed <= 0.01 * 50).all())  # ≈ lr per step, for all sizes
    for lam in (1e-2, 1.0):
        torch.testing.assert_close(finals[lam, True], w0 * (1 - 0.01 * lam) ** 50, **TIGHT)
    assert not torch.allclose(finals[1e-2, True], finals[1.0, True])


def test_adam_step_is_pure_and_checks_arguments():
    w, g = [torch.ones(2, dtype=D64)], [torch.ones(2, dtype=D64)]
    state = adam_init(w)
    new, new_state = adam_step(w, g, state, lr=0.1)
    assert torch.equal(w[0], torch.ones(2, dtype=D64)) and state.step == 0
    assert torch.equal(state.exp_avg[0], torch.zeros(2, dtype=D64))
    assert isinstance(new_state, AdamState) and new_state.step == 1
    first = torch.full((2,), 1 - 0.1, dtype=D64)  # the first step is about lr·sign(g)
    torch.testing.assert_close(new[0], first, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="betas"):
        adam_step(w, g, state, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas"):
        adam_step(w, g, state, betas=0.9)
    with pytest.raises(ValueError, match="lr"):
        adam_step(w, g, state, lr=-1.0)
    with pytest.raises(ValueError, match="eps"):
        adam_step(w, g, state, eps=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        adam_step(w, g, state, weight_decay=-0.5)
    with pytest.raises(TypeError, match="state"):
        adam_step(w, g, {"step": 0})
    with pytest.raises(ValueError, match="state"):
        adam_step(w + w, g + g, state)
    with pytest.raises(TypeError, match="decoupled"):
        adam_step(w, g, state, decoupled=1)


# ==================================================================================================== L1
@pytest.mark.parametrize("lambd", [0.0, 0.1, 0.5, 2.0])
def test_soft_threshold_is_softshrink_values_and_gradients(lambd):
    x = (randn64(4, 5, seed=7, requires_grad=False) * 2).requires_grad_(True)
    ours, ref = soft_threshold(x, lambd), F.softshrink(x, lambd)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    cot = randn64(4, 5, seed=8, requires_grad=False)
    torch.testing.assert_close(torch.autograd.grad(ours, x, cot)[0], torch.autograd.grad(ref, x, cot)[0],
                               rtol=0, atol=0)
    assert torch.equal(soft_threshold(x.detach()) == 0, x.detach().abs() <= 0.5)  # default lambd=0.5 as in F


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), lambd=st.floats(0.0, 3.0),
       scale=st.floats(0.01, 10.0), seed=st.integers(0, 10_000))
def test_soft_threshold_matches_softshrink_hypothesis(shape, lambd, scale, seed):
    x = randn64(*shape, seed=seed, requires_grad=False) * scale
    out = soft_threshold(x, lambd)
    torch.testing.assert_close(out, F.softshrink(x, lambd), rtol=0, atol=0)
    assert bool((out.abs() <= x.abs()).all())  # never moves away from 0
    assert bool(((out == 0) == (x.abs() <= lambd)).all())


def test_l1_proximal_step_is_soft_threshold_of_a_gradient_step_and_reaches_zero():
    w = torch.tensor([1.0, 0.05, -0.02, -2.0], dtype=D64)
    g = torch.tensor([0.5, 0.1, 0.0, -0.5], dtype=D64)
    (out,) = l1_proximal_step([w], [g], 0.1, 1.0)
    torch.testing.assert_close(out, F.softshrink(w - 0.1 * g, 0.1), rtol=0, atol=0)
    assert out[1] == 0.0 and out[2] == 0.0  # small weights land on exactly 0
    # a (sub)gradient step on the same objective never lands on 0: it overshoots
    (sub,) = sgd_step_with_l2([w], [g + 1.0 * torch.sign(w)], 0.1, 0.0)
    assert bool((sub != 0).all())


def test_subgradient_sgd_on_l1_hovers_while_proximal_steps_make_zeros():
    g = _gen(8)
    X = torch.randn(60, 10, generator=g, dtype=D64)
    y = X[:, :3] @ torch.tensor([2.0, -1.5, 1.0], dtype=D64) + 0.1 * torch.randn(60, generator=g, dtype=D64)
    lam, lr = 0.2, 0.05
    w_sub, w_prox = torch.zeros(10, dtype=D64), torch.zeros(10, dtype=D64)
    for _ in range(2000):
        grad_sub = (X.T @ (X @ w_sub - y) / 60 + lam * torch.sign(w_sub))
        (w_sub,) = sgd_step_with_l2([w_sub], [grad_sub], lr, 0.0)
        (w_prox,) = l1_proximal_step([w_prox], [X.T @ (X @ w_prox - y) / 60], lr, lam)
    assert int((w_sub == 0).sum()) == 0
    assert int((w_prox == 0).sum()) >= 5
    assert float(w_sub[3:].abs().max()) < 0.05  # it hovers near 0 with steps of size lr·λ, never on it


@pytest.mark.parametrize("strength", [0.01, 0.05, 0.2, 0.6])
def test_lasso_regression_matches_sklearn_and_kkt(strength):
    g = _gen(9)
    X = torch.randn(50, 8, generator=g, dtype=D64)
    y = X @ torch.tensor([1.5, 0.0, -2.0, 0.0, 0.0, 0.7, 0.0, 0.0], dtype=D64)
    y = y + 0.3 * torch.randn(50, generator=g, dtype=D64)
    w = lasso_regression(X, y, strength)
    ref = Lasso(alpha=strength, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), ref.coef_, atol=1e-7)
    corr = X.T @ (y - X @ w) / 50  # (D,): the KKT conditions of the lasso
    nz = w != 0
    torch.testing.assert_close(corr[nz], strength * torch.sign(w[nz]), rtol=0, atol=1e-8)
    assert bool((corr[~nz].abs() <= strength + 1e-8).all())


def test_lasso_is_all_zero_above_lambda_max_and_checks_arguments():
    g = _gen(10)
    X = torch.randn(30, 4, generator=g, dtype=D64)
    y = torch.randn(30, generator=g, dtype=D64)
    lam_max = float((X.T @ y / 30).abs().max())
    assert bool((lasso_regression(X, y, lam_max * 1.001) == 0).all())
    assert bool((lasso_regression(X, y, lam_max * 0.9) != 0).any())
    with pytest.raises(ValueError, match="strength"):
        lasso_regression(X, y, -1.0)
    with pytest.raises(ValueError, match="max_steps"):
        lasso_regression(X, y, 0.1, max_steps=0)
    with pytest.raises(ValueError, match="targets"):
        lasso_regression(X, y[:-1], 0.1)
    with pytest.raises(ValueError, match="lambd"):
        soft_threshold(X, -0.5)
    with pytest.raises(TypeError, match="input"):
        soft_threshold(torch.ones(3, dtype=torch.int64))


# ==================================================================================================== clipping
def _model_with_grads(seed, scale=1.0, skip_bias=False):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x = torch.randn(10, 4, generator=_gen(seed), dtype=D64)
    (model(x).pow(2).sum() * scale).backward()
    if skip_bias:
        model[2].bias.grad = None  # a parameter without a gradient is skipped
    return model


@pytest.mark.parametrize("norm_type,max_norm,skip_bias", list(itertools.product(
    [0.5, 1.0, 2.0, 3.5, float("inf")], [1e-3, 1.0, 1e6, float("inf")], [False, True])))
def test_clip_grad_norm_matches_torch(norm_type, max_norm, skip_bias):
    ours, ref = _model_with_grads(11, skip_bias=skip_bias), _model_with_grads(11, skip_bias=skip_bias)
    t_ours = clip_grad_norm_(ours.parameters(), max_norm, norm_type)
    t_ref = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm, norm_type)
    torch.testing.assert_close(t_ours, t_ref, rtol=1e-13, atol=0)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-13, atol=1e-15)
    clipped = get_total_norm([p.grad for p in ours.parameters() if p.grad is not None], norm_type)
    assert float(clipped) <= max_norm * (1 + 1e-12) or float(t_ref) <= max_norm
    if float(t_ref) <= max_norm:  # nothing to clip: the gradients are unchanged
        torch.testing.assert_close(clipped, t_ref, rtol=1e-6, atol=0)


@settings(max_examples=50, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=4),
       max_norm=st.floats(1e-4, 10.0), norm_type=st.sampled_from([1.0, 2.0, 3.0, float("inf")]),
       scale=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_clip_grad_norm_matches_torch_hypothesis(shapes, max_norm, norm_type, scale, seed):
    g = _gen(seed)
    ours = [torch.nn.Parameter(torch.zeros(*s, dtype=D64)) for s in shapes]
    ref = [torch.nn.Parameter(torch.zeros(*s, dtype=D64)) for s in shapes]
    for a, b in zip(ours, ref, strict=True):
        a.grad = torch.randn(a.shape, generator=g, dtype=D64) * scale
        b.grad = a.grad.clone()
    grads_before = [a.grad.clone() for a in ours]
    t_ours = clip_grad_norm_(ours, max_norm, norm_type)
    t_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type)
    torch.testing.assert_close(t_ours, t_ref, rtol=1e-12, atol=0)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-300)
    pure, total = clip_gradients(grads_before, max_norm, norm_type)  # the pure twin agrees
    torch.testing.assert_close(total, t_ref, rtol=1e-12, atol=0)
    for c, a in zip(pure, ours, strict=True):
        torch.testing.assert_close(c, a.grad, rtol=1e-12, atol=1e-300)


def test_clip_grad_norm_edge_cases_match_torch():
    # a single tensor instead of an iterable
    p, q = torch.nn.Parameter(torch.zeros(3, dtype=D64)), torch.nn.Parameter(torch.zeros(3, dtype=D64))
    p.grad, q.grad = torch.tensor([3.0, 4.0, 0.0], dtype=D64), torch.tensor([3.0, 4.0, 0.0], dtype=D64)
    assert float(clip_grad_norm_(p, 1.0)) == float(torch.nn.utils.clip_grad_norm_(q, 1.0)) == 5.0
    torch.testing.assert_close(p.grad, q.grad, **TIGHT)
    # no gradients at all
    r = torch.nn.Parameter(torch.zeros(2, dtype=D64))
    assert float(clip_grad_norm_([r], 1.0)) == float(torch.nn.utils.clip_grad_norm_([r], 1.0)) == 0.0
    assert float(clip_grad_norm_([], 1.0)) == 0.0
    # zero gradients: the 1e-6 keeps them finite
    z1, z2 = torch.nn.Parameter(torch.zeros(2, dtype=D64)), torch.nn.Parameter(torch.zeros(2, dtype=D64))
    z1.grad, z2.grad = torch.zeros(2, dtype=D64), torch.zeros(2, dtype=D64)
    assert float(clip_grad_norm_([z1], 0.0)) == float(torch.nn.utils.clip_grad_norm_([z2], 0.0)) == 0.0
    assert torch.equal(z1.grad, z2.grad)
    # a non-finite gradient: both raise when asked to, and produce the same nan/0 pattern otherwise
    for err in (True, False):
        a, b = torch.nn.Parameter(torch.zeros(3, dtype=D64)), torch.nn.Parameter(torch.zeros(3, dtype=D64))
        a.grad = torch.tensor([1.0, float("inf"), 2.0], dtype=D64)
        b.grad = a.grad.clone()
        if err:
            with pytest.raises(RuntimeError):
                clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
            with pytest.raises(RuntimeError):
                torch.nn.utils.clip_grad_norm_([b], 1.0, error_if_nonfinite=True)
        else:
            ta, tb = clip_grad_norm_([a], 1.0), torch.nn.utils.clip_grad_norm_([b], 1.0)
            assert math.isinf(float(ta)) and math.isinf(float(tb))
            torch.testing.assert_close(a.grad, b.grad, equal_nan=True)


def test_clipping_bounds_steps_but_not_the_solution():
    """Gradient descent with clipped gradients still converges to the least-squares solution."""
    g = _gen(12)
    X = torch.randn(40, 3, generator=g, dtype=D64)
    y = X @ torch.tensor([3.0, -2.0, 1.0], dtype=D64) + 0.1 * torch.randn(40, generator=g, dtype=D64)
    w = torch.full((3,), 20.0, dtype=D64)  # far away: the first gradients are large
    lr, max_norm = 0.1, 0.5
    for _ in range(3000):
        (grad,), _ = clip_gradients([X.T @ (X @ w - y) / 40], max_norm)
        (w_next,) = sgd_step_with_l2([w], [grad], lr, 0.0)
        assert float((w_next - w).norm()) <= lr * max_norm * (1 + 1e-9)
        w = w_next
    torch.testing.assert_close(w, torch.linalg.lstsq(X, y).solution, rtol=0, atol=1e-8)


def test_clipping_each_mini_batch_moves_the_balance_point():
    """At the least-squares minimum the mini-batch gradients average to 0; clipped one by one they do not, and clipped
    mini-batch SGD settles near the zero of the mean clipped gradient instead of at the minimum."""
    g = _gen(40)
    X = torch.randn(40, 3, generator=g, dtype=D64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=D64) + torch.randn(40, generator=g, dtype=D64)
    w_star = torch.linalg.lstsq(X, y).solution
    batches = [(X[i:i + 4], y[i:i + 4]) for i in range(0, 40, 4)]

    def batch_grads(w):
        return [Xb.T @ (Xb @ w - yb) / 4 for Xb, yb in batches]

    at_min = batch_grads(w_star)
    c = float(torch.stack([gb.norm() for gb in at_min]).median())

    def mean_clipped(w):
        return torch.stack([clip_gradients([gb], c)[0][0] for gb in batch_grads(w)]).mean(0)

    assert float(torch.stack(at_min).mean(0).norm()) < 1e-12
    assert float(mean_clipped(w_star).norm()) > 1e-3
    w_c = w_star.clone()
    for _ in range(400):
        w_c = w_c - 0.5 * mean_clipped(w_c)
    assert float(mean_clipped(w_c).norm()) < 1e-10
    assert float((w_c - w_star).norm()) > 1e-2
    w = w_star.clone()
    for _ in range(200):  # clipped mini-batch SGD, cyclic, small steps
        for Xb, yb in batches:
            (gb,), _ = clip_gradients([Xb.T @ (Xb @ w - yb) / 4], c)
            w = w - 0.01 * gb
    assert float((w - w_c).norm()) < float((w - w_star).norm()) / 3


def test_clipping_rejects_bad_arguments():
    p = torch.nn.Parameter(torch.zeros(2, dtype=D64))
    p.grad = torch.ones(2, dtype=D64)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_([p], 1.0, norm_type=0)
    with pytest.raises(ValueError, match="norm_type"):
        get_total_norm([p.grad], norm_type=-2.0)
    with pytest.raises(TypeError, match="parameters"):
        clip_grad_norm_("weights", 1.0)
    with pytest.raises(TypeError, match="max_norm"):
        clip_gradients([p.grad], None)


# ==================================================================================================== gradient penalty
def test_input_gradient_penalty_of_a_linear_model_is_the_squared_weight_norm():
    g = _gen(13)
    layer = torch.nn.Linear(5, 1).double()
    x = torch.randn(16, 5, generator=g, dtype=D64)
    pen = input_gradient_penalty(layer, x)
    w = layer.weight.detach()[0]
    assert math.isclose(float(pen.detach()), float(w @ w), rel_tol=1e-13)  # ∇_x (w·x + b) = w for every example
    assert math.isclose(float(input_gradient_penalty(layer, x, center=1.0).detach()), (float(w.norm()) - 1) ** 2,
                        rel_tol=1e-12)
    (gw,) = torch.autograd.grad(pen, layer.weight)
    torch.testing.assert_close(gw, 2 * layer.weight.detach(), **TIGHT)  # = 2 · ∇ of ||w||²/2
    assert not x.requires_grad  # the caller's tensor is untouched


@pytest.mark.parametrize("center", [None, 0.0, 1.0])
@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 5, 5)])
def test_input_gradient_penalty_matches_torch_func(shape, center):
    torch.manual_seed(14)
    if len(shape) == 4:
        model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                    torch.nn.Linear(27, 2)).double()
    else:
        model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    x = randn64(*shape, seed=15, requires_grad=False)
    params = dict(model.named_parameters())

    def one_example(p, xi):  # the K outputs of a single example
        return torch.func.functional_call(model, p, (xi.unsqueeze(0),))[0]

    def reference(p):  # each example's full Jacobian (K, ...), its Frobenius norm
        jac = torch.func.vmap(torch.func.jacrev(one_example, argnums=1), in_dims=(None, 0))(p, x)
        norms = jac.reshape(shape[0], -1).norm(dim=1)
        return (norms**2).mean() if center is None else ((norms - center) ** 2).mean()

    ours, ref = input_gradient_penalty(model, x, center=center), reference(params)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    # the last bias does not change the input gradient: its gradient is zero (materialised as zeros)
    g_ours = torch.autograd.grad(ours, list(params.values()), allow_unused=True, materialize_grads=True)
    g_ref = torch.autograd.grad(ref, list(params.values()), allow_unused=True, materialize_grads=True)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_input_gradient_penalty_sees_outputs_that_cancel_in_a_sum():
    """The gradient of the summed outputs misses outputs that move in opposite directions; the Jacobian does not.

    For softmax probabilities Σₖ pₖ = 1, so ∇ₓ Σₖ pₖ = 0 for every input: a penalty built on that sum would be
    identically zero. For outputs (f, −f) the sum is 0 too, while ||J||²_F = 2·||∇ₓ f||².
    """
    torch.manual_seed(30)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = randn64(6, 4, seed=31, requires_grad=False)

    def probabilities(t):
        return net(t).softmax(dim=1)  # (B, 3), rows sum to 1

    xl = x.clone().requires_grad_(True)
    (summed,) = torch.autograd.grad(probabilities(xl).sum(), xl)
    assert float(summed.abs().max()) < 1e-14  # the shortcut sees nothing
    pen = input_gradient_penalty(probabilities, x)
    jac = torch.autograd.functional.jacobian(probabilities, x)  # (B, 3, B, 4)
    own = torch.stack([jac[i, :, i] for i in range(6)])  # (B, 3, 4): each example's own Jacobian
    torch.testing.assert_close(pen, own.pow(2).sum((1, 2)).mean(), rtol=1e-12, atol=0)
    assert float(pen.detach()) > 1e-4

    def scalar(t):
        return torch.tanh(t @ torch.arange(1.0, 5.0, dtype=D64))  # (B,)

    def opposite(t):
        return torch.stack([scalar(t), -scalar(t)], dim=1)  # (B, 2); the outputs sum to 0

    torch.testing.assert_close(input_gradient_penalty(opposite, x), 2 * input_gradient_penalty(scalar, x),
                               rtol=1e-13, atol=0)
    assert float(input_gradient_penalty(scalar, x).detach()) > 1e-3


def test_input_gradient_penalty_of_scalar_inputs():
    x = torch.linspace(-1, 1, 9, dtype=D64)
    pen = input_gradient_penalty(lambda t: t**3, x)  # d/dx x³ = 3x²
    assert math.isclose(float(pen.detach()), float((3 * x**2).pow(2).mean()), rel_tol=1e-13)


def test_input_gradient_penalty_gradcheck_in_parameters_and_input():
    """Second derivatives (the penalty's gradient w.r.t. weights and inputs) against finite differences."""
    g = _gen(16)
    w1 = torch.randn(3, 4, generator=g, dtype=D64, requires_grad=True)
    w2 = torch.randn(4, 2, generator=g, dtype=D64, requires_grad=True)
    x = torch.randn(5, 3, generator=g, dtype=D64, requires_grad=True)

    def penalty(x, w1, w2, center):
        return input_gradient_penalty(lambda z: torch.tanh(z @ w1) @ w2, x, center=center)

    assert torch.autograd.gradcheck(lambda x, a, b: penalty(x, a, b, None), (x, w1, w2))
    assert torch.autograd.gradcheck(lambda x, a, b: penalty(x, a, b, 1.0), (x, w1, w2))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_double_backprop_penalty_matches_torch_func(loss):
    """mean_i ||∇ₓ ℓ(f(xᵢ), yᵢ)||², each example's loss gradient computed on its own by torch.func."""
    torch.manual_seed(32)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
    x = torch.randn(7, 3, generator=_gen(33), dtype=D64)
    if loss == "cross_entropy":
        loss_fn, y = F.cross_entropy, torch.randint(0, 4, (7,), generator=_gen(34))
    else:
        loss_fn, y = F.mse_loss, torch.randn(7, 4, generator=_gen(34), dtype=D64)
    params = dict(model.named_parameters())

    def example_loss(p, xi, yi):
        return loss_fn(torch.func.functional_call(model, p, (xi[None],)), yi[None])

    def reference(p):
        grads = torch.func.vmap(torch.func.grad(example_loss, argnums=1), in_dims=(None, 0, 0))(p, x, y)
        return grads.pow(2).sum(dim=1).mean()

    ours, ref = double_backprop_penalty(model, x, y, loss_fn), reference(params)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    names = ["0.weight", "0.bias", "2.weight"]  # the last bias changes the loss gradient only through the error
    g_ours = torch.autograd.grad(ours, [params[n] for n in names])
    g_ref = torch.autograd.grad(ref, [params[n] for n in names])
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # it is not the Jacobian penalty: the loss weights the Jacobian by the error
    assert not math.isclose(float(ours.detach()), float(input_gradient_penalty(model, x).detach()), rel_tol=1e-3)


def test_double_backprop_penalty_of_a_linear_model_is_weighted_by_the_error():
    """f = w·x + b with ℓ = (f − y)²: ∇ₓℓ = 2 (f − y) w, so the penalty is mean 4 (f − y)² ||w||² — zero where the
    model fits exactly."""
    layer = torch.nn.Linear(5, 1).double()
    x = torch.randn(9, 5, generator=_gen(35), dtype=D64)
    y = torch.randn(9, 1, generator=_gen(36), dtype=D64)
    w = layer.weight.detach()[0]
    residual = (layer(x) - y).detach()[:, 0]
    pen = double_backprop_penalty(layer, x, y, F.mse_loss)
    assert math.isclose(float(pen.detach()), float((4 * residual**2).mean() * (w @ w)), rel_tol=1e-12)
    fitted = layer(x).detach()  # targets the model already meets
    assert float(double_backprop_penalty(layer, x, fitted, F.mse_loss).detach()) < 1e-25


def test_double_backprop_penalty_gradcheck_and_bad_arguments():
    g = _gen(37)
    w1 = torch.randn(3, 4, generator=g, dtype=D64, requires_grad=True)
    w2 = torch.randn(4, 2, generator=g, dtype=D64, requires_grad=True)
    x = torch.randn(5, 3, generator=g, dtype=D64, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0, 1])
    def penalty(x, a, b):
        return double_backprop_penalty(lambda z: torch.tanh(z @ a) @ b, x, y)

    assert torch.autograd.gradcheck(penalty, (x, w1, w2))
    layer = torch.nn.Linear(3, 2).double()
    xs = torch.ones(4, 3, dtype=D64)
    with pytest.raises(TypeError, match="loss_fn"):
        double_backprop_penalty(layer, xs, torch.zeros(4, dtype=torch.long), "cross_entropy")
    with pytest.raises(ValueError, match="target"):
        double_backprop_penalty(layer, xs, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="loss_fn"):
        double_backprop_penalty(layer, xs, torch.zeros(4, dtype=torch.long),
                                lambda out, t: F.cross_entropy(out, t, reduction="none"))
    with pytest.raises(TypeError, match="x"):
        double_backprop_penalty(layer, [[1.0, 2.0, 3.0]], torch.zeros(1, dtype=torch.long))


def test_input_gradient_penalty_rejects_bad_arguments():
    layer = torch.nn.Linear(3, 1).double()
    x = torch.ones(4, 3, dtype=D64)
    with pytest.raises(TypeError, match="model"):
        input_gradient_penalty("model", x)
    with pytest.raises(TypeError, match="x"):
        input_gradient_penalty(layer, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="model"):
        input_gradient_penalty(lambda t: layer(t).sum(), x)  # one number for the whole batch
    with pytest.raises(ValueError, match="center"):
        input_gradient_penalty(layer, x, center=-1.0)


# ==================================================================================================== dropout
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1])
def test_dropout_equals_torch_on_torchs_own_mask(p, seed):
    x = (torch.rand(7, 11, generator=_gen(seed), dtype=D64) + 0.5).requires_grad_(True)  # no zeros in x
    torch.manual_seed(seed)
    ref = F.dropout(x, p)
    mask = (ref != 0).to(D64)  # the mask PyTorch drew
    ours = apply_dropout_mask(x, mask, p)
    assert torch.equal(ours, ref)
    cot = torch.randn(7, 11, generator=_gen(seed + 1), dtype=D64)
    torch.testing.assert_close(torch.autograd.grad(ours, x, cot)[0], torch.autograd.grad(ref, x, cot)[0],
                               rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda t: apply_dropout_mask(t, mask, p), (x,))


@settings(max_examples=50, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), p=st.floats(0.0, 0.99),
       seed=st.integers(0, 10_000))
def test_dropout_structure_hypothesis(shape, p, seed):
    x = torch.rand(*shape, generator=_gen(seed), dtype=D64) + 0.5
    out = dropout(x, p, generator=_gen(seed + 1))
    assert out.shape == x.shape
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / (1 - p), rtol=1e-15, atol=0)  # survivors scaled by 1/(1-p)
    again = dropout(x, p, generator=_gen(seed + 1))
    assert torch.equal(out, again)  # the same generator state gives the same mask
    mask = dropout_mask(x.shape, p, generator=_gen(seed + 1), dtype=D64)
    assert torch.equal(out, apply_dropout_mask(x, mask, p))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_law_matches_torch(p):
    """Keep rate 1 - p and mean preserved, for ours and for PyTorch, within 5 standard errors."""
    n = 200_000
    ones = torch.ones(n, dtype=D64)
    ours = dropout(ones, p, generator=_gen(17))
    torch.manual_seed(17)
    ref = F.dropout(ones, p)
    se_keep = math.sqrt(p * (1 - p) / n)
    se_mean = math.sqrt(p / (1 - p) / n)  # Var[mask/(1-p)] = p/(1-p)
    for out in (ours, ref):
        assert abs(float((out != 0).double().mean()) - (1 - p)) < 5 * se_keep
        assert abs(float(out.mean()) - 1.0) < 5 * se_mean
        assert abs(float(out.var()) - p / (1 - p)) < 0.05 * p / (1 - p)
    assert not torch.equal(ours, dropout(ones, p, generator=_gen(18)))  # another seed, another mask


def test_dropout_edge_cases_match_torch():
    x = torch.randn(3, 4, generator=_gen(19), dtype=D64)
    assert dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 1.0, generator=_gen(0)), F.dropout(x, 1.0))
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    empty = torch.zeros(0, 3, dtype=D64)
    assert dropout(empty, 0.5).shape == (0, 3)


def test_dropout_layer_train_and_eval():
    torch.manual_seed(20)
    net = torch.nn.Sequential(torch.nn.Linear(6, 50), torch.nn.ReLU(), Dropout(0.5, generator=_gen(21)),
                              torch.nn.Linear(50, 3)).double()
    twin = copy.deepcopy(net)
    twin[2] = torch.nn.Dropout(0.5)
    x = torch.randn(8, 6, generator=_gen(22), dtype=D64)
    net.eval()
    twin.eval()
    torch.testing.assert_close(net(x), twin(x), rtol=0, atol=0)  # eval: dropout is the identity, in both
    assert torch.equal(net(x), net(x))
    net.train()
    a, b = net(x), net(x)
    assert not torch.equal(a, b)  # train: a fresh mask on every call
    hidden = net[1](net[0](x))
    dropped = net[2](hidden)
    zeroed = (dropped == 0) & (hidden != 0)
    assert 0.3 < float(zeroed.double().sum() / (hidden != 0).sum()) < 0.7
    torch.testing.assert_close(dropped[dropped != 0], hidden[dropped != 0] * 2, rtol=1e-15, atol=0)
    assert "p=0.5" in repr(net[2])


def test_dropout_rejects_bad_arguments():
    x = torch.ones(3, dtype=D64)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p"):
            dropout(x, bad)
        with pytest.raises(ValueError):
            F.dropout(x, bad)  # PyTorch refuses them too
        with pytest.raises(ValueError, match="p"):
            Dropout(bad)
    with pytest.raises(TypeError, match="training"):
        dropout(x, 0.5, training="yes")
    with pytest.raises(TypeError, match="input"):
        dropout(torch.ones(3, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="mask"):
        apply_dropout_mask(x, torch.ones(4), 0.5)


# ==================================================================================================== early stopping
def _early_stop_reference(losses, patience, min_delta):
    """Keras-style: a counter of epochs without improvement, reset on improvement."""
    best, best_epoch, wait = math.inf, -1, 0
    for epoch, loss in enumerate(losses):
        if loss < best - min_delta or best_epoch < 0:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch, True
    return best_epoch, len(losses) - 1, False


@pytest.mark.parametrize("losses,patience,min_delta,expected", [
    ([5, 4, 3, 2, 1], 1, 0.0, EarlyStop(4, 4, False)),
    ([3, 2, 1, 2, 3, 4, 5], 2, 0.0, EarlyStop(2, 4, True)),
    ([3, 2, 1, 2, 3, 4, 5], 10, 0.0, EarlyStop(2, 6, False)),
    ([1.0, 0.99, 0.98, 0.97], 2, 0.05, EarlyStop(0, 2, True)),  # improvements smaller than min_delta do not count
    ([2.0], 3, 0.0, EarlyStop(0, 0, False)),
    ([1, 1, 1], 1, 0.0, EarlyStop(0, 1, True)),  # equal is not better
])
def test_early_stopping_examples(losses, patience, min_delta, expected):
    assert early_stopping(losses, patience, min_delta) == expected


@settings(max_examples=60, deadline=None)
@given(losses=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40), patience=st.integers(1, 8),
       min_delta=st.sampled_from([0.0, 0.01, 0.5]))
def test_early_stopping_hypothesis(losses, patience, min_delta):
    result = early_stopping(losses, patience, min_delta)
    assert (result.best_epoch, result.stop_epoch, result.stopped) == _early_stop_reference(losses, patience,
                                                                                          min_delta)
    assert result.best_epoch <= result.stop_epoch
    assert losses[result.best_epoch] == min(losses[: result.stop_epoch + 1]) or min_delta > 0


def test_early_stopping_rejects_bad_arguments():
    with pytest.raises(ValueError, match="val_losses"):
        early_stopping([], 3)
    with pytest.raises(ValueError, match="patience"):
        early_stopping([1.0], 0)
    with pytest.raises(TypeError, match="patience"):
        early_stopping([1.0], 2.5)
    with pytest.raises(ValueError, match="min_delta"):
        early_stopping([1.0], 1, -0.1)


# ==================================================================================================== regressions
@pytest.mark.parametrize("degree", [0, 1, 2, 7, 15])
def test_legendre_features_match_numpy_and_torch(degree):
    x = torch.linspace(-1, 1, 23, dtype=D64)
    feats = legendre_features(x, degree)
    assert feats.shape == (23, degree + 1)
    np.testing.assert_allclose(feats.numpy(), np.polynomial.legendre.legvander(x.numpy(), degree), atol=1e-12)
    for n in range(degree + 1):
        torch.testing.assert_close(feats[:, n], torch.special.legendre_polynomial_p(x, n), rtol=1e-12,
                                   atol=1e-12)
    with pytest.raises(ValueError, match="degree"):
        legendre_features(x, -1)
    with pytest.raises(TypeError, match="x"):
        legendre_features(x[None], 3)


@pytest.mark.parametrize("strength", [0.0, 1e-4, 0.1, 10.0])
def test_ridge_regression_matches_sklearn_and_zeroes_the_gradient(strength):
    g = _gen(23)
    X = legendre_features(torch.rand(30, generator=g, dtype=D64) * 2 - 1, 6)
    y = torch.sin(3 * X[:, 1]) + 0.1 * torch.randn(30, generator=g, dtype=D64)
    w = ridge_regression(X, y, strength)
    ref = Ridge(alpha=30 * strength, fit_intercept=False, solver="cholesky").fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), ref.coef_, rtol=1e-8, atol=1e-10)
    wr = w.clone().requires_grad_(True)
    objective = ((X @ wr - y) ** 2).sum() / (2 * 30) + l2_penalty([wr], strength)
    (grad,) = torch.autograd.grad(objective, wr)
    assert float(grad.abs().max()) < 1e-10  # the closed form is the minimiser of loss + l2_penalty


@pytest.mark.parametrize("strength", [0.1, 1.0, 10.0])
def test_l2_penalty_shrinks_the_optimum_by_d_over_d_plus_lambda(strength):
    """Gradient descent on loss + l2_penalty from a point that is not an optimum ends where each eigen-coordinate of
    the unpenalised optimum w0 is multiplied by d/(d + λ) (d: eigenvalues of XᵀX/N)."""
    g = _gen(41)
    X = torch.randn(30, 5, generator=g, dtype=D64)
    y = torch.randn(30, generator=g, dtype=D64)
    w0 = torch.linalg.lstsq(X, y).solution
    d, Q = torch.linalg.eigh(X.T @ X / 30)
    w = 0.5 * w0
    lr = 1.0 / (float(d.max()) + strength)
    for _ in range(3000):
        (w,) = sgd_step_with_l2([w], [X.T @ (X @ w - y) / 30], lr, strength)
    torch.testing.assert_close(Q.T @ w, d / (d + strength) * (Q.T @ w0), rtol=0, atol=1e-10)
    assert float(w.norm()) < float(w0.norm())


def test_ridge_shrinks_as_strength_grows_and_checks_arguments():
    g = _gen(24)
    X = torch.randn(20, 4, generator=g, dtype=D64)
    y = torch.randn(20, generator=g, dtype=D64)
    norms = [float(ridge_regression(X, y, s).norm()) for s in (0.0, 0.1, 1.0, 10.0, 1000.0)]
    assert all(a > b for a, b in itertools.pairwise(norms))
    assert norms[-1] < 1e-2 * norms[0]
    with pytest.raises(ValueError, match="strength"):
        ridge_regression(X, y, -1.0)
    with pytest.raises(ValueError, match="targets"):
        ridge_regression(X, y[:5], 1.0)
    with pytest.raises(TypeError, match="features"):
        ridge_regression(X[0], y, 1.0)


# ==================================================================================================== training loop
def _digits_like(seed):
    g = _gen(seed)
    x = torch.randn(40, 6, generator=g, dtype=D64)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x[:30], y[:30], x[30:], y[30:]


def test_fit_full_batch_history_and_determinism():
    x, y, xv, yv = _digits_like(25)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).double()
        runs.append(fit_full_batch(model, (x, y), (xv, yv), steps=50, lr=0.01, eval_every=10))
    h = runs[0]
    assert h == runs[1]
    assert h.epoch_steps == [10, 20, 30, 40, 50] and h.steps == 50
    assert len(h["train_loss"]) == len(h["val_loss"]) == len(h["val_accuracy"]) == 5
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert all(0.0 <= a <= 1.0 for a in h["val_accuracy"])
    # "train_loss" is measured at the end of each epoch, "loss" is the mean over the epoch's steps, each measured
    # before its update: while the loss falls, the mean is above the end
    assert h["loss"][-1] > h["train_loss"][-1]


def test_fit_full_batch_penalty_is_added_to_the_loss():
    x, y, xv, yv = _digits_like(26)
    norms = []
    for strength in (0.0, 0.5):
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 2).double()
        fit_full_batch(model, (x, y), (xv, yv), steps=60, lr=0.1, eval_every=60,
                       penalty=lambda m, _x, s=strength: l2_penalty(m.parameters(), s))
        norms.append(float(model.weight.detach().norm()))
    assert norms[1] < 0.5 * norms[0]
    # regression: float targets, no accuracy
    torch.manual_seed(0)
    reg = torch.nn.Linear(6, 1).double()
    h = fit_full_batch(reg, (x, y.double()[:, None]), (xv, yv.double()[:, None]), steps=20, loss_fn=F.mse_loss,
                       penalty=lambda m, inp: 0.1 * input_gradient_penalty(m, inp))
    assert "val_accuracy" not in h.metrics and len(h["val_loss"]) == 2


def test_fit_full_batch_rejects_bad_arguments():
    x, y, xv, yv = _digits_like(27)
    model = torch.nn.Linear(6, 2).double()
    with pytest.raises(ValueError, match="steps"):
        fit_full_batch(model, (x, y), (xv, yv), steps=0)
    with pytest.raises(ValueError, match="eval_every"):
        fit_full_batch(model, (x, y), (xv, yv), steps=5, eval_every=0)
    with pytest.raises(ValueError, match="steps"):
        fit_full_batch(model, (x, y), (xv, yv), steps=15, eval_every=10)
    with pytest.raises(TypeError, match="model"):
        fit_full_batch(lambda t: t, (x, y), (xv, yv), steps=5)
