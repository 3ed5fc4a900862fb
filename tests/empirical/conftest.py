"""Tiny offline stand-ins: an open_clip model config with random weights, and synthetic
datasets written in the real on-disk formats (MNIST idx files, RESISC45 image folders)."""

import json
import struct

import numpy as np
import pytest
import torch

TINY = "tvgrad-tiny-ViT"
TINY_CFG = {"embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    import open_clip
    path = tmp_path_factory.mktemp("cfg") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(path)
    return TINY


def write_mnist(root, n_train=60, n_test=20, seed=0):
    """MNIST in its real idx format under <root>/MNIST/raw (what torchvision reads)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        images = rng.integers(0, 50, (n, 28, 28), dtype=np.uint8)
        for i, y in enumerate(labels):  # a learnable signal: a bright block per class
            images[i, 2 * y:2 * y + 6, 4:24] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def write_resisc45(root, classes=("airport", "beach", "forest"), per_class=20, seed=0):
    """NWPU-RESISC45 image folders <root>/resisc45/NWPU-RESISC45/<class>/<class>_<i>.jpg."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    base = root / "resisc45" / "NWPU-RESISC45"
    for c, name in enumerate(classes):
        (base / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
            img[:, :, c] = 220
            Image.fromarray(img).save(base / name / f"{name}_{i:03d}.jpg")


@pytest.fixture
def data_root(tmp_path):
    write_mnist(tmp_path)
    write_resisc45(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _cpu_threads():
    torch.set_num_threads(1)
