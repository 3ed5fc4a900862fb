"""Merging finetuned encoders; task arithmetic θ₀ + α Σ_t τ_t with α chosen on validation.

A merge method is any callable ``(theta0, task_vectors, alpha) -> merged parameters`` with a
``name`` and its own hyperparameters (the α grid searched on validation);
:class:`TaskArithmetic` is the one required now, more can be registered in :data:`METHODS`.
The method's name is part of the output file name, so two methods never overwrite each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ..registry import Registry
from .data import load_splits
from .finetune import FinetuneConfig, _loader, accuracy
from .io import load_strict, load_tensors, read_json, write_json
from .model import ClassificationHead, ImageClassifier, load_clip
from .task_vector import TaskVector

ALPHAS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05 … 1.0
KINDS = {"one_epoch": "delta_epoch_001.safetensors", "converged": "tau.safetensors"}


class MergeMethod(Protocol):
    """What :func:`merge` needs of a method: a name, an α grid, and the merge itself."""

    name: str
    alphas: tuple[float, ...]

    def __call__(self, theta0: dict, task_vectors: list[TaskVector], alpha: float) -> dict:
        """The merged parameters θ₀ + (method's combination of the task vectors) for one α."""
        ...


@dataclass(frozen=True)
class TaskArithmetic:
    """θ₀ + α Σ_t τ_t, with α chosen on validation from ``alphas``."""

    name: str = "task_arithmetic"
    alphas: tuple[float, ...] = ALPHAS

    def __call__(self, theta0, task_vectors, alpha):
        """The merged parameters for one α."""
        return sum(task_vectors).apply_to(theta0, alpha)


METHODS: Registry[MergeMethod] = Registry("merge method", {"task_arithmetic": TaskArithmetic()})


def merge(cfgs: list[FinetuneConfig], *, method: str = "task_arithmetic",
          out: str | Path | None = None) -> dict:
    """Merge the finished runs of ``cfgs`` (one per dataset, same model/recipe/seed) for both
    one-epoch (τ⁽¹⁾ = Δ₁) and converged task vectors; returns and writes the results JSON
    (``<out>/<model>/merge-<method>-<recipe>-seed<seed>.json`` by default).
    """
    fn = METHODS[method]  # UnknownKey names the known methods
    alphas = fn.alphas
    base = cfgs[0]
    for c in cfgs:
        if not (c.run_dir / "results.json").exists() or not read_json(c.run_dir / "results.json").get("complete"):
            raise FileNotFoundError(f"run {c.run_dir} is not finished: run `tvgrad "
                                    f"finetune --dataset {c.dataset}` first")
    device, dtype = base.device, getattr(torch, base.dtype)
    amp = base.amp and device.startswith("cuda")
    model, _, pre_val, _ = load_clip(base.model, base.pretrained, cache_dir=base.cache_dir, device=device)
    theta0 = load_tensors(cfgs[0].run_dir / "theta0.safetensors")
    visual = model.visual.to(device=device, dtype=dtype)
    del model
    evals = {}
    for c in cfgs:
        splits = load_splits(c.dataset, c.data_root, transform=pre_val, max_samples=c.max_samples)
        head = ClassificationHead(load_tensors(c.run_dir / "head.safetensors")["weight"])
        bs = c.effective.batch_size
        evals[c.dataset] = (ImageClassifier(visual, head).to(device=device, dtype=dtype),
                            _loader(splits.val, bs, None, c.num_workers, device),
                            _loader(splits.test, bs, None, c.num_workers, device),
                            read_json(c.run_dir / "results.json")["test_accuracy"])
    res = {"method": method, "model": base.model, "recipe": base.recipe, "seed": base.seed,
           "datasets": [c.dataset for c in cfgs], "alphas": list(alphas), "kinds": {}}
    for kind, fname in KINDS.items():
        taus = [TaskVector.load(c.run_dir / fname) for c in cfgs]
        curve = []
        for a in alphas:
            load_strict(visual, fn(theta0, taus, a))
            val = {d: accuracy(m, vl, device, dtype, amp) for d, (m, vl, _, _) in evals.items()}
            curve.append({"alpha": a, "val_accuracy": val,
                          "mean_val_accuracy": sum(val.values()) / len(val)})
        best = max(curve, key=lambda p: p["mean_val_accuracy"])
        load_strict(visual, fn(theta0, taus, best["alpha"]))
        absolute = {d: accuracy(m, tl, device, dtype, amp) for d, (m, _, tl, _) in evals.items()}
        normalized = {d: absolute[d] / evals[d][3] if evals[d][3] > 0 else float("nan")
                      for d in absolute}
        res["kinds"][kind] = {
            "task_vector_file": fname, "best_alpha": best["alpha"], "val_curve": curve,
            "test_accuracy_absolute": absolute,
            "test_accuracy_normalized": normalized,  # ÷ our own finetuned test accuracy
            "mean_absolute": sum(absolute.values()) / len(absolute),
            "mean_normalized": sum(normalized.values()) / len(normalized),
        }
    res["finetuned_test_accuracy"] = {d: e[3] for d, e in evals.items()}
    path = Path(out) if out else Path(base.out) / base.model / f"merge-{method}-{base.recipe}-seed{base.seed}.json"
    write_json(path, res)
    res["path"] = str(path)
    return res
