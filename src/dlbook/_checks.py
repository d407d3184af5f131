"""Argument checks shared by the reference operators.

Every public operator validates its arguments here first, so that a wrong call raises a ``ValueError`` or
``TypeError`` that names the parameter and the value it got, instead of a traceback from deep inside torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["pair", "check_tensor", "positive_int", "non_negative_int"]


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


def check_tensor(x: object, name: str, dims: Sequence[int]) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor whose ``ndim`` is one of ``dims``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in dims:
        allowed = " or ".join(str(d) for d in dims)
        raise ValueError(f"{name} must have {allowed} dimensions, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x
