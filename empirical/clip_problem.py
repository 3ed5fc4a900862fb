"""The CLIP problem: the pipeline's own classifier as a :class:`~tvgrad.ModuleProblem`.

θ is the open_clip image encoder (``model.visual``), exactly the parameters finetuning trains;
each task is one of the seven benchmarks with its frozen zero-shot head (the pipeline's
:class:`~tvgrad.empirical.model.ClassificationHead`: normalised features times the class
embeddings), and its data are a seeded subset of the training split read by the real loaders
through the evaluation preprocessing. The multitask claims use T datasets, each with its own
head, sharing θ₀.

Models, heads and splits are cached per process (loading ViT-B-32 weights or a dataset once),
so a Hypothesis campaign pays for them once.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidInput, check_positive_int
from ..theory.module_problem import ModuleProblem
from .data import DATASETS, load_splits
from .synthetic import SYNTHETIC, write_all

__all__ = ["ClipSetup", "HeadLoss", "clip_problem", "data_root", "preflight"]


@dataclass(frozen=True)
class ClipSetup:
    """Which CLIP and which data a campaign checks the claims on.

    Attributes:
        model: open_clip model name (``tvgrad-tiny-ViT``, ``ViT-B-32-quickgelu`` …).
        pretrained: an open_clip tag, a local checkpoint path, or ``none`` (random weights).
        data_root: the datasets' folder, or ``synthetic`` (generated offline: MNIST, RESISC45).
        datasets: the benchmarks the strategies draw from.
        device: ``cpu`` or ``cuda[:i]``.
        max_n: most samples per task the strategies draw.
        cache_dir: open_clip weight cache.
        micro_batch: differentiate over at most this many samples at a time (large models).
    """

    model: str = "tvgrad-tiny-ViT"
    pretrained: str = "none"
    data_root: str = SYNTHETIC
    datasets: tuple[str, ...] = ("MNIST", "RESISC45")
    device: str = "cpu"
    max_n: int = 8
    cache_dir: str | None = None
    micro_batch: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise InvalidInput("datasets is empty: give at least one of "
                               f"{list(DATASETS)}")
        for d in self.datasets:
            DATASETS[d]  # UnknownKey names the known ones
        check_positive_int(self.max_n, "max_n (samples per task)")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInput(f"device {self.device!r} requested but CUDA is not available")
        if self.data_root == SYNTHETIC:
            synthetic = {"MNIST", "RESISC45"}
            if not set(self.datasets) <= synthetic:
                raise InvalidInput(f"the synthetic data root has only {sorted(synthetic)}; "
                                   f"give --data-root for {sorted(set(self.datasets) - synthetic)}")


class HeadLoss:
    """Cross-entropy of a frozen zero-shot head on the encoder's features.

    The same computation as :class:`~tvgrad.empirical.model.ImageClassifier`:
    ``logits = (f/‖f‖) Wᵀ`` with ``W`` the head's weight (cast to the features' dtype).
    """

    def __init__(self, weight: Tensor):
        self.weight = weight.detach()

    def __call__(self, features: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy of the head's logits against ``targets``."""
        feats = features / features.norm(dim=-1, keepdim=True)
        return F.cross_entropy(feats @ self.weight.to(features).T, targets)


@functools.lru_cache(maxsize=4)
def data_root(root: str) -> Path:
    """The data folder: ``root`` itself, or (for ``synthetic``) files generated once per process."""
    if root != SYNTHETIC:
        path = Path(root)
        if not path.is_dir():
            raise InvalidInput(f"data root {root!r} is not a folder (or pass 'synthetic')")
        return path
    return write_all(Path(tempfile.mkdtemp(prefix="tvgrad-synthetic-")))


@functools.lru_cache(maxsize=2)
def _model(name: str, pretrained: str, cache_dir: str | None, device: str):
    from .model import load_clip
    return load_clip(name, pretrained, cache_dir=cache_dir, device=device)


@functools.lru_cache(maxsize=16)
def _task(setup: ClipSetup, dataset: str) -> tuple[Tensor, object]:
    """(head weight, training split) of ``dataset`` under ``setup``."""
    from .model import zeroshot_head
    model, _, pre_val, tok = _model(setup.model, setup.pretrained, setup.cache_dir, setup.device)
    splits = load_splits(dataset, data_root(setup.data_root), transform=pre_val)
    head = zeroshot_head(model, tok, splits.classnames, splits.templates, setup.device)
    return head.weight.detach(), splits.train


def _subset(train, n: int, seed: int, dataset: str) -> tuple[Tensor, Tensor]:
    if n > len(train):
        raise InvalidInput(f"subset of {n} samples asked from {dataset}, whose training split "
                           f"has {len(train)}")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    items = [train[int(i)] for i in idx]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


def clip_problem(setup: ClipSetup, datasets: tuple[str, ...], *, n: int, seed: int,
                 batch_size: int | None = None, dtype: torch.dtype = torch.float64) -> ModuleProblem:
    """The problem of CLIP on T = ``len(datasets)`` tasks of ``n`` seeded samples each.

    Args:
        setup: model, weights, data root, device.
        datasets: one dataset per task (they share θ₀; each has its own frozen head).
        n: samples per task (a seeded subset of the training split, eval preprocessing).
        seed: seeds the subset.
        batch_size: split each task's samples into batches of this size, the last smaller
            (the SGD claim's epoch); None: one batch.
        dtype: float64 (the theory checks) or float32.
    """
    check_positive_int(n, "n (samples per task)")
    model, *_ = _model(setup.model, setup.pretrained, setup.cache_dir, setup.device)
    tasks, losses = [], []
    for t, d in enumerate(datasets):
        weight, train = _task(setup, d)
        x, y = _subset(train, n, seed + 1000 * t, d)
        x, y = x.to(setup.device), y.to(setup.device)
        bs = batch_size or n
        tasks.append([(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)])
        losses.append(HeadLoss(weight.to(setup.device)))
    return ModuleProblem(model.visual, losses, tasks=tasks, dtype=dtype,
                         micro_batch=setup.micro_batch)


def preflight(setup: ClipSetup) -> None:
    """Fail early, with one line, on what would break every example of a campaign: the model
    or weights, a dataset, a subset larger than a split, an op without double backward.
    """
    from ..theory.derivatives import gradient, hvp
    for d in setup.datasets:
        _, train = _task(setup, d)
        if setup.max_n > len(train):
            raise InvalidInput(f"max_n = {setup.max_n} samples per task, but the training "
                               f"split of {d} has {len(train)}")
    prob = clip_problem(setup, setup.datasets[:1], n=1, seed=0)
    f = prob.loss_fn(0)
    hvp(f, prob.theta0, gradient(f, prob.theta0))
