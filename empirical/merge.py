"""Merging finetuned encoders; task arithmetic θ₀ + α Σ_t τ_t with α chosen on validation.

A merge method is any callable ``(theta0, task_vectors, alpha) -> merged parameters`` with a
``name`` and its own hyperparameters (the α grid searched on validation);
:class:`TaskArithmetic` is the one required now, more can be registered in :data:`METHODS`.
The method's name is part of the output file name, so two methods never overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
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
KINDS = ("one_epoch", "converged")


class RunsMismatch(ValueError):
    """Runs that cannot be merged (unfinished, other θ₀, no one-epoch finetune)."""


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


def _finished(c: FinetuneConfig) -> dict:
    path = c.run_dir / "results.json"
    res = read_json(path) if path.exists() else {}
    if not res.get("complete"):
        raise RunsMismatch(f"run {c.run_dir} is not finished: run `tvgrad finetune --dataset "
                           f"{c.dataset} --epochs {c.n_epochs}` (same settings) first")
    return res


def one_epoch_source(c: FinetuneConfig) -> tuple[FinetuneConfig, str, str]:
    """Where the one-epoch task vector of ``c``'s dataset comes from.

    Returns (run, file, label). A one-epoch finetune is a run with ``epochs=1`` (its τ); under a
    constant schedule the first epoch Δ₁ of the long run is that same run bit for bit (the
    sample order and augmentation of an epoch depend only on seed and epoch), so Δ₁ is used.
    Under a schedule that depends on the total steps (``ilharco``'s cosine) Δ₁ is not a
    one-epoch finetune and the ``epochs=1`` run is required.
    """
    one = replace(c, epochs=1)
    if (one.run_dir / "results.json").exists() or c.n_epochs == 1:
        return one, "tau.safetensors", "tau of an --epochs 1 run"
    if c.effective.schedule == "constant":
        return c, "delta_epoch_001.safetensors", "delta_1 of a constant-schedule run (= an --epochs 1 run)"
    raise RunsMismatch(
        f"the one-epoch arm needs a one-epoch finetune of {c.dataset}: under recipe "
        f"{c.recipe!r} ({c.effective.schedule} schedule) the first epoch of a "
        f"{c.n_epochs}-epoch run is not one; run `tvgrad finetune --dataset {c.dataset} "
        f"--epochs 1` with the same settings (tvgrad empirical-all does)")


def merge(cfgs: list[FinetuneConfig], *, method: str = "task_arithmetic",
          out: str | Path | None = None) -> dict:
    """Merge the finished runs of ``cfgs`` (one per dataset, same model/recipe/seed) for both
    one-epoch task vectors (see :func:`one_epoch_source`) and converged ones (τ of the full
    run); returns and writes the results JSON
    (``<out>/<model>/merge-<method>-<recipe>-seed<seed>-<id>.json`` by default, ``<id>`` a
    hash of the method, its α grid and the merged runs).

    Raises:
        RunsMismatch: a run is unfinished, the runs do not share θ₀, or a one-epoch finetune
            is missing.
    """
    fn = METHODS[method]  # UnknownKey names the known methods
    if not cfgs:
        raise RunsMismatch("merge needs at least one run")
    alphas = fn.alphas
    base = cfgs[0]
    sources = {"converged": [(c, "tau.safetensors", "tau of the full run") for c in cfgs],
               "one_epoch": [one_epoch_source(c) for c in cfgs]}
    results = {run.run_dir: _finished(run) for run, _, _ in sources["converged"] + sources["one_epoch"]}
    prints = {path: res.get("theta0_fingerprint") for path, res in results.items()}
    if len(set(prints.values())) > 1 or None in prints.values():
        listing = ", ".join(f"{p}: {str(v)[:12]}" for p, v in prints.items())
        raise RunsMismatch(f"the runs do not share theta0 (or predate its fingerprint): "
                           f"{listing}; finetune them from the same --model/--pretrained/"
                           f"--seed/--dtype")
    device, dtype = base.device, getattr(torch, base.dtype)
    amp = base.effective.amp and device.startswith("cuda")
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
                            results[c.run_dir]["test_accuracy"])
    res = {"method": method, "model": base.model, "recipe": base.recipe, "seed": base.seed,
           "datasets": [c.dataset for c in cfgs], "alphas": list(alphas), "kinds": {},
           "theta0_fingerprint": next(iter(prints.values()))}
    for kind in KINDS:
        taus = [TaskVector.load(run.run_dir / f) for run, f, _ in sources[kind]]
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
            "sources": {run.dataset: {"run": str(run.run_dir), "file": f, "what": what}
                        for run, f, what in sources[kind]},
            "best_alpha": best["alpha"], "val_curve": curve,
            "test_accuracy_absolute": absolute,
            "test_accuracy_normalized": normalized,  # ÷ our own finetuned test accuracy
            "mean_absolute": sum(absolute.values()) / len(absolute),
            "mean_normalized": sum(normalized.values()) / len(normalized),
        }
    res["finetuned_test_accuracy"] = {d: e[3] for d, e in evals.items()}
    # the merged runs are part of the name: merges of other runs never overwrite each other
    mid = hashlib.sha256(json.dumps([method, list(alphas), *(c.run_id for c in cfgs)])
                         .encode()).hexdigest()[:10]
    res["runs"] = {c.dataset: str(c.run_dir) for c in cfgs}
    path = Path(out) if out else (Path(base.out) / base.model
                                  / f"merge-{method}-{base.recipe}-seed{base.seed}-{mid}.json")
    write_json(path, res)
    res["path"] = str(path)
    return res
