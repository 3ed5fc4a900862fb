"""Small synthetic datasets written in the benchmarks' real on-disk formats.

They let anyone run the pipeline and ``tvgrad verify-clip`` offline, on a CPU, in seconds:
MNIST as its idx files (what torchvision reads) and NWPU-RESISC45 as JPEG image folders.
Each class carries a learnable signal (a bright block or colour channel), and everything is
seeded: the same seed writes the same bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["write_mnist", "write_resisc45", "write_all", "SYNTHETIC"]

SYNTHETIC = "synthetic"  # the data root name that means "generate these files"


def write_mnist(root: str | Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> None:
    """MNIST in its idx format under ``<root>/MNIST/raw`` (28×28 uint8 images, uint8 labels)."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        images = rng.integers(0, 50, (n, 28, 28), dtype=np.uint8)
        for i, y in enumerate(labels):  # a learnable signal: a bright block per class
            images[i, 2 * y:2 * y + 6, 4:24] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes())


def write_resisc45(root: str | Path, classes=("airport", "beach", "forest"), per_class: int = 20,
                   seed: int = 0) -> None:
    """NWPU-RESISC45 folders ``<root>/resisc45/NWPU-RESISC45/<class>/<class>_<i>.jpg``."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    base = Path(root) / "resisc45" / "NWPU-RESISC45"
    for c, name in enumerate(classes):
        (base / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
            img[:, :, c % 3] = 220
            Image.fromarray(img).save(base / name / f"{name}_{i:03d}.jpg")


def write_all(root: str | Path, seed: int = 0) -> Path:
    """Both datasets under ``root`` (created); returns ``root``."""
    root = Path(root)
    write_mnist(root, seed=seed)
    write_resisc45(root, seed=seed)
    return root
