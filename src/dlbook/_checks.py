"""Argument checks shared by the whole package: the one place where bad input becomes a clear error.

Every public function validates its arguments with one-line calls into this module (or lets PyTorch refuse, where
PyTorch's own error already names the argument), so that a wrong call raises a ``ValueError`` or ``TypeError`` that
names the parameter and the value it got, instead of a traceback from deep inside torch. Each helper returns the
value it checked, normalised, so a call reads ``stride = pair(stride, "stride")``.

Output-size rules and their refusals are not here: they live in :mod:`dlbook.arithmetic`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

__all__ = [
    "pair",
    "positive_int",
    "non_negative_int",
    "number",
    "probability",
    "flag",
    "one_of",
    "check_tensor",
    "tensors",
    "same_shape",
    "generator",
    "integer_tensor",
    "has_shape",
    "divides",
    "dim_size",
    "same_dtype",
    "instance",
    "int_tuple",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pair(value: int | Sequence[int], name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints, each ``>= minimum``.

    Accepts an int (used for both dimensions) or a sequence of two ints, like ``torch.nn.functional`` does.
    """
    sequence = isinstance(value, Sequence) and not isinstance(value, str)
    out = (value, value) if _is_int(value) else tuple(value) if sequence else ()
    if len(out) != 2 or not all(map(_is_int, out)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return out


def positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (1 by default), else raise naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def non_negative_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int >= 0, else raise naming ``name``."""
    return positive_int(value, name, minimum=0)


def number(value: object, name: str, *, minimum: float = -math.inf, maximum: float = math.inf,
           strict: bool = False, allow_inf: bool = False) -> float:
    """Return ``value`` as a float in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``strict``), else raise.

    Ints and floats are numbers, bools are not; NaN never is, and an infinity only with ``allow_inf``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)  # NaN fails every comparison, so it is never in range
    in_range = (value > minimum if strict else value >= minimum) and value <= maximum
    if not in_range or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a {'' if allow_inf else 'finite '}number {'>' if strict else '>='} "
                         f"{minimum:g} and <= {maximum:g}, got {value!r}")
    return value


def probability(value: object, name: str) -> float:
    """Return ``value`` as a float in [0, 1], else raise naming ``name``."""
    return number(value, name, minimum=0.0, maximum=1.0)


def flag(value: object, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not merely truthy), else raise naming ``name``."""
    return instance(value, bool, name)


def one_of(value: object, name: str, choices: Sequence[object]) -> object:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name`` and the choices."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_tensor(x: object, name: str, dims: Sequence[int] | None = None, *, min_ndim: int = 0,
                 floating: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a tensor with ``ndim`` in ``dims`` (any, if ``None``) and ``>= min_ndim``.

    With ``floating`` (the default) it must also have a floating-point dtype, as everything that is differentiated
    must.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if (dims is not None and x.ndim not in dims) or x.ndim < min_ndim:
        wanted = " or ".join(str(d) for d in dims) if dims is not None else f"at least {min_ndim}"
        raise ValueError(f"{name} must have {wanted} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def tensors(values: object, name: str) -> list[torch.Tensor]:
    """A tensor or an iterable of floating-point tensors, as a list (the way ``torch.nn.utils`` takes them)."""
    values = [values] if isinstance(values, torch.Tensor) else values
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a tensor or an iterable of tensors, got {type(values).__name__}")
    return [check_tensor(t, f"{name}[{i}]") for i, t in enumerate(values)]


def same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def generator(value: object, name: str = "generator") -> torch.Generator | None:
    """Return ``value`` if it is a ``torch.Generator`` or ``None``, else raise naming ``name``."""
    return value if value is None else instance(value, torch.Generator, name)


def integer_tensor(x: object, name: str, dims: Sequence[int] | None = None, *, values: range | None = None
                   ) -> torch.Tensor:
    """Return ``x`` if it is a tensor of integer dtype (ids, lengths; not bool) with ``ndim`` in ``dims``, every
    entry in ``values`` if given (e.g. ``range(vocab_size)``)."""
    check_tensor(x, name, dims, floating=False)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {x.dtype}")
    if values is not None and x.numel() and (int(x.min()) < values.start or int(x.max()) >= values.stop):
        raise ValueError(f"{name} must hold values in {values.start}..{values.stop - 1}, "
                         f"got values from {int(x.min())} to {int(x.max())}")
    return x


def has_shape(x: object, name: str, *shapes: Sequence[int | None]) -> torch.Tensor:
    """Return ``x`` if it is a tensor whose shape is one of ``shapes`` (``None`` in a shape matches any size)."""
    check_tensor(x, name, floating=False)
    if not any(len(s) == x.ndim and all(a in (None, b) for a, b in zip(s, x.shape, strict=True)) for s in shapes):
        wanted = " or ".join(str(tuple("_" if a is None else a for a in s)).replace("'", "") for s in shapes)
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(x.shape)}")
    return x


def divides(divisor: int, total: int, name: str, total_name: str) -> int:
    """Return ``divisor`` if it divides ``total`` (heads into the width, groups into the channels), else raise."""
    if divisor < 1 or total % divisor != 0:
        raise ValueError(f"{name}={divisor} must divide {total_name}, got {total}")
    return divisor


def dim_size(x: torch.Tensor, dim: int, size: int, name: str, why: str = "", *, at_least: bool = False
             ) -> torch.Tensor:
    """Return ``x`` if ``x.shape[dim] == size`` (``>= size`` with ``at_least``), else raise naming ``name``;
    ``why`` says what the size must match."""
    if x.shape[dim] < size if at_least else x.shape[dim] != size:
        wanted = f">= {size}" if at_least else str(size)
        raise ValueError(f"{name} must have size {wanted} in dimension {dim}{why}, got shape {tuple(x.shape)}")
    return x


def same_dtype(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise a ``TypeError`` unless ``a`` and ``b`` have the same dtype (PyTorch does not mix them in a product)."""
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")


def instance(value: object, cls: type | tuple[type, ...], name: str) -> object:
    """Return ``value`` if it is an instance of ``cls`` (a config, a state, a module; ``Callable`` for a function, a
    model, a loss), else raise naming ``name``."""
    if not isinstance(value, cls):
        wanted = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        raise TypeError(f"{name} must be of type {wanted}, got {type(value).__name__}")
    return value


def int_tuple(value: object, name: str, lengths: Sequence[int]) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ints whose length is one of ``lengths``, else raise naming ``name``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(map(_is_int, value)):
        raise TypeError(f"{name} must be a tuple of ints, got {value!r}")
    if len(value) not in lengths:
        raise ValueError(f"{name} must have {' or '.join(map(str, lengths))} ints, got {len(value)}: {value!r}")
    return tuple(value)
