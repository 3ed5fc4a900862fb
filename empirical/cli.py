"""The empirical commands of ``tvgrad``: ``finetune``, ``merge``, ``empirical-report``,
``empirical-all``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from ..errors import InvalidInput
from .data import DATASETS, DatasetMissing
from .finetune import EPOCHS, RECIPES, FinetuneConfig
from .merge import METHODS
from .model import WeightsMissing


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="ViT-B-32", help="open_clip model name (default ViT-B-32)")
    p.add_argument("--pretrained", default="openai",
                   help="open_clip tag, a local checkpoint path, or 'none' for random weights")
    p.add_argument("--cache-dir", default=None, help="open_clip/hub cache folder for weights")
    p.add_argument("--data-root", default="data", help="folder holding the datasets")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download missing datasets (off by default)")
    p.add_argument("--out", default="runs", help="runs folder (default runs/)")
    p.add_argument("--recipe", default="ilharco", choices=list(RECIPES),
                   help="theory: plain SGD lr 1e-3, batch 128, constant lr, no clipping; ilharco: AdamW 1e-5, wd 0.1, "
                        "batch 128, cosine + 500 warm-up, clip 1; paper-code: AdamW 1e-5, wd 0.1, "
                        "batch 32, no schedule, clip 10")
    p.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None,
                   help="override the recipe's optimizer (sgd: no momentum, no weight decay)")
    p.add_argument("--clip", type=float, default=None, help="override gradient-norm clipping")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs (default per dataset: {EPOCHS})")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the model init (random weights) and every epoch's sample order")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="parameter dtype (float64 for CPU cross-checks with the theory)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--num-workers", type=int, default=4, help="data loader workers")
    p.add_argument("--max-samples", type=int, default=None, help="cap every split (smoke runs)")
    p.add_argument("--no-shuffle", action="store_true",
                   help="visit the training samples in a fixed order (theory cross-checks)")
    p.add_argument("--no-record", action="store_true",
                   help="plain finetuning: no gradient norms, g0 or per-epoch deltas")


def _cfg(args, dataset: str) -> FinetuneConfig:
    kw = dict(dataset=dataset, model=args.model, pretrained=args.pretrained,
              data_root=args.data_root, out=args.out, recipe=args.recipe, lr=args.lr,
              batch_size=args.batch_size, epochs=args.epochs, optimizer=args.optimizer,
              clip=args.clip, seed=args.seed, dtype=args.dtype, amp=not args.no_amp,
              download=args.download, num_workers=args.num_workers,
              max_samples=args.max_samples, cache_dir=args.cache_dir, record=not args.no_record,
              shuffle=not args.no_shuffle)
    if args.device:
        kw["device"] = args.device
    return FinetuneConfig(**kw)


def add_commands(sub) -> None:
    """Add the empirical subcommands to an ``argparse`` subparsers object."""
    f = sub.add_parser("finetune", help="finetune CLIP on one dataset (resumable)")
    f.add_argument("--dataset", required=True, choices=list(DATASETS),
                   help="the benchmark to finetune on")
    _common(f)
    f.set_defaults(handler=_finetune)
    m = sub.add_parser("merge", help="merge one-epoch and converged task vectors")
    m.add_argument("--datasets", default=",".join(DATASETS))
    _merge_args(m)
    _common(m)
    m.set_defaults(handler=_merge_cmd)
    r = sub.add_parser("empirical-report", help="write reports/empirical.html from a runs folder")
    r.add_argument("--out", default="runs")
    r.add_argument("--html", default="reports/empirical.html")
    r.set_defaults(handler=_report)
    a = sub.add_parser("empirical-all", help="finetune every dataset, merge, report (resumable)")
    a.add_argument("--datasets", default=",".join(DATASETS))
    a.add_argument("--devices", default=None,
                   help="comma-separated CUDA device ids: one process per GPU over the datasets")
    a.add_argument("--html", default="reports/empirical.html")
    _merge_args(a)
    _common(a)
    a.set_defaults(handler=_all)


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="task_arithmetic", choices=list(METHODS),
                   help="merge method (default task_arithmetic); its name is part of the "
                        "output file name")


def _finetune(args) -> int:
    from .finetune import finetune
    res = finetune(_cfg(args, args.dataset))
    print(f"{args.dataset}: test accuracy {res['test_accuracy']:.4f}, "
          f"first-epoch update share {res['epochs'][0]['update_norm_share']:.3f}, "
          f"results in {_cfg(args, args.dataset).run_dir / 'results.json'}")
    return 0


def _report(args) -> int:
    from .report import build
    print(f"wrote {build(args.out, args.html)}")
    return 0


def _datasets(args) -> list[str]:
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets:
        raise InvalidInput(f"--datasets {args.datasets!r} names no dataset; choose from "
                           f"{list(DATASETS)}")
    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise InvalidInput(f"unknown datasets {bad}; choose from {list(DATASETS)}")
    return datasets


def _merge_cmd(args) -> int:
    from .merge import merge
    res = merge([_cfg(args, d) for d in _datasets(args)], method=args.method)
    print(f"merge ({res['method']}): one-epoch mean normalized "
          f"{res['kinds']['one_epoch']['mean_normalized']:.4f}, converged "
          f"{res['kinds']['converged']['mean_normalized']:.4f} ({res['path']})")
    return 0


def _all(args) -> int:
    datasets = _datasets(args)
    if args.devices:
        _parallel(args.argv, datasets, args.devices.split(","))
    else:
        from .finetune import finetune
        for d in datasets:
            finetune(_cfg(args, d))
    _merge_cmd(args)
    return _report(args)


ERRORS = (DatasetMissing, WeightsMissing, FileNotFoundError, ValueError)
"""The exceptions the empirical commands report as one-line user errors (exit 2)."""


def _parallel(argv: list[str], datasets: list[str], devices: list[str]) -> None:
    """One `finetune` process per GPU, each taking datasets round-robin."""
    keep, skip = [], False
    for a in argv[1:]:  # drop 'empirical-all', --datasets/--devices/--html/--method + values
        if skip:
            skip = False
            continue
        if a in ("--datasets", "--devices", "--html", "--method"):
            skip = True
            continue
        keep.append(a)
    queues = {dev: datasets[i::len(devices)] for i, dev in enumerate(devices)}
    procs = []
    for dev, ds in queues.items():
        cmd = " && ".join(shlex.join([sys.executable, "-m", "tvgrad", "finetune",
                                      "--dataset", d, *keep]) for d in ds)
        procs.append(subprocess.Popen(cmd, shell=True,
                                      env={**os.environ, "CUDA_VISIBLE_DEVICES": dev.strip()}))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"finetuning processes failed: exit codes {codes}")

