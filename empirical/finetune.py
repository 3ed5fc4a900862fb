"""Finetune the CLIP image encoder on one benchmark and record the trajectory.

Per run (``<out>/<model>/<dataset>/<recipe>-seed<seed>/``):

* ``theta0.safetensors`` (θ₀), ``g0.safetensors`` (full-training-set gradient at θ₀),
  ``delta_epoch_<e>.safetensors`` (Δ_e = θ_e − θ_{e−1}), ``tau.safetensors`` (τ = θ_E − θ₀),
  ``head.safetensors`` (the frozen zero-shot head);
* ``checkpoint/`` (parameters, optimizer and scheduler state after the last finished epoch);
* ``results.json``: per epoch ‖Δ_e‖ and its share, the mean per-batch gradient norm (before
  clipping) and its share, train loss, validation accuracy; cos(τ, Δ₁), cos(τ, −g₀),
  cos(Δ₁, −g₀), cos(τ, Δ_e); test accuracy; the recipe of every number.

Every file is written atomically; a killed run resumes from the last finished epoch, and since
each epoch's sample order depends only on (seed, epoch) the resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import DATASETS, load_splits
from .io import load_strict, load_tensors, read_json, save_tensors, write_json
from .model import ImageClassifier, load_clip, zeroshot_head
from .task_vector import TaskVector

EPOCHS = {name: info.epochs for name, info in DATASETS.items()}  # defaults, per dataset


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe. ``theory``: the paper's setting (plain SGD, constant η)."""

    optimizer: str  # "sgd" (no momentum, no weight decay) or "adamw"
    lr: float
    weight_decay: float
    batch_size: int
    schedule: str  # "constant" or "cosine" (with linear warm-up)
    warmup_steps: int
    clip: float | None  # max gradient norm, None = no clipping


RECIPES = {
    "theory": Recipe("sgd", 1e-3, 0.0, 128, "constant", 0, None),
    "ilharco": Recipe("adamw", 1e-5, 0.1, 128, "cosine", 500, 1.0),
    "paper-code": Recipe("adamw", 1e-5, 0.1, 32, "constant", 0, 10.0),
}


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that defines one finetuning run (frozen: a run is its configuration)."""
    dataset: str
    model: str = "ViT-B-32-quickgelu"  # the openai weights were trained with QuickGELU
    pretrained: str | None = "openai"
    data_root: str = "data"
    out: str = "runs"
    recipe: str = "ilharco"
    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    optimizer: str | None = None
    clip: float | None = None
    seed: int = 0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    dtype: str = "float32"  # parameters; "float64" for the CPU cross-check with the theory
    amp: bool = True  # bf16 autocast on CUDA (parameters stay in `dtype`)
    download: bool = False
    num_workers: int = 4
    max_samples: int | None = None
    cache_dir: str | None = None
    record: bool = True  # gradient norms, g₀, deltas (off: plain finetuning, for benchmarks)
    shuffle: bool = True  # off: fixed sample order (the g₀ pass then sees the same batches)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose from {list(RECIPES)}")
        for name in ("lr", "clip"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1, got {v!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.optimizer not in (None, "sgd", "adamw"):
            raise ValueError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")

    @property
    def effective(self) -> Recipe:
        """The recipe with the command-line overrides applied."""
        r = RECIPES[self.recipe]
        over = {k: v for k, v in (("lr", self.lr), ("batch_size", self.batch_size),
                                  ("optimizer", self.optimizer), ("clip", self.clip)) if v is not None}
        r = replace(r, **over)
        if r.optimizer == "sgd":
            r = replace(r, weight_decay=0.0)
        return r

    @property
    def n_epochs(self) -> int:
        """Epochs to run: ``epochs`` or the dataset's default."""
        return self.epochs or EPOCHS[self.dataset]

    @property
    def run_dir(self) -> Path:
        """The run's folder under ``out``."""
        return Path(self.out) / self.model / self.dataset / f"{self.recipe}-seed{self.seed}"


def _loader(ds, batch_size: int, shuffle_seed: int | None, workers: int, device: str) -> DataLoader:
    gen = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle_seed is not None, generator=gen,
                      num_workers=workers, pin_memory=device.startswith("cuda"),
                      persistent_workers=False)


def _optimizer(params, r: Recipe, total_steps: int):
    if r.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=r.lr, momentum=0.0, weight_decay=0.0)
    else:
        params = list(params)
        fused = all(p.is_cuda for p in params)  # one fused kernel per step on the GPU
        opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay, fused=fused or None)
    if r.schedule == "cosine":
        def f(step):
            if step < r.warmup_steps:
                return (step + 1) / r.warmup_steps
            prog = (step - r.warmup_steps) / max(1, total_steps - r.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))
    else:
        def f(step):
            return 1.0
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, f)


def train_step(clf: nn.Module, x, y, opt, sched, plist: list, clip: float | None,
               record: bool, amp: bool):
    """One optimisation step; with ``record`` also the gradient norm before clipping (a device
    scalar: no host sync). Returns (loss, grad norm or None).
    """
    with torch.autocast("cuda", torch.bfloat16, enabled=amp):
        loss = nn.functional.cross_entropy(clf(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = None
    if record:
        gnorm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in plist])))
    if clip is not None:
        nn.utils.clip_grad_norm_(plist, clip)
    opt.step()
    sched.step()
    return loss, gnorm


def accuracy(model: nn.Module, loader: DataLoader, device: str, dtype: torch.dtype, amp: bool) -> float:
    """Top-1 accuracy of ``model`` over ``loader`` (eval mode, no gradients)."""
    model.eval()
    correct = total = 0
    with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=amp):
        for x, y in loader:
            logits = model(x.to(device, dtype))
            correct += int((logits.argmax(-1).cpu() == y).sum())
            total += len(y)
    return correct / max(total, 1)


def full_gradient(model: ImageClassifier, loader: DataLoader, n: int, device: str,
                  dtype: torch.dtype, amp: bool) -> dict[str, torch.Tensor]:
    """g₀ = ∇ of the mean training loss at the current θ: Σ_b (n_b/n) ∇L_b (no update)."""
    model.train()
    params = dict(model.visual.named_parameters())
    acc = {k: torch.zeros_like(p) for k, p in params.items()}
    for x, y in loader:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(model(x.to(device, dtype)), y.to(device))
        loss.backward()
        w = len(y) / n  # one batch: w = 1.0 and the sum is exact (g₀ equals that batch's ∇)
        for k, p in params.items():
            acc[k].add_(p.grad, alpha=w)
    model.zero_grad(set_to_none=True)
    return acc


@dataclass
class _Run:
    """What one run holds while it trains (built by :func:`_setup`)."""

    cfg: FinetuneConfig
    clf: ImageClassifier
    splits: object
    opt: torch.optim.Optimizer
    sched: object
    recipe: Recipe
    device: str
    dtype: torch.dtype
    amp: bool
    steps_per_epoch: int

    def loader(self, ds, seed: int | None = None) -> DataLoader:
        return _loader(ds, self.recipe.batch_size, seed, self.cfg.num_workers, self.device)

    def accuracy(self, ds) -> float:
        return accuracy(self.clf, self.loader(ds), self.device, self.dtype, self.amp)


def _setup(cfg: FinetuneConfig) -> _Run:
    """Model, data, zero-shot head (saved) and optimizer of a run."""
    device, dtype = cfg.device, getattr(torch, cfg.dtype)
    r = cfg.effective
    # No augmentation: training uses the evaluation preprocessing, as in the task-arithmetic
    # literature's recipe (and as the theory cross-check needs).
    model, _, pre_val, tok = load_clip(cfg.model, cfg.pretrained, cache_dir=cfg.cache_dir,
                                       device=device)
    splits = load_splits(cfg.dataset, cfg.data_root, download=cfg.download, transform=pre_val,
                         max_samples=cfg.max_samples)
    head = zeroshot_head(model, tok, splits.classnames, splits.templates, device)
    clf = ImageClassifier(model.visual, head).to(device=device, dtype=dtype)
    del model
    save_tensors({"weight": head.weight}, cfg.run_dir / "head.safetensors")
    steps_per_epoch = math.ceil(len(splits.train) / r.batch_size)
    opt, sched = _optimizer([p for p in clf.visual.parameters()], r, cfg.n_epochs * steps_per_epoch)
    return _Run(cfg, clf, splits, opt, sched, r, device, dtype,
                cfg.amp and device.startswith("cuda"), steps_per_epoch)


def _start_or_resume(run: _Run) -> dict:
    """The results so far: from the last checkpoint, or a fresh start (θ₀, g₀ saved)."""
    cfg, folder = run.cfg, run.cfg.run_dir
    state_path = folder / "checkpoint" / "state.json"
    if state_path.exists():  # resume from the last finished epoch
        state = read_json(state_path)
        load_strict(run.clf.visual, load_tensors(folder / "checkpoint" / "params.safetensors",
                                                 run.device))
        run.opt.load_state_dict(torch.load(folder / "checkpoint" / "optimizer.pt",
                                           weights_only=True, map_location=run.device))
        run.sched.load_state_dict(state["scheduler"])
        return state["results"]
    save_tensors(run.clf.encoder_state(), folder / "theta0.safetensors")
    n_train = len(run.splits.train)
    res = {"config": asdict(cfg), "recipe": {"name": cfg.recipe, **asdict(run.recipe)},
           "dataset": cfg.dataset, "n_train": n_train, "n_val": len(run.splits.val),
           "n_test": len(run.splits.test), "steps_per_epoch": run.steps_per_epoch, "epochs": [],
           "zero_shot_val_accuracy": run.accuracy(run.splits.val), "complete": False}
    if cfg.record:
        g0 = full_gradient(run.clf, run.loader(run.splits.train), n_train, run.device,
                           run.dtype, run.amp)
        save_tensors(g0, folder / "g0.safetensors")
        res["g0_norm"] = TaskVector(g0).norm()
    return res


def _train_epoch(run: _Run, epoch: int, progress: bool) -> dict:
    """One epoch of training; returns its record (Δ_e saved when recording)."""
    from tqdm import tqdm
    cfg, clf = run.cfg, run.clf
    params = dict(clf.visual.named_parameters())
    plist = list(params.values())
    clf.train()
    prev = {k: p.detach().clone() for k, p in params.items()}
    loader = run.loader(run.splits.train, cfg.seed * 100003 + epoch if cfg.shuffle else None)
    loss_acc = torch.zeros((), device=run.device)
    seen, step, t0 = 0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"{cfg.dataset} epoch {epoch + 1}/{cfg.n_epochs}",
               disable=not progress, leave=False, dynamic_ncols=True)
    gnorms = []
    for x, y in bar:
        x, y = x.to(run.device, run.dtype, non_blocking=True), y.to(run.device, non_blocking=True)
        loss, gnorm = train_step(clf, x, y, run.opt, run.sched, plist, run.recipe.clip,
                                 cfg.record, run.amp)
        if gnorm is not None:
            gnorms.append(gnorm)
        loss_acc += loss.detach().float() * len(y)  # stays on the device: no sync
        seen += len(y)
        step += 1
        if progress and step % 20 == 1:  # a host sync every 20 steps only
            bar.set_postfix(loss=f"{float(loss):.4f}",
                            img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    gnorm_sum = float(torch.stack(gnorms).sum()) if gnorms else 0.0
    delta = TaskVector({k: params[k].detach() - prev[k] for k in params})
    if cfg.record:
        save_tensors(delta.tensors, cfg.run_dir / f"delta_epoch_{epoch + 1:03d}.safetensors")
    return {"epoch": epoch + 1, "train_loss": float(loss_acc) / max(seen, 1),
            "update_norm": delta.norm(),
            "mean_grad_norm": gnorm_sum / max(len(gnorms), 1) if gnorms else None,
            "val_accuracy": run.accuracy(run.splits.val),
            "seconds": time.perf_counter() - t0,
            "images_per_s": seen / (time.perf_counter() - t0)}


def _checkpoint(run: _Run, res: dict) -> None:
    """Parameters, optimizer, scheduler and results after a finished epoch."""
    folder = run.cfg.run_dir
    save_tensors(run.clf.encoder_state(), folder / "checkpoint" / "params.safetensors")
    tmp = folder / "checkpoint" / "optimizer.pt.tmp"
    torch.save(run.opt.state_dict(), tmp)
    tmp.replace(folder / "checkpoint" / "optimizer.pt")
    write_json(folder / "checkpoint" / "state.json", {"results": res,
                                                      "scheduler": run.sched.state_dict()})
    write_json(folder / "results.json", res)


def finetune(cfg: FinetuneConfig, progress: bool = True) -> dict:
    """Run (or resume) one finetuning run; returns the results dict (also in results.json)."""
    results_path = cfg.run_dir / "results.json"
    if results_path.exists() and read_json(results_path).get("complete"):
        return read_json(results_path)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    run = _setup(cfg)
    res = _start_or_resume(run)
    for epoch in range(len(res["epochs"]), cfg.n_epochs):
        res["epochs"].append(_train_epoch(run, epoch, progress))
        _checkpoint(run, res)
    _finish(cfg, run.clf, run.splits, res, run.device, run.dtype, run.amp,
            lambda ds: run.loader(ds))
    write_json(results_path, res)
    return res


def _shares(values: list[float | None]) -> list[float | None]:
    vals = [v for v in values if v is not None]
    tot = sum(vals)
    return [None if v is None else (v / tot if tot > 0 else float("nan")) for v in values]


def _finish(cfg, clf, splits, res, device, dtype, amp, eval_loader) -> None:
    run = cfg.run_dir
    theta0 = load_tensors(run / "theta0.safetensors")
    tau = TaskVector.between({k: v.cpu() for k, v in clf.encoder_state().items()}, theta0)
    tau.save(run / "tau.safetensors")
    for e, s in zip(res["epochs"], _shares([e["update_norm"] for e in res["epochs"]])):
        e["update_norm_share"] = s
    for e, s in zip(res["epochs"], _shares([e["mean_grad_norm"] for e in res["epochs"]])):
        e["grad_norm_share"] = s
    cos = {}
    if cfg.record:
        neg_g0 = -TaskVector.load(run / "g0.safetensors")
        d1 = TaskVector.load(run / "delta_epoch_001.safetensors")
        cos = {"tau_delta1": tau.cos(d1), "tau_neg_g0": tau.cos(neg_g0),
               "delta1_neg_g0": d1.cos(neg_g0)}
        for e in res["epochs"]:
            e["cos_tau_delta"] = tau.cos(TaskVector.load(run / f"delta_epoch_{e['epoch']:03d}.safetensors"))
    res["cosines"] = cos
    res["tau_norm"] = tau.norm()
    res["test_accuracy"] = accuracy(clf, eval_loader(splits.test), device, dtype, amp)
    res["complete"] = True
