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
from ..theory import DEFAULT_SEED
from .data import DATASETS, DatasetMissing
from .finetune import EPOCHS, RECIPES, FinetuneConfig
from .merge import METHODS
from .model import WeightsMissing


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="open_clip model name (default: the recipe's backbone: "
                        "ViT-B-32-quickgelu for theory and ilharco, ViT-B-16-quickgelu for "
                        "paper-code; the openai weights were trained with QuickGELU)")
    p.add_argument("--pretrained", default="openai",
                   help="open_clip tag, a local checkpoint path, or 'none' for random weights")
    p.add_argument("--cache-dir", default=None, help="open_clip/hub cache folder for weights")
    p.add_argument("--data-root", default="data", help="folder holding the datasets")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download missing datasets (off by default)")
    p.add_argument("--out", default="runs", help="runs folder (default runs/)")
    p.add_argument("--recipe", default="ilharco", choices=list(RECIPES),
                   help="theory: plain SGD lr 1e-3, batch 128, constant lr, no clipping, no "
                        "augmentation; ilharco: AdamW 1e-5, wd 0.1, batch 128, cosine + 500 "
                        "warm-up, clip 1, augmentation; paper-code (the authors' config): Adam "
                        "1e-5, no wd, batch 32, constant lr, clip 10, fp32, augmentation, "
                        "ViT-B-16")
    p.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="override the recipe's batch size")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=None,
                   help="override the recipe's optimizer (sgd: no momentum, no weight decay)")
    p.add_argument("--clip", type=float, default=None, help="override gradient-norm clipping")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="override the recipe's train augmentation (open_clip's train transform)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"epochs (default per dataset: {EPOCHS})")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the model init (random weights), every epoch's sample order and "
                        "augmentation")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="parameter dtype (float64 for CPU cross-checks with the theory)")
    p.add_argument("--no-amp", action="store_true",
                   help="disable bf16 autocast on CUDA (the ilharco recipe's default)")
    p.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="data loader workers (default: min(4, cores))")
    p.add_argument("--max-samples", type=_positive_int, default=None,
                   help="cap every split at N samples (smoke runs)")
    p.add_argument("--no-shuffle", action="store_true",
                   help="visit the training samples in a fixed order (theory cross-checks)")
    p.add_argument("--no-record", action="store_true",
                   help="plain finetuning: no gradient norms, g0 or per-epoch deltas")
    p.add_argument("--keep-deltas", type=_positive_int, default=None, metavar="N",
                   help="keep only the first N per-epoch deltas once a run has finished (norms "
                        "and cosines are recorded for every epoch); default: keep all")


def _cfg(args, dataset: str, **over) -> FinetuneConfig:
    kw = dict(dataset=dataset, model=args.model, pretrained=args.pretrained,
              data_root=args.data_root, out=args.out, recipe=args.recipe, lr=args.lr,
              batch_size=args.batch_size, epochs=args.epochs, optimizer=args.optimizer,
              clip=args.clip, augment=args.augment, seed=args.seed, dtype=args.dtype,
              amp=False if args.no_amp else None, download=args.download,
              num_workers=args.num_workers, max_samples=args.max_samples,
              cache_dir=args.cache_dir, record=not args.no_record, shuffle=not args.no_shuffle,
              keep_deltas=args.keep_deltas)
    if args.device:
        kw["device"] = args.device
    return FinetuneConfig(**{**kw, **over})


def _finetune_argv(args) -> list[str]:
    """The ``finetune`` options that reproduce ``args`` (for one process per GPU)."""
    out = []
    for opt, value in (("--model", args.model), ("--pretrained", args.pretrained),
                       ("--cache-dir", args.cache_dir), ("--data-root", args.data_root),
                       ("--out", args.out), ("--recipe", args.recipe), ("--lr", args.lr),
                       ("--batch-size", args.batch_size), ("--optimizer", args.optimizer),
                       ("--clip", args.clip), ("--seed", args.seed),
                       ("--dtype", args.dtype), ("--num-workers", args.num_workers),
                       ("--max-samples", args.max_samples), ("--keep-deltas", args.keep_deltas)):
        if value is not None:
            out += [opt, str(value)]
    for flag, on in (("--download", args.download), ("--no-amp", args.no_amp),
                     ("--no-shuffle", args.no_shuffle), ("--no-record", args.no_record)):
        if on:
            out.append(flag)
    if args.augment is not None:
        out.append("--augment" if args.augment else "--no-augment")
    return out


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
    r.add_argument("--out", default="runs", help="the runs folder (default runs/)")
    r.add_argument("--html", default="reports/empirical.html")
    r.set_defaults(handler=_report)
    a = sub.add_parser("empirical-all", help="finetune every dataset, merge, report (resumable)")
    a.add_argument("--datasets", default=",".join(DATASETS))
    a.add_argument("--devices", default=None,
                   help="comma-separated CUDA device ids (e.g. 0,1): one process per GPU over "
                        "the datasets")
    a.add_argument("--html", default="reports/empirical.html")
    _merge_args(a)
    _common(a)
    a.set_defaults(handler=_all)
    s = sub.add_parser("synthetic-data", help="write small stand-ins of the seven datasets in "
                                              "their real on-disk formats (smoke tests)")
    s.add_argument("--root", required=True, help="folder to write them under (created)")
    s.add_argument("--datasets", default=",".join(DATASETS))
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(handler=_synthetic)
    _clip_commands(sub)


def _synthetic(args) -> int:
    from .synthetic import write_all
    datasets = _datasets(args)
    write_all(args.root, seed=args.seed, datasets=datasets)
    print(f"wrote {', '.join(datasets)} under {args.root}; try: tvgrad finetune --model "
          f"tvgrad-tiny-ViT --pretrained none --dataset {datasets[0]} --data-root {args.root} "
          f"--max-samples 64 --device cpu --epochs 1")
    return 0


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


def _jobs(args, datasets: list[str]) -> list[FinetuneConfig]:
    """The finetuning runs of ``empirical-all``: each dataset's full run and, where the recipe's
    schedule depends on the total steps, its one-epoch run (the merge's one-epoch arm).
    """
    jobs = []
    for d in datasets:
        c = _cfg(args, d)
        jobs.append(c)
        if c.effective.schedule != "constant" and c.n_epochs > 1:
            jobs.append(_cfg(args, d, epochs=1))
    return jobs


def _all(args) -> int:
    datasets = _datasets(args)
    jobs = _jobs(args, datasets)
    if args.devices is not None:
        devices = [d.strip() for d in args.devices.split(",")]
        if not devices or not all(d.isdigit() for d in devices):
            raise InvalidInput(f"--devices {args.devices!r}: expected comma-separated CUDA "
                               f"device ids such as 0,1")
        _parallel(_finetune_argv(args), jobs, devices)
    else:
        from .finetune import finetune
        for c in jobs:
            finetune(c)
    _merge_cmd(args)
    return _report(args)


# Random examples per CLIP claim for each profile: a CLIP example costs seconds (the tiny
# config) to minutes (ViT-B-32), a thousand times a feed-forward one.
CLIP_EXAMPLES = {"ci": 2, "dev": 4, "verify": 8}


def _clip_commands(sub) -> None:
    v = sub.add_parser("verify-clip", help="check the paper's claims on CLIP itself; writes "
                                           "clip_claims.json, its CSV and clip_claims.html")
    v.add_argument("--model", default="tvgrad-tiny-ViT",
                   help="open_clip model (default: the tiny config shipped with tvgrad)")
    v.add_argument("--pretrained", default="none",
                   help="open_clip tag, local checkpoint, or none (random weights; default)")
    v.add_argument("--data-root", default="synthetic",
                   help="datasets folder, or 'synthetic' (MNIST and RESISC45 generated offline; "
                        "the default)")
    v.add_argument("--datasets", default=None,
                   help="comma-separated datasets to draw from (default: MNIST,RESISC45)")
    v.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    v.add_argument("--cache-dir", default=None, help="open_clip weight cache")
    v.add_argument("--max-n", type=int, default=8, help="most samples per task drawn (default 8)")
    v.add_argument("--micro-batch", type=int, default=None,
                   help="differentiate over at most this many images at a time (large models)")
    v.add_argument("--profile", default=None,
                   help="ci, dev or verify (default: $TVGRAD_PROFILE or verify)")
    v.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"Hypothesis seed (default {DEFAULT_SEED})")
    v.add_argument("--out", default="reports", help="output folder (default reports/)")
    v.add_argument("--claim", action="append", default=None, metavar="ID",
                   help="run only this claim (repeatable)")
    v.add_argument("--max-examples", type=int, default=None,
                   help=f"random examples per claim (default per profile: {CLIP_EXAMPLES})")
    v.add_argument("--no-audit", action="store_true", help="skip the planted wrong variants")
    v.add_argument("--time-budget", type=float, default=None, metavar="SECONDS")
    v.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (each loads the model once; default min(2, cores))")
    v.set_defaults(handler=_verify_clip)
    from ..theory.cli import reproduce_parser
    reproduce_parser(sub, "reproduce-clip", "re-run one CLIP claim on one case", _reproduce_clip)


def _verify_clip(args) -> int:
    from pathlib import Path

    from ..publish import snapshot
    from ..theory.campaign import exit_code, summary_table, verify
    from ..theory.report import render_clip_into, write_report
    from .clip_claims import clip_claims
    from .clip_problem import ClipSetup, preflight
    datasets = tuple(d.strip() for d in (args.datasets or "MNIST,RESISC45").split(",") if d.strip())
    if args.max_examples is not None and args.max_examples < 1:
        raise InvalidInput(f"--max-examples must be >= 1, got {args.max_examples}")
    from ..theory.cli import check_jobs
    check_jobs(args.jobs)
    setup = ClipSetup(model=args.model, pretrained=args.pretrained, data_root=args.data_root,
                      datasets=datasets, device=args.device, max_n=args.max_n,
                      cache_dir=args.cache_dir, micro_batch=args.micro_batch)
    preflight(setup)  # model, weights, data, subset size, double backward: before any file
    profile = args.profile or os.environ.get("TVGRAD_PROFILE") or "verify"
    if profile not in CLIP_EXAMPLES:
        raise InvalidInput(f"unknown profile {profile!r}; choose one of {list(CLIP_EXAMPLES)}")
    out = Path(args.out)
    doc = verify(claims=args.claim, profile=profile, seed=args.seed, out=out,
                 max_examples=args.max_examples or CLIP_EXAMPLES[profile], audit=not args.no_audit,
                 time_budget=args.time_budget, factory=(clip_claims, setup), jobs=args.jobs,
                 stem="clip_claims", finalize=render_clip_into,
                 extra={"clip": {**setup.__dict__, "datasets": list(setup.datasets)}})
    html = out / "clip_claims.html"
    if (snapshot(out, "theory") / "theory.json").exists():
        write_report(out)  # theory.html's section on CLIP
    print(summary_table(doc))
    print(f"\nwrote {out / 'clip_claims.json'}, {out / 'clip_claims_examples.csv'}, {html} in "
          f"{doc['duration_s']:.1f} s ({setup.model}, weights {setup.pretrained}, data "
          f"{setup.data_root}, profile {profile})")
    return exit_code(doc)


def _reproduce_clip(args) -> int:
    from ..theory.cli import print_outcome
    from .clip_claims import ClipCase, clip_claims
    try:
        case = ClipCase.from_json(args.case)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"--case is not a valid ClipCase: {exc}") from None
    return print_outcome(clip_claims(case.setup)[args.claim].run(case, args.variant))


class JobsFailed(RuntimeError):
    """A finetuning process of ``empirical-all --devices`` failed."""


def _parallel(common: list[str], jobs: list[FinetuneConfig], devices: list[str]) -> None:
    """One process per GPU, each running its share of the jobs (round-robin) one after another."""
    procs = []
    for i, dev in enumerate(devices):
        mine = jobs[i::len(devices)]
        if not mine:
            continue
        cmd = " && ".join(shlex.join([sys.executable, "-m", "tvgrad", "finetune", "--dataset",
                                      c.dataset, *common, "--epochs", str(c.n_epochs)])
                          for c in mine)
        procs.append((dev, subprocess.Popen(cmd, shell=True,
                                            env={**os.environ, "CUDA_VISIBLE_DEVICES": dev})))
    failed = [(dev, rc) for dev, p in procs if (rc := p.wait())]
    if failed:
        raise JobsFailed(f"finetuning failed on GPU(s) {failed} (device, exit code); the "
                         f"messages are above; rerun to resume")


ERRORS = (DatasetMissing, WeightsMissing, FileNotFoundError, ValueError, JobsFailed)
"""The exceptions the empirical commands report as one-line user errors (exit 2)."""
