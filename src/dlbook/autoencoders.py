"""Autoencoders (自动编码器) and variational autoencoders (变分自动编码器, VAE).

Chapters: ``book/autoencoders/autoencoders.ipynb`` and ``book/autoencoders/vae.ipynb``.

An **autoencoder** is an encoder ``f`` and a decoder ``g`` trained so that ``g(f(x))`` reconstructs ``x``. The
**code** (编码) ``h = f(x)`` has Z numbers per example; D is the number of input numbers (pixels):

.. math::

    h = f(x) \\in \\mathbb{R}^Z, \\qquad r = g(h) \\in \\mathbb{R}^D, \\qquad
    \\min_{f, g}\\; \\frac{1}{N} \\sum_n \\lVert x_n - g(f(x_n)) \\rVert^2 + \\lambda\\, \\Omega .

* **Undercomplete** (欠完备): Z < D, no penalty. With linear ``f`` and ``g`` the decoder spans the top-Z principal
  subspace of the data (:func:`pca_basis`, :func:`principal_angles`).
* **Regularised** (正则化): a penalty Ω shapes the code. A *sparse* autoencoder penalises the code activations,
  ``Ω = Σ_j |h_j|`` (:func:`sparsity_penalty`); a *contractive* one the encoder's Jacobian,
  ``Ω = ‖∂f/∂x‖_F²`` (:func:`contractive_penalty`); a *denoising* one reconstructs ``x`` from a corrupted copy
  (:func:`corrupt`). L1/L2 penalties on the *weights* are plain weight regularisation.
* **Variational** (VAE): the encoder outputs a Gaussian ``q(z|x) = N(μ, diag σ²)``; a code is drawn with the
  reparameterisation trick (:func:`reparameterize`), and training maximises the evidence lower bound

.. math::

    \\log p(x) \\;\\ge\\; \\mathrm{ELBO}(x) = \\mathbb{E}_{q(z|x)}[\\log p(x|z)]
    - \\mathrm{KL}\\big(q(z|x)\\,\\|\\,\\mathcal{N}(0, I)\\big)

  (:func:`vae_loss` is ``-ELBO`` with a weight β on the KL term; :func:`gaussian_kl` its closed form;
  :func:`importance_log_likelihood` a tighter estimate of ``log p(x)``; :func:`aggregate_log_density` the density of
  the codes of a whole training set, to compare with the prior).

Shapes: inputs are (B, D) or images (B, C, H, W), which the models flatten to (B, D) with D = C·H·W; codes and latent
variables are (B, Z).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dlbook._checks import check_tensor, non_negative_int, number, positive_int
from dlbook.training import History, ShuffledBatches, train

__all__ = [
    "ACTIVATIONS",
    "activate",
    "mlp",
    "Autoencoder",
    "VAE",
    "reconstruction_error",
    "sparsity_penalty",
    "encoder_jacobian",
    "contractive_penalty",
    "dense_contractive_penalty",
    "corrupt",
    "code_sparsity",
    "pca_basis",
    "principal_angles",
    "nearest_distance",
    "gaussian_kl",
    "reparameterize",
    "bernoulli_nll",
    "vae_loss",
    "importance_log_likelihood",
    "aggregate_log_density",
    "AEConfig",
    "autoencoder_loss",
    "train_autoencoder",
    "VAEConfig",
    "train_vae",
]

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


# ------------------------------------------------------------------------------------------------ checks
def _check_activation(name: object, param: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"{param} must be one of {ACTIVATIONS}, got {name!r}")
    return name  # type: ignore[return-value]


def _check_number(value: object, name: str, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def _check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _check_batch(x: object, name: str, min_ndim: int = 1) -> torch.Tensor:
    """``x`` must be a floating-point tensor with at least ``min_ndim`` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_gaussian(mu: object, logvar: object) -> None:
    _check_batch(mu, "mu")
    _check_batch(logvar, "logvar")
    _check_same_shape(mu, logvar, "mu", "logvar")


# ---------------------------------------------------------------------------------------- building blocks
def activate(a: torch.Tensor, activation: str) -> torch.Tensor:
    """Apply an element-wise non-linearity: ``"linear"`` (identity), ``"relu"``, ``"sigmoid"`` or ``"tanh"``."""
    _check_activation(activation, "activation")
    if activation == "relu":
        return torch.relu(a)
    if activation == "sigmoid":
        return torch.sigmoid(a)
    if activation == "tanh":
        return torch.tanh(a)
    return a


def mlp(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    activation: str = "relu",
    final: str = "linear",
) -> torch.Tensor:
    """A stack of dense layers: ``a_{l+1} = act(a_l W_lᵀ + b_l)``, ``final`` after the last layer.

    Shapes: x (B, D_0); ``weights[l]`` (D_{l+1}, D_l) as in ``torch.nn.Linear``; ``biases[l]`` (D_{l+1},);
    output (B, D_L).
    """
    check_tensor(x, "x", (2,))
    _check_activation(activation, "activation")
    _check_activation(final, "final")
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"weights and biases must be non-empty and of equal length, got {len(weights)} and "
                         f"{len(biases)}")
    a = x  # (B, D_0)
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if w.ndim != 2 or w.shape[1] != a.shape[1] or b.shape != (w.shape[0],):
            raise ValueError(f"layer {index}: weights[{index}] {tuple(w.shape)} and biases[{index}] "
                             f"{tuple(b.shape)} do not fit an input with {a.shape[1]} features")
        a = a @ w.T + b  # (B, D_{l+1})
        a = activate(a, final if index == len(weights) - 1 else activation)
    return a


def _linear_init(n_out: int, n_in: int, generator: torch.Generator | None, dtype: torch.dtype | None):
    """``torch.nn.Linear``'s default initialisation, U(-1/√n_in, 1/√n_in), drawn from ``generator``."""
    bound = 1.0 / math.sqrt(n_in)
    dtype = dtype or torch.get_default_dtype()
    w = (torch.rand(n_out, n_in, generator=generator, dtype=dtype) * 2 - 1) * bound  # (n_out, n_in)
    b = (torch.rand(n_out, generator=generator, dtype=dtype) * 2 - 1) * bound  # (n_out,)
    return torch.nn.Parameter(w), torch.nn.Parameter(b)


def _features(in_features: int | Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """``in_features`` as (D, shape of one example): an int D, or an image shape such as (1, 28, 28)."""
    if isinstance(in_features, int) and not isinstance(in_features, bool):
        return positive_int(in_features, "in_features"), (in_features,)
    if isinstance(in_features, Sequence) and not isinstance(in_features, str) and len(in_features) > 0:
        shape = tuple(positive_int(s, "in_features") for s in in_features)
        return math.prod(shape), shape
    raise TypeError(f"in_features must be an int or a shape such as (1, 28, 28), got {in_features!r}")


def _check_hidden(hidden: object) -> tuple[int, ...]:
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise TypeError(f"hidden must be a sequence of layer widths, got {hidden!r}")
    return tuple(positive_int(h, "hidden") for h in hidden)


def _flatten(x: torch.Tensor, shape: tuple[int, ...], D: int) -> torch.Tensor:
    """(B, *shape) or (B, D) -> (B, D), with a message that names the expected shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) not in (shape, (D,)):
        raise ValueError(f"x must have shape (B, {', '.join(map(str, shape))}) or (B, {D}), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], D)  # (B, D)


class Autoencoder(torch.nn.Module):
    """An encoder ``f`` and a decoder ``g`` made of dense layers: ``forward(x) = g(f(x))``.

    Args:
        in_features: D, or the shape of one example, e.g. ``(1, 28, 28)`` (then reconstructions have that shape).
        code_size: Z, the width of the code ``h = f(x)``. Z < D is undercomplete, Z > D overcomplete.
        hidden: widths of the hidden layers of the encoder; the decoder mirrors them.
        activation: non-linearity of the hidden layers.
        code_activation: non-linearity of the code layer (``"relu"`` gives exact zeros, as a sparse code needs).
        output: non-linearity of the reconstruction (``"sigmoid"`` for pixels in [0, 1], ``"linear"`` otherwise).
        tied: the decoder's weights are the encoder's, transposed (``W_dec = W_encᵀ``); biases stay separate.
        generator: draws the initial weights (``torch.nn.Linear``'s scheme), for a run that repeats exactly.

    Shapes: ``encode`` (B, D) or (B, *in_features) -> (B, Z); ``decode`` (B, Z) -> (B, *in_features).
    """

    def __init__(
        self,
        in_features: int | Sequence[int],
        code_size: int,
        hidden: Sequence[int] = (),
        *,
        activation: str = "relu",
        code_activation: str = "linear",
        output: str = "sigmoid",
        tied: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.D, self.shape = _features(in_features)
        self.Z = positive_int(code_size, "code_size")
        self.hidden = _check_hidden(hidden)
        self.activation = _check_activation(activation, "activation")
        self.code_activation = _check_activation(code_activation, "code_activation")
        self.output = _check_activation(output, "output")
        if not isinstance(tied, bool):
            raise TypeError(f"tied must be a bool, got {tied!r}")
        self.tied = tied
        _check_generator(generator)
        sizes = [self.D, *self.hidden, self.Z]
        enc = [_linear_init(n_out, n_in, generator, dtype) for n_in, n_out in zip(sizes, sizes[1:], strict=False)]
        self.enc_weights = torch.nn.ParameterList([w for w, _ in enc])
        self.enc_biases = torch.nn.ParameterList([b for _, b in enc])
        back = sizes[::-1]
        dec = [_linear_init(n_out, n_in, generator, dtype) for n_in, n_out in zip(back, back[1:], strict=False)]
        self.dec_weights = torch.nn.ParameterList([] if tied else [w for w, _ in dec])
        self.dec_biases = torch.nn.ParameterList([b for _, b in dec])

    def decoder_weights(self) -> list[torch.Tensor]:
        """The decoder's weight matrices, first layer first: (D_{l+1}, D_l) each; the transposes when tied."""
        if self.tied:
            return [w.T for w in reversed(self.enc_weights)]
        return list(self.dec_weights)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``h = f(x)``: (B, D) or (B, *in_features) -> (B, Z)."""
        flat = _flatten(x, self.shape, self.D)  # (B, D)
        return mlp(flat, list(self.enc_weights), list(self.enc_biases), self.activation, self.code_activation)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """``r = g(h)``: (B, Z) -> (B, *in_features)."""
        check_tensor(h, "h", (2,))
        if h.shape[1] != self.Z:
            raise ValueError(f"h must have shape (B, {self.Z}), got {tuple(h.shape)}")
        r = mlp(h, self.decoder_weights(), list(self.dec_biases), self.activation, self.output)  # (B, D)
        return r.reshape(h.shape[0], *self.shape)  # (B, *in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``g(f(x))``: (B, *in_features) -> (B, *in_features)."""
        return self.decode(self.encode(x))


class VAE(torch.nn.Module):
    """A variational autoencoder with a Gaussian encoder and a Bernoulli decoder (pixels in [0, 1]).

    The encoder maps x to the mean μ and log-variance log σ² of ``q(z|x) = N(μ, diag σ²)`` (one network whose last
    layer has 2Z outputs); the decoder maps a latent ``z`` to pixel probabilities ``p(x|z)``; the prior is
    ``p(z) = N(0, I)``.

    Shapes: ``encode`` (B, *in_features) -> (μ, log σ²), each (B, Z); ``decode`` (B, Z) -> (B, *in_features);
    ``forward`` returns (reconstruction, μ, log σ²); ``sample(n)`` decodes n draws from the prior.
    """

    def __init__(
        self,
        in_features: int | Sequence[int],
        latent_size: int,
        hidden: Sequence[int] = (256,),
        *,
        activation: str = "relu",
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.D, self.shape = _features(in_features)
        self.Z = positive_int(latent_size, "latent_size")
        self.hidden = _check_hidden(hidden)
        self.activation = _check_activation(activation, "activation")
        _check_generator(generator)
        sizes = [self.D, *self.hidden, 2 * self.Z]
        enc = [_linear_init(n_out, n_in, generator, dtype) for n_in, n_out in zip(sizes, sizes[1:], strict=False)]
        back = [self.Z, *self.hidden[::-1], self.D]
        dec = [_linear_init(n_out, n_in, generator, dtype) for n_in, n_out in zip(back, back[1:], strict=False)]
        self.enc_weights = torch.nn.ParameterList([w for w, _ in enc])
        self.enc_biases = torch.nn.ParameterList([b for _, b in enc])
        self.dec_weights = torch.nn.ParameterList([w for w, _ in dec])
        self.dec_biases = torch.nn.ParameterList([b for _, b in dec])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters of ``q(z|x)``: (μ, log σ²), each (B, Z)."""
        flat = _flatten(x, self.shape, self.D)  # (B, D)
        out = mlp(flat, list(self.enc_weights), list(self.enc_biases), self.activation, "linear")  # (B, 2Z)
        return out[:, : self.Z], out[:, self.Z :]  # (B, Z), (B, Z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities of ``p(x|z)``: (B, Z) -> (B, *in_features), each in (0, 1)."""
        check_tensor(z, "z", (2,))
        if z.shape[1] != self.Z:
            raise ValueError(f"z must have shape (B, {self.Z}), got {tuple(z.shape)}")
        r = mlp(z, list(self.dec_weights), list(self.dec_biases), self.activation, "sigmoid")  # (B, D)
        return r.reshape(z.shape[0], *self.shape)  # (B, *in_features)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw one ``z`` per example with :func:`reparameterize`, decode: (recon, μ, log σ²)."""
        mu, logvar = self.encode(x)  # (B, Z), (B, Z)
        z = reparameterize(mu, logvar, generator)  # (B, Z)
        return self.decode(z), mu, logvar

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` draws ``z ~ N(0, I)`` from the prior: (n, *in_features) pixel probabilities.

        These are the decoder's means ``E[x|z]``, what pictures of VAE samples usually show; an image drawn from the
        model itself is ``torch.bernoulli`` of them, each pixel independently.
        """
        positive_int(n, "n")
        _check_generator(generator)
        w = self.dec_weights[0]
        z = torch.randn(n, self.Z, generator=generator, dtype=w.dtype, device=w.device)  # (n, Z)
        return self.decode(z)


# ------------------------------------------------------------------------------------ regularised autoencoders
def reconstruction_error(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error per example, summed over its D numbers: ``‖x - r‖²``, shape (B,)."""
    _check_batch(recon, "recon")
    _check_batch(x, "x")
    _check_same_shape(recon, x, "recon", "x")
    return (recon - x).pow(2).reshape(x.shape[0], -1).sum(1)  # (B,)


def sparsity_penalty(code: torch.Tensor) -> torch.Tensor:
    """The sparse autoencoder's penalty: the L1 norm of the code **activations**, ``Σ_j |h_j|``, batch mean.

    It penalises the code ``h = f(x)`` of each example, not the weights: an L1 penalty on weights gives sparse
    *connections*, which is a different thing. Shape: code (B, Z) -> scalar.
    """
    check_tensor(code, "code", (2,))
    return code.abs().sum(1).mean()  # ()


def encoder_jacobian(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian ``J[b] = ∂f(x_b)/∂x_b`` of the encoder at every example: (B, Z, D), D = numbers per example.

    Each of the Z rows is a gradient of one code unit summed over the batch (valid because examples do not
    interact in the encoder); the Z backward passes run as one batched call (``is_grads_batched``). The graph is
    kept (``create_graph=True``), so a penalty built from J can itself be differentiated during training.
    """
    if not callable(encode):
        raise TypeError(f"encode must be callable (x -> code), got {type(encode).__name__}")
    _check_batch(x, "x", 2)
    xg = x if x.requires_grad else x.detach().requires_grad_(True)
    h = encode(xg)  # (B, Z)
    if not isinstance(h, torch.Tensor) or h.ndim != 2 or h.shape[0] != x.shape[0]:
        raise ValueError(f"encode must return a code of shape (B, Z) with B = {x.shape[0]}, got "
                         f"{tuple(getattr(h, 'shape', ()))}")
    B, Z = h.shape
    basis = torch.eye(Z, dtype=h.dtype, device=h.device)[:, None, :].expand(Z, B, Z)  # (Z, B, Z): one unit each
    (rows,) = torch.autograd.grad(h, xg, basis, create_graph=True, is_grads_batched=True)  # (Z, B, *x.shape[1:])
    return rows.reshape(Z, B, -1).transpose(0, 1)  # (B, Z, D)


def contractive_penalty(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The contractive autoencoder's penalty: ``‖∂f(x)/∂x‖_F²``, the squared Frobenius norm of the encoder's
    Jacobian, averaged over the batch. Small when the code barely moves under small changes of the input.
    Shape: x (B, ...) -> scalar."""
    return encoder_jacobian(encode, x).pow(2).sum((1, 2)).mean()  # ()


def _activation_slope(a: torch.Tensor, activation: str) -> torch.Tensor:
    """The derivative of ``activate(a, activation)`` with respect to ``a``, element-wise."""
    if activation == "relu":
        return (a > 0).to(a.dtype)
    if activation == "sigmoid":
        s = torch.sigmoid(a)
        return s * (1 - s)
    if activation == "tanh":
        return 1 - torch.tanh(a).pow(2)
    return torch.ones_like(a)


def dense_contractive_penalty(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: str = "sigmoid"
) -> torch.Tensor:
    """:func:`contractive_penalty` in closed form for a one-layer encoder ``h = act(x Wᵀ + b)``:

    .. math::

        \\lVert J \\rVert_F^2 = \\sum_j \\mathrm{act}'(a_j)^2 \\sum_i W_{ji}^2, \\qquad a = x W^\\top + b,

    because row j of the Jacobian is ``act'(a_j) W_j``. For a sigmoid, ``act'(a_j) = h_j (1 - h_j)`` (Rifai et al.).
    One matrix product instead of Z backward passes. Shapes: x (B, D), weight (Z, D), bias (Z,) -> scalar.
    """
    check_tensor(x, "x", (2,))
    check_tensor(weight, "weight", (2,))
    check_tensor(bias, "bias", (1,))
    _check_activation(activation, "activation")
    if weight.shape[1] != x.shape[1] or bias.shape != (weight.shape[0],):
        raise ValueError(f"weight must be (Z, {x.shape[1]}) and bias (Z,), got {tuple(weight.shape)} and "
                         f"{tuple(bias.shape)}")
    slope = _activation_slope(x @ weight.T + bias, activation)  # (B, Z)
    return (slope.pow(2) @ weight.pow(2).sum(1)).mean()  # (B,) -> ()


def corrupt(x: torch.Tensor, noise_std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The denoising autoencoder's input: ``x̃ = x + ε``, ``ε ~ N(0, noise_std²)`` element-wise. Same shape as x."""
    _check_batch(x, "x")
    noise_std = _check_number(noise_std, "noise_std")
    _check_generator(generator)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)  # (B, ...)
    return x + noise_std * noise


def code_sparsity(code: torch.Tensor, tol: float = 0.0) -> float:
    """The fraction of code entries with ``|h| <= tol``: 0 = every unit active, 1 = all silent. Code (B, Z)."""
    check_tensor(code, "code", (2,))
    tol = _check_number(tol, "tol")
    if code.numel() == 0:
        raise ValueError(f"code must not be empty, got shape {tuple(code.shape)}")
    return float((code.abs() <= tol).double().mean())


# --------------------------------------------------------------------------------------------- PCA and angles
def pca_basis(x: torch.Tensor, k: int) -> torch.Tensor:
    """The top-k principal directions of the rows of ``x`` (N, D), as orthonormal columns (D, k).

    They are the right singular vectors of the centred data ``X - mean`` with the k largest singular values (the
    eigenvectors of the covariance with the largest variances). The sign of each column is fixed so that its
    largest-magnitude entry is positive.
    """
    check_tensor(x, "x", (2,))
    N, D = x.shape
    k = positive_int(k, "k")
    if k > min(N, D):
        raise ValueError(f"k must be <= min(N, D) = {min(N, D)} for x of shape {(N, D)}, got {k}")
    centred = x - x.mean(0, keepdim=True)  # (N, D)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh (min(N, D), D), rows by decreasing variance
    basis = vh[:k].T  # (D, k)
    signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))  # (1, k)
    return basis * signs


def _orthonormal(a: torch.Tensor, name: str) -> torch.Tensor:
    check_tensor(a, name, (2,))
    if a.shape[1] == 0 or a.shape[1] > a.shape[0]:
        raise ValueError(f"{name} must be (D, k) with 1 <= k <= D columns spanning a subspace, got {tuple(a.shape)}")
    singular = torch.linalg.svdvals(a)  # (k,) descending
    if not singular[-1] > 1e-10 * singular[0]:
        raise ValueError(f"{name} has linearly dependent columns: they do not span a {a.shape[1]}-dimensional "
                         f"subspace")
    q, _ = torch.linalg.qr(a)  # (D, k): an orthonormal basis of the column space
    return q


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The principal angles (主角) between the column spaces of ``a`` (D, k) and ``b`` (D, l), ascending, in
    radians: min(k, l) numbers in [0, π/2]; all zero when one subspace contains the other.

    With orthonormal bases ``Q_a``, ``Q_b``, the cosines of the angles are the singular values of ``Q_aᵀ Q_b``.
    For small angles arccos is inaccurate (cos θ ≈ 1 - θ²/2 loses half the digits), so those come from the sines:
    the singular values of the part of one basis that lies outside the other subspace (Björck and Golub's method,
    as in ``scipy.linalg.subspace_angles``).
    """
    qa, qb = _orthonormal(a, "a"), _orthonormal(b, "b")
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"a and b must have the same number of rows D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # qa spans the larger subspace
    cross = qa.T @ qb  # (k, l), k >= l
    cosines = torch.linalg.svdvals(cross).clamp(-1.0, 1.0)  # (l,) descending: smallest angle first
    outside = qb - qa @ cross  # (D, l): the part of span(b) outside span(a)
    sines = torch.linalg.svdvals(outside).clamp(-1.0, 1.0).flip(0)  # (l,) ascending: smallest angle first
    return torch.where(cosines.pow(2) >= 0.5, torch.arcsin(sines), torch.arccos(cosines))  # (l,)


def nearest_distance(samples: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each sample to its nearest row of ``data``: (N, ...) and (M, ...) -> (N,).

    Both are flattened per example. A generated image far from every training image is not like the data.
    """
    _check_batch(samples, "samples", 2)
    _check_batch(data, "data", 2)
    a = samples.reshape(samples.shape[0], -1)  # (N, D)
    b = data.reshape(data.shape[0], -1)  # (M, D)
    if a.shape[1] != b.shape[1] or b.shape[0] == 0:
        raise ValueError(f"samples and data must hold examples of the same size and data must not be empty, got "
                         f"{tuple(samples.shape)} and {tuple(data.shape)}")
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T  # (N, M): ‖a‖² + ‖b‖² - 2 a·b
    return sq.min(1).values.clamp_min(0).sqrt()  # (N,)


# ----------------------------------------------------------------------------------------------------- VAE
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, diag σ²) ‖ N(0, I))`` in closed form, summed over the last (latent) dimension:

    .. math::

        \\mathrm{KL} = \\tfrac12 \\sum_j \\big(\\mu_j^2 + \\sigma_j^2 - 1 - \\log \\sigma_j^2\\big) \\;\\ge 0,

    zero exactly when μ = 0 and σ = 1. Shapes: mu, logvar (..., Z) -> (...), e.g. (B, Z) -> (B,).
    """
    _check_gaussian(mu, logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)  # (...)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw ``z ~ N(μ, diag σ²)`` written as ``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)`` (the reparameterisation
    trick, 重参数化技巧).

    The randomness sits in ε, which does not depend on the parameters, so ``∂z/∂μ = 1`` and
    ``∂z/∂log σ² = σ ε / 2`` are ordinary derivatives and the gradient flows through the sample. ``σ = exp(½ log σ²)``.
    Shapes: mu, logvar (..., Z) -> z (..., Z).
    """
    _check_gaussian(mu, logvar)
    _check_generator(generator)
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)  # (..., Z)
    return mu + torch.exp(0.5 * logvar) * eps  # (..., Z)


def bernoulli_nll(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x|z)`` for independent Bernoulli pixels with probabilities ``recon``, summed per example: (B,).

    ``-Σ_i [x_i log r_i + (1 - x_i) log(1 - r_i)]``: binary cross-entropy (二元交叉熵). Each log is clamped at -100,
    as ``torch.nn.functional.binary_cross_entropy`` does, so that r = 0 or 1 gives a large finite loss.
    """
    _check_batch(recon, "recon")
    _check_batch(x, "x")
    _check_same_shape(recon, x, "recon", "x")
    log_r = torch.log(recon).clamp_min(-100.0)  # (B, ...)
    log_1mr = torch.log1p(-recon).clamp_min(-100.0)  # (B, ...)
    return -(x * log_r + (1 - x) * log_1mr).reshape(x.shape[0], -1).sum(1)  # (B,)


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """The (β-)VAE loss, averaged over the batch:

    .. math::

        \\mathcal{L} = \\frac{1}{B} \\sum_b \\Big( -\\log p(x_b|z_b) + \\beta\\,
        \\mathrm{KL}\\big(q(z|x_b) \\,\\|\\, \\mathcal{N}(0, I)\\big) \\Big),

    where ``z_b`` is the sample that produced ``recon``. With β = 1 this is the negative ELBO (a one-sample
    estimate of it); β > 1 pulls the posteriors harder towards the prior (β-VAE), β < 1 favours reconstruction.
    Shapes: recon, x (B, ...) pixel probabilities and data in [0, 1]; mu, logvar (B, Z) -> scalar.
    """
    beta = _check_number(beta, "beta")
    nll = bernoulli_nll(recon, x)  # (B,)
    kl = gaussian_kl(mu, logvar)  # (B,)
    if mu.ndim != 2 or nll.shape != kl.shape:
        raise ValueError(f"mu and logvar must be (B, Z) with the B of x, got {tuple(mu.shape)} for x of shape "
                         f"{tuple(x.shape)}")
    return (nll + beta * kl).mean()  # ()


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; μ, diag σ²)`` summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def importance_log_likelihood(
    model: VAE, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None
) -> torch.Tensor:
    """An importance-sampled estimate of ``log p(x)`` per example, with k samples from ``q(z|x)``:

    .. math::

        \\log \\hat p_k(x) = \\log \\frac1k \\sum_{i=1}^k \\frac{p(x|z_i)\\, p(z_i)}{q(z_i|x)},
        \\qquad z_i \\sim q(z|x).

    For k = 1 its expectation is the ELBO; it rises with k towards ``log p(x)`` (the IWAE bound, Burda et al.).
    Shapes: x (B, ...) -> (B,).
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a VAE, got {type(model).__name__}")
    k = positive_int(k, "k")
    _check_generator(generator)
    mu, logvar = model.encode(x)  # (B, Z), (B, Z)
    B, Z = mu.shape
    eps = torch.randn(k, B, Z, generator=generator, dtype=mu.dtype, device=mu.device)  # (k, B, Z)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, Z)
    recon = model.decode(z.reshape(k * B, Z))  # (k·B, ...)
    log_px_z = -bernoulli_nll(recon, x.repeat(k, *([1] * (x.ndim - 1)))).reshape(k, B)  # (k, B)
    zeros = torch.zeros_like(mu)  # (B, Z)
    log_w = log_px_z + _log_normal(z, zeros, zeros) - _log_normal(z, mu, logvar)  # (k, B)
    return torch.logsumexp(log_w, 0) - math.log(k)  # (B,)


def aggregate_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log q(z)`` of the **aggregate posterior** (聚合后验) at each row of ``z``: the mixture of the N posteriors
    ``q(z|x_n) = N(μ_n, diag σ_n²)`` with equal weights,

    .. math::

        q(z) = \\frac1N \\sum_{n=1}^N \\mathcal{N}\\big(z;\\, \\mu_n, \\operatorname{diag}\\sigma_n^2\\big),
        \\qquad \\log q(z) = \\operatorname{logsumexp}_n \\log \\mathcal{N}(z; \\mu_n, \\sigma_n^2) - \\log N.

    It is the distribution of the codes of the whole training set; the prior ``N(0, I)`` is what sampling assumes
    it to be (Hoffman and Johnson's "ELBO surgery" measures the gap as ``KL(q(z) ‖ p(z))``).
    Shapes: z (S, Z); mu, logvar (N, Z) -> (S,). Memory grows as S·N·Z.
    """
    _check_batch(z, "z", 2)
    _check_gaussian(mu, logvar)
    if mu.ndim != 2 or z.ndim != 2 or z.shape[1] != mu.shape[1] or mu.shape[0] == 0:
        raise ValueError(f"z must be (S, Z) and mu, logvar (N, Z) with N >= 1 and the same Z, got "
                         f"{tuple(z.shape)} and {tuple(mu.shape)}")
    log_components = _log_normal(z[:, None, :], mu[None], logvar[None])  # (S, N)
    return torch.logsumexp(log_components, 1) - math.log(mu.shape[0])  # (S,)


# ------------------------------------------------------------------------------------------------- training
def _check_config_fields(config: object, ints: Sequence[str], positives: Sequence[str],
                         non_negatives: Sequence[str]) -> None:
    for name in ints:
        (non_negative_int if name == "seed" else positive_int)(getattr(config, name), name)
    for name in positives:
        number(getattr(config, name), name, minimum=0.0, strict=True)
    for name in non_negatives:
        number(getattr(config, name), name, minimum=0.0)


@dataclass(frozen=True)
class AEConfig:
    """Everything :func:`train_autoencoder` and its loss, :func:`autoencoder_loss`, need besides the model and the data.

    The loss of a batch is the mean over its examples of ``‖x - g(f(x̃))‖²`` plus the penalties whose weights are
    non-zero:

    Attributes:
        epochs, batch_size, lr: passes over the data, examples per step, Adam's learning rate.
        weight_decay: λ of ``λ Σ W²`` over the weight matrices (L2 regularisation of the *weights*).
        weight_l1: λ of ``λ Σ |W|`` over the weight matrices (L1 regularisation of the *weights*).
        sparsity: λ of :func:`sparsity_penalty` (L1 of the *code*: a sparse autoencoder).
        contractive: λ of :func:`contractive_penalty` (a contractive autoencoder); for a one-layer encoder it is
            computed in closed form (:func:`dense_contractive_penalty`).
        noise_std: if > 0, the encoder sees ``x̃ = corrupt(x, noise_std)`` and the target stays the clean x
            (a denoising autoencoder).
        seed: seeds the batch order and the noise.
    """

    epochs: int = 30
    batch_size: int = 100
    lr: float = 3e-3
    weight_decay: float = 0.0
    weight_l1: float = 0.0
    sparsity: float = 0.0
    contractive: float = 0.0
    noise_std: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_config_fields(self, ("epochs", "batch_size", "seed"), ("lr",),
                             ("weight_decay", "weight_l1", "sparsity", "contractive", "noise_std"))


def _weight_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim >= 2]  # each tied matrix once: parameters() deduplicates


def _check_training_data(model: object, x: object, methods: Sequence[str]) -> None:
    if not isinstance(model, torch.nn.Module) or not all(callable(getattr(model, m, None)) for m in methods):
        raise TypeError(f"model must be a torch.nn.Module with {' and '.join(methods)} methods, got "
                        f"{type(model).__name__}")
    if len(check_tensor(x, "x", min_ndim=2)) == 0:
        raise ValueError("x must hold at least one example")


def _contractive(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The contractive penalty of ``model``'s encoder at x: closed form for a one-layer :class:`Autoencoder`,
    autograd otherwise (the two agree; the closed form costs one matrix product instead of Z backward passes)."""
    if isinstance(model, Autoencoder) and not model.hidden:
        flat = x.reshape(x.shape[0], -1)  # (B, D)
        return dense_contractive_penalty(flat, model.enc_weights[0], model.enc_biases[0], model.code_activation)
    return contractive_penalty(model.encode, x)


def autoencoder_loss(model: torch.nn.Module, x: torch.Tensor, config: AEConfig,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of a batch ``x`` (B, ...) as ``config`` says: the mean reconstruction error ``‖x - g(f(x̃))‖²``
    of the clean x (x̃ = x, or ``corrupt(x, noise_std, generator)`` for a denoising autoencoder) plus the penalties
    whose weights are non-zero. Returns ``(loss, {"reconstruction": ..., "penalty": loss - reconstruction})``."""
    inp = corrupt(x, config.noise_std, generator) if config.noise_std > 0 else x  # (B, ...)
    code = model.encode(inp)  # (B, Z)
    rec = reconstruction_error(model.decode(code), x).mean()  # ()
    loss = rec
    if config.sparsity > 0:
        loss = loss + config.sparsity * sparsity_penalty(code)
    if config.contractive > 0:
        loss = loss + config.contractive * _contractive(model, inp)
    if config.weight_decay > 0:
        loss = loss + config.weight_decay * sum(w.pow(2).sum() for w in _weight_matrices(model))
    if config.weight_l1 > 0:
        loss = loss + config.weight_l1 * sum(w.abs().sum() for w in _weight_matrices(model))
    return loss, {"reconstruction": rec, "penalty": loss - rec}


def train_autoencoder(model: torch.nn.Module, x: torch.Tensor, config: AEConfig) -> History:
    """Train ``model`` (with ``encode`` and ``decode``) in place on the examples ``x`` (N, ...) with Adam and
    :func:`autoencoder_loss`, in the book's one loop (:func:`dlbook.training.train`); return its history (per
    epoch: ``"loss"``, ``"reconstruction"``, ``"penalty"``).

    The batch order and the noise come from one generator seeded with ``config.seed``; with the model initialised
    from a seeded generator too, a run repeats exactly.
    """
    _check_training_data(model, x, ("encode", "decode"))
    if not isinstance(config, AEConfig):
        raise TypeError(f"config must be an AEConfig, got {type(config).__name__}")
    gen = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return train(model, ShuffledBatches(x, config.batch_size, gen),
                 lambda m, batch: autoencoder_loss(m, batch, config, gen), optimizer, epochs=config.epochs)


@dataclass(frozen=True)
class VAEConfig:
    """Everything :func:`train_vae` needs besides the model and the data: passes over the data, examples per step,
    Adam's learning rate, the weight β of the KL term (β = 1: the ELBO), and the seed of the batch order and of the
    samples ε."""

    epochs: int = 30
    batch_size: int = 100
    lr: float = 2e-3
    beta: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_config_fields(self, ("epochs", "batch_size", "seed"), ("lr",), ("beta",))


def train_vae(model: VAE, x: torch.Tensor, config: VAEConfig) -> History:
    """Train the :class:`VAE` in place on ``x`` (N, ...) with values in [0, 1], minimising :func:`vae_loss` in the
    book's one loop (:func:`dlbook.training.train`); return its history. Per epoch it holds ``"loss"`` (=
    reconstruction + β·KL; with β = 1, ``-loss`` is the ELBO), ``"reconstruction"`` (-log p(x|z)) and ``"kl"``
    (KL(q(z|x) ‖ p(z))). Batch order and ε come from one generator seeded with ``config.seed``.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a VAE, got {type(model).__name__}")
    _check_training_data(model, x, ("encode", "decode"))
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"x must hold values in [0, 1] (Bernoulli pixels), got [{float(x.min())}, {float(x.max())}]")
    gen = torch.Generator().manual_seed(config.seed)

    def loss_fn(m, xb):
        recon, mu, logvar = m(xb, gen)  # (B, ...), (B, Z), (B, Z)
        with torch.no_grad():  # the two terms, for the history
            parts = {"reconstruction": bernoulli_nll(recon, xb).mean(), "kl": gaussian_kl(mu, logvar).mean()}
        return vae_loss(recon, xb, mu, logvar, config.beta), parts

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return train(model, ShuffledBatches(x, config.batch_size, gen), loss_fn, optimizer, epochs=config.epochs)
