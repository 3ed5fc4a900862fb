"""The seven benchmarks in their real on-disk formats, split as the task-arithmetic reference
splits them, with CLIP's published class names and prompt templates.

Every dataset is read from ``<data_root>``; nothing is downloaded unless ``download=True``.
A missing dataset raises :class:`DatasetMissing` naming the files expected where and how to get
them; a truncated or unreadable file raises :class:`DataCorrupt` naming the file.

Protocol (the reference: mlfoundations/task_vectors, the code behind most published task
arithmetic numbers, and ``../shared/reference/README.md``):

* **Splits.** CIFAR100, MNIST, SVHN, GTSRB: the official train / test splits. DTD: train1 + val1
  (3 760 images) / test1 (1 880). RESISC45: the official split files of Neumann et al. (18 900
  train / 6 300 test; ``resisc45-{train,val,test}.txt``, basenames such as
  ``airplane_001.jpg``). EuroSAT: 21 600 / 2 700 validation / 2 700 test, read from a
  ``EuroSAT_splits/{train,val,test}/<class>/`` folder when there is one (the reference's layout;
  its split was drawn unseeded, so only that folder reproduces it file for file); otherwise the
  same per-class sizes (270 validation + 270 test per class) drawn with a fixed seed.
* **Validation slice** (every dataset but EuroSAT, which has its own): as the reference's
  ``split_train_into_train_val``: ``torch.utils.data.random_split`` of the training set with a
  ``torch.Generator`` seeded 0 into ``n − k`` training and ``k = min(⌊0.1 n⌋, 5000)`` validation
  samples (k ≥ 1 for sets under ten images, where the reference refuses).
* **Zero-shot heads**: class names and templates from ``prompts.json`` (CLIP's published prompts;
  each entry names its source), compared with clip-benchmark's copy by the tests.
* **Formats**: MNIST idx files (raw or ``.gz``), CIFAR100 python pickles, SVHN ``.mat``, GTSRB
  ``.ppm`` folders + test CSV, DTD images + label files, EuroSAT class folders, RESISC45 class
  folders + split files. MNIST, CIFAR100 and SVHN are read by our own readers, which accept any
  well-formed file and do not verify checksums (so tests can write small stand-ins); instead
  :func:`provenance` records each file's MD5 and whether it equals the checksum torchvision
  publishes for the original, and ``results.json`` carries that record.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, random_split

from ..registry import Registry

VAL_SEED = 0  # the reference's split_train_into_train_val seed
VAL_FRACTION, VAL_MAX = 0.1, 5000
SPLIT_SEED = 20260824  # only where the reference's own split cannot be reproduced (see above)
PROMPTS: dict = json.loads((Path(__file__).parent / "prompts.json").read_text())


class DatasetMissing(FileNotFoundError):
    """A dataset is not on disk; the message says what is expected where and how to get it."""


class DataCorrupt(ValueError):
    """A data file is truncated or unreadable; the message names the file."""


EXPECTED = {
    "MNIST": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (or the same names + .gz)",
    "CIFAR100": "cifar-100-python/{train,test} (the python pickles)",
    "SVHN": "{train,test}_32x32.mat",
    "GTSRB": "gtsrb/GTSRB/Training/<class id>/*.ppm, gtsrb/GTSRB/Final_Test/Images/*.ppm and "
             "gtsrb/GT-final_test.csv",
    "DTD": "dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train1,val1,test1}.txt",
    "EuroSAT": "eurosat/2750/<class>/*.jpg (torchvision's layout) or "
               "EuroSAT_splits/{train,val,test}/<class>/*.jpg (the reference's split)",
    "RESISC45": "resisc45/NWPU-RESISC45/<class>/*.jpg and the official split files "
                "resisc45/resisc45-{train,val,test}.txt",
}
HOW = {
    "RESISC45": "download NWPU-RESISC45 (its authors' page or TorchGeo) and the split files from "
                "https://storage.googleapis.com/remote_sensing_representations/"
                "resisc45-{train,val,test}.txt, and unpack them there",
}


def _missing(name: str, root: Path, exc: Exception | None = None) -> DatasetMissing:
    """The error for a dataset that is not where it is expected (says how to provide it)."""
    hint = HOW.get(name, "pass --download to fetch it with torchvision (checksums verified)")
    return DatasetMissing(
        f"dataset {name} not found under {root}: expected {root}/{DATASETS[name].expected}; {hint}"
        + (f" ({exc})" if exc else ""))


# -- image containers --------------------------------------------------------------------------
class ArrayImages(Dataset):
    """Images held as a uint8 array (N, H, W) or (N, H, W, 3) with integer labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.targets = images, [int(t) for t in labels]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image
        return Image.fromarray(self.images[i]).convert("RGB"), self.targets[i]


class FileImages(Dataset):
    """Images read from files, one (path, label) per sample."""

    def __init__(self, samples: list[tuple[Path, int]]):
        self.samples = [(Path(p), int(t)) for p, t in samples]
        self.targets = [t for _, t in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image
        path, target = self.samples[i]
        try:
            with Image.open(path) as img:
                return img.convert("RGB"), target
        except (OSError, SyntaxError) as exc:  # truncated or not an image
            raise DataCorrupt(f"image {path} is truncated or unreadable ({exc}); replace it "
                              f"from the original archive") from None


class Transformed(Dataset):
    """``transform`` applied to every image of ``ds``.

    With ``seed`` set, sample ``i`` of epoch ``epoch`` is transformed under the torch RNG seeded
    from (seed, epoch, i) and restored afterwards: random augmentation that depends on neither
    the number of loader workers nor where a resumed run restarted.
    """

    def __init__(self, ds: Dataset, transform: Callable | None, seed: int | None = None):
        self.ds, self.transform, self.seed, self.epoch = ds, transform, seed, 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        img, target = self.ds[i]
        if self.transform is None:
            return img, target
        if self.seed is None:
            return self.transform(img), target
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
            return self.transform(img), target


# -- readers of the real formats ---------------------------------------------------------------
def _open_maybe_gz(path: Path) -> bytes:
    for p in (path, path.with_name(path.name + ".gz")):
        if p.exists():
            try:
                return gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            except (OSError, EOFError) as exc:
                raise DataCorrupt(f"{p} is truncated or not gzip ({exc})") from None
    raise FileNotFoundError(path)


def read_idx(path: Path) -> np.ndarray:
    """An idx array (MNIST's format); ``path`` or ``path.gz``. Checks the size against the header."""
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataCorrupt(f"{path} is not a uint8 idx file (bad magic {data[:4]!r})")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise DataCorrupt(f"{path} is truncated: its header says shape {shape} "
                          f"({int(np.prod(shape))} bytes), the file holds {len(body)}")
    return np.frombuffer(body, np.uint8).reshape(shape)


def _mnist(root: Path, download: bool):
    raw = root / "MNIST" / "raw"
    if download:
        from torchvision import datasets as D
        D.MNIST(str(root), train=True, download=True)
        D.MNIST(str(root), train=False, download=True)
    split = lambda p: ArrayImages(read_idx(raw / f"{p}-images-idx3-ubyte"),  # noqa: E731
                                  read_idx(raw / f"{p}-labels-idx1-ubyte"))
    return split("train"), None, split("t10k"), "official train / test"


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            d = pickle.load(fh, encoding="latin1")
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated pickles raise EOFError/UnpicklingError
        raise DataCorrupt(f"{path} is truncated or not a CIFAR pickle ({exc!r})") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar100(root: Path, download: bool):
    base = root / "cifar-100-python"
    if download:
        from torchvision import datasets as D
        D.CIFAR100(str(root), train=True, download=True)

    def split(name):
        d = _unpickle(base / name)
        try:
            images = np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return ArrayImages(np.ascontiguousarray(images), np.asarray(d["fine_labels"]))
        except (KeyError, ValueError) as exc:
            raise DataCorrupt(f"{base / name} is not a CIFAR100 pickle ({exc!r})") from None
    return split("train"), None, split("test"), "official train / test"


def _svhn(root: Path, download: bool):
    from scipy.io import loadmat
    if download:
        from torchvision import datasets as D
        D.SVHN(str(root), split="train", download=True)
        D.SVHN(str(root), split="test", download=True)

    def split(name):
        path = root / f"{name}_32x32.mat"
        if not path.exists():
            raise FileNotFoundError(path)
        try:
            m = loadmat(str(path))
            x, y = m["X"], m["y"].reshape(-1).astype(np.int64)
        except Exception as exc:
            raise DataCorrupt(f"{path} is truncated or not an SVHN .mat file ({exc!r})") from None
        return ArrayImages(np.ascontiguousarray(x.transpose(3, 0, 1, 2)), np.where(y == 10, 0, y))
    return split("train"), None, split("test"), "official train / test"


def _gtsrb(root: Path, download: bool):
    import csv
    if download:
        from torchvision import datasets as D
        D.GTSRB(str(root), split="train", download=True)
        D.GTSRB(str(root), split="test", download=True)
    base = root / "gtsrb"
    train_dir, test_dir = base / "GTSRB" / "Training", base / "GTSRB" / "Final_Test" / "Images"
    if not train_dir.is_dir():
        raise FileNotFoundError(train_dir)
    # the class id is the folder's number (00000-00042), whichever folders are present
    train = [(p, int(p.parent.name)) for p in sorted(train_dir.glob("*/*.ppm"))]
    with (base / "GT-final_test.csv").open() as fh:
        test = [(test_dir / row["Filename"], int(row["ClassId"]))
                for row in csv.DictReader(fh, delimiter=";", skipinitialspace=True)]
    return FileImages(train), None, FileImages(test), "official train / test"


def _folders(name: str, files: list[Path]) -> list[tuple[Path, int]]:
    """(path, label) with the label from the class folder (the dataset's own folder names)."""
    index = {f: i for i, f in enumerate(PROMPTS[name]["folders"])}
    out = []
    for f in files:
        if f.parent.name not in index:
            raise DataCorrupt(f"{f}: {f.parent.name!r} is not a {name} class folder; expected one "
                              f"of {PROMPTS[name]['folders'][:5]}…")
        out.append((f, index[f.parent.name]))
    return out


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in
                  (".jpg", ".jpeg", ".png", ".ppm", ".tif", ".tiff", ".bmp"))


def _dtd(root: Path, download: bool):
    if download:
        from torchvision import datasets as D
        D.DTD(str(root), download=True)
    data = root / "dtd" / "dtd"
    if not (data / "images").is_dir():
        raise FileNotFoundError(data / "images")

    def listed(*parts):
        files = []
        for part in parts:
            p = data / "labels" / f"{part}.txt"
            files += [data / "images" / line.strip() for line in p.read_text().splitlines()
                      if line.strip()]
        return FileImages(_folders("DTD", files))
    return listed("train1", "val1"), None, listed("test1"), "train1 + val1 / test1"


def _eurosat(root: Path, download: bool):
    ref = root / "EuroSAT_splits"
    if all((ref / s).is_dir() for s in ("train", "val", "test")):
        load = lambda s: FileImages(_folders("EuroSAT", _images(ref / s)))  # noqa: E731
        return load("train"), load("val"), load("test"), "EuroSAT_splits folders (the reference's)"
    if download:
        from torchvision import datasets as D
        D.EuroSAT(str(root), download=True)
    folder = root / "eurosat" / "2750"
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    samples = _folders("EuroSAT", _images(folder))
    # the reference's sizes (270 validation + 270 test per class of 2 000-3 000), fixed seed;
    # for small stand-ins the same 1:1:8 proportions of each class (at least one sample each)
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    tr, va, te = [], [], []
    for c in sorted({t for _, t in samples}):
        mine = [s for s in samples if s[1] == c]
        perm = torch.randperm(len(mine), generator=gen).tolist()
        k = 270 if len(mine) >= 2000 else max(1, len(mine) // 10)
        va += [mine[i] for i in perm[:k]]
        te += [mine[i] for i in perm[k:2 * k]]
        tr += [mine[i] for i in perm[2 * k:]]
    return (FileImages(tr), FileImages(va), FileImages(te),
            f"seeded per class (seed {SPLIT_SEED}), the reference's 21 600 / 2 700 / 2 700 sizes")


def resisc45_split_file(path: Path, images: Path) -> list[Path]:
    """The images a RESISC45 split file lists: official basenames (``airplane_001.jpg``; the class
    is the name up to its last underscore) or relative paths (``airplane/airplane_001.jpg``).
    """
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        rel = Path(line)
        if len(rel.parts) == 1:  # a basename
            cls = line.rsplit("_", 1)[0]
            rel = Path(cls) / line
        if not (images / rel).exists():
            raise DatasetMissing(f"{path} lists {line}, but {images / rel} does not exist")
        out.append(images / rel)
    return sorted(out)


def _resisc45(root: Path, download: bool):
    base = root / "resisc45"
    images = base / "NWPU-RESISC45"
    if not images.is_dir():
        raise _missing("RESISC45", root)
    files = {s: base / f"resisc45-{s}.txt" for s in ("train", "val", "test")}
    lacking = [str(p) for p in files.values() if not p.exists()]
    if lacking:
        raise DatasetMissing(f"RESISC45 split files missing: {lacking}; {HOW['RESISC45']}")
    load = lambda s: FileImages(_folders("RESISC45", resisc45_split_file(files[s], images)))  # noqa: E731
    return load("train"), None, load("test"), "official split files (train / test)"


# -- provenance --------------------------------------------------------------------------------
def _published_md5() -> dict[str, dict[str, str]]:
    """The checksums torchvision publishes for the original files, per dataset and file."""
    from torchvision import datasets as D
    return {
        "CIFAR100": {f"cifar-100-python/{f}": m for f, m in D.CIFAR100.train_list + D.CIFAR100.test_list},
        "SVHN": {v[1]: v[2] for v in D.SVHN.split_list.values() if v[1] != "extra_32x32.mat"},
        "MNIST": {f"MNIST/raw/{f}": m for f, m in D.MNIST.resources},
    }


def provenance(name: str, root: str | Path) -> dict:
    """Each checksummed data file's MD5 and whether it equals the published one.

    Returns ``{file: {"md5": ..., "published": bool}}`` for the files torchvision publishes
    checksums of (CIFAR100, SVHN, MNIST's ``.gz``); empty for the others.
    """
    out = {}
    for rel, md5 in _published_md5().get(name, {}).items():
        p = Path(root) / rel
        if p.exists():
            h = hashlib.md5(p.read_bytes()).hexdigest()
            out[rel] = {"md5": h, "published": h == md5}
    return out


@dataclass(frozen=True)
class Splits:
    """The train / validation / test datasets of one benchmark, its head prompts and provenance."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    classnames: list[str]
    templates: list[str]
    split: str = ""
    sizes: dict = field(default_factory=dict)


def reference_val_split(n: int, seed: int = VAL_SEED) -> tuple[list[int], list[int]]:
    """(train indices, validation indices) exactly as the reference's ``random_split``."""
    k = min(int(n * VAL_FRACTION), VAL_MAX)
    if k == 0 and n >= 2:
        k = 1
    tr, va = random_split(range(n), [n - k, k], generator=torch.Generator().manual_seed(seed))
    return list(tr.indices), list(va.indices)


@dataclass(frozen=True)
class DatasetInfo:
    """An entry of the dataset registry.

    Attributes:
        name: registry key.
        expected: the on-disk layout under the data root (shown when it is missing).
        classnames: CLIP's class names in label order.
        templates: the zero-shot prompt templates.
        epochs: default finetuning epochs (the reference's).
        load: ``load(root, download) -> (train, val or None, test, split description)``.
    """

    name: str
    expected: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    epochs: int
    load: Callable


def _info(name: str, epochs: int, load) -> DatasetInfo:
    p = PROMPTS[name]
    return DatasetInfo(name, EXPECTED[name], tuple(p["classnames"]), tuple(p["templates"]),
                       epochs, load)


DATASETS: Registry[DatasetInfo] = Registry("dataset", {d.name: d for d in (
    _info("CIFAR100", 6, _cifar100), _info("SVHN", 4, _svhn), _info("RESISC45", 15, _resisc45),
    _info("MNIST", 5, _mnist), _info("EuroSAT", 12, _eurosat), _info("GTSRB", 11, _gtsrb),
    _info("DTD", 76, _dtd),
)})


def _cap(ds: Dataset, n: int) -> Dataset:
    if len(ds) <= n:
        return ds
    keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(SPLIT_SEED))[:n]
    return Subset(ds, sorted(keep.tolist()))


def load_splits(name: str, root: str | Path, *, download: bool = False,
                transform: Callable | None = None, max_samples: int | None = None) -> Splits:
    """Train (minus the validation slice), validation and test splits of benchmark ``name``.

    Args:
        name: one of :data:`DATASETS`.
        root: the data root folder.
        download: let torchvision download missing datasets (off by default).
        transform: image transform applied to every split (None: PIL images).
        max_samples: cap each split at this many samples (a seeded subset; smoke runs).
    """
    info = DATASETS[name]  # UnknownKey names the known datasets
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    root = Path(root)
    try:
        full_train, val, test, split = info.load(root, download)
    except (DatasetMissing, DataCorrupt):
        raise
    except (RuntimeError, FileNotFoundError) as exc:
        raise _missing(name, root, exc) from None
    if val is None:
        tr_idx, val_idx = reference_val_split(len(full_train))
        train, val = Subset(full_train, tr_idx), Subset(full_train, val_idx)
        split += f"; validation: random_split seed {VAL_SEED}, {len(val_idx)} of the training set"
    else:
        train = full_train
    if max_samples:
        train, val, test = _cap(train, max_samples), _cap(val, max_samples), _cap(test, max_samples)
    wrap = partial(Transformed, transform=transform)
    return Splits(name, wrap(train), wrap(val), wrap(test), list(info.classnames),
                  list(info.templates), split,
                  {"train": len(train), "val": len(val), "test": len(test)})
