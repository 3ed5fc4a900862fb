"""Small synthetic datasets written in the seven benchmarks' real on-disk formats.

They let anyone smoke-test the pipeline, the data layout and ``tvgrad verify-clip`` offline, on a
CPU, in seconds (``tvgrad synthetic-data --root R`` writes them all). The formats are the
originals' byte for byte in structure: MNIST idx files (optionally gzipped), CIFAR100 python
pickles, SVHN ``.mat`` (labels 1-10, 10 = digit 0), GTSRB ``.ppm`` class folders + the test CSV,
DTD images + label files, EuroSAT class folders, RESISC45 class folders + the official
basename split files. Each class carries a learnable signal (a bright block or colour channel)
and everything is seeded: the same seed writes the same bytes.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = ["WRITERS", "write_mnist", "write_cifar100", "write_svhn", "write_gtsrb", "write_dtd",
           "write_eurosat", "write_resisc45", "write_all", "SYNTHETIC"]

SYNTHETIC = "synthetic"  # the data root name that means "generate these files"


def _signal(rng, n: int, size: int, labels, channels: int = 3) -> np.ndarray:
    """uint8 noise images with a bright class-dependent block (a learnable signal)."""
    shape = (n, size, size) if channels == 1 else (n, size, size, 3)
    images = rng.integers(0, 60, shape, dtype=np.uint8)
    for i, y in enumerate(labels):
        r = (int(y) * 3) % max(1, size - 6)
        if channels == 1:
            images[i, r:r + 6, 2:size - 2] = 255
        else:
            images[i, r:r + 6, 2:size - 2, int(y) % 3] = 255
    return images


def write_mnist(root: str | Path, n_train: int = 60, n_test: int = 20, seed: int = 0,
                gz: bool = False) -> None:
    """MNIST idx files under ``<root>/MNIST/raw`` (``gz``: the ``.gz`` files only)."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        images = _signal(rng, n, 28, labels, channels=1)
        for name, blob in ((f"{prefix}-images-idx3-ubyte", struct.pack(">IIII", 2051, n, 28, 28)
                            + images.tobytes()),
                           (f"{prefix}-labels-idx1-ubyte", struct.pack(">II", 2049, n)
                            + labels.tobytes())):
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(blob, mtime=0))
            else:
                (raw / name).write_bytes(blob)


def write_cifar100(root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> None:
    """``<root>/cifar-100-python/{train,test,meta}`` pickles (rows of 3072 bytes, CHW)."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 100, n)
        images = _signal(rng, n, 32, labels).transpose(0, 3, 1, 2).reshape(n, 3072)
        d = {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": name,
             "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist(),
             "data": images}
        (base / name).write_bytes(pickle.dumps(d, protocol=2))
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": [str(i) for i in range(100)],
                                              "coarse_label_names": [str(i) for i in range(20)]}))


def write_svhn(root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> None:
    """``<root>/{train,test}_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1) in 1..10."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        digits = rng.integers(0, 10, n)
        x = _signal(rng, n, 32, digits).transpose(1, 2, 3, 0)
        savemat(str(Path(root) / f"{name}_32x32.mat"),
                {"X": x, "y": np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)})


def _save(img: np.ndarray, path: Path) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def write_gtsrb(root: str | Path, classes=(0, 1, 14), per_class: int = 12, n_test: int = 12,
                seed: int = 0) -> None:
    """``gtsrb/GTSRB/Training/000CC/*.ppm``, ``gtsrb/GTSRB/Final_Test/Images/*.ppm`` and
    ``gtsrb/GT-final_test.csv`` (``;``-separated, the original header).
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "gtsrb"
    for c in classes:
        for i, img in enumerate(_signal(rng, per_class, 30, [c] * per_class)):
            _save(img, base / "GTSRB" / "Training" / f"{c:05d}" / f"00000_{i:05d}.ppm")
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    labels = rng.choice(classes, n_test)
    for i, (img, c) in enumerate(zip(_signal(rng, n_test, 30, labels), labels)):
        _save(img, base / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm")
        rows.append(f"{i:05d}.ppm;30;30;1;1;29;29;{c}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def write_dtd(root: str | Path, classes=("banded", "dotted", "striped"), per_class: int = 12,
              seed: int = 0) -> None:
    """``dtd/dtd/images/<class>/<class>_NNNN.jpg`` and ``dtd/dtd/labels/{train,val,test}1.txt``
    (a third of each class in each).
    """
    rng = np.random.default_rng(seed)
    data = Path(root) / "dtd" / "dtd"
    lists = {"train1": [], "val1": [], "test1": []}
    for c, name in enumerate(classes):
        for i, img in enumerate(_signal(rng, per_class, 40, [c] * per_class)):
            rel = f"{name}/{name}_{i:04d}.jpg"
            _save(img, data / "images" / rel)
            lists[("train1", "val1", "test1")[i % 3]].append(rel)
    (data / "labels").mkdir(parents=True, exist_ok=True)
    for k, v in lists.items():
        (data / "labels" / f"{k}.txt").write_text("\n".join(v) + "\n")


def write_eurosat(root: str | Path, classes=("AnnualCrop", "Forest", "River"),
                  per_class: int = 20, seed: int = 0) -> None:
    """``eurosat/2750/<class>/<class>_<i>.jpg`` (torchvision's layout, 64×64 RGB)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        for i, img in enumerate(_signal(rng, per_class, 64, [c] * per_class)):
            _save(img, Path(root) / "eurosat" / "2750" / name / f"{name}_{i + 1}.jpg")


def write_resisc45(root: str | Path, classes=("airport", "beach", "forest"), per_class: int = 20,
                   seed: int = 0) -> None:
    """``resisc45/NWPU-RESISC45/<class>/<class>_NNN.jpg`` and the split files
    ``resisc45/resisc45-{train,val,test}.txt`` listing basenames, as the official ones.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "resisc45"
    lists = {"train": [], "val": [], "test": []}
    for c, name in enumerate(classes):
        for i, img in enumerate(_signal(rng, per_class, 40, [c] * per_class)):
            fname = f"{name}_{i + 1:03d}.jpg"
            _save(img, base / "NWPU-RESISC45" / name / fname)
            lists[("train", "train", "train", "val", "test")[i % 5]].append(fname)
    for k, v in lists.items():
        (base / f"resisc45-{k}.txt").write_text("\n".join(v) + "\n")


WRITERS = {"MNIST": write_mnist, "CIFAR100": write_cifar100, "SVHN": write_svhn,
           "GTSRB": write_gtsrb, "DTD": write_dtd, "EuroSAT": write_eurosat,
           "RESISC45": write_resisc45}


def write_all(root: str | Path, seed: int = 0, datasets=("MNIST", "RESISC45")) -> Path:
    """The ``datasets`` (default MNIST and RESISC45; all seven: ``WRITERS``) under ``root``."""
    root = Path(root)
    for name in datasets:
        WRITERS[name](root, seed=seed)
    return root
