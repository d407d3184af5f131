"""dlbook.autoencoders: the models against the dense-layer formula, the VAE pieces against torch.distributions
(float64, values and gradients), principal angles against scipy, and the training helpers (determinism, linear AE =
PCA)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from dlbook.autoencoders import (
    ACTIVATIONS,
    VAE,
    AEConfig,
    Autoencoder,
    TiedLinear,
    VAEConfig,
    aggregate_log_density,
    autoencoder_loss,
    bernoulli_nll,
    code_sparsity,
    contractive_penalty,
    corrupt,
    dense_contractive_penalty,
    elbo,
    encoder_jacobian,
    fit_posterior,
    gaussian_kl,
    importance_log_likelihood,
    mlp,
    nearest_distance,
    pca_basis,
    principal_angles,
    reconstruction_error,
    reparameterize,
    sparsity_penalty,
    train_autoencoder,
    train_vae,
    vae_loss,
)
from dlbook.training import History
from tensors import randn64

F64 = torch.float64
TORCH_ACT = {"linear": lambda a: a, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
randn = functools.partial(randn64, requires_grad=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models here are tiny: one thread is faster than several that wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grads(out, inputs, cot):
    return torch.autograd.grad(out, inputs, cot, allow_unused=True)


def _assert_same_with_grads(ours, ref, inputs, seed=123):
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    cot = torch.randn(ref.shape, generator=gen(seed), dtype=F64)  # every output element matters
    for a, b in zip(_grads(ours, inputs, cot), _grads(ref, inputs, cot), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def _linears(net):
    return [m for m in net if isinstance(m, nn.Linear | TiedLinear)]


def _by_formula(x, weights, biases, activation, final):
    """The docstring's a_{l+1} = act(a_l W_lᵀ + b_l), ``final`` after the last layer, written out by hand."""
    a = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        a = TORCH_ACT[final if i == len(weights) - 1 else activation](a @ w.T + b)
    return a


# ------------------------------------------------------------------------------------------ building blocks
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("final", ["linear", "sigmoid"])
@pytest.mark.parametrize("sizes", [(4, 3), (5, 8, 2), (6, 4, 3, 5)])
def test_mlp_is_the_dense_layer_formula(activation, final, sizes):
    net = mlp(sizes, activation, final, generator=gen(1), dtype=F64)
    assert isinstance(net, nn.Sequential) and len(net) == 2 * (len(sizes) - 1)
    layers = _linears(net)
    assert [(m.in_features, m.out_features) for m in layers] == list(zip(sizes[:-1], sizes[1:], strict=True))
    weights, biases = [m.weight for m in layers], [m.bias for m in layers]
    x = randn(3, sizes[0], requires_grad=True)
    _assert_same_with_grads(net(x), _by_formula(x, weights, biases, activation, final), (x, *weights, *biases))


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 4), sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
       activation=st.sampled_from(list(ACTIVATIONS)), seed=st.integers(0, 10_000))
def test_mlp_is_the_dense_layer_formula_on_random_shapes(B, sizes, activation, seed):
    net = mlp(sizes, activation, generator=gen(seed), dtype=F64)
    weights, biases = [m.weight for m in _linears(net)], [m.bias for m in _linears(net)]
    x = randn(B, sizes[0], seed=seed, requires_grad=True)
    _assert_same_with_grads(net(x), _by_formula(x, weights, biases, activation, "linear"), (x,), seed)


def test_mlp_draws_like_nn_linear_from_the_generator_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = (mlp((50, 30, 7), generator=gen(s)) for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)  # same generator state, same weights
    assert not torch.equal(a[0].weight, c[0].weight)
    for layer in _linears(a):  # nn.Linear's U(-1/√D_in, 1/√D_in), for weights and biases
        bound = 1 / math.sqrt(layer.in_features)
        assert 0.8 * bound < float(layer.weight.detach().abs().max()) <= bound  # 1,500 and 210 draws
        assert float(layer.bias.detach().abs().max()) <= bound
    g = gen(5)
    mlp((3, 2), generator=g)
    assert not torch.equal(g.get_state(), gen(5).get_state())  # the draw advanced it: the next model differs


def test_mlp_rejects_unknown_activations():
    with pytest.raises(ValueError, match="activation"):
        mlp((3, 4), "gelu")
    with pytest.raises(ValueError, match="final"):
        mlp((3, 4), final="softmax")


# ----------------------------------------------------------------------------------------------- the models
@pytest.mark.parametrize("shape", [8, (1, 4, 4), (2, 3, 2)])
@pytest.mark.parametrize("hidden", [(), (5,), (6, 4)])
@pytest.mark.parametrize("tied", [False, True])
def test_autoencoder_shapes(shape, hidden, tied):
    ae = Autoencoder(shape, 3, hidden, tied=tied, generator=gen(0), dtype=F64)
    per = (shape,) if isinstance(shape, int) else shape
    x = torch.rand(5, *per, generator=gen(1), dtype=F64)
    h = ae.encode(x)
    assert h.shape == (5, 3)
    r = ae.decode(h)
    assert r.shape == x.shape
    assert r.min() > 0 and r.max() < 1  # sigmoid output
    torch.testing.assert_close(ae(x), r)
    torch.testing.assert_close(ae.encode(x.reshape(5, -1)), h)  # flat input accepted too


@pytest.mark.parametrize("tied", [False, True])
def test_autoencoder_is_encoder_then_decoder_formula(tied):
    ae = Autoencoder(6, 2, (4,), activation="tanh", code_activation="relu", output="linear", tied=tied,
                     generator=gen(0), dtype=F64)
    enc, dec = _linears(ae.encoder), _linears(ae.decoder)
    x = randn(7, 6, requires_grad=True)
    h = _by_formula(x, [m.weight for m in enc], [m.bias for m in enc], "tanh", "relu")
    r = _by_formula(h, ae.decoder_weights(), [m.bias for m in dec], "tanh", "linear")
    _assert_same_with_grads(ae(x), r, (x, *ae.parameters()))
    assert [tuple(w.shape) for w in ae.decoder_weights()] == [(4, 2), (6, 4)]


def test_tied_autoencoder_shares_weights():
    ae = Autoencoder(6, 2, (4,), tied=True, generator=gen(0), dtype=F64)
    n_untied = sum(p.numel() for p in Autoencoder(6, 2, (4,), dtype=F64).parameters())
    assert sum(p.numel() for p in ae.parameters()) == n_untied - (6 * 4 + 4 * 2)
    encoder_weights = [m.weight for m in _linears(ae.encoder)]
    for w_dec, w_enc in zip(ae.decoder_weights(), reversed(encoder_weights), strict=True):
        assert w_dec.data_ptr() == w_enc.data_ptr()  # a view, not a copy
    assert all(isinstance(m, TiedLinear) for m in _linears(ae.decoder))
    reconstruction_error(ae(randn(3, 6)), randn(3, 6, seed=1)).sum().backward()
    assert all(w.grad is not None for w in encoder_weights)


def test_autoencoder_initialisation_is_reproducible_and_torch_like():
    state = torch.random.get_rng_state()
    a, b = Autoencoder(50, 7, generator=gen(3)), Autoencoder(50, 7, generator=gen(3))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left as it was
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    w = a.encoder[0].weight.detach()
    assert float(w.abs().max()) <= 1 / math.sqrt(50) and float(w.abs().max()) > 0.8 / math.sqrt(50)
    c = Autoencoder(50, 7, generator=gen(4))
    assert not torch.equal(a.encoder[0].weight, c.encoder[0].weight)
    assert not torch.equal(a.encoder[0].weight, a.decoder[0].weight.T)  # encoder and decoder drawn apart


def test_autoencoder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="code_size"):
        Autoencoder(4, 0)
    with pytest.raises(TypeError, match="in_features"):
        Autoencoder("4", 2)
    with pytest.raises(ValueError, match="in_features"):
        Autoencoder((1, 0, 4), 2)
    with pytest.raises(ValueError, match="in_features"):
        Autoencoder((), 2)
    with pytest.raises(ValueError, match="output"):
        Autoencoder(4, 2, output="softmax")
    with pytest.raises(ValueError, match="activation"):
        Autoencoder(4, 2, activation="gelu")
    with pytest.raises(ValueError, match="hidden"):
        Autoencoder(4, 2, (3, -1))
    with pytest.raises(ValueError, match="code_activation"):
        Autoencoder(4, 2, code_activation="softplus")
    with pytest.raises(TypeError, match="tied"):
        Autoencoder(4, 2, tied=1)
    with pytest.raises(TypeError, match="generator"):
        Autoencoder(4, 2, generator=0)
    ae = Autoencoder((1, 2, 2), 2, dtype=F64)
    with pytest.raises(ValueError, match="x"):
        ae.encode(randn(3, 5))
    with pytest.raises(ValueError, match="h"):
        ae.decode(randn(3, 3))


def test_vae_shapes_and_determinism():
    vae = VAE((1, 3, 3), 2, (5,), generator=gen(0), dtype=F64)
    x = torch.rand(4, 1, 3, 3, generator=gen(1), dtype=F64)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (4, 2)
    recon, mu2, logvar2 = vae(x, gen(2))
    assert recon.shape == x.shape and recon.min() > 0 and recon.max() < 1
    torch.testing.assert_close(mu, mu2)
    torch.testing.assert_close(recon, vae(x, gen(2))[0])  # same generator state, same sample
    assert not torch.equal(recon, vae(x, gen(3))[0])
    z = reparameterize(mu, logvar, gen(2))
    torch.testing.assert_close(recon, vae.decode(z))
    samples = vae.sample(6, gen(5))
    assert samples.shape == (6, 1, 3, 3)
    torch.testing.assert_close(samples, vae.decode(torch.randn(6, 2, generator=gen(5), dtype=F64)))


def test_vae_rejects_bad_arguments():
    with pytest.raises(ValueError, match="latent_size"):
        VAE(4, 0)
    vae = VAE(4, 2, (3,), dtype=F64)
    with pytest.raises(ValueError, match="z"):
        vae.decode(randn(2, 3))
    with pytest.raises(ValueError, match="n"):
        vae.sample(0)
    with pytest.raises(TypeError, match="generator"):
        vae.sample(2, generator=1)


# ------------------------------------------------------------------------------------ regularised autoencoders
def test_reconstruction_error_matches_mse_loss():
    r, x = randn(4, 1, 3, 3, requires_grad=True), randn(4, 1, 3, 3, seed=1)
    ref = torch.stack([F.mse_loss(r[b], x[b], reduction="sum") for b in range(4)])
    _assert_same_with_grads(reconstruction_error(r, x), ref, (r,))
    with pytest.raises(ValueError, match="recon"):
        reconstruction_error(randn(4, 9), x)


def test_sparsity_penalty_is_l1_of_the_code():
    h = randn(5, 6, requires_grad=True)
    ref = torch.linalg.vector_norm(h, ord=1, dim=1).mean()
    _assert_same_with_grads(sparsity_penalty(h), ref, (h,))
    (g,) = torch.autograd.grad(sparsity_penalty(h), h)
    torch.testing.assert_close(g, torch.sign(h) / 5)
    with pytest.raises(ValueError, match="code"):
        sparsity_penalty(randn(5))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(), (4,)])
def test_encoder_jacobian_matches_autograd_functional(activation, hidden):
    ae = Autoencoder((1, 2, 3), 3, hidden, activation=activation, code_activation=activation, generator=gen(0),
                     dtype=F64)
    x = randn(4, 1, 2, 3, seed=1)
    J = encoder_jacobian(ae.encode, x)
    assert J.shape == (4, 3, 6)
    for b in range(4):
        ref = torch.autograd.functional.jacobian(lambda xb: ae.encode(xb[None])[0], x[b])  # (Z, 1, 2, 3)
        torch.testing.assert_close(J[b], ref.reshape(3, 6), rtol=1e-10, atol=1e-12)


def test_contractive_penalty_gradients_match_finite_differences():
    ae = Autoencoder(4, 3, (3,), activation="tanh", code_activation="sigmoid", generator=gen(0), dtype=F64)
    x = randn(3, 4, seed=1, requires_grad=True)
    (w0, b0), (w1, b1) = ((m.weight.detach(), m.bias.detach()) for m in _linears(ae.encoder))

    def penalty(x_, w_):
        return contractive_penalty(lambda inp: torch.sigmoid(torch.tanh(inp @ w_.T + b0) @ w1.T + b1), x_)

    torch.testing.assert_close(penalty(x, w0), contractive_penalty(ae.encode, x))  # the same encoder
    assert torch.autograd.gradcheck(penalty, (x, w0.clone().requires_grad_(True)))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_contractive_penalty_equals_the_autograd_one(activation):
    x = randn(6, 5)
    w = randn(4, 5, seed=1, requires_grad=True)
    b = randn(4, seed=2, requires_grad=True)
    ours = dense_contractive_penalty(x, w, b, activation)
    ref = contractive_penalty(lambda inp: ACTIVATIONS[activation]()(inp @ w.T + b), x)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for a, c in zip(torch.autograd.grad(ours, (w, b), allow_unused=True, materialize_grads=True),
                    torch.autograd.grad(ref, (w, b), allow_unused=True, materialize_grads=True), strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_linear_encoder_contractive_penalty_is_weight_decay():
    x, w, b = randn(6, 5), randn(4, 5, seed=1), randn(4, seed=2)
    torch.testing.assert_close(dense_contractive_penalty(x, w, b, "linear"), w.pow(2).sum())


def test_contractive_rejects_bad_arguments():
    with pytest.raises(TypeError, match="encode"):
        contractive_penalty(3, randn(2, 2))
    with pytest.raises(ValueError, match="encode"):
        encoder_jacobian(lambda x: x.sum(1), randn(2, 2))
    with pytest.raises(ValueError, match="weight"):
        dense_contractive_penalty(randn(2, 3), randn(4, 2), randn(4))


def test_corrupt_adds_gaussian_noise():
    x = torch.zeros(200, 50, dtype=F64)
    noisy = corrupt(x, 0.3, gen(0))
    assert abs(float(noisy.mean())) < 0.01 and abs(float(noisy.std()) - 0.3) < 0.01
    torch.testing.assert_close(noisy, corrupt(x, 0.3, gen(0)))
    torch.testing.assert_close(corrupt(x + 1, 0.0, gen(0)), x + 1)
    with pytest.raises(ValueError, match="noise_std"):
        corrupt(x, -0.1)
    with pytest.raises(TypeError, match="generator"):
        corrupt(x, 0.1, generator="seed")


def test_code_sparsity_counts_silent_units():
    h = torch.tensor([[0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.02, 2.0]], dtype=F64)
    assert code_sparsity(h) == 4 / 8
    assert code_sparsity(h, tol=0.05) == 5 / 8
    with pytest.raises(ValueError, match="tol"):
        code_sparsity(h, tol=-1.0)
    with pytest.raises(ValueError, match="code"):
        code_sparsity(torch.zeros(0, 3, dtype=F64))


# ------------------------------------------------------------------------------------------- PCA and angles
def test_pca_basis_matches_sklearn():
    from sklearn.decomposition import PCA

    x = randn(40, 6) @ randn(6, 6, seed=1)
    ours = pca_basis(x, 3)
    ref = torch.from_numpy(PCA(n_components=3).fit(x.numpy()).components_.T)  # (D, k)
    assert ours.shape == (6, 3)
    torch.testing.assert_close(ours.T @ ours, torch.eye(3, dtype=F64))
    torch.testing.assert_close(ours.abs(), ref.abs(), rtol=1e-8, atol=1e-8)  # columns equal up to sign
    with pytest.raises(ValueError, match="k"):
        pca_basis(x, 7)


def _scipy_angles(a, b):
    return torch.from_numpy(np.sort(scipy.linalg.subspace_angles(a.numpy(), b.numpy())))


@pytest.mark.parametrize("D,k,l", [(5, 2, 2), (6, 1, 3), (7, 4, 2), (10, 5, 5), (3, 3, 3)])
def test_principal_angles_match_scipy(D, k, l):
    a, b = randn(D, k), randn(D, l, seed=1)
    ours = principal_angles(a, b)
    assert ours.shape == (min(k, l),)
    assert torch.all(ours[1:] >= ours[:-1])  # ascending
    torch.testing.assert_close(ours, _scipy_angles(a, b), rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(D=st.integers(2, 9), k=st.integers(1, 9), l=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_principal_angles_match_scipy_on_random_subspaces(D, k, l, seed):
    k, l = min(k, D), min(l, D)
    a, b = randn(D, k, seed=seed), randn(D, l, seed=seed + 1)
    ours = principal_angles(a, b)
    # scipy takes arccos for some tiny angles, which is only good to ~1e-8 (sqrt of the float64 epsilon)
    torch.testing.assert_close(ours, _scipy_angles(a, b), rtol=1e-7, atol=5e-8)
    shared = max(k + l - D, 0)  # subspaces of dimensions k and l in D dimensions share at least k + l - D
    if shared:
        assert float(ours[:shared].max()) < 1e-12


def test_principal_angles_of_equal_and_orthogonal_subspaces():
    a = randn(8, 3)
    mixed = a @ randn(3, 3, seed=1)  # another basis of the same subspace
    assert float(principal_angles(a, mixed).max()) < 1e-12  # accurate for tiny angles, unlike arccos alone
    e = torch.eye(6, dtype=F64)
    torch.testing.assert_close(principal_angles(e[:, :2], e[:, 2:5]), torch.full((2,), math.pi / 2, dtype=F64))
    small = torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([math.cos(1e-9), math.sin(1e-9)])]).T.double()
    torch.testing.assert_close(principal_angles(small[:, :1], small[:, 1:]), torch.tensor([1e-9], dtype=F64),
                               rtol=1e-6, atol=0)


def test_principal_angles_reject_bad_bases():
    with pytest.raises(ValueError, match="a"):
        principal_angles(torch.ones(4, 2, dtype=F64), randn(4, 2))
    with pytest.raises(ValueError, match="b"):
        principal_angles(randn(4, 2), randn(4, 5))
    with pytest.raises(ValueError, match="b must have shape"):
        principal_angles(randn(4, 2), randn(5, 2))


def test_nearest_distance_matches_cdist():
    a, b = randn(7, 1, 2, 3), randn(11, 1, 2, 3, seed=1)
    ref = torch.cdist(a.reshape(7, -1), b.reshape(11, -1)).min(1).values
    torch.testing.assert_close(nearest_distance(a, b), ref, rtol=1e-10, atol=1e-10)
    assert float(nearest_distance(b[:3], b).max()) < 1e-6  # a training image is at distance 0 from itself
    with pytest.raises(ValueError, match="samples"):
        nearest_distance(randn(3, 4), randn(5, 3))
    with pytest.raises(ValueError, match="data"):
        nearest_distance(randn(3, 4), randn(0, 4))


# ------------------------------------------------------------------------------------------------------ VAE
def _kl_torch(mu, logvar):
    return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))


@pytest.mark.parametrize("shape", [(1,), (4, 2), (3, 5), (2, 3, 4)])
def test_gaussian_kl_matches_torch_distributions(shape):
    mu, logvar = randn(*shape, requires_grad=True), randn(*shape, seed=1, requires_grad=True)
    ours = gaussian_kl(mu, logvar)
    assert ours.shape == shape[:-1]
    _assert_same_with_grads(ours, _kl_torch(mu, logvar).sum(-1), (mu, logvar))


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 5), Z=st.integers(1, 6), scale=st.floats(0.01, 5.0), seed=st.integers(0, 10_000))
def test_gaussian_kl_matches_torch_distributions_on_random_inputs(B, Z, scale, seed):
    mu = scale * randn(B, Z, seed=seed)
    logvar = (scale * randn(B, Z, seed=seed + 1)).requires_grad_(True)
    mu.requires_grad_(True)
    ours, ref = gaussian_kl(mu, logvar), _kl_torch(mu, logvar).sum(-1)
    assert torch.all(ours >= 0)
    _assert_same_with_grads(ours, ref, (mu, logvar), seed)


def test_gaussian_kl_is_zero_only_at_the_prior_and_has_gradcheck():
    assert float(gaussian_kl(torch.zeros(3, 4, dtype=F64), torch.zeros(3, 4, dtype=F64)).abs().max()) == 0.0
    assert float(gaussian_kl(torch.zeros(1, 1, dtype=F64), torch.full((1, 1), 0.1, dtype=F64))) > 0
    assert torch.autograd.gradcheck(gaussian_kl, (randn(2, 3, requires_grad=True),
                                                  randn(2, 3, seed=1, requires_grad=True)))


def test_gaussian_kl_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mu and logvar"):
        gaussian_kl(randn(2, 3), randn(2, 4))
    with pytest.raises(TypeError, match="logvar"):
        gaussian_kl(randn(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mu"):
        gaussian_kl(torch.tensor(1.0, dtype=F64), torch.tensor(0.0, dtype=F64))


def test_reparameterize_matches_normal_rsample():
    mu, logvar = randn(4, 3, requires_grad=True), randn(4, 3, seed=1, requires_grad=True)
    torch.manual_seed(7)
    ours = reparameterize(mu, logvar)
    torch.manual_seed(7)
    ref = Normal(mu, torch.exp(0.5 * logvar)).rsample()
    _assert_same_with_grads(ours, ref, (mu, logvar))


def test_reparameterize_gradients_are_the_pathwise_derivatives():
    mu, logvar = randn(5, 2, requires_grad=True), randn(5, 2, seed=1, requires_grad=True)
    z = reparameterize(mu, logvar, gen(3))
    eps = torch.randn(5, 2, generator=gen(3), dtype=F64)  # the same ε
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)
    d_mu, d_logvar = torch.autograd.grad(z.sum(), (mu, logvar))
    torch.testing.assert_close(d_mu, torch.ones_like(mu))
    torch.testing.assert_close(d_logvar, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)
    assert torch.autograd.gradcheck(lambda m, lv: reparameterize(m, lv, gen(3)), (mu, logvar))


def test_reparameterized_gradient_estimates_the_true_gradient():
    # E[z²] = μ² + σ², so d/dμ = 2μ and d/d(log σ²) = σ². The average of many pathwise gradients must agree.
    mu = torch.tensor([0.7, -1.2], dtype=F64, requires_grad=True)
    logvar = torch.tensor([0.3, -0.5], dtype=F64, requires_grad=True)
    z = reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), gen(0))
    d_mu, d_logvar = torch.autograd.grad(z.pow(2).mean(0).sum(), (mu, logvar))
    torch.testing.assert_close(d_mu, 2 * mu.detach(), rtol=0, atol=0.02)
    torch.testing.assert_close(d_logvar, logvar.detach().exp(), rtol=0, atol=0.02)
    sample_var = z.detach().var(0)
    torch.testing.assert_close(sample_var, logvar.detach().exp(), rtol=0.02, atol=0)


def test_reparameterize_rejects_bad_arguments():
    with pytest.raises(TypeError, match="generator"):
        reparameterize(randn(2, 2), randn(2, 2), generator=0)
    with pytest.raises(ValueError, match="mu and logvar"):
        reparameterize(randn(2, 2), randn(2, 3))


def test_bernoulli_nll_matches_binary_cross_entropy():
    r = torch.rand(4, 1, 3, 3, generator=gen(0), dtype=F64).clamp(0.01, 0.99).requires_grad_(True)
    x = torch.rand(4, 1, 3, 3, generator=gen(1), dtype=F64)
    ref = F.binary_cross_entropy(r, x, reduction="none").reshape(4, -1).sum(1)
    _assert_same_with_grads(bernoulli_nll(r, x), ref, (r,))
    binary = (x > 0.5).double()
    torch.testing.assert_close(bernoulli_nll(r, binary), -Bernoulli(probs=r).log_prob(binary).reshape(4, -1).sum(1))


def test_bernoulli_nll_clamps_logs_like_torch():
    r = torch.tensor([[0.0, 1.0, 0.0, 1.0]], dtype=F64)
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=F64)
    ref = F.binary_cross_entropy(r, x, reduction="none").sum(1)
    torch.testing.assert_close(bernoulli_nll(r, x), ref)
    assert float(bernoulli_nll(r, x)) == 200.0


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 4.0])
def test_vae_loss_is_the_negative_elbo_estimate(beta):
    r = torch.rand(3, 6, generator=gen(0), dtype=F64).clamp(0.05, 0.95).requires_grad_(True)
    x = torch.rand(3, 6, generator=gen(1), dtype=F64)
    mu, logvar = randn(3, 2, seed=2, requires_grad=True), randn(3, 2, seed=3, requires_grad=True)
    ref = (F.binary_cross_entropy(r, x, reduction="none").sum(1) + beta * _kl_torch(mu, logvar).sum(1)).mean()
    _assert_same_with_grads(vae_loss(r, x, mu, logvar, beta), ref, (r, mu, logvar))


def test_vae_loss_rejects_bad_arguments():
    r, x = torch.full((3, 6), 0.5, dtype=F64), torch.zeros(3, 6, dtype=F64)
    with pytest.raises(ValueError, match="beta"):
        vae_loss(r, x, randn(3, 2), randn(3, 2), beta=-1.0)
    with pytest.raises(TypeError, match="beta"):
        vae_loss(r, x, randn(3, 2), randn(3, 2), beta="1")
    with pytest.raises(ValueError, match="mu must have shape"):
        vae_loss(r, x, randn(4, 2), randn(4, 2))
    with pytest.raises(ValueError, match="recon and x"):
        vae_loss(r, x[:, :5], randn(3, 2), randn(3, 2))


def test_importance_log_likelihood_with_one_sample_is_the_elbo_sample():
    vae = VAE(5, 2, (4,), generator=gen(0), dtype=F64)
    x = torch.rand(3, 5, generator=gen(1), dtype=F64)
    ours = importance_log_likelihood(vae, x, k=1, generator=gen(2))
    mu, logvar = vae.encode(x)
    z = reparameterize(mu, logvar, gen(2))  # the same ε
    std = torch.exp(0.5 * logvar)
    log_px_z = -F.binary_cross_entropy(vae.decode(z), x, reduction="none").sum(1)
    prior = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(1)
    post = Normal(mu, std).log_prob(z).sum(1)
    torch.testing.assert_close(ours, log_px_z + prior - post)


def test_importance_log_likelihood_is_a_log_mean_of_weights_and_tightens_the_elbo():
    vae = VAE(5, 2, (4,), generator=gen(0), dtype=F64)
    x = torch.rand(6, 5, generator=gen(1), dtype=F64)
    with torch.no_grad():
        singles = torch.stack([importance_log_likelihood(vae, x, 1, gen(s)) for s in range(200)])  # (200, B)
        elbo = singles.mean(0)  # Monte Carlo ELBO per example
        log_mean_w = torch.logsumexp(singles, 0) - math.log(200)
        iwae = importance_log_likelihood(vae, x, 2000, gen(999))
    assert torch.all(log_mean_w >= elbo)  # Jensen, sample by sample
    assert torch.all(iwae > elbo)
    standard_error = torch.exp(singles - log_mean_w).std(0) / math.sqrt(200)  # of log_mean_w (delta method)
    assert torch.all((iwae - log_mean_w).abs() < 4 * standard_error)  # both estimate log p(x)
    assert float(standard_error.max()) < 0.1


def test_importance_log_likelihood_rejects_bad_arguments():
    vae = VAE(5, 2, (4,), dtype=F64)
    with pytest.raises(ValueError, match="k"):
        importance_log_likelihood(vae, torch.zeros(2, 5, dtype=F64), k=0)
    with pytest.raises(TypeError, match="model"):
        importance_log_likelihood(Autoencoder(5, 2), torch.zeros(2, 5, dtype=F64))


@pytest.mark.parametrize("S,N,Z", [(1, 1, 1), (7, 5, 2), (4, 30, 3)])
def test_aggregate_log_density_matches_a_torch_mixture(S, N, Z):
    g = gen(S + N + Z)
    mu, logvar = torch.randn(N, Z, generator=g, dtype=F64), torch.randn(N, Z, generator=g, dtype=F64)
    z = 2 * torch.randn(S, Z, generator=g, dtype=F64)
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(N, dtype=F64)),
                                Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    torch.testing.assert_close(aggregate_log_density(z, mu, logvar), mixture.log_prob(z))


def test_aggregate_log_density_of_prior_posteriors_is_the_prior():
    z = torch.randn(6, 3, generator=gen(0), dtype=F64)
    zeros = torch.zeros(4, 3, dtype=F64)  # four posteriors, each equal to N(0, I)
    torch.testing.assert_close(aggregate_log_density(z, zeros, zeros), Normal(0.0, 1.0).log_prob(z).sum(1))


def test_aggregate_log_density_rejects_bad_arguments():
    mu = torch.zeros(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="z must have shape"):
        aggregate_log_density(torch.zeros(3, 3, dtype=F64), mu, mu)
    with pytest.raises(ValueError, match="same shape"):
        aggregate_log_density(torch.zeros(3, 2, dtype=F64), mu, torch.zeros(4, 3, dtype=F64))
    with pytest.raises(TypeError, match="z"):
        aggregate_log_density(torch.zeros(3, 2, dtype=torch.long), mu, mu)
    with pytest.raises(ValueError, match="mu"):
        aggregate_log_density(torch.zeros(3, 2, dtype=F64), mu[:0], mu[:0])



def test_elbo_is_minus_the_vae_loss_per_example_and_averages_k_draws():
    vae = VAE(5, 2, (4,), generator=gen(0), dtype=F64)
    x = torch.rand(3, 5, generator=gen(1), dtype=F64)
    recon, mu, logvar = vae(x, gen(2))
    expected = -(bernoulli_nll(recon, x) + gaussian_kl(mu, logvar))  # (B,): the same ε as the forward pass
    torch.testing.assert_close(elbo(vae, x, mu, logvar, 1, gen(2)), expected)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(4, 3, 2, generator=gen(3), dtype=F64)  # (k, B, Z): the same ε
    log_px_z = torch.stack([-bernoulli_nll(vae.decode(zk), x) for zk in z])  # (k, B)
    torch.testing.assert_close(elbo(vae, x, mu, logvar, 4, gen(3)), log_px_z.mean(0) - gaussian_kl(mu, logvar))


def test_elbo_plus_the_kl_to_the_true_posterior_is_log_p_x_on_a_grid():
    """With a one-number code, log p(x) and p(z|x) are integrals over a line: a fine grid gives them."""
    vae = VAE(6, 1, (8,), generator=gen(0), dtype=F64)
    x = torch.bernoulli(torch.full((2, 6), 0.5, dtype=F64), generator=gen(1))  # (2, 6)
    z = torch.linspace(-12, 12, 24001, dtype=F64)[:, None]  # (G, 1)
    dz = float(z[1] - z[0])
    with torch.no_grad():
        log_joint = torch.stack([-bernoulli_nll(vae.decode(z), xb.expand(len(z), 6)) for xb in x], 1)  # (G, 2)
        log_joint = log_joint + Normal(0.0, 1.0).log_prob(z)  # log p(x, z)
        log_px = torch.logsumexp(log_joint, 0) + math.log(dz)  # (2,)
        mu, logvar = torch.tensor([[0.3], [-0.8]], dtype=F64), torch.tensor([[-1.0], [0.5]], dtype=F64)
        log_q = Normal(mu.T, torch.exp(0.5 * logvar.T)).log_prob(z)  # (G, 2)
        kl_to_posterior = (log_q.exp() * (log_q - (log_joint - log_px))).sum(0) * dz  # (2,)
        estimate = elbo(vae, x, mu, logvar, 200_000, gen(2))  # (2,)
    torch.testing.assert_close(estimate + kl_to_posterior, log_px, rtol=0, atol=0.005)
    assert torch.all(kl_to_posterior > 0.05) and torch.all(estimate < log_px)


def test_fit_posterior_raises_each_elbo_and_leaves_the_model_alone():
    vae = VAE(6, 2, (8,), generator=gen(0), dtype=F64)
    x = torch.rand(5, 6, generator=gen(1), dtype=F64)
    before = [p.clone() for p in vae.parameters()]
    mu_fit, logvar_fit = fit_posterior(vae, x, steps=60, lr=0.05, k=32, generator=gen(2))
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))
    assert all(p.grad is None for p in vae.parameters())
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        start, end = elbo(vae, x, mu, logvar, 20_000, gen(3)), elbo(vae, x, mu_fit, logvar_fit, 20_000, gen(3))
    assert torch.all(end > start + 0.05)
    assert not mu_fit.requires_grad and mu_fit.shape == logvar_fit.shape == (5, 2)


def test_elbo_and_fit_posterior_reject_bad_arguments():
    vae, x, codes = VAE(5, 2, (4,), dtype=F64), torch.zeros(3, 5, dtype=F64), torch.zeros(3, 2, dtype=F64)
    with pytest.raises(TypeError, match="model"):
        elbo(Autoencoder(5, 2), x, codes, codes)
    with pytest.raises(ValueError, match="mu must have shape"):
        elbo(vae, x, torch.zeros(3, 3, dtype=F64), codes)
    with pytest.raises(ValueError, match="k"):
        elbo(vae, x, codes, codes, k=0)
    with pytest.raises(ValueError, match="steps"):
        fit_posterior(vae, x, steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit_posterior(vae, x, lr=-1.0)

# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("field,value,error", [
    ("epochs", 0, ValueError), ("batch_size", 0, ValueError), ("lr", 0.0, ValueError), ("seed", -1, ValueError),
    ("weight_decay", -1.0, ValueError), ("sparsity", float("nan"), ValueError), ("noise_std", "0.1", TypeError),
    ("contractive", -0.5, ValueError), ("weight_l1", -1e-3, ValueError),
])
def test_ae_config_rejects_bad_values(field, value, error):
    with pytest.raises(error, match=field):
        AEConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("epochs", 0), ("beta", -1.0), ("lr", -1.0), ("batch_size", 0)])
def test_vae_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        VAEConfig(**{field: value})


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AEConfig().lr = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        VAEConfig().beta = 2.0  # type: ignore[misc]


def _blobs(n=120, D=6, seed=0):
    """n points in [0, 1]^D that lie near a curved 2-D surface: easy to compress into a small code."""
    g = gen(seed)
    z = torch.randn(n, 2, generator=g, dtype=F64)
    return torch.sigmoid(z @ torch.randn(2, D, generator=g, dtype=F64) * 2)


@pytest.mark.parametrize("kwargs", [
    {}, {"weight_decay": 1e-3}, {"weight_l1": 1e-3}, {"sparsity": 0.05}, {"contractive": 0.05},
    {"noise_std": 0.2},
])
def test_train_autoencoder_learns_and_repeats_exactly(kwargs):
    x = _blobs()
    config = AEConfig(epochs=15, batch_size=20, lr=1e-2, **kwargs)
    runs = []
    for _ in range(2):
        ae = Autoencoder(6, 3, (5,), generator=gen(0), dtype=F64)
        runs.append((ae, train_autoencoder(ae, x, config)))
    (a, ha), (b, hb) = runs
    assert isinstance(ha, History) and set(ha.metrics) == {"loss", "reconstruction", "penalty"}
    assert len(ha["loss"]) == len(ha["reconstruction"]) == len(ha["penalty"]) == 15
    assert ha.epoch_steps[0] == 6  # 120 examples in batches of 20
    assert ha["loss"] == hb["loss"]  # same seeds, same run
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert ha["reconstruction"][-1] < 0.7 * ha["reconstruction"][0]
    has_penalty = any(kwargs.get(k, 0) > 0 for k in ("weight_decay", "weight_l1", "sparsity", "contractive"))
    assert (min(ha["penalty"]) > 0) == has_penalty
    loss, reconstruction, penalty = (torch.tensor(ha[name]) for name in ("loss", "reconstruction", "penalty"))
    torch.testing.assert_close(loss, reconstruction + penalty)


def test_autoencoder_loss_is_the_reconstruction_plus_the_weighted_penalties():
    x = _blobs(30)
    ae = Autoencoder(6, 3, (5,), code_activation="relu", generator=gen(0), dtype=F64)
    with torch.no_grad():
        rec = reconstruction_error(ae(x), x).mean()
        loss, parts = autoencoder_loss(ae, x, AEConfig())
        assert loss.item() == rec.item() == parts["reconstruction"].item() and parts["penalty"].item() == 0.0
        loss, parts = autoencoder_loss(ae, x, AEConfig(sparsity=0.5))
        torch.testing.assert_close(loss, rec + 0.5 * sparsity_penalty(ae.encode(x)))
        torch.testing.assert_close(parts["penalty"], loss - rec)
        noisy, _ = autoencoder_loss(ae, x, AEConfig(noise_std=0.3), gen(1))
        corrupted = corrupt(x, 0.3, gen(1))
        torch.testing.assert_close(noisy, reconstruction_error(ae.decode(ae.encode(corrupted)), x).mean())


def test_contractive_training_uses_the_same_penalty_for_deep_and_shallow_encoders():
    x = _blobs(40, 4)
    shallow = Autoencoder(4, 3, code_activation="sigmoid", generator=gen(0), dtype=F64)
    h = train_autoencoder(shallow, x, AEConfig(epochs=1, batch_size=40, contractive=1.0, lr=1e-9))
    # one full batch with a negligible step: the logged penalty is the penalty at the initial weights
    fresh = Autoencoder(4, 3, code_activation="sigmoid", generator=gen(0), dtype=F64)
    expected = contractive_penalty(fresh.encode, x).detach()
    assert h["penalty"][0] == pytest.approx(float(expected), rel=1e-6)


def test_sparsity_penalty_makes_the_code_sparser():
    x = _blobs(200, 8)
    codes = {}
    for lam in (0.0, 0.2):
        ae = Autoencoder(8, 16, code_activation="relu", tied=True, generator=gen(0), dtype=F64)
        train_autoencoder(ae, x, AEConfig(epochs=40, batch_size=50, lr=1e-2, sparsity=lam))
        with torch.no_grad():
            codes[lam] = code_sparsity(ae.encode(x))
    assert codes[0.2] > codes[0.0] + 0.3


def test_linear_autoencoder_spans_the_principal_subspace():
    # Data with three strong directions and weak noise: a linear AE with a 3-wide code must find their span.
    g = gen(0)
    basis = torch.linalg.qr(torch.randn(10, 3, generator=g, dtype=F64))[0]  # (10, 3)
    x = (torch.randn(300, 3, generator=g, dtype=F64) * torch.tensor([3.0, 2.0, 1.5], dtype=F64)) @ basis.T
    x = x + 0.05 * torch.randn(300, 10, generator=g, dtype=F64) + 0.5
    ae = Autoencoder(10, 3, activation="linear", code_activation="linear", output="linear", generator=gen(1),
                     dtype=F64)
    train_autoencoder(ae, x - x.mean(0), AEConfig(epochs=200, batch_size=300, lr=3e-2))
    angles = principal_angles(ae.decoder_weights()[0].detach(), pca_basis(x, 3))
    assert float(angles.max()) < 1e-2
    w = ae.decoder_weights()[0].detach()
    assert not torch.allclose(w.T @ w, torch.eye(3, dtype=F64), atol=0.1)  # the subspace, not the PCA axes


def test_train_autoencoder_rejects_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        train_autoencoder(torch.nn.Linear(3, 3), _blobs(10, 3), AEConfig(epochs=1))
    with pytest.raises(TypeError, match="config"):
        train_autoencoder(Autoencoder(3, 2, dtype=F64), _blobs(10, 3), VAEConfig())
    with pytest.raises(ValueError, match="x"):
        train_autoencoder(Autoencoder(3, 2, dtype=F64), torch.zeros(0, 3, dtype=F64), AEConfig())


def test_train_vae_learns_and_repeats_exactly():
    x = (torch.rand(150, 8, generator=gen(0), dtype=F64) > 0.5).double()
    config = VAEConfig(epochs=20, batch_size=30, lr=1e-2, beta=1.0)
    runs = []
    for _ in range(2):
        vae = VAE(8, 2, (16,), generator=gen(0), dtype=F64)
        runs.append((vae, train_vae(vae, x, config)))
    (a, ha), (b, hb) = runs
    assert isinstance(ha, History) and len(ha["loss"]) == len(ha["kl"]) == len(ha["reconstruction"]) == 20
    assert ha["loss"] == hb["loss"]
    assert ha["loss"][-1] < ha["loss"][0]
    torch.testing.assert_close(torch.tensor(ha["loss"]), torch.tensor(ha["reconstruction"]) + torch.tensor(ha["kl"]))


def test_larger_beta_gives_a_smaller_kl():
    x = torch.rand(150, 8, generator=gen(0), dtype=F64)
    kls = []
    for beta in (0.5, 4.0):
        vae = VAE(8, 2, (16,), generator=gen(0), dtype=F64)
        kls.append(train_vae(vae, x, VAEConfig(epochs=20, batch_size=30, lr=1e-2, beta=beta))["kl"][-1])
    assert kls[1] < kls[0]


def test_train_vae_rejects_bad_arguments():
    vae = VAE(3, 2, (4,), dtype=F64)
    with pytest.raises(ValueError, match="x"):
        train_vae(vae, torch.full((5, 3), 2.0, dtype=F64), VAEConfig(epochs=1))
    with pytest.raises(TypeError, match="model"):
        train_vae(Autoencoder(3, 2, dtype=F64), torch.zeros(5, 3, dtype=F64), VAEConfig(epochs=1))
    with pytest.raises(TypeError, match="config"):
        train_vae(vae, torch.zeros(5, 3, dtype=F64), AEConfig())
