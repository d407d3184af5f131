"""Self-checks for the exercises: compare the reader's answer with the reference and show the first difference.

Example::

    check(my_output_size, conv_output_size, cases=[dict(i=5, k=3), dict(i=7, k=3, s=2)])

prints either ``✓ all 2 cases agree`` or the first case where the two disagree, with both answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CheckResult", "check"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check`: ``passed``, how many cases ran, and the first counter-example if any."""

    passed: bool
    n_cases: int
    counter_example: Mapping[str, Any] | None = None
    expected: Any = None
    got: Any = None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✓ all {self.n_cases} cases agree with the reference"
        args = ", ".join(f"{k}={v!r}" for k, v in (self.counter_example or {}).items())
        return f"✗ counter-example: f({args})\n  reference: {self.expected!r}\n  yours:     {self.got!r}"


def _same(a: Any, b: Any, atol: float) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=0))
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y, atol) for x, y in zip(a, b, strict=True))
    return a == b


def check(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[Mapping[str, Any]],
    *,
    atol: float = 1e-6,
    quiet: bool = False,
) -> CheckResult:
    """Call both functions on every case (keyword arguments); stop at the first disagreement and print it.

    A case on which the reference raises is one the reader's function must reject too (any exception).
    """
    import inspect

    signature = inspect.signature(reference)
    n = 0
    for case in cases:
        n += 1
        try:
            signature.bind(**case)
        except TypeError as exc:  # a mistake in the exercise's cases, not in the reader's answer
            raise TypeError(f"case {dict(case)!r} does not fit the reference's parameters {signature}: {exc}") from None
        try:
            expected = reference(**case)
        except (ValueError, TypeError) as exc:
            expected = f"raises {type(exc).__name__}"
        try:
            got = candidate(**case)
        except Exception as exc:  # the reader's code may fail in any way; report it as the answer it gave
            got = f"raises {type(exc).__name__}"
        if isinstance(expected, str) and expected.startswith("raises"):
            ok = isinstance(got, str) and got.startswith("raises")
        else:
            ok = _same(expected, got, atol)
        if not ok:
            result = CheckResult(False, n, dict(case), expected, got)
            if not quiet:
                print(result)
            return result
    result = CheckResult(True, n)
    if not quiet:
        print(result)
    return result
