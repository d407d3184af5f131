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
  the codes of a whole training set, to compare with the prior; :func:`elbo` the bound for any q, and
  :func:`fit_posterior` per-example inference, to measure what the encoder's amortisation costs).

The networks are ``torch.nn.Sequential`` stacks of ``torch.nn.Linear`` layers (:func:`mlp`). Shapes: inputs are
(B, D) or images (B, C, H, W), which the models flatten to (B, D) with D = C·H·W; codes and latent variables are (B, Z).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlbook._checks import (
    check_tensor,
    dim_size,
    flag,
    has_shape,
    instance,
    non_negative_int,
    number,
    one_of,
    positive_int,
    same_shape,
)
from dlbook.training import History, ShuffledBatches, train

__all__ = [
    "ACTIVATIONS",
    "mlp",
    "TiedLinear",
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
    "elbo",
    "fit_posterior",
    "AEConfig",
    "autoencoder_loss",
    "train_autoencoder",
    "VAEConfig",
    "train_vae",
]

# the element-wise non-linearities a model can use, by name
ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


# ---------------------------------------------------------------------------------------- building blocks
def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    final: str = "linear",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    """Dense layers ``D_0 -> D_1 -> ... -> D_L``: ``a_{l+1} = act(a_l W_lᵀ + b_l)``, ``final`` after the last one.

    An ``nn.Sequential`` of ``nn.Linear(D_l, D_{l+1})``, each followed by ``ACTIVATIONS[activation]``, the last by
    ``ACTIVATIONS[final]``. ``nn.Linear`` draws its initial W and b from U(-1/√D_l, 1/√D_l) with torch's global random
    generator. Given ``generator``, the global generator is seeded with one draw from it while the layers are built,
    and restored afterwards: the same ``generator`` state gives the same weights, and other draws are not disturbed.
    Shapes: (B, D_0) -> (B, D_L).
    """
    one_of(activation, "activation", ACTIVATIONS)
    one_of(final, "final", ACTIVATIONS)
    with torch.random.fork_rng(devices=[], enabled=generator is not None):
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
        layers = []
        for n_in, n_out in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(n_in, n_out, dtype=dtype), ACTIVATIONS[activation]()]
    layers[-1] = ACTIVATIONS[final]()
    return nn.Sequential(*layers)


class TiedLinear(nn.Module):
    """A dense layer that applies another layer's weight matrix transposed: ``y = x W + b``, ``F.linear(x, Wᵀ, b)``.

    ``weight`` is the other layer's (out, in) Parameter itself, not a copy, so both layers train one matrix (tied
    weights, ``W_dec = W_encᵀ``); ``bias`` (in,) is this layer's own. Shapes: (B, out) -> (B, in).
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter) -> None:
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.t(), self.bias)  # (B, in)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[0]}, out_features={self.weight.shape[1]}, tied"


def _example_shape(in_features: int | Sequence[int]) -> tuple[int, ...]:
    """The shape of one example: an int D gives (D,); an image shape such as (1, 28, 28) stays."""
    shape = tuple(in_features) if isinstance(in_features, Sequence) else (in_features,)
    positive_int(len(shape), "len(in_features)")
    return tuple(positive_int(n, "in_features") for n in shape)


class Autoencoder(nn.Module):
    """An encoder ``f`` and a decoder ``g`` made of dense layers: ``forward(x) = g(f(x))``.

    Args:
        in_features: D, or the shape of one example, e.g. ``(1, 28, 28)`` (then reconstructions have that shape).
        code_size: Z, the width of the code ``h = f(x)``. Z < D is undercomplete, Z > D overcomplete.
        hidden: widths of the hidden layers of the encoder; the decoder mirrors them.
        activation: non-linearity of the hidden layers.
        code_activation: non-linearity of the code layer (``"relu"`` gives exact zeros, as a sparse code needs).
        output: non-linearity of the reconstruction (``"sigmoid"`` for pixels in [0, 1], ``"linear"`` otherwise).
        tied: the decoder's weights are the encoder's, transposed (``W_dec = W_encᵀ``); biases stay separate.
        generator: seeds the initial weights (``torch.nn.Linear``'s scheme), for a run that repeats exactly.

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
        self.shape, self.hidden = _example_shape(in_features), tuple(positive_int(h, "hidden") for h in hidden)
        self.D, self.Z = math.prod(self.shape), positive_int(code_size, "code_size")
        self.code_activation = one_of(code_activation, "code_activation", ACTIVATIONS)
        one_of(output, "output", ACTIVATIONS)
        sizes = [self.D, *self.hidden, self.Z]
        self.encoder = mlp(sizes, activation, code_activation, generator=generator, dtype=dtype)  # x -> h
        self.decoder = mlp(sizes[::-1], activation, output, generator=generator, dtype=dtype)  # h -> r
        if flag(tied, "tied"):  # the decoder's i-th linear layer applies the encoder's i-th from last, transposed
            for i, layer in enumerate(reversed(self.encoder[::2])):  # [::2]: the nn.Linear layers
                self.decoder[2 * i] = TiedLinear(layer.weight, self.decoder[2 * i].bias)

    def decoder_weights(self) -> list[torch.Tensor]:
        """The decoder's weight matrices, first layer first: (D_{l+1}, D_l) each; views of the encoder's when tied."""
        return [m.weight.t() if isinstance(m, TiedLinear) else m.weight for m in self.decoder[::2]]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``h = f(x)``: (B, D) or (B, *in_features) -> (B, Z)."""
        flat = has_shape(x, "x", (None, *self.shape), (None, self.D)).flatten(1)  # (B, D)
        return self.encoder(flat)  # (B, Z)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """``r = g(h)``: (B, Z) -> (B, *in_features)."""
        r = self.decoder(has_shape(h, "h", (None, self.Z)))  # (B, D)
        return r.unflatten(1, self.shape)  # (B, *in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``g(f(x))``: (B, *in_features) -> (B, *in_features)."""
        return self.decode(self.encode(x))


class VAE(nn.Module):
    """A variational autoencoder with a Gaussian encoder and a Bernoulli decoder (pixels in [0, 1]).

    The encoder maps x to the mean μ and log-variance log σ² of ``q(z|x) = N(μ, diag σ²)`` (one network whose last
    layer has 2Z outputs); the decoder maps a latent ``z`` to pixel probabilities ``p(x|z)``; the prior is
    ``p(z) = N(0, I)``. ``generator`` seeds the initial weights.

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
        self.shape, widths = _example_shape(in_features), [positive_int(h, "hidden") for h in hidden]
        self.D, self.Z = math.prod(self.shape), positive_int(latent_size, "latent_size")
        sizes = [self.D, *widths, self.Z]
        self.encoder = mlp([*sizes[:-1], 2 * self.Z], activation, generator=generator, dtype=dtype)  # x -> (μ, log σ²)
        self.decoder = mlp(sizes[::-1], activation, "sigmoid", generator=generator, dtype=dtype)  # z -> p(x|z)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters of ``q(z|x)``: (μ, log σ²), each (B, Z)."""
        flat = has_shape(x, "x", (None, *self.shape), (None, self.D)).flatten(1)  # (B, D)
        mu, logvar = self.encoder(flat).chunk(2, dim=1)  # (B, 2Z) -> (B, Z), (B, Z)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities of ``p(x|z)``: (B, Z) -> (B, *in_features), each in (0, 1)."""
        r = self.decoder(has_shape(z, "z", (None, self.Z)))  # (B, D)
        return r.unflatten(1, self.shape)  # (B, *in_features)

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
        w = self.decoder[0].weight
        z = torch.randn(positive_int(n, "n"), self.Z, generator=generator, dtype=w.dtype, device=w.device)  # (n, Z)
        return self.decode(z)


# ------------------------------------------------------------------------------------ regularised autoencoders
def reconstruction_error(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error per example, summed over its D numbers: ``‖x - r‖²``, shape (B,)."""
    same_shape(check_tensor(recon, "recon", min_ndim=1), check_tensor(x, "x", min_ndim=1), "recon", "x")
    return (recon - x).pow(2).reshape(len(x), -1).sum(1)  # (B,)


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
    instance(encode, Callable, "encode")  # x -> code
    check_tensor(x, "x", min_ndim=2)
    xg = x if x.requires_grad else x.detach().requires_grad_(True)
    h = has_shape(encode(xg), "the code encode(x)", (len(x), None))  # (B, Z)
    B, Z = h.shape
    basis = torch.eye(Z, dtype=h.dtype, device=h.device)[:, None, :].expand(Z, B, Z)  # (Z, B, Z): one unit each
    (rows,) = torch.autograd.grad(h, xg, basis, create_graph=True, is_grads_batched=True)  # (Z, B, *x.shape[1:])
    return rows.reshape(Z, B, -1).transpose(0, 1)  # (B, Z, D)


def contractive_penalty(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The contractive autoencoder's penalty: ``‖∂f(x)/∂x‖_F²``, the squared Frobenius norm of the encoder's
    Jacobian, averaged over the batch. Small when the code barely moves under small changes of the input.
    Shape: x (B, ...) -> scalar."""
    return encoder_jacobian(encode, x).pow(2).sum((1, 2)).mean()  # ()


# the derivative act'(a) of each activation, element-wise
_SLOPES = {
    "linear": torch.ones_like,
    "relu": lambda a: (a > 0).to(a.dtype),
    "sigmoid": lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a)),
    "tanh": lambda a: 1 - torch.tanh(a).pow(2),
}


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
    has_shape(weight, "weight", (None, x.shape[1]))
    has_shape(bias, "bias", (weight.shape[0],))
    slope = _SLOPES[one_of(activation, "activation", ACTIVATIONS)](F.linear(x, weight, bias))  # (B, Z): act'(a)
    return (slope.pow(2) @ weight.pow(2).sum(1)).mean()  # (B,) -> ()


def corrupt(x: torch.Tensor, noise_std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The denoising autoencoder's input: ``x̃ = x + ε``, ``ε ~ N(0, noise_std²)`` element-wise. Same shape as x."""
    noise = torch.randn(check_tensor(x, "x").shape, generator=generator, dtype=x.dtype, device=x.device)  # (B, ...)
    return x + number(noise_std, "noise_std", minimum=0) * noise


def code_sparsity(code: torch.Tensor, tol: float = 0.0) -> float:
    """The fraction of code entries with ``|h| <= tol``: 0 = every unit active, 1 = all silent. Code (B, Z)."""
    positive_int(check_tensor(code, "code", (2,)).numel(), "the number of code entries")
    return float((code.abs() <= number(tol, "tol", minimum=0)).double().mean())


# --------------------------------------------------------------------------------------------- PCA and angles
def pca_basis(x: torch.Tensor, k: int) -> torch.Tensor:
    """The top-k principal directions of the rows of ``x`` (N, D), as orthonormal columns (D, k).

    They are the right singular vectors of the centred data ``X - mean`` with the k largest singular values (the
    eigenvectors of the covariance with the largest variances). The sign of each column is fixed so that its
    largest-magnitude entry is positive.
    """
    N, D = check_tensor(x, "x", (2,)).shape
    if positive_int(k, "k") > min(N, D):
        raise ValueError(f"k must be <= min(N, D) = {min(N, D)} for x of shape {(N, D)}, got {k}")
    centred = x - x.mean(0, keepdim=True)  # (N, D)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh (min(N, D), D), rows by decreasing variance
    basis = vh[:k].T  # (D, k)
    signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))  # (1, k)
    return basis * signs


def _orthonormal(a: torch.Tensor, name: str) -> torch.Tensor:
    """An orthonormal basis (D, k) of the column space of ``a`` (D, k), whose k columns must be independent."""
    k = check_tensor(a, name, (2,)).shape[1]
    if k == 0 or torch.linalg.matrix_rank(a, rtol=1e-10) < k:
        raise ValueError(f"{name} must have 1 <= k <= D linearly independent columns, got shape {tuple(a.shape)}")
    return torch.linalg.qr(a)[0]  # (D, k)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The principal angles (主角) between the column spaces of ``a`` (D, k) and ``b`` (D, l), ascending, in
    radians: min(k, l) numbers in [0, π/2]; all zero when one subspace contains the other.

    With orthonormal bases ``Q_a``, ``Q_b``, the cosines of the angles are the singular values of ``Q_aᵀ Q_b``.
    For small angles arccos is inaccurate (cos θ ≈ 1 - θ²/2 loses half the digits), so those come from the sines:
    the singular values of the part of one basis that lies outside the other subspace (Björck and Golub's method,
    as in ``scipy.linalg.subspace_angles``).
    """
    qa = _orthonormal(a, "a")  # (D, k)
    qb = _orthonormal(has_shape(b, "b", (len(a), None)), "b")  # (D, l)
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
    b = check_tensor(data, "data", min_ndim=2).flatten(1)  # (M, D)
    a = has_shape(check_tensor(samples, "samples", min_ndim=2).flatten(1), "samples, flattened", (None, b.shape[1]))
    positive_int(len(b), "the number of rows of data")
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T  # (N, M): ‖a‖² + ‖b‖² - 2 a·b
    return sq.min(1).values.clamp_min(0).sqrt()  # (N,)


# ----------------------------------------------------------------------------------------------------- VAE
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, diag σ²) ‖ N(0, I))`` in closed form, summed over the last (latent) dimension:

    .. math::

        \\mathrm{KL} = \\tfrac12 \\sum_j \\big(\\mu_j^2 + \\sigma_j^2 - 1 - \\log \\sigma_j^2\\big) \\;\\ge 0,

    zero exactly when μ = 0 and σ = 1. Shapes: mu, logvar (..., Z) -> (...), e.g. (B, Z) -> (B,).
    """
    same_shape(check_tensor(mu, "mu", min_ndim=1), check_tensor(logvar, "logvar", min_ndim=1), "mu", "logvar")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)  # (...)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw ``z ~ N(μ, diag σ²)`` written as ``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)`` (the reparameterisation
    trick, 重参数化技巧).

    The randomness sits in ε, which does not depend on the parameters, so ``∂z/∂μ = 1`` and
    ``∂z/∂log σ² = σ ε / 2`` are ordinary derivatives and the gradient flows through the sample. ``σ = exp(½ log σ²)``.
    Shapes: mu, logvar (..., Z) -> z (..., Z).
    """
    same_shape(check_tensor(mu, "mu", min_ndim=1), check_tensor(logvar, "logvar", min_ndim=1), "mu", "logvar")
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)  # (..., Z)
    return mu + torch.exp(0.5 * logvar) * eps  # (..., Z)


def bernoulli_nll(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x|z)`` for independent Bernoulli pixels with probabilities ``recon``, summed per example: (B,).

    ``-Σ_i [x_i log r_i + (1 - x_i) log(1 - r_i)]``: binary cross-entropy (二元交叉熵). Each log is clamped at -100,
    as ``torch.nn.functional.binary_cross_entropy`` does, so that r = 0 or 1 gives a large finite loss.
    """
    same_shape(check_tensor(recon, "recon", min_ndim=1), check_tensor(x, "x", min_ndim=1), "recon", "x")
    log_r = torch.log(recon).clamp_min(-100.0)  # (B, ...)
    log_1mr = torch.log1p(-recon).clamp_min(-100.0)  # (B, ...)
    return -(x * log_r + (1 - x) * log_1mr).reshape(len(x), -1).sum(1)  # (B,)


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
    beta = number(beta, "beta", minimum=0)
    nll = bernoulli_nll(recon, x)  # (B,)
    kl = gaussian_kl(has_shape(mu, "mu", (len(x), None)), logvar)  # (B,)
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
    instance(model, VAE, "model")
    mu, logvar = model.encode(x)  # (B, Z), (B, Z)
    B, Z = mu.shape
    eps = torch.randn(positive_int(k, "k"), B, Z, generator=generator, dtype=mu.dtype, device=mu.device)  # (k, B, Z)
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
    Shapes: z (S, Z); mu, logvar (N, Z) with N >= 1 -> (S,). Memory grows as S·N·Z.
    """
    same_shape(check_tensor(mu, "mu", (2,)), check_tensor(logvar, "logvar", (2,)), "mu", "logvar")
    has_shape(check_tensor(z, "z"), "z", (None, mu.shape[1]))
    N = positive_int(len(mu), "the number of posteriors, len(mu)")
    log_components = _log_normal(z[:, None, :], mu[None], logvar[None])  # (S, N)
    return torch.logsumexp(log_components, 1) - math.log(N)  # (S,)



def elbo(
    model: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The ELBO of each example for a given ``q(z|x) = N(μ, diag σ²)`` (the encoder's, or any other), with the
    reconstruction term estimated from k reparameterised draws and the KL term in closed form:

    .. math::

        \\mathrm{ELBO}(x; q) = \\frac1k \\sum_{i=1}^k \\log p(x|z_i)
        - \\mathrm{KL}\\big(q \\,\\|\\, \\mathcal{N}(0, I)\\big), \\qquad z_i = \\mu + \\sigma \\odot \\varepsilon_i .

    Differentiable in μ and log σ². Shapes: x (B, ...); mu, logvar (B, Z) -> (B,).
    """
    instance(model, VAE, "model")
    k, B = positive_int(k, "k"), len(has_shape(mu, "mu", (len(x), model.Z)))
    kl = gaussian_kl(mu, logvar)  # (B,)
    z = reparameterize(mu.expand(k, B, model.Z), logvar.expand(k, B, model.Z), generator)  # (k, B, Z)
    recon = model.decode(z.reshape(k * B, model.Z))  # (k·B, ...)
    log_px_z = -bernoulli_nll(recon, x.repeat(k, *([1] * (x.ndim - 1)))).reshape(k, B)  # (k, B)
    return log_px_z.mean(0) - kl  # (B,)


def fit_posterior(
    model: VAE, x: torch.Tensor, steps: int = 100, lr: float = 0.05, k: int = 16,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example variational inference (变分推断): start from the encoder's ``q(z|x)`` and maximise each example's
    own :func:`elbo` (k draws per step) over its own μ and log σ² with Adam, the decoder held fixed.

    The encoder *amortises* this optimisation (摊销推断): one network outputs q for every x. How much ELBO the steps
    add is a lower bound on the amortisation gap of Cremer et al. (2018). Shapes: x (B, ...) -> (μ, log σ²), each
    (B, Z).
    """
    with torch.no_grad():
        mu, logvar = model.encode(x)  # (B, Z), (B, Z)
    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu, logvar], lr=number(lr, "lr", minimum=0))
    for _ in range(positive_int(steps, "steps")):
        loss = -elbo(model, x, mu, logvar, k, generator).sum()  # a sum: each example follows its own gradient
        mu.grad, logvar.grad = torch.autograd.grad(loss, (mu, logvar))  # leaves the decoder's .grad alone
        optimizer.step()
    return mu.detach(), logvar.detach()

# ------------------------------------------------------------------------------------------------- training
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
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        non_negative_int(self.seed, "seed")
        number(self.lr, "lr", minimum=0.0, strict=True)
        for name in ("weight_decay", "weight_l1", "sparsity", "contractive", "noise_std"):
            number(getattr(self, name), name, minimum=0.0)


def _weight_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim >= 2]  # each tied matrix once: parameters() deduplicates


def _check_training_data(model: object, x: object, methods: Sequence[str]) -> None:
    if not isinstance(model, torch.nn.Module) or not all(callable(getattr(model, m, None)) for m in methods):
        raise TypeError(f"model must be a torch.nn.Module with {' and '.join(methods)}, got {type(model).__name__}")
    dim_size(check_tensor(x, "x", min_ndim=2), 0, 1, "x", " (at least one example)", at_least=True)


def _contractive(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The contractive penalty of ``model``'s encoder at x: closed form for a one-layer :class:`Autoencoder`,
    autograd otherwise (the two agree; the closed form costs one matrix product instead of Z backward passes)."""
    if isinstance(model, Autoencoder) and not model.hidden:
        flat = x.reshape(x.shape[0], -1)  # (B, D)
        return dense_contractive_penalty(flat, model.encoder[0].weight, model.encoder[0].bias, model.code_activation)
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
    instance(config, AEConfig, "config")
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
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        non_negative_int(self.seed, "seed")
        number(self.lr, "lr", minimum=0.0, strict=True)
        number(self.beta, "beta", minimum=0.0)


def train_vae(model: VAE, x: torch.Tensor, config: VAEConfig) -> History:
    """Train the :class:`VAE` in place on ``x`` (N, ...) with values in [0, 1], minimising :func:`vae_loss` in the
    book's one loop (:func:`dlbook.training.train`); return its history. Per epoch it holds ``"loss"`` (=
    reconstruction + β·KL; with β = 1, ``-loss`` is the ELBO), ``"reconstruction"`` (-log p(x|z)) and ``"kl"``
    (KL(q(z|x) ‖ p(z))). Batch order and ε come from one generator seeded with ``config.seed``.
    """
    instance(model, VAE, "model")
    instance(config, VAEConfig, "config")
    _check_training_data(model, x, ("encode", "decode"))
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
