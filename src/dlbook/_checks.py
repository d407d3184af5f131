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
    "divides",
    "shaped",
    "same_dtype",
    "int_tuple",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pair(value: int | Sequence[int], name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints, each ``>= minimum``.

    Accepts an int (used for both dimensions) or a sequence of two ints, like ``torch.nn.functional`` does.
    """
    if _is_int(value):
        out = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(map(_is_int, value)):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return out


def positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def non_negative_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int >= 0, else raise naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def number(value: object, name: str, *, minimum: float = -math.inf, maximum: float = math.inf,
           strict: bool = False, allow_inf: bool = False) -> float:
    """Return ``value`` as a float in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``strict``), else raise.

    Ints and floats are numbers, bools are not; NaN never is, and an infinity only with ``allow_inf``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    low_ok = value > minimum if strict else value >= minimum
    if math.isnan(value) or (math.isinf(value) and not allow_inf) or not low_ok or value > maximum:
        low = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a {'' if allow_inf else 'finite '}number {low} and <= {maximum:g}, "
                         f"got {value!r}")
    return value


def probability(value: object, name: str) -> float:
    """Return ``value`` as a float in [0, 1], else raise naming ``name``."""
    return number(value, name, minimum=0.0, maximum=1.0)


def flag(value: object, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not merely truthy), else raise naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


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
    if isinstance(values, torch.Tensor):
        values = [values]
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a tensor or an iterable of tensors, got {type(values).__name__}")
    return [check_tensor(t, f"{name}[{i}]") for i, t in enumerate(values)]


def same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def generator(value: object, name: str = "generator") -> torch.Generator | None:
    """Return ``value`` if it is a ``torch.Generator`` or ``None``, else raise naming ``name``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__}")
    return value


def divides(value: int, total: int, name: str, what: str) -> int:
    """Return ``value`` if it divides ``total`` (a positive int, described by ``what``), else raise naming ``name``."""
    if total < 1 or total % value:
        raise ValueError(f"{name}={value} must divide {what}, got {total}")
    return value


def shaped(x: object, name: str, shape: Sequence[int]) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor of exactly ``shape``, else raise naming ``name``."""
    if check_tensor(x, name, (len(shape),)).shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
    return x


def same_dtype(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same dtype (PyTorch's matrix products do not mix them)."""
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")


def int_tuple(value: object, name: str, lengths: Sequence[int]) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ints whose length is one of ``lengths``, else raise naming ``name``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(map(_is_int, value)):
        raise TypeError(f"{name} must be a tuple of ints, got {value!r}")
    if len(value) not in lengths:
        raise ValueError(f"{name} must have {' or '.join(map(str, lengths))} ints, got {len(value)}: {value!r}")
    return tuple(value)
