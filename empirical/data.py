"""The seven benchmarks: torchvision datasets where it has them, an image-folder loader for
NWPU-RESISC45, fixed seeded validation slices, class names and prompt templates.

Every dataset is read from ``<data_root>``; nothing is downloaded unless ``download=True``.
A missing dataset raises :class:`DatasetMissing` naming the files expected where and the flag
that downloads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset, Subset

from ..registry import Registry

VAL_SEED = 20260824  # fixed: the validation slice never depends on a run's seed
VAL_FRACTION, VAL_MAX = 0.1, 5000


class DatasetMissing(FileNotFoundError):
    """A dataset is not on disk; the message says what is expected where and how to get it."""


EXPECTED = {
    "MNIST": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
    "CIFAR100": "cifar-100-python/{train,test,meta}",
    "SVHN": "{train,test}_32x32.mat",
    "GTSRB": "gtsrb/GTSRB/Training/<class>/*.ppm and gtsrb/GTSRB/Final_Test/Images + GT-final_test.csv",
    "DTD": "dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train,val,test}1.txt",
    "EuroSAT": "eurosat/2750/<class>/*.jpg",
    "RESISC45": "resisc45/NWPU-RESISC45/<class>/*.jpg (optional split files "
                "resisc45/resisc45-{train,val,test}.txt, one relative path per line)",
}


def _missing(name: str, root: Path, exc: Exception | None = None) -> DatasetMissing:
    """The error for a dataset that is not where it is expected (says how to provide it)."""
    hint = ("pass --download to fetch it with torchvision" if name != "RESISC45" else
            "download NWPU-RESISC45 (e.g. from its authors' page or TorchGeo) and unpack it there")
    return DatasetMissing(
        f"dataset {name} not found under {root}: expected {root}/{DATASETS[name].expected}; {hint}"
        + (f" (torchvision said: {exc})" if exc else ""))


# -- class names ------------------------------------------------------------------------------
GTSRB_CLASSES = [
    "speed limit 20 km/h", "speed limit 30 km/h", "speed limit 50 km/h", "speed limit 60 km/h",
    "speed limit 70 km/h", "speed limit 80 km/h", "end of speed limit 80 km/h",
    "speed limit 100 km/h", "speed limit 120 km/h", "no overtaking",
    "no overtaking by trucks", "right of way at the next intersection", "priority road",
    "yield", "stop", "no vehicles", "no trucks", "no entry", "general caution",
    "dangerous curve to the left", "dangerous curve to the right", "double curve",
    "bumpy road", "slippery road", "road narrows on the right", "road work",
    "traffic signals", "pedestrians", "children crossing", "bicycles crossing",
    "beware of ice or snow", "wild animals crossing", "end of all speed and passing limits",
    "turn right ahead", "turn left ahead", "ahead only", "go straight or right",
    "go straight or left", "keep right", "keep left", "roundabout mandatory",
    "end of no overtaking", "end of no overtaking by trucks",
]
EUROSAT_CLASSES = {
    "AnnualCrop": "annual crop land", "Forest": "forest",
    "HerbaceousVegetation": "herbaceous vegetation land", "Highway": "highway or road",
    "Industrial": "industrial buildings", "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land", "Residential": "residential buildings",
    "River": "river", "SeaLake": "sea or lake",
}
DIGITS = [str(i) for i in range(10)]

# -- prompt templates (written for this project) ----------------------------------------------
TEMPLATES: dict[str, list[str]] = {
    "CIFAR100": ["a photo of a {}.", "a blurry photo of a {}.", "a low resolution photo of a {}.",
                 "a close-up photo of the {}.", "a small photo of a {}."],
    "SVHN": ["a photo of the number {}.", "a street sign showing the digit {}.",
             "a house number with the digit {}."],
    "RESISC45": ["a satellite image of {}.", "an aerial photo of {}.",
                 "a remote sensing image of {}."],
    "MNIST": ["a photo of the number {}.", "a handwritten digit {}.",
              "a black and white image of the digit {}."],
    "EuroSAT": ["a satellite photo of {}.", "a centered satellite image of {}.",
                "a land use image showing {}."],
    "GTSRB": ["a photo of a traffic sign: {}.", "a zoomed in photo of a \"{}\" traffic sign.",
              "a road sign meaning {}."],
    "DTD": ["a photo of a {} texture.", "a close-up of a {} surface.",
            "a photo of a {} pattern."],
}


class ImageFolderSplit(Dataset):
    """Images in ``<root>/<class>/*``; ``files`` restricts and orders them (relative paths)."""

    EXTS = (".jpg", ".jpeg", ".png", ".ppm", ".tif", ".tiff", ".bmp")

    def __init__(self, root: Path, files: list[str] | None = None, transform=None):
        self.root = Path(root)
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        index = {c: i for i, c in enumerate(self.classes)}
        if files is None:
            files = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                           if p.suffix.lower() in self.EXTS)
        self.samples = [(self.root / f, index[Path(f).parts[0]]) for f in files]
        self.targets = [t for _, t in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image
        path, target = self.samples[i]
        img = Image.open(path).convert("RGB")
        return (self.transform(img) if self.transform else img), target


@dataclass(frozen=True)
class Splits:
    """The train / validation / test datasets of one benchmark and its class names."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    classnames: list[str]
    templates: list[str]


def seeded_split(n: int, seed: int = VAL_SEED) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): a fixed seeded slice of ``n`` training samples."""
    k = max(1, min(VAL_MAX, int(round(VAL_FRACTION * n)))) if n > 1 else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[k:]), sorted(perm[:k])


def _tv(name: str, root: Path, download: bool, transform) -> tuple[Dataset, Dataset, list[str]]:
    """A torchvision benchmark's (train, test, class names)."""
    from torchvision import datasets as D
    kw = dict(root=str(root), transform=transform, download=download)
    if name == "MNIST":
        return D.MNIST(train=True, **kw), D.MNIST(train=False, **kw), DIGITS
    if name == "CIFAR100":
        tr = D.CIFAR100(train=True, **kw)
        return tr, D.CIFAR100(train=False, **kw), [c.replace("_", " ") for c in tr.classes]
    if name == "SVHN":
        return D.SVHN(split="train", **kw), D.SVHN(split="test", **kw), DIGITS
    if name == "GTSRB":
        return D.GTSRB(split="train", **kw), D.GTSRB(split="test", **kw), GTSRB_CLASSES
    if name == "DTD":
        tr = D.DTD(split="train", **kw)
        return tr, D.DTD(split="test", **kw), [c.replace("_", " ") for c in tr.classes]
    if name == "EuroSAT":
        full = D.EuroSAT(**kw)
        # EuroSAT has no official split: a fixed seeded 80/20 train/test split of the images.
        tr_idx, te_idx = seeded_split_fraction(len(full), 0.2)
        return Subset(full, tr_idx), Subset(full, te_idx), [EUROSAT_CLASSES[c] for c in full.classes]
    raise AssertionError(name)


def seeded_split_fraction(n: int, fraction: float, seed: int = VAL_SEED + 1):
    """(train, test) indices: a fixed seeded split holding out ``fraction`` of ``n``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = int(round(fraction * n))
    return sorted(perm[k:]), sorted(perm[:k])


def _resisc45(root: Path, transform) -> tuple[Dataset, Dataset, list[str]]:
    base = root / "resisc45"
    images = base / "NWPU-RESISC45"
    if not images.is_dir():
        raise _missing("RESISC45", root)
    split_files = {s: base / f"resisc45-{s}.txt" for s in ("train", "val", "test")}
    if all(p.exists() for p in split_files.values()):
        read = lambda p: [line.strip() for line in p.read_text().splitlines() if line.strip()]  # noqa: E731
        train = ImageFolderSplit(images, read(split_files["train"]) + read(split_files["val"]), transform)
        test = ImageFolderSplit(images, read(split_files["test"]), transform)
    else:  # no split files: a fixed seeded 80/20 split
        full = ImageFolderSplit(images, None, transform)
        tr_idx, te_idx = seeded_split_fraction(len(full), 0.2)
        train, test = Subset(full, tr_idx), Subset(full, te_idx)
    classes = (train.dataset if isinstance(train, Subset) else train).classes
    return train, test, [c.replace("_", " ") for c in classes]


@dataclass(frozen=True)
class DatasetInfo:
    """An entry of the dataset registry.

    Attributes:
        name: registry key.
        expected: the on-disk layout under the data root (shown when it is missing).
        templates: the zero-shot prompt templates.
        epochs: default finetuning epochs.
        load: ``load(root, download, transform) -> (train, test, class names)``.
    """

    name: str
    expected: str
    templates: tuple[str, ...]
    epochs: int
    load: Callable[[Path, bool, Callable | None], tuple[Dataset, Dataset, list[str]]]


def _info(name: str, epochs: int, load=None) -> DatasetInfo:
    return DatasetInfo(name, EXPECTED[name], tuple(TEMPLATES[name]), epochs,
                       load or partial(_tv, name))


DATASETS: Registry[DatasetInfo] = Registry("dataset", {d.name: d for d in (
    _info("CIFAR100", 6), _info("SVHN", 4),
    _info("RESISC45", 15, lambda root, download, transform: _resisc45(root, transform)),
    _info("MNIST", 5), _info("EuroSAT", 12), _info("GTSRB", 11), _info("DTD", 76),
)})


def load_splits(name: str, root: str | Path, *, download: bool = False,
                transform: Callable | None = None, max_samples: int | None = None) -> Splits:
    """Train (minus the validation slice), validation and test splits of benchmark ``name``.

    Args:
        name: one of :data:`DATASETS`.
        root: the data root folder.
        download: let torchvision download missing datasets (off by default).
        transform: image transform (the CLIP preprocessing).
        max_samples: cap each split (for smoke runs); the cap is a seeded subset.
    """
    info = DATASETS[name]  # UnknownKey names the known datasets
    root = Path(root)
    try:
        full_train, test, classes = info.load(root, download, transform)
    except DatasetMissing:
        raise
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise _missing(name, root, exc) from None
    tr_idx, val_idx = seeded_split(len(full_train))
    train, val = Subset(full_train, tr_idx), Subset(full_train, val_idx)
    if max_samples:
        cap = lambda ds: Subset(ds, sorted(torch.randperm(len(ds), generator=torch.Generator().manual_seed(VAL_SEED))[:max_samples].tolist())) if len(ds) > max_samples else ds  # noqa: E731
        train, val, test = cap(train), cap(val), cap(test)
    return Splits(name, train, val, test, classes, list(info.templates))
