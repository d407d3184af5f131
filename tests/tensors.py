"""Test inputs shared by the operator tests: seeded float64 tensors and the tolerance they are compared with."""

from __future__ import annotations

import torch

TOL = dict(rtol=1e-10, atol=1e-10)


def randn64(*shape: int, seed: int = 0, requires_grad: bool = True) -> torch.Tensor:
    """A standard-normal float64 tensor of ``shape``, the same for the same ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=requires_grad)
