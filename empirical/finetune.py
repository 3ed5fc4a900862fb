"""Finetune the CLIP image encoder on one benchmark and record the trajectory.

Per run (``<out>/<model>/<dataset>/<recipe>-e<epochs>-seed<seed>-<id>/``, where ``<id>`` hashes
the run's whole identity, :meth:`FinetuneConfig.identity`):

* ``config.json``: the identity (a rerun with any other setting is another run);
* ``theta0.safetensors`` (θ₀), ``g0.safetensors`` (full-training-set gradient at θ₀),
  ``delta_epoch_<e>.safetensors`` (Δ_e = θ_e − θ_{e−1}; with ``keep_deltas=N`` only the first N
  are kept once the run has finished), ``tau.safetensors`` (τ = θ_E − θ₀), ``head.safetensors``;
* ``checkpoint/epoch-<e>/``: parameters, optimizer, scheduler and results after epoch ``e``,
  committed as one unit (written into a temporary folder, then renamed into place); only the
  latest is kept, and none once the run has finished;
* ``results.json``: per epoch ‖Δ_e‖ and its share, the mean per-batch gradient norm (before
  clipping) and its share, train loss, validation accuracy; cos(τ, Δ₁), cos(τ, −g₀),
  cos(Δ₁, −g₀), cos(τ, Δ_e); zero-shot and finetuned test accuracy; the identity, the split
  sizes and the data files' checksums.

A killed run resumes from the last committed epoch. Each epoch's sample order and augmentation
depend only on (seed, epoch, sample), so the resumed run equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import DATASETS, Transformed, load_splits, provenance
from .io import fingerprint, load_strict, load_tensors, read_json, save_tensors, write_json
from .model import ImageClassifier, load_clip, zeroshot_head
from .task_vector import TaskVector

EPOCHS = {name: info.epochs for name, info in DATASETS.items()}  # defaults, per dataset


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe.

    Attributes:
        optimizer: ``sgd`` (no momentum, no weight decay), ``adam`` or ``adamw``.
        lr: learning rate.
        weight_decay: decoupled weight decay (AdamW) or L2 (Adam).
        batch_size: images per step.
        schedule: ``constant`` or ``cosine`` (with linear warm-up over ``warmup_steps``).
        warmup_steps: warm-up steps of the cosine schedule.
        clip: max gradient norm (None: no clipping).
        augment: train on open_clip's train transform (RandomResizedCrop, scale 0.9-1) instead
            of the evaluation preprocessing.
        amp: bf16 autocast on CUDA (parameters stay float32).
        model: the backbone the recipe was published with (the default ``--model``).
    """

    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int
    schedule: str
    warmup_steps: int
    clip: float | None
    augment: bool
    amp: bool
    model: str


RECIPES = {
    # the paper's setting: plain SGD, constant η, deterministic g₀ (no augmentation), fp32
    "theory": Recipe("sgd", 1e-3, 0.0, 128, "constant", 0, None, False, False,
                     "ViT-B-32-quickgelu"),
    # the task-arithmetic literature (Ilharco et al. 2023; mlfoundations/task_vectors)
    "ilharco": Recipe("adamw", 1e-5, 0.1, 128, "cosine", 500, 1.0, True, True,
                      "ViT-B-32-quickgelu"),
    # the authors' config behind the published gradient-norm figure (../shared/reference)
    "paper-code": Recipe("adam", 1e-5, 0.0, 32, "constant", 0, 10.0, True, False,
                         "ViT-B-16-quickgelu"),
}

IDENTITY_EXCLUDES = ("data_root", "out", "num_workers", "cache_dir", "download", "keep_deltas")
"""Config fields that do not change a run's numbers (so not part of its identity)."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that defines one finetuning run (frozen: a run is its configuration).

    ``model=None`` takes the recipe's backbone; ``amp=None`` and ``augment=None`` the recipe's.
    """

    dataset: str
    model: str | None = None
    pretrained: str | None = "openai"
    data_root: str = "data"
    out: str = "runs"
    recipe: str = "ilharco"
    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    optimizer: str | None = None
    clip: float | None = None
    augment: bool | None = None
    seed: int = 0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    dtype: str = "float32"  # parameters; "float64" for the CPU cross-check with the theory
    amp: bool | None = None
    download: bool = False
    num_workers: int = min(4, os.cpu_count() or 1)
    max_samples: int | None = None
    cache_dir: str | None = None
    record: bool = True  # gradient norms, g₀, deltas (off: plain finetuning, for benchmarks)
    shuffle: bool = True  # off: fixed sample order (the g₀ pass then sees the same batches)
    keep_deltas: int | None = None  # keep only the first N per-epoch deltas (None: all)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            DATASETS[self.dataset]  # raises UnknownKey naming the datasets
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose from {list(RECIPES)}")
        for name in ("lr", "clip"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        for name in ("batch_size", "epochs", "max_samples", "keep_deltas"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1, got {v!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.optimizer not in (None, "sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be sgd, adam or adamw, got {self.optimizer!r}")
        try:
            dev = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ValueError(f"device {self.device!r} is not a torch device (cpu, cuda, "
                             f"cuda:1)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}, {torch.cuda.device_count()} GPUs); "
                             f"pass --device cpu")
        if self.model is None:
            object.__setattr__(self, "model", RECIPES[self.recipe].model)

    @property
    def effective(self) -> Recipe:
        """The recipe with the command-line overrides applied."""
        r = RECIPES[self.recipe]
        over = {k: v for k, v in (("lr", self.lr), ("batch_size", self.batch_size),
                                  ("optimizer", self.optimizer), ("clip", self.clip),
                                  ("augment", self.augment), ("amp", self.amp)) if v is not None}
        r = replace(r, **over)
        if r.optimizer == "sgd":
            r = replace(r, weight_decay=0.0)
        return r

    @property
    def n_epochs(self) -> int:
        """Epochs to run: ``epochs`` or the dataset's default."""
        return self.epochs or EPOCHS[self.dataset]

    def identity(self) -> dict:
        """What the run's numbers depend on: every setting but where files live and how fast
        they load (:data:`IDENTITY_EXCLUDES`), with the effective recipe and epoch count.
        """
        d = {k: v for k, v in asdict(self).items() if k not in IDENTITY_EXCLUDES}
        d.update(epochs=self.n_epochs, device=torch.device(self.device).type,
                 effective_recipe=asdict(self.effective))
        for k in ("lr", "batch_size", "optimizer", "clip", "augment", "amp"):
            d.pop(k)  # folded into effective_recipe
        return d

    @property
    def run_id(self) -> str:
        """A short hash of :meth:`identity`."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @property
    def run_dir(self) -> Path:
        """The run's folder under ``out``."""
        return (Path(self.out) / self.model / self.dataset
                / f"{self.recipe}-e{self.n_epochs}-seed{self.seed}-{self.run_id}")


def _loader(ds, batch_size: int, shuffle_seed: int | None, workers: int, device: str) -> DataLoader:
    gen = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle_seed is not None, generator=gen,
                      num_workers=workers, pin_memory=device.startswith("cuda"),
                      persistent_workers=False)


def _optimizer(params, r: Recipe, total_steps: int):
    params = list(params)
    fused = all(p.is_cuda for p in params) or None  # one fused kernel per step on the GPU
    if r.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=r.lr, momentum=0.0, weight_decay=0.0)
    elif r.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay, fused=fused)
    else:
        opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay, fused=fused)
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


# -- the run's writes (each one a unit a kill can fall between; the tests count them) ----------
def _save_torch(obj, path: Path) -> None:
    torch.save(obj, path)


def _commit(tmp: Path, final: Path) -> None:
    """Publish a fully written checkpoint folder: one rename."""
    tmp.replace(final)


_EPOCH_DIR = re.compile(r"epoch-(\d{3,})$")


def _committed(folder: Path) -> list[tuple[int, Path]]:
    """The committed checkpoints under ``folder/checkpoint``, oldest first."""
    root = folder / "checkpoint"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _EPOCH_DIR.match(p.name))]
    return sorted(found)


@dataclass
class _Run:
    """What one run holds while it trains (built by :func:`_setup`)."""

    cfg: FinetuneConfig
    clf: ImageClassifier
    head_weight: torch.Tensor
    splits: object
    train_data: object  # the training split as trained on (augmented or not)
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
    """Model, data, zero-shot head and optimizer of a run (nothing written)."""
    device, dtype = cfg.device, getattr(torch, cfg.dtype)
    r = cfg.effective
    model, pre_train, pre_val, tok = load_clip(cfg.model, cfg.pretrained, cache_dir=cfg.cache_dir,
                                               device=device)
    splits = load_splits(cfg.dataset, cfg.data_root, download=cfg.download, transform=pre_val,
                         max_samples=cfg.max_samples)
    # augmentation: open_clip's train transform, seeded per (seed, epoch, sample); g₀ and every
    # accuracy use the evaluation preprocessing
    train_data = Transformed(splits.train.ds, pre_train, seed=cfg.seed) if r.augment else splits.train
    head = zeroshot_head(model, tok, splits.classnames, splits.templates, device)
    clf = ImageClassifier(model.visual, head).to(device=device, dtype=dtype)
    del model
    steps_per_epoch = math.ceil(len(splits.train) / r.batch_size)
    opt, sched = _optimizer(clf.visual.parameters(), r, cfg.n_epochs * steps_per_epoch)
    return _Run(cfg, clf, head.weight.detach().cpu(), splits, train_data, opt, sched, r, device,
                dtype, r.amp and device.startswith("cuda"), steps_per_epoch)


def _start_or_resume(run: _Run) -> dict:
    """The results so far: from the last committed checkpoint, or a fresh start (θ₀, head, g₀
    saved and committed as checkpoint epoch-000).
    """
    cfg, folder = run.cfg, run.cfg.run_dir
    for stale in (folder / "checkpoint").glob(".epoch-*.tmp"):
        shutil.rmtree(stale)  # a checkpoint being written when the run was killed
    done = _committed(folder)
    if done:
        path = done[-1][1]
        state = read_json(path / "state.json")
        load_strict(run.clf.visual, load_tensors(path / "params.safetensors", run.device))
        try:
            run.opt.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True,
                                               map_location=run.device))
        except Exception as exc:
            raise ValueError(f"{path / 'optimizer.pt'} is unreadable ({exc}); delete "
                             f"{path} to resume from the checkpoint before it") from None
        run.sched.load_state_dict(state["scheduler"])
        return state["results"]
    n_train = len(run.splits.train)
    theta0 = {k: v.cpu() for k, v in run.clf.encoder_state().items()}
    res = {"identity": cfg.identity(), "run_id": cfg.run_id, "config": asdict(cfg),
           "recipe": {"name": cfg.recipe, **asdict(run.recipe)}, "dataset": cfg.dataset,
           "model": cfg.model, "split": run.splits.split, "n_train": n_train,
           "n_val": len(run.splits.val), "n_test": len(run.splits.test),
           "data_checksums": provenance(cfg.dataset, cfg.data_root),
           "steps_per_epoch": run.steps_per_epoch, "epochs": [],
           "theta0_fingerprint": fingerprint(theta0),
           "zero_shot_val_accuracy": run.accuracy(run.splits.val),
           # reads every test image before training: a broken file fails now, not at the end
           "zero_shot_test_accuracy": run.accuracy(run.splits.test), "complete": False}
    write_json(folder / "config.json", cfg.identity())
    save_tensors(theta0, folder / "theta0.safetensors")
    save_tensors({"weight": run.head_weight}, folder / "head.safetensors")
    if cfg.record:
        g0 = full_gradient(run.clf, run.loader(run.splits.train), n_train, run.device,
                           run.dtype, run.amp)
        save_tensors(g0, folder / "g0.safetensors")
        res["g0_norm"] = TaskVector(g0).norm()
    _checkpoint(run, res, 0)
    return res


def _train_epoch(run: _Run, epoch: int, progress: bool) -> dict:
    """One epoch of training; returns its record (Δ_e saved when recording)."""
    from tqdm import tqdm
    cfg, clf = run.cfg, run.clf
    params = dict(clf.visual.named_parameters())
    plist = list(params.values())
    clf.train()
    prev = {k: p.detach().clone() for k, p in params.items()}
    if isinstance(run.train_data, Transformed):
        run.train_data.epoch = epoch
    loader = run.loader(run.train_data, cfg.seed * 100003 + epoch if cfg.shuffle else None)
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
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}",
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


def _checkpoint(run: _Run, res: dict, epoch: int) -> None:
    """Commit parameters, optimizer, scheduler and results after ``epoch`` as one unit."""
    root = run.cfg.run_dir / "checkpoint"
    tmp = root / f".epoch-{epoch:03d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_tensors(run.clf.encoder_state(), tmp / "params.safetensors")
    _save_torch(run.opt.state_dict(), tmp / "optimizer.pt")
    write_json(tmp / "state.json", {"results": res, "scheduler": run.sched.state_dict()})
    _commit(tmp, root / f"epoch-{epoch:03d}")
    for e, old in _committed(run.cfg.run_dir):
        if e < epoch:
            shutil.rmtree(old)
    write_json(run.cfg.run_dir / "results.json", res)


def _check_identity(cfg: FinetuneConfig) -> None:
    path = cfg.run_dir / "config.json"
    if path.exists() and (old := read_json(path)) != cfg.identity():
        diff = sorted(k for k in set(old) | set(cfg.identity()) if old.get(k) != cfg.identity().get(k))
        raise ValueError(f"{cfg.run_dir} holds a run with other settings ({diff}); move it away")


def _tidy(cfg: FinetuneConfig, res: dict) -> None:
    """After a finished run: drop the checkpoint (only a resume needs it) and the per-epoch
    deltas after the first ``keep_deltas`` (every cosine is computed by then).
    """
    shutil.rmtree(cfg.run_dir / "checkpoint", ignore_errors=True)
    if cfg.keep_deltas is None:
        return
    for e in res["epochs"][cfg.keep_deltas:]:
        (cfg.run_dir / f"delta_epoch_{e['epoch']:03d}.safetensors").unlink(missing_ok=True)


def finetune(cfg: FinetuneConfig, progress: bool = True) -> dict:
    """Run (or resume) one finetuning run; returns the results dict (also in results.json)."""
    results_path = cfg.run_dir / "results.json"
    _check_identity(cfg)
    if results_path.exists() and (res := read_json(results_path)).get("complete"):
        _tidy(cfg, res)
        return res
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # the random init of --pretrained none
    run = _setup(cfg)
    res = _start_or_resume(run)
    for epoch in range(len(res["epochs"]), cfg.n_epochs):
        res["epochs"].append(_train_epoch(run, epoch, progress))
        _checkpoint(run, res, epoch + 1)
    _finish(run, res)
    write_json(results_path, res)
    _tidy(cfg, res)
    return res


def _shares(values: list[float | None]) -> list[float | None]:
    vals = [v for v in values if v is not None]
    tot = sum(vals)
    return [None if v is None else (v / tot if tot > 0 else float("nan")) for v in values]


def _finish(run: _Run, res: dict) -> None:
    cfg, folder = run.cfg, run.cfg.run_dir
    theta0 = load_tensors(folder / "theta0.safetensors")
    tau = TaskVector.between({k: v.cpu() for k, v in run.clf.encoder_state().items()}, theta0)
    save_tensors(tau.tensors, folder / "tau.safetensors")
    for e, s in zip(res["epochs"], _shares([e["update_norm"] for e in res["epochs"]])):
        e["update_norm_share"] = s
    for e, s in zip(res["epochs"], _shares([e["mean_grad_norm"] for e in res["epochs"]])):
        e["grad_norm_share"] = s
    cos = {}
    if cfg.record:
        neg_g0 = -TaskVector.load(folder / "g0.safetensors")
        d1 = TaskVector.load(folder / "delta_epoch_001.safetensors")
        cos = {"tau_delta1": tau.cos(d1), "tau_neg_g0": tau.cos(neg_g0),
               "delta1_neg_g0": d1.cos(neg_g0)}
        for e in res["epochs"]:
            e["cos_tau_delta"] = tau.cos(TaskVector.load(folder / f"delta_epoch_{e['epoch']:03d}.safetensors"))
    res["cosines"] = cos
    res["tau_norm"] = tau.norm()
    res["test_accuracy"] = run.accuracy(run.splits.test)
    res["deltas_kept"] = (len(res["epochs"]) if cfg.keep_deltas is None or not cfg.record
                          else min(cfg.keep_deltas, len(res["epochs"])))
    res["complete"] = True
