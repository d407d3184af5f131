"""Automatic differentiation (自动微分): a small reverse-mode engine over NumPy.

Chapter: ``book/training/forward-backprop.ipynb``.

A :class:`Tensor` holds an array ``data`` (float64) and, once
:meth:`Tensor.backward` has run, an array ``grad`` of the same shape: the
derivative of the final scalar with respect to every element of ``data``.
Every operation on tensors returns a new tensor that remembers

* ``_parents`` — the tensors it was computed from (the edges of the
  computational graph, 计算图), and
* ``_backward`` — a function that takes the gradient arriving at the result
  (``out.grad``) and adds each parent's share to ``parent.grad``: the *local*
  step of the chain rule (链式法则),

.. math::

    \\frac{\\partial L}{\\partial a} \\mathrel{+}=
    \\frac{\\partial L}{\\partial \\text{out}}\\,
    \\frac{\\partial\\, \\text{out}}{\\partial a}.

The forward pass (前向传播) is ordinary evaluation that builds this graph.
Backpropagation (反向传播) is :meth:`Tensor.backward`: visit the graph in
reverse topological order, so that every node's gradient is complete before
it is passed on to its parents.

Broadcasting: when ``a`` of shape (H,) is added to ``b`` of shape (B, H), ``a``
is used B times, so its gradient is the *sum* of the B gradients —
:func:`unbroadcast` sums a gradient back down to the operand's shape.

The engine is for reading and for checking against PyTorch, not for speed.
Reductions follow NumPy (``axis``, ``keepdims``); :func:`cross_entropy`,
:func:`log_softmax` and :func:`conv2d` follow ``torch.nn.functional``.
The code is kept within 80 columns because the chapter shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from dlbook._checks import non_negative_int, number, one_of, positive_int
from dlbook.arithmetic import conv_output_size

__all__ = [
    "Tensor",
    "unbroadcast",
    "relu",
    "tanh",
    "sigmoid",
    "exp",
    "log",
    "log_softmax",
    "cross_entropy",
    "conv2d",
    "correlate",
    "topological_order",
    "Graph",
    "graph",
    "numerical_gradient",
    "mlp",
    "zero_grad",
    "sgd_step",
    "layer_gradient_norms",
]

ArrayLike = Any  # what np.asarray accepts: a number, a nested list, an array


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the gradient of a broadcast operand.

    Broadcasting copies an operand along new leading axes and along axes of
    size 1. Each copy receives its own gradient; the operand's gradient is
    their sum. E.g. a bias (H,) added to (B, H) gets ``grad.sum(axis=0)``.
    """
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"shape {shape} has more axes than grad {grad.shape}")
    # the axes that broadcasting added in front
    summed = grad.sum(axis=tuple(range(extra))) if extra else grad
    # the axes it stretched from size 1
    axes = tuple(i for i, n in enumerate(shape)
                 if n == 1 and summed.shape[i] != 1)
    if axes:
        summed = summed.sum(axis=axes, keepdims=True)
    return np.asarray(summed)  # an array even for shape ()


def _axes(axis: int | Sequence[int] | None, ndim: int,
          name: str = "axis") -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative axes (``None`` = all of them).
    NumPy refuses an axis out of range or repeated, naming ``name``."""
    if axis is None:
        return tuple(range(ndim))
    items = tuple(axis) if isinstance(axis, Sequence) else (axis,)
    if not all(type(a) is not bool and isinstance(a, int | np.integer)
               for a in items):
        raise TypeError(f"{name} must be int(s) or None, got {axis!r}")
    return normalize_axis_tuple(items, ndim, name)


class Tensor:
    """A NumPy array that records how it was computed, so that gradients can
    flow back through it.

    ``data`` is a float64 array (a copy of what was passed in); ``grad`` has
    the same shape and starts at zero; ``label`` names the tensor in drawings
    of the graph. Results of operations also carry ``_parents`` (the inputs),
    ``_op`` (a short name of the operation) and ``_backward`` (the local
    chain-rule step).
    """

    # so that `ndarray * Tensor` calls Tensor.__rmul__, not NumPy's multiply
    __array_priority__ = 1000

    def __init__(self, data: ArrayLike, label: str = "") -> None:
        # a copy: a Tensor never aliases the caller's array
        self.data = np.array(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self.label = label
        self._parents: tuple[Tensor, ...] = ()
        self._op = ""
        self._backward: Callable[[], None] = lambda: None

    @classmethod
    def _result(cls, data: np.ndarray, parents: tuple[Tensor, ...],
                op: str) -> Tensor:
        """A new node of the graph: the result of ``op`` on ``parents``."""
        out = cls.__new__(cls)
        out.data = np.asarray(data, dtype=np.float64)
        out.grad = np.zeros_like(out.data)
        out.label = ""
        out._parents = parents
        out._op = op
        out._backward = lambda: None
        return out

    # ------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def item(self) -> float:
        return float(self.data.item())

    def __repr__(self) -> str:
        name = f" {self.label!r}" if self.label else ""
        op = f", op={self._op!r}" if self._op else ""
        return f"Tensor{name}(shape={self.shape}{op})"

    # ------------------------------------------------- elementwise binary
    def __add__(self, other: Tensor | ArrayLike) -> Tensor:
        other = _as_tensor(other)
        out = Tensor._result(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            # d(a+b)/da = 1 and d(a+b)/db = 1
            self.grad += unbroadcast(out.grad, self.shape)
            other.grad += unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __sub__(self, other: Tensor | ArrayLike) -> Tensor:
        other = _as_tensor(other)
        out = Tensor._result(self.data - other.data, (self, other), "-")

        def _backward() -> None:
            # d(a-b)/da = 1 and d(a-b)/db = -1
            self.grad += unbroadcast(out.grad, self.shape)
            other.grad -= unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __mul__(self, other: Tensor | ArrayLike) -> Tensor:
        other = _as_tensor(other)
        out = Tensor._result(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            # d(ab)/da = b and d(ab)/db = a
            self.grad += unbroadcast(out.grad * other.data, self.shape)
            other.grad += unbroadcast(out.grad * self.data, other.shape)

        out._backward = _backward
        return out

    def __truediv__(self, other: Tensor | ArrayLike) -> Tensor:
        other = _as_tensor(other)
        out = Tensor._result(self.data / other.data, (self, other), "/")

        def _backward() -> None:
            # d(a/b)/da = 1/b and d(a/b)/db = -a/b²
            self.grad += unbroadcast(out.grad / other.data, self.shape)
            other.grad -= unbroadcast(
                out.grad * self.data / other.data**2, other.shape)

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Tensor:
        number(exponent, "exponent")  # a constant, not a Tensor
        out = Tensor._result(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:
            # d(a^p)/da = p a^(p-1)
            self.grad += out.grad * exponent * self.data ** (exponent - 1)

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        out = Tensor._result(-self.data, (self,), "neg")

        def _backward() -> None:
            self.grad -= out.grad

        out._backward = _backward
        return out

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _as_tensor(other) + self

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _as_tensor(other) - self

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _as_tensor(other) * self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _as_tensor(other) / self

    # ------------------------------------------------------------- matmul
    def __matmul__(self, other: Tensor | ArrayLike) -> Tensor:
        other = _as_tensor(other)
        for side, t in (("left operand", self), ("right operand", other)):
            if t.ndim < 2:
                raise ValueError(f"matmul: {side} must be 2-D, got {t.shape}")
        # (..., n, k) @ (..., k, m) -> (..., n, m)
        out = Tensor._result(self.data @ other.data, (self, other), "@")

        def _backward() -> None:
            # out = a b:  dL/da = G bᵀ and dL/db = aᵀ G, with G = dL/dout;
            # leading (batch) axes may have been broadcast
            a_t = np.swapaxes(self.data, -1, -2)   # (..., k, n)
            b_t = np.swapaxes(other.data, -1, -2)  # (..., m, k)
            self.grad += unbroadcast(out.grad @ b_t, self.shape)
            other.grad += unbroadcast(a_t @ out.grad, other.shape)

        out._backward = _backward
        return out

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _as_tensor(other) @ self

    # --------------------------------------------------------- reductions
    def sum(self, axis: int | Sequence[int] | None = None,
            keepdims: bool = False) -> Tensor:
        axes = _axes(axis, self.ndim)
        total = self.data.sum(axis=axes, keepdims=keepdims)
        out = Tensor._result(total, (self,), "sum")

        def _backward() -> None:
            # put the summed axes back (size 1); every summed element gets
            # the same gradient
            g = out.grad if keepdims else np.expand_dims(out.grad, axes)
            self.grad += np.broadcast_to(g, self.shape)

        out._backward = _backward
        return out

    def mean(self, axis: int | Sequence[int] | None = None,
             keepdims: bool = False) -> Tensor:
        axes = _axes(axis, self.ndim)
        count = int(np.prod([self.shape[a] for a in axes]))
        average = self.data.mean(axis=axes, keepdims=keepdims)
        out = Tensor._result(average, (self,), "mean")

        def _backward() -> None:
            g = out.grad if keepdims else np.expand_dims(out.grad, axes)
            self.grad += np.broadcast_to(g, self.shape) / count

        out._backward = _backward
        return out

    # ------------------------------------------------------ shape changes
    def reshape(self, *shape: int) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        out = Tensor._result(self.data.reshape(shape), (self,), "reshape")

        def _backward() -> None:
            self.grad += out.grad.reshape(self.shape)

        out._backward = _backward
        return out

    def transpose(self, *axes: int) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        if not axes:  # the default: reverse them
            axes = tuple(reversed(range(self.ndim)))
        order = _axes(axes, self.ndim, "axes")  # NumPy refuses a wrong count
        out = Tensor._result(self.data.transpose(order), (self,), "transpose")

        def _backward() -> None:
            # the inverse permutation puts the axes back
            self.grad += out.grad.transpose(np.argsort(order))

        out._backward = _backward
        return out

    @property
    def T(self) -> Tensor:  # noqa: N802 (NumPy's name)
        return self.transpose()

    # ---------------------------------------------- elementwise functions
    def exp(self) -> Tensor:
        out = Tensor._result(np.exp(self.data), (self,), "exp")

        def _backward() -> None:
            # d(e^a)/da = e^a, already computed in the forward pass
            self.grad += out.grad * out.data

        out._backward = _backward
        return out

    def log(self) -> Tensor:
        out = Tensor._result(np.log(self.data), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def relu(self) -> Tensor:
        out = Tensor._result(np.maximum(self.data, 0.0), (self,), "relu")

        def _backward() -> None:
            # slope 1 where the input was positive, 0 elsewhere
            self.grad += out.grad * (self.data > 0)

        out._backward = _backward
        return out

    def tanh(self) -> Tensor:
        out = Tensor._result(np.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += out.grad * (1.0 - out.data**2)

        out._backward = _backward
        return out

    def sigmoid(self) -> Tensor:
        # 1 / (1 + e^-a), without overflow for large |a|
        s = np.exp(-np.logaddexp(0.0, -self.data))
        out = Tensor._result(s, (self,), "sigmoid")

        def _backward() -> None:
            self.grad += out.grad * out.data * (1.0 - out.data)

        out._backward = _backward
        return out

    # ----------------------------------------------------------- backward
    def backward(self, gradient: ArrayLike | None = None) -> None:
        """Fill ``.grad`` of every tensor this one was computed from.

        ``gradient`` is dL/d(self); it may be omitted when ``self`` holds a
        single number (then it is 1). Gradients *accumulate* (``+=``) as in
        PyTorch: call :func:`zero_grad` on the parameters between steps, and
        run the forward pass again (a fresh graph) for every backward pass.
        """
        ones = np.ones_like(self.data)  # dL/dL = 1 for a scalar L
        seed = ones if gradient is None else np.asarray(gradient, float)
        if seed.shape != self.shape or (gradient is None and seed.size != 1):
            raise ValueError(f"gradient of shape {self.shape} is needed")
        self.grad = self.grad + seed
        # each node after every node that uses it: its gradient is complete
        # before it is passed on
        for node in reversed(topological_order(self)):
            node._backward()


def _as_tensor(value: Tensor | ArrayLike) -> Tensor:
    """A constant (number or array) as a leaf Tensor, labelled by its value
    when it is a single number."""
    if isinstance(value, Tensor):
        return value
    array = np.asarray(value, dtype=np.float64)
    label = f"{array.item():g}" if array.size == 1 else "const"
    return Tensor(array, label=label)


# ------------------------------------- the same operations as plain functions
def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise."""
    return x.relu()


def tanh(x: Tensor) -> Tensor:
    """tanh(x) elementwise."""
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)) elementwise."""
    return x.sigmoid()


def exp(x: Tensor) -> Tensor:
    """exp(x) elementwise."""
    return x.exp()


def log(x: Tensor) -> Tensor:
    """Natural logarithm elementwise."""
    return x.log()


def _logsumexp(z: np.ndarray, axis: int) -> np.ndarray:
    """log Σ exp(z) along ``axis`` (kept, size 1). Stable: the maximum is
    taken out first, so exp never overflows."""
    m = z.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    """``z - logsumexp(z)`` along ``dim``, as ``F.log_softmax``.

    Backward: ``g - softmax(z) * sum(g)`` along ``dim``.
    """
    axis = _axes(dim, input.ndim, "dim")[0]
    log_p = input.data - _logsumexp(input.data, axis)
    out = Tensor._result(log_p, (input,), "log_softmax")

    def _backward() -> None:
        softmax = np.exp(out.data)
        g_sum = out.grad.sum(axis=axis, keepdims=True)
        input.grad += out.grad - softmax * g_sum

    out._backward = _backward
    return out


def cross_entropy(input: Tensor, target: ArrayLike,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits ``input`` (B, K) against integer class
    labels ``target`` (B,), as ``torch.nn.functional.cross_entropy``.

    ``loss_b = logsumexp(z_b) - z_b[target_b]``, averaged over the batch
    (``reduction="mean"``) or summed (``"sum"``). One fused node whose
    backward is the classic

    .. math:: \\frac{\\partial L}{\\partial z_{bk}} = \\frac{1}{B}\\,
        (\\operatorname{softmax}(z_b)_k - [k = y_b]).
    """
    if not isinstance(input, Tensor) or input.ndim != 2:
        shape = getattr(input, "shape", type(input))
        raise ValueError(
            f"input must be a (B, K) Tensor of logits, got {shape}")
    one_of(reduction, "reduction", ("mean", "sum"))
    labels = np.asarray(target)
    B, K = input.shape
    if (labels.shape != (B,) or not np.issubdtype(labels.dtype, np.integer)
            or (B and (labels.min() < 0 or labels.max() >= K))):
        raise ValueError(f"target must be {B} ints in [0, {K}), got {labels}")
    rows = np.arange(B)
    log_p = input.data - _logsumexp(input.data, axis=1)  # (B, K) log-softmax
    per_example = -log_p[rows, labels]                     # (B,)
    scale = 1.0 / B if reduction == "mean" else 1.0
    out = Tensor._result(per_example.sum() * scale, (input,), "cross_entropy")

    def _backward() -> None:
        d = np.exp(log_p)        # (B, K) softmax
        d[rows, labels] -= 1.0   # softmax - one_hot(target)
        input.grad += out.grad * scale * d

    out._backward = _backward
    return out


# --------------------------------------------------------------- convolution
def correlate(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """Valid 2-D cross-correlation of arrays:
    x (B, C, H, W), w (O, C, kH, kW) -> (B, O, H_out, W_out).

    The one routine :func:`conv2d` uses, forward *and* backward.
    """
    kh, kw = w.shape[-2:]
    view = np.lib.stride_tricks.sliding_window_view
    windows = view(x, (kh, kw), axis=(2, 3))  # (B, C, H-kH+1, W-kW+1, kH, kW)
    windows = windows[:, :, ::stride, ::stride]  # (B, C, Ho, Wo, kH, kW)
    return np.einsum("bchwij,ocij->bohw", windows, w,
                     optimize=True)  # (B, O, Ho, Wo)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
           stride: int = 1, padding: int = 0) -> Tensor:
    """A 2-D convolution layer (cross-correlation) and its backward pass.

    Shapes: input (B, C, H, W), weight (O, C, kH, kW), bias (O,) or None
    -> (B, O, Ho, Wo) with ``Ho = (H + 2 padding - kH) // stride + 1``.
    ``stride`` and ``padding`` are ints; no dilation or groups here.

    The backward pass is two more cross-correlations (:func:`correlate`).
    The gradient ``g`` (B, O, Ho, Wo) is first spread out to stride 1 by
    putting ``stride - 1`` zeros between its entries; then

    * dL/dinput = correlate(g padded by k - 1, the kernel flipped, with its
      C and O axes swapped): a *full* convolution of ``g`` with the kernel;
    * dL/dweight = correlate(the input, g), with the batch axis playing the
      part of the channels.
    """
    s = positive_int(stride, "stride")
    p = non_negative_int(padding, "padding")
    if input.ndim != 4 or weight.ndim != 4 or input.shape[1] != weight.shape[1]:
        raise ValueError("input (B, C, H, W) and weight (O, C, kH, kW) must "
                         f"agree in C, got {input.shape} and {weight.shape}")
    O, C, kh, kw = weight.shape
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"bias must have shape ({O},), got {bias.shape}")
    # the output size; refuses a kernel larger than the padded input
    Ho, Wo = (conv_output_size(n, k, s, p)
              for n, k in zip(input.shape[2:], (kh, kw), strict=True))
    xp = np.pad(input.data, ((0, 0), (0, 0), (p, p), (p, p)))  # (B, C, Hp, Wp)
    y = correlate(xp, weight.data, s)  # (B, O, Ho, Wo)
    if bias is not None:
        y = y + bias.data[:, None, None]
    parents = (input, weight) if bias is None else (input, weight, bias)
    out = Tensor._result(y, parents, "conv2d")

    def _backward() -> None:
        g = out.grad  # (B, O, Ho, Wo)
        # the gradient on the stride-1 grid, zeros between its entries
        gd = np.zeros((len(g), O, (Ho - 1) * s + 1, (Wo - 1) * s + 1))
        gd[:, :, ::s, ::s] = g  # (B, O, Hd, Wd)
        # the part of the padded input that the kernel visited
        Hu, Wu = gd.shape[2] + kh - 1, gd.shape[3] + kw - 1
        # dL/dinput: a full convolution of g with the kernel
        flipped = weight.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        g_full = np.pad(gd, ((0, 0), (0, 0), (kh - 1,) * 2, (kw - 1,) * 2))
        dxp = np.zeros_like(xp)  # (B, C, Hp, Wp)
        dxp[:, :, :Hu, :Wu] = correlate(g_full, flipped)  # (B, C, Hu, Wu)
        input.grad += dxp[:, :, p:xp.shape[2] - p, p:xp.shape[3] - p]
        # dL/dweight: the input correlated with g (B summed like channels)
        x_used = xp[:, :, :Hu, :Wu].transpose(1, 0, 2, 3)  # (C, B, Hu, Wu)
        dw = correlate(x_used, gd.transpose(1, 0, 2, 3))   # (C, O, kH, kW)
        weight.grad += dw.transpose(1, 0, 2, 3)            # (O, C, kH, kW)
        if bias is not None:
            bias.grad += g.sum(axis=(0, 2, 3))  # (O,)

    out._backward = _backward
    return out


# ----------------------------------------------------------------- the graph
def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor ``root`` depends on, each after all of its parents
    (``root`` last).

    An iterative depth-first search, so that a graph thousands of nodes deep
    does not hit Python's recursion limit.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))  # back to it once its parents are done
        stack.extend((p, False) for p in reversed(node._parents)
                     if id(p) not in visited)
    return order


@dataclass(frozen=True)
class Graph:
    """The computational graph behind a tensor: ``nodes`` in topological
    order, ``edges`` as (parent, child) index pairs into ``nodes`` (one edge
    per use, so ``x * x`` has two edges from ``x``)."""

    nodes: tuple[Tensor, ...]
    edges: tuple[tuple[int, int], ...]


def graph(root: Tensor) -> Graph:
    """The graph of every operation that produced ``root``, for inspection
    or drawing (:func:`dlbook.figures.draw_graph`)."""
    nodes = topological_order(root)
    index = {id(n): i for i, n in enumerate(nodes)}
    edges = tuple((index[id(p)], index[id(n)])
                  for n in nodes for p in n._parents)
    return Graph(tuple(nodes), edges)


# ---------------------------------------------------- checks and small nets
def numerical_gradient(f: Callable[..., float], arrays: Sequence[np.ndarray],
                       eps: float = 1e-6) -> list[np.ndarray]:
    """Central finite differences for every element of every array:
    ``(f(a + eps e_i) - f(a - eps e_i)) / (2 eps)``.

    ``f`` takes the arrays (positional arguments) and returns a number. Two
    calls of ``f`` per element: a check for small inputs, not a way to train.
    """
    number(eps, "eps", minimum=0.0, strict=True)
    originals = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for k, a in enumerate(originals):
        grad = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            shifted = [o.copy() for o in originals]
            shifted[k][idx] = a[idx] + eps
            up = float(f(*shifted))
            shifted[k][idx] = a[idx] - eps
            down = float(f(*shifted))
            grad[idx] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


def mlp(x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """A two-layer perceptron: ``logits = relu(x W1 + b1) W2 + b2``.

    Shapes: x (B, D), W1 (D, H), b1 (H,), W2 (H, K), b2 (K,) -> (B, K), with
    ``params = [W1, b1, W2, b2]``. (``nn.Linear`` stores the transposed
    weight, (H, D): ``x @ linear.weight.T`` is the same map.)
    """
    if len(params) != 4:
        raise ValueError(f"params must be [W1, b1, W2, b2], got {len(params)}")
    W1, b1, W2, b2 = params
    h = relu(x @ W1 + b1)  # (B, H)
    return h @ W2 + b2     # (B, K)


def zero_grad(params: Sequence[Tensor]) -> None:
    """Set every gradient to zero (gradients accumulate otherwise)."""
    for p in params:
        p.grad = np.zeros_like(p.data)


def sgd_step(params: Sequence[Tensor], lr: float) -> None:
    """One step of gradient descent, in place: ``p <- p - lr * dL/dp``."""
    number(lr, "lr", minimum=0.0, strict=True)
    for p in params:
        p.data -= lr * p.grad


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def layer_gradient_norms(
    depth: int,
    *,
    activation: str = "tanh",
    weight_scale: float = 1.0,
    width: int = 32,
    batch: int = 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Gradient sizes, layer by layer, in a freshly initialised deep net.

    ``depth`` layers ``h_l = activation(h_{l-1} W_l)``, each W_l (width,
    width) drawn from N(0, weight_scale² / width), on random inputs h_0
    (batch, width). The loss is a fixed random read-out,
    ``L = mean_b(h_depth r)``, so the gradient entering the top layer has
    the same size whatever the depth.

    Returns ``{"activations": ‖dL/dh_l‖, "weights": ‖dL/dW_l‖}``, each
    (depth,), layer 1 first. Backprop multiplies one Jacobian per layer, so
    ‖dL/dh_l‖ shrinks (vanishes) or grows (explodes) geometrically with the
    distance from the top unless each factor is near 1.
    """
    positive_int(depth, "depth")
    one_of(activation, "activation", tuple(_ACTIVATIONS))
    number(weight_scale, "weight_scale", minimum=0.0, strict=True)
    rng = np.random.default_rng(seed)
    act = _ACTIVATIONS[activation]
    std = weight_scale / np.sqrt(width)
    weights = [Tensor(rng.normal(0.0, std, (width, width)), f"W{k + 1}")
               for k in range(depth)]
    readout = rng.normal(size=(width, 1))                  # (width, 1)
    h = Tensor(rng.normal(size=(batch, width)), "x")       # (batch, width)
    hidden = []
    for w in weights:
        h = act(h @ w)                                     # (batch, width)
        hidden.append(h)
    loss = (h @ readout).mean()
    loss.backward()
    return {
        "activations": np.array([np.linalg.norm(t.grad) for t in hidden]),
        "weights": np.array([np.linalg.norm(w.grad) for w in weights]),
    }
