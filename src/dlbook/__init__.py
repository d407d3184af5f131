"""dlbook: the reference implementations behind the dlbook textbook.

One module per concept, named after its chapter. Import what you need explicitly::

    from dlbook.conv import conv2d

Dimension letters used in every shape comment and docstring:

====  ==========================================
B     batch size (样本数 in a mini-batch)
C     channels (通道)
H, W  height and width of a feature map
T     sequence length (tokens)
D     model / embedding width
Z     latent size of an autoencoder
====  ==========================================
"""

from __future__ import annotations

import random

import numpy as np
import torch

from dlbook._checks import non_negative_int

__all__ = ["seed_everything", "__version__"]

__version__ = "0.1.0"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` seeded with ``seed``.

    Chapters call this in their first cell so that every number on the page is the same on every run. The returned
    generator is there to be passed explicitly to functions that draw random numbers.

    Python's string hashing (the order in which a set of strings is iterated) is not seeded here: it is fixed when
    the interpreter starts, from the environment variable ``PYTHONHASHSEED`` (Python's documented behaviour).
    """
    random.seed(non_negative_int(seed, "seed"))
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
