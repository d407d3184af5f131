"""dlbook.downsampling: the four down-sampling layers against torch.nn.functional, the parameter counts of
small_cnn, seeded training runs that repeat exactly, and shift_change on cases whose answer is known by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.downsampling import (
    DOWNSAMPLERS,
    SpaceToDepth,
    count_parameters,
    downsampler,
    shift_change,
    small_cnn,
    train_run,
)
from tensors import TOL, randn64


def test_downsamplers_match_torch():
    x = randn64(2, 3, 8, 6, requires_grad=False)
    torch.testing.assert_close(downsampler("max", 3, dtype=torch.float64)[0](x), F.max_pool2d(x, 2), **TOL)
    torch.testing.assert_close(downsampler("avg", 3, dtype=torch.float64)[0](x), F.avg_pool2d(x, 2), **TOL)
    torch.testing.assert_close(SpaceToDepth()(x), F.pixel_unshuffle(x, 2), **TOL)
    layer, channels = downsampler("conv", 3, dtype=torch.float64)
    conv = layer[0]
    torch.testing.assert_close(layer(x), torch.relu(F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)), **TOL)
    assert channels == 3 and conv.weight.dtype == torch.float64


@pytest.mark.parametrize("kind", DOWNSAMPLERS)
def test_downsampler_halves_and_reports_channels(kind):
    layer, channels = downsampler(kind, 4)
    y = layer(torch.zeros(2, 4, 10, 12))
    assert y.shape == (2, channels, 5, 6)
    assert channels == (16 if kind == "space_to_depth" else 4)
    assert count_parameters(layer) == (4 * (9 * 4 + 1) if kind == "conv" else 0)


@pytest.mark.parametrize("kind", DOWNSAMPLERS)
@pytest.mark.parametrize("width, size", [(8, 28), (4, 16)])
def test_small_cnn_shapes_and_parameters(kind, width, size):
    torch.manual_seed(0)
    net = small_cnn(kind, width, classes=7, size=size)
    assert net(torch.zeros(3, 1, size, size)).shape == (3, 7)
    growth = 4 if kind == "space_to_depth" else 1  # space-to-depth: the next layers read 4 times the channels
    extra = width * (9 * width + 1) + 2 * width * (18 * width + 1) if kind == "conv" else 0
    expected = (9 * width + width) + (growth * width * 9 * 2 * width + 2 * width) \
        + (growth * 2 * width * (size // 4) ** 2 * 7 + 7) + extra
    assert count_parameters(net) == expected
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_small_cnn_dtype():
    net = small_cnn("conv", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert net(torch.zeros(1, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("args, kwargs, match", [
    (("median",), {}, "kind"),
    (("max", 0), {}, "width"),
    (("max",), {"size": 30}, "size"),
    (("max",), {"classes": 0}, "classes"),
])
def test_small_cnn_refuses(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_cnn(*args, **kwargs)


def test_downsampler_refuses():
    with pytest.raises(ValueError, match="channels"):
        downsampler("max", 0)
    with pytest.raises(ValueError, match="kind"):
        downsampler("stride", 3)


def _tiny_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes that a CNN separates at once: a bright left or right half, with noise. (n, 1, 8, 8), (n,)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    x[labels == 0, :, :, :4] += 1.0
    x[labels == 1, :, :, 4:] += 1.0
    return x, labels


@pytest.fixture
def one_thread():
    """Tiny convolutions run much faster on one thread than on several competing for a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", DOWNSAMPLERS)
def test_train_run_repeats_and_learns(kind, one_thread):
    train_data, test_data = _tiny_digits(128, seed=0), _tiny_digits(64, seed=1)
    state = torch.get_rng_state()
    a = train_run(kind, train_data, test_data, seed=3, epochs=3, batch_size=16, lr=1e-2)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone
    b = train_run(kind, train_data, test_data, seed=3, epochs=3, batch_size=16, lr=1e-2)
    c = train_run(kind, train_data, test_data, seed=4, epochs=3, batch_size=16, lr=1e-2)
    assert a.accuracy == b.accuracy and a.parameters == b.parameters == count_parameters(a.model)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters(), strict=True))
    assert a.accuracy > 0.9 and a.seconds > 0 and (a.kind, a.seed) == (kind, 3)


def test_train_run_refuses():
    data = _tiny_digits(8, seed=0)
    with pytest.raises(ValueError, match="seed"):
        train_run("max", data, data, seed=-1)
    with pytest.raises(ValueError, match="lr"):
        train_run("max", data, data, seed=0, lr=-1.0)
    with pytest.raises(ValueError, match="kind"):
        train_run("mean", data, data, seed=0)
    with pytest.raises(ValueError, match="train_data"):
        train_run("max", (data[0][:, 0], data[1]), data, seed=0)


def _framed(n: int, seed: int, frame: int = 4) -> torch.Tensor:
    """Random non-negative images (n, 2, 16, 16) with a zero border ``frame`` pixels wide."""
    g = torch.Generator().manual_seed(seed)
    return F.pad(torch.rand(n, 2, 16 - 2 * frame, 16 - 2 * frame, generator=g, dtype=torch.float64), (frame,) * 4)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.sampled_from([0, 2, 4]))
def test_shift_by_the_stride_is_no_change_for_max_pooling(seed, shift):
    change = shift_change(lambda x: F.max_pool2d(x, 2), _framed(3, seed), shift)
    assert change.shape == (2, 3)
    assert change.max() < 1e-12


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_blur_before_the_stride_changes_less_than_subsampling(seed):
    # On average over images, not image by image: a random image can change less when subsampled than when blurred
    # first (seed 747 of _framed(4, ...) has one). Over 16 images the blur's mean change was at most 0.67 of the
    # subsampling's for seeds 0-2999.
    x = _framed(16, seed)
    subsample = shift_change(lambda x: x[..., ::2, ::2], x, 1)  # (2, 16): per direction, per image
    blurred = shift_change(lambda x: F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)[..., ::2, ::2], x, 1)
    assert torch.all(blurred.mean(1) < 0.8 * subsample.mean(1)) and torch.all(blurred > 0)


def test_shift_change_values_by_hand():
    dot = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    dot[..., 4, 4] = 1.0
    # keeping every 2nd pixel: the dot moved to an odd column vanishes, and nothing aligns with it: change 1
    assert shift_change(lambda x: x[..., ::2, ::2], dot, 1).tolist() == [[1.0], [1.0]]
    # a stride-1 map equivariant to shifts: no change at any shift
    assert shift_change(lambda x: 2 * x, dot, 3, stride=1).tolist() == [[0.0], [0.0]]
    # 2×2 max pooling: the dot at (4, 5) stays in the window of (4, 4); moved down to (5, 4) too
    assert shift_change(lambda x: F.max_pool2d(x, 2), dot, 1, dims=(-1,)).tolist() == [[0.0]]


def test_shift_change_refuses():
    x = _framed(1, 0)
    with pytest.raises(ValueError, match="images"):
        shift_change(lambda x: x, x[0], 1)
    with pytest.raises(ValueError, match="shift"):
        shift_change(lambda x: x, x, -1)
    with pytest.raises(ValueError, match="stride"):
        shift_change(lambda x: x, x, 1, stride=0)
