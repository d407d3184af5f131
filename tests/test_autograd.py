"""The autograd engine against PyTorch and against finite differences.

Every expression is written once, as a function of an ``ops`` namespace and its input tensors, and run on both
backends: :data:`ENGINE` (dlbook.autograd on NumPy) and :data:`TORCH`. Values and the gradients of every input
must agree in float64; the engine's gradients must also agree with central finite differences.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from dlbook import autograd as ag
from dlbook.autograd import Tensor

ENGINE = SimpleNamespace(
    name="engine",
    relu=ag.relu, tanh=ag.tanh, sigmoid=ag.sigmoid, exp=ag.exp, log=ag.log,
    sum=lambda x, axis=None, keepdims=False: x.sum(axis, keepdims),
    mean=lambda x, axis=None, keepdims=False: x.mean(axis, keepdims),
    reshape=lambda x, *shape: x.reshape(*shape),
    transpose=lambda x, *axes: x.transpose(*axes),
    log_softmax=ag.log_softmax,
    cross_entropy=lambda z, target, reduction="mean": ag.cross_entropy(z, np.asarray(target), reduction),
    conv2d=ag.conv2d,
)


def _torch_reduce(fn):
    def reduce(x, axis=None, keepdims=False):
        if axis is None and not keepdims:
            return fn(x)
        dims = tuple(range(x.ndim)) if axis is None else axis
        return fn(x, dim=dims, keepdim=keepdims)

    return reduce


TORCH = SimpleNamespace(
    name="torch",
    relu=torch.relu, tanh=torch.tanh, sigmoid=torch.sigmoid, exp=torch.exp, log=torch.log,
    sum=_torch_reduce(torch.sum),
    mean=_torch_reduce(torch.mean),
    reshape=lambda x, *shape: x.reshape(*shape),
    transpose=lambda x, *axes: x.permute(*axes) if axes else x.permute(*reversed(range(x.ndim))),
    log_softmax=lambda x, dim=-1: F.log_softmax(x, dim=dim),
    cross_entropy=lambda z, target, reduction="mean": F.cross_entropy(z, torch.as_tensor(np.asarray(target)),
                                                                      reduction=reduction),
    conv2d=F.conv2d,
)

LABELS = np.array([2, 0, 1, 2, 1])  # class labels used by the cross-entropy expressions (5 examples, 3 classes)

# name -> (expression, input shapes, input domain). "pos" inputs are kept away from zero for log, /, **0.5.
EXPRESSIONS = {
    "add broadcast row": (lambda o, a, b: a + b, [(3, 4), (4,)], "any"),
    "add broadcast both": (lambda o, a, b: a + b, [(2, 1, 4), (3, 1)], "any"),
    "sub scalar-shaped": (lambda o, a, b: a - b, [(3, 4), ()], "any"),
    "rsub constant": (lambda o, a: 3.0 - a, [(2, 3)], "any"),
    "mul broadcast column": (lambda o, a, b: a * b, [(4, 3), (4, 1)], "any"),
    "mul constant": (lambda o, a: 2.5 * a + 1.0, [(5,)], "any"),
    "div": (lambda o, a, b: a / b, [(3, 4), (3, 4)], "pos"),
    "div broadcast": (lambda o, a, b: a / b, [(2, 3, 4), (1, 4)], "pos"),
    "rdiv constant": (lambda o, a: 1.0 / a, [(3,)], "pos"),
    "square": (lambda o, a: a**2, [(3, 4)], "any"),
    "cube": (lambda o, a: a**3, [(6,)], "any"),
    "sqrt": (lambda o, a: a**0.5, [(2, 5)], "pos"),
    "inverse power": (lambda o, a: a**-1.5, [(4,)], "pos"),
    "neg": (lambda o, a: -a, [(2, 2)], "any"),
    "matmul": (lambda o, a, b: a @ b, [(3, 4), (4, 5)], "any"),
    "matmul batched": (lambda o, a, b: a @ b, [(2, 3, 4), (4, 5)], "any"),
    "matmul broadcast batch": (lambda o, a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)], "any"),
    "sum all": (lambda o, a: o.sum(a), [(3, 4)], "any"),
    "sum axis 0": (lambda o, a: o.sum(a, 0), [(3, 4)], "any"),
    "sum axis -1 keepdims": (lambda o, a: o.sum(a, -1, True), [(2, 3, 4)], "any"),
    "sum axes (0, 2)": (lambda o, a: o.sum(a, (0, 2)), [(2, 3, 4)], "any"),
    "mean all": (lambda o, a: o.mean(a), [(3, 4)], "any"),
    "mean axis 1 keepdims": (lambda o, a: o.mean(a, 1, True), [(3, 4)], "any"),
    "reshape": (lambda o, a: o.reshape(a, 4, 3) * o.reshape(a, 4, 3), [(2, 6)], "any"),
    "transpose reverse": (lambda o, a, b: o.transpose(a) @ b, [(3, 4), (3, 2)], "any"),
    "transpose permutation": (lambda o, a: o.transpose(a, 1, 2, 0) ** 2, [(2, 3, 4)], "any"),
    "relu": (lambda o, a: o.relu(a), [(4, 5)], "any"),
    "tanh": (lambda o, a: o.tanh(a), [(4, 5)], "any"),
    "sigmoid": (lambda o, a: o.sigmoid(a), [(4, 5)], "any"),
    "exp": (lambda o, a: o.exp(a), [(4, 5)], "any"),
    "log": (lambda o, a: o.log(a), [(4, 5)], "pos"),
    "log_softmax last": (lambda o, a: o.log_softmax(a, -1), [(3, 5)], "any"),
    "log_softmax first": (lambda o, a: o.log_softmax(a, 0), [(3, 5)], "any"),
    "cross_entropy mean": (lambda o, z: o.cross_entropy(z, LABELS), [(5, 3)], "any"),
    "cross_entropy sum": (lambda o, z: o.cross_entropy(z, LABELS, "sum"), [(5, 3)], "any"),
    "reuse x*x": (lambda o, a: a * a + a, [(3,)], "any"),
    "diamond": (lambda o, a, b: o.sum(o.tanh(a * b) + o.exp(a) * b), [(2, 3), (2, 3)], "any"),
    "softmax by hand": (lambda o, a: o.exp(a) / o.sum(o.exp(a), -1, True), [(3, 4)], "any"),
    "two-layer net": (
        lambda o, x, w1, b1, w2, b2: o.cross_entropy(o.relu(x @ w1 + b1) @ w2 + b2, LABELS),
        [(5, 4), (4, 6), (6,), (6, 3), (3,)], "any"),
    "tanh net squared error": (
        lambda o, x, w1, w2, t: o.mean((o.tanh(x @ w1) @ w2 - t) ** 2),
        [(5, 3), (3, 4), (4, 2), (5, 2)], "any"),
    "conv2d": (lambda o, x, w: o.conv2d(x, w), [(2, 3, 6, 5), (4, 3, 3, 2)], "any"),
    "conv2d bias stride padding": (lambda o, x, w, b: o.conv2d(x, w, b, stride=2, padding=1),
                                   [(2, 2, 7, 6), (3, 2, 3, 3), (3,)], "any"),
    "conv2d stride 3 leftover": (lambda o, x, w: o.conv2d(x, w, None, 3, 0), [(1, 2, 8, 7), (2, 2, 2, 3)], "any"),
    "conv then relu then mean": (lambda o, x, w: o.mean(o.relu(o.conv2d(x, w, padding=1))),
                                 [(2, 1, 5, 5), (2, 1, 3, 3)], "any"),
}


def _inputs(shapes, domain, seed):
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in shapes:
        a = rng.normal(size=shape)
        if domain == "pos":
            a = 0.5 + np.abs(a)  # away from 0: log, division and fractional powers stay smooth
        arrays.append(np.asarray(a, dtype=np.float64))
    return arrays


def run_engine(expr, arrays, out_grad=None):
    tensors = [Tensor(a) for a in arrays]
    out = expr(ENGINE, *tensors)
    if out_grad is None:
        out_grad = np.random.default_rng(99).normal(size=out.shape)
    out.backward(out_grad)
    return out.data, [t.grad for t in tensors], out_grad


def run_torch(expr, arrays, out_grad):
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = expr(TORCH, *tensors)
    out.backward(torch.as_tensor(out_grad, dtype=torch.float64).reshape(out.shape))
    return out.detach().numpy(), [t.grad.numpy() if t.grad is not None else np.zeros_like(a)
                                  for t, a in zip(tensors, arrays, strict=True)]


def assert_same(expr, arrays):
    value, grads, out_grad = run_engine(expr, arrays)
    t_value, t_grads = run_torch(expr, arrays, out_grad)
    assert value.shape == t_value.shape
    np.testing.assert_allclose(value, t_value, rtol=1e-10, atol=1e-12)
    for k, (g, tg) in enumerate(zip(grads, t_grads, strict=True)):
        assert g.shape == arrays[k].shape, f"gradient {k} has shape {g.shape}, input has {arrays[k].shape}"
        np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-11, err_msg=f"gradient of input {k}")


@pytest.mark.parametrize("name", list(EXPRESSIONS))
@pytest.mark.parametrize("seed", [0, 1])
def test_engine_matches_torch(name, seed):
    expr, shapes, domain = EXPRESSIONS[name]
    assert_same(expr, _inputs(shapes, domain, seed))


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_engine_matches_finite_differences(name):
    expr, shapes, domain = EXPRESSIONS[name]
    arrays = _inputs(shapes, domain, 7)
    _, grads, out_grad = run_engine(expr, arrays)

    def scalar(*xs):  # <out, out_grad>: its gradient is what backward(out_grad) computes
        return float((expr(ENGINE, *[Tensor(x) for x in xs]).data * out_grad).sum())

    numeric = ag.numerical_gradient(scalar, arrays, eps=1e-6)
    for g, n in zip(grads, numeric, strict=True):
        np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- generated cases
FLOATS = st.floats(-3, 3, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       op=st.sampled_from(["+", "-", "*", "/"]), seed=st.integers(0, 2**16))
def test_broadcasting_binary_ops(shapes, op, seed):
    a_shape, b_shape = shapes.input_shapes
    exprs = {"+": lambda o, a, b: a + b, "-": lambda o, a, b: a - b, "*": lambda o, a, b: a * b,
             "/": lambda o, a, b: a / b}
    arrays = _inputs([a_shape, b_shape], "pos" if op == "/" else "any", seed)
    assert_same(exprs[op], arrays)


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), n=st.integers(1, 4), k=st.integers(1, 4),
       m=st.integers(1, 4), broadcast_right=st.booleans(), seed=st.integers(0, 2**16))
def test_matmul_shapes(batch, n, k, m, broadcast_right, seed):
    right_batch = [1] * len(batch) if broadcast_right else batch
    arrays = _inputs([(*batch, n, k), (*right_batch, k, m)], "any", seed)
    assert_same(lambda o, a, b: a @ b, arrays)


@settings(max_examples=50, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(), keepdims=st.booleans(),
       mean=st.booleans(), seed=st.integers(0, 2**16))
def test_reductions_over_random_axes(shape, data, keepdims, mean, seed):
    ndim = len(shape)
    axes = data.draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                              unique_by=lambda a: a % ndim))
    axis = axes[0] if len(axes) == 1 else tuple(axes)

    def expr(o, a):
        return (o.mean if mean else o.sum)(o.tanh(a), axis, keepdims)

    assert_same(expr, _inputs([tuple(shape)], "any", seed))


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 2), C=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_generated(B, C, O, H, W, kh, kw, stride, padding, bias, seed):
    assume(H + 2 * padding >= kh and W + 2 * padding >= kw)  # else no valid output: the bad-argument test's case
    shapes = [(B, C, H, W), (O, C, kh, kw)] + ([(O,)] if bias else [])

    def expr(o, x, w, *b):
        return o.conv2d(x, w, b[0] if b else None, stride, padding)

    assert_same(expr, _inputs(shapes, "any", seed))


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 6), K=st.integers(1, 6), scale=st.sampled_from([1.0, 30.0, 300.0]),
       reduction=st.sampled_from(["mean", "sum"]), seed=st.integers(0, 2**16))
def test_cross_entropy_stable_for_large_logits(B, K, scale, reduction, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, K)) * scale  # 300 would overflow exp() without the max shift
    target = rng.integers(0, K, size=B)

    def expr(o, z):
        return o.cross_entropy(z, target, reduction)

    value, grads, _ = run_engine(expr, [logits])
    assert np.isfinite(value).all() and np.isfinite(grads[0]).all()
    assert_same(expr, [logits])


@settings(max_examples=40, deadline=None)
@given(x=st.lists(FLOATS, min_size=1, max_size=6).map(lambda v: np.array(v) * 20))
def test_sigmoid_and_log_softmax_never_overflow(x):
    assert_same(lambda o, a: o.sigmoid(a), [x])
    assert_same(lambda o, a: o.log_softmax(o.reshape(a, 1, len(x))), [x])


@settings(max_examples=60, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=4, max_side=4), seed=st.integers(0, 99))
def test_unbroadcast_is_the_gradient_of_expand(shapes, seed):
    (shape,) = shapes.input_shapes
    target = shapes.result_shape
    g = np.random.default_rng(seed).normal(size=target)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    x.expand(target).backward(torch.from_numpy(g))
    np.testing.assert_allclose(ag.unbroadcast(g, shape), x.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------ semantics
def test_gradients_accumulate_and_zero_grad_resets():
    a = Tensor([1.0, 2.0])
    (a * a).sum().backward()
    (a * a).sum().backward()
    np.testing.assert_array_equal(a.grad, [4.0, 8.0])  # 2 * (2a): two backward passes add up, as in torch
    ag.zero_grad([a])
    np.testing.assert_array_equal(a.grad, [0.0, 0.0])


def test_zero_dimensional_tensors():
    a, b = Tensor(3.0), Tensor(-2.0)
    out = ag.tanh(a * b) + a / b
    out.backward()
    ta, tb = torch.tensor(3.0, dtype=torch.float64, requires_grad=True), torch.tensor(-2.0, dtype=torch.float64,
                                                                                      requires_grad=True)
    (torch.tanh(ta * tb) + ta / tb).backward()
    assert a.grad == pytest.approx(ta.grad.item()) and b.grad == pytest.approx(tb.grad.item())
    assert out.item() == pytest.approx((torch.tanh(ta * tb) + ta / tb).item())


def test_tensor_copies_its_data():
    source = np.ones(3)
    t = Tensor(source)
    source[0] = 5.0
    assert t.data[0] == 1.0 and t.data.dtype == np.float64


def test_ndarray_on_the_left_calls_the_tensor():
    t = Tensor([1.0, 2.0])
    out = np.array([3.0, 4.0]) * t  # __array_priority__ makes NumPy defer to Tensor.__rmul__
    assert isinstance(out, Tensor)
    out.sum().backward()
    np.testing.assert_array_equal(t.grad, [3.0, 4.0])


def test_topological_order_puts_parents_first():
    x, w = Tensor(np.ones((2, 3)), "x"), Tensor(np.ones((3, 2)), "w")
    h = ag.relu(x @ w)
    loss = (h * h + h).mean()
    order = ag.topological_order(loss)
    position = {id(n): i for i, n in enumerate(order)}
    assert order[-1] is loss and len(position) == len(order)  # every node once, the root last
    for node in order:
        for parent in node._parents:
            assert position[id(parent)] < position[id(node)]


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Tensor(1.0)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**5000)


def test_graph_nodes_and_edges():
    x, w, b = Tensor(np.ones((2, 3)), "x"), Tensor(np.ones((3, 4)), "W"), Tensor(np.zeros(4), "b")
    loss = ag.relu(x @ w + b).sum()
    g = ag.graph(loss)
    assert [n.label or n._op for n in g.nodes] == ["x", "W", "@", "b", "+", "relu", "sum"]
    assert len(g.edges) == 6
    assert all(p < c for p, c in g.edges)  # parents first
    reused = Tensor(2.0)
    assert len(ag.graph(reused * reused).edges) == 2  # one edge per use


def test_conv_gradient_is_the_flipped_kernel():
    """A gradient of 1 at one output position sends the kernel back onto the input window it came from."""
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    x = Tensor(np.zeros((1, 1, 6, 6)))
    y = ag.conv2d(x, Tensor(w))
    g = np.zeros(y.shape)
    g[0, 0, 2, 1] = 1.0
    y.backward(g)
    expected = np.zeros((6, 6))
    expected[2:5, 1:4] = w[0, 0]
    np.testing.assert_array_equal(x.grad[0, 0], expected)


def test_engine_trains_like_torch_step_for_step():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(16, 5)), rng.integers(0, 3, size=16)
    init = [rng.normal(size=(5, 8)) * 0.5, np.zeros(8), rng.normal(size=(8, 3)) * 0.5, np.zeros(3)]
    params = [Tensor(p) for p in init]
    tparams = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.SGD(tparams, lr=0.3)
    for _ in range(25):
        ag.zero_grad(params)
        loss = ag.cross_entropy(ag.mlp(Tensor(x), params), labels)
        loss.backward()
        ag.sgd_step(params, lr=0.3)
        opt.zero_grad()
        w1, b1, w2, b2 = tparams
        tloss = F.cross_entropy(torch.relu(torch.from_numpy(x) @ w1 + b1) @ w2 + b2, torch.from_numpy(labels))
        tloss.backward()
        opt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for p, tp in zip(params, tparams, strict=True):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_layer_gradient_norms_vanish_and_explode():
    sig = ag.layer_gradient_norms(16, activation="sigmoid", weight_scale=1.0)["activations"]
    assert sig[0] < 1e-6 * sig[-1]  # sigmoid' <= 1/4: every layer shrinks the gradient
    relu_big = ag.layer_gradient_norms(16, activation="relu", weight_scale=2.0)["activations"]
    assert relu_big[0] > 50 * relu_big[-1]  # each layer multiplies by about 2/√2: (√2)^15 ≈ 180
    he = ag.layer_gradient_norms(16, activation="relu", weight_scale=2**0.5)["activations"]
    assert 0.1 < he[0] / he[-1] < 10  # He initialisation keeps the gradient size
    again = ag.layer_gradient_norms(16, activation="relu", weight_scale=2**0.5)
    np.testing.assert_array_equal(again["activations"], he)  # deterministic for a seed
    assert again["weights"].shape == (16,)


def test_gradient_of_a_sum_of_independent_losses_is_each_pointwise_gradient():
    """The chapter evaluates 1,681 neurons as one array and backpropagates their sum: each element's gradient must
    be the gradient of its own scalar loss."""
    rng = np.random.default_rng(5)
    w_at, b_at = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    w, b = Tensor(w_at), Tensor(b_at)
    ((ag.tanh(w * 1.5 + b) - 0.5) ** 2).sum().backward()
    for i in np.ndindex(w_at.shape):
        ws, bs = Tensor(w_at[i]), Tensor(b_at[i])
        ((ag.tanh(ws * 1.5 + bs) - 0.5) ** 2).backward()
        assert w.grad[i] == pytest.approx(ws.grad.item(), rel=1e-12)
        assert b.grad[i] == pytest.approx(bs.grad.item(), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_euler_identity_holds_only_for_homogeneous_functions(seed):
    """Euler: Σ θ·∂f/∂θ = k·f for f positively homogeneous of degree k — here k = 2, a bias-free two-layer relu net.
    A squared-error loss of it is not homogeneous, and there the sum is not the loss."""
    rng = np.random.default_rng(seed)
    x, W1_at, W2_at = rng.normal(size=(5, 4)), rng.normal(size=(4, 6)), rng.normal(size=(6, 1))
    W1, W2 = Tensor(W1_at), Tensor(W2_at)
    out = (ag.relu(Tensor(x) @ W1) @ W2).sum()
    out.backward()
    euler = (W1_at * W1.grad).sum() + (W2_at * W2.grad).sum()
    assert euler == pytest.approx(2 * out.item(), rel=1e-10, abs=1e-12)
    W1b, W2b = Tensor(W1_at), Tensor(W2_at)
    loss = ((ag.relu(Tensor(x) @ W1b) @ W2b - 1.0) ** 2).mean()
    loss.backward()
    shares = (W1_at * W1b.grad).sum() + (W2_at * W2b.grad).sum()
    f = (np.maximum(x @ W1_at, 0) @ W2_at)[:, 0]  # (5,)
    assert shares == pytest.approx(4 * np.mean(f**2 - f), rel=1e-10)  # Euler applied to f inside the loss
    assert shares != pytest.approx(loss.item(), rel=1e-3)  # which is not the loss


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: Tensor([1.0]) ** Tensor([2.0]), TypeError, "exponent"),
        (lambda: Tensor([1.0, 2.0]) @ Tensor(np.ones((2, 2))), ValueError, "left operand"),
        (lambda: Tensor(np.ones((2, 2))) @ Tensor([1.0, 2.0]), ValueError, "right operand"),
        (lambda: Tensor(np.ones((2, 3))).sum(axis=2), ValueError, "axis"),
        (lambda: Tensor(np.ones((2, 3))).sum(axis=(0, -2)), ValueError, "axis"),
        (lambda: Tensor(np.ones((2, 3))).sum(axis=1.5), TypeError, "axis"),
        (lambda: Tensor(np.ones((2, 3))).transpose(0, 0), ValueError, "axes"),
        (lambda: Tensor(np.ones((2, 3))).backward(), ValueError, "gradient"),
        (lambda: Tensor(np.ones((2, 3))).backward(np.ones(3)), ValueError, "gradient"),
        (lambda: ag.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])), ValueError, "target"),
        (lambda: ag.cross_entropy(Tensor(np.ones((2, 3))), np.array([0.0, 1.0])), ValueError, "target"),
        (lambda: ag.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1, 2])), ValueError, "target"),
        (lambda: ag.cross_entropy(Tensor(np.ones(3)), np.array([0])), ValueError, "input"),
        (lambda: ag.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1]), "max"), ValueError, "reduction"),
        (lambda: ag.log_softmax(Tensor(np.ones((2, 3))), dim=2), ValueError, "dim"),
        (lambda: ag.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 2, 2))), stride=0), ValueError,
         "stride"),
        (lambda: ag.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 2, 2))), padding=-1), ValueError,
         "padding"),
        (lambda: ag.conv2d(Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((1, 1, 2, 2)))), ValueError, "weight"),
        (lambda: ag.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((2, 1, 2, 2))), Tensor(np.ones(3))),
         ValueError, "bias"),
        (lambda: ag.conv2d(Tensor(np.ones((1, 1, 2, 2))), Tensor(np.ones((1, 1, 3, 3)))), ValueError, "kernel"),
        (lambda: ag.conv2d(Tensor(np.ones((1, 4, 4))), Tensor(np.ones((1, 1, 3, 3)))), ValueError, "input"),
        (lambda: ag.numerical_gradient(lambda a: 0.0, [np.ones(2)], eps=0.0), ValueError, "eps"),
        (lambda: ag.sgd_step([Tensor(1.0)], lr=0.0), ValueError, "lr"),
        (lambda: ag.mlp(Tensor(np.ones((1, 2))), [Tensor(1.0)]), ValueError, "params"),
        (lambda: ag.layer_gradient_norms(0), ValueError, "depth"),
        (lambda: ag.layer_gradient_norms(3, activation="gelu"), ValueError, "activation"),
        (lambda: ag.layer_gradient_norms(3, weight_scale=0.0), ValueError, "weight_scale"),
        (lambda: ag.unbroadcast(np.ones(3), (1, 3)), ValueError, "shape"),
    ],
)
def test_bad_arguments_name_the_parameter(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_transpose_takes_negative_axes():
    """Negative axes are counted from the end, forward and backward, as in ``torch.permute``."""
    data = np.arange(24.0).reshape(2, 3, 4)
    x, tx = Tensor(data), torch.tensor(data, requires_grad=True)
    upstream = np.arange(24.0).reshape(4, 2, 3)
    (x.transpose(-1, 0, -2) * upstream).sum().backward()
    (tx.permute(-1, 0, -2) * torch.from_numpy(upstream)).sum().backward()
    np.testing.assert_array_equal(x.transpose(-1, 0, 1).data, tx.permute(2, 0, 1).detach().numpy())
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())
