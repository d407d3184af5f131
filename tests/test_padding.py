"""dlbook.padding.pad2d against torch.nn.functional.pad: values, gradients, the sizes it accepts and refuses."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlbook.padding import PAD_MODES, pad2d, source_index

DT = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _torch_pad(x, pad, mode, value=None):
    """F.pad's result, or None where it raises."""
    try:
        return F.pad(x, pad, mode, value)
    except (RuntimeError, NotImplementedError, ValueError):
        return None


def _ours(x, pad, mode, value=0.0):
    try:
        return pad2d(x, pad, mode, value)
    except ValueError:
        return None


def _mixed_circular(pad, mode):
    """Circular pads of opposite signs on one dimension: F.pad returns wrong values for them, pad2d refuses."""
    return mode == "circular" and any(a * b < 0 for a, b in zip(pad[::2], pad[1::2], strict=True))


# ---------------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 3, 4), (2, 3, 4, 2), (3, 5, 3)])
def test_values_exhaustive_pads(mode, shape):
    """Every pad in -3..3 on each of the four sides: same values as F.pad where it works, refused where it raises."""
    x = _rand(*shape)
    agreed = refused = 0
    for pad in itertools.product(range(-3, 4), repeat=4):
        ours = _ours(x, pad, mode)
        if _mixed_circular(pad, mode):
            assert ours is None
            continue
        expected = _torch_pad(x, pad, mode)
        if expected is None:
            assert ours is None, f"F.pad refuses pad={pad} in mode={mode}, pad2d accepted it"
            refused += 1
        else:
            assert ours is not None, f"F.pad accepts pad={pad} in mode={mode}, pad2d refused it"
            assert ours.shape == expected.shape
            assert torch.equal(ours, expected), (pad, mode)
            agreed += 1
    assert agreed > 0
    assert refused > 0 or mode == "constant" and min(shape[-2:]) >= 3


@pytest.mark.parametrize("value", [0.0, -1.5, 7, None])
def test_constant_value(value):
    x = _rand(2, 3, 4, 5)
    assert torch.equal(pad2d(x, (1, 2, 3, 0), "constant", value), F.pad(x, (1, 2, 3, 0), "constant", value))


@pytest.mark.parametrize("mode", ["constant"])
def test_pad_length_two_pads_width_only(mode):
    x = _rand(2, 3, 4, 5)
    y = pad2d(x, (2, 1), mode)
    assert y.shape == (2, 3, 4, 8)
    assert torch.equal(y, F.pad(x, (2, 1), mode))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_three_d_input_is_one_unbatched_image(mode):
    x = _rand(3, 4, 5)
    assert torch.equal(pad2d(x, (1, 2, 3, 1), mode), F.pad(x, (1, 2, 3, 1), mode))
    assert torch.equal(pad2d(x, (2, 1), mode), F.pad(x, (2, 1), mode))


def test_mode_examples_from_the_docstring():
    row = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]], dtype=DT)  # a b c d
    got = {m: pad2d(row, (2, 2, 0, 0), m)[0, 0, 0].tolist() for m in PAD_MODES}
    assert got == {
        "constant": [0, 0, 1, 2, 3, 4, 0, 0],
        "reflect": [3, 2, 1, 2, 3, 4, 3, 2],
        "replicate": [1, 1, 1, 2, 3, 4, 4, 4],
        "circular": [3, 4, 1, 2, 3, 4, 1, 2],
    }


@pytest.mark.parametrize("mode,n,before,after", [
    (mode, *sizes) for mode in ("reflect", "replicate", "circular")
    for sizes in [(1, 0, 3), (4, 3, 3), (5, 2, 0), (3, -1, 2)]
    if not (mode == "circular" and sizes[1] * sizes[2] < 0)  # refused by pad2d: see _mixed_circular
])
def test_source_index(mode, n, before, after):
    row = torch.arange(n, dtype=DT).view(1, 1, 1, n)
    expected = _torch_pad(row, (before, after, 0, 0), mode)
    if expected is None:  # F.pad refuses: so does pad2d (source_index itself does not check)
        assert _ours(row, (before, after, 0, 0), mode) is None
    else:
        assert torch.equal(source_index(n, before, after, mode), expected[0, 0, 0].long())


def test_source_index_refuses_constant():
    with pytest.raises(ValueError, match="mode"):
        source_index(4, 1, 1, "constant")


def test_zero_pad_is_identity_and_crop_can_empty():
    x = _rand(1, 2, 3, 4)
    for mode in PAD_MODES:
        assert torch.equal(pad2d(x, (0, 0, 0, 0), mode), x)
    assert pad2d(x, (0, 0, -3, 0)).shape == (1, 2, 0, 4) == F.pad(x, (0, 0, -3, 0)).shape


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       mode=st.sampled_from(PAD_MODES), data=st.data())
def test_values_and_gradients_hypothesis(B, C, H, W, mode, data):
    def side(n):
        if mode == "reflect":
            return st.integers(0, n - 1)
        if mode == "circular":
            return st.integers(0, n)
        return st.integers(-1, 6) if mode == "constant" else st.integers(0, 6)

    pad = (data.draw(side(W)), data.draw(side(W)), data.draw(side(H)), data.draw(side(H)))
    x = _rand(B, C, H, W, seed=data.draw(st.integers(0, 10_000))).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    assume(_torch_pad(xr, pad, mode) is not None)  # e.g. negative constant pads that crop more than the input: ...
    y, yr = pad2d(x, pad, mode), F.pad(xr, pad, mode)  # ... refused by pad2d too, see test_values_exhaustive_pads
    assert torch.equal(y, yr)
    g = _rand(*y.shape, seed=1)
    y.backward(g)
    yr.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (2, 0, 1, 2), (0, 1, 0, 0), (-1, 2, 1, -1)])
def test_gradcheck(mode, pad):
    if _mixed_circular(pad, mode):
        pad = tuple(abs(v) for v in pad)
    x = _rand(1, 2, 3, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: pad2d(t, pad, mode), (x,))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_border_cells_collect_the_gradient_of_their_copies(mode):
    x = torch.zeros(1, 1, 1, 4, dtype=DT, requires_grad=True)
    pad2d(x, (2, 2, 0, 0), mode).sum().backward()
    expected = {"reflect": [1, 3, 3, 1], "replicate": [3, 1, 1, 3], "circular": [2, 2, 2, 2]}[mode]
    assert x.grad[0, 0, 0].tolist() == expected


# ---------------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("x,pad,mode,value,exc,match", [
    ("tensor", (1, 1, 1, 1), "bogus", 0.0, ValueError, "^mode"),
    ("tensor", (1, 1, 1), "constant", 0.0, ValueError, "^pad must have"),
    ("tensor", (1, 1, 1, 1, 1, 1), "constant", 0.0, ValueError, "^pad must have"),
    ("tensor", (1.0, 1), "constant", 0.0, TypeError, "^pad must"),
    ("tensor", "11", "constant", 0.0, TypeError, "^pad must"),
    ("tensor", (3, 0, 0, 0), "reflect", 0.0, ValueError, r"^pad \(3, 0\) on a dimension of size 3"),
    ("tensor", (0, 0, 0, 2), "reflect", 0.0, ValueError, r"^pad \(0, 2\) on a dimension of size 2"),
    ("tensor", (4, 0, 0, 0), "circular", 0.0, ValueError, r"^pad \(4, 0\).*wrap"),
    ("tensor", (-1, 1, 0, 0), "circular", 0.0, ValueError, r"^pad \(-1, 1\).*opposite|one negative"),
    ("tensor", (-2, -1, 0, 0), "replicate", 0.0, ValueError, r"^pad \(-2, -1\)"),
    ("tensor", (-2, -2, 0, 0), "constant", 0.0, ValueError, r"^pad \(-2, -2\).*crop"),
    ("tensor", (1, 1), "reflect", 0.0, ValueError, "^pad must have 4 ints, got 2"),
    ("tensor", (1, 1, 1, 1), "reflect", 1.0, ValueError, r"^value must be one of \(0,\), got 1.0"),
    ("tensor", (1, 1, 1, 1), "constant", "0", TypeError, "^value must"),
    ("2d", (1, 1, 1, 1), "constant", 0.0, ValueError, "^input must have 3 or 4"),
    ("list", (1, 1, 1, 1), "constant", 0.0, TypeError, "^input must be a torch.Tensor"),
    ("empty", (1, 1, 1, 1), "constant", 0.0, ValueError, "^input's height and width must be >= 1"),
])
def test_bad_arguments(x, pad, mode, value, exc, match):
    inputs = {"tensor": _rand(1, 1, 2, 3), "2d": _rand(2, 3), "list": [[1.0]], "empty": torch.zeros(1, 1, 0, 3)}
    with pytest.raises(exc, match=match):
        pad2d(inputs[x], pad, mode, value)
