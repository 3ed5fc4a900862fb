"""``reports/empirical.html``: per-epoch shares beside the published ones, cosines, merging."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from ..io import atomic_write
from ..render import environment, figure, svg
from .io import read_json

REFERENCE = Path(__file__).parent / "reference"


def reference_shares() -> dict[str, list[float]]:
    """The published per-epoch gradient-norm shares, per dataset."""
    out: dict[str, list[float]] = defaultdict(list)
    with (REFERENCE / "epoch_gradient_norms.csv").open() as fh:
        for row in csv.DictReader(fh):
            out[row["dataset"]].append(float(row["normalized_grad_norm"]))
    return dict(out)


PUBLISHED = {"model": "ViT-B-16", "recipe": "paper-code"}
"""How the published shares were logged (../shared/reference/README.md): ViT-B-16, the
authors' config, the epoch counts of the CSV."""


def comparable(run: dict, ref: dict[str, list[float]] | None = None) -> tuple[bool, str]:
    """Whether ``run``'s shares can stand beside the published ones, and why not.

    They can when the backbone is ViT-B-16 (either activation tag), the recipe is paper-code
    with no override, and the run has as many epochs as the published one.
    """
    from dataclasses import asdict

    from .finetune import RECIPES
    ref = reference_shares() if ref is None else ref
    published = ref.get(run["dataset"])
    if not published:
        return False, f"no published shares for {run['dataset']}"
    model = run.get("model") or run.get("config", {}).get("model", "?")
    rec = {k: v for k, v in run["recipe"].items() if k != "name"}
    diffs = []
    if not model.startswith(PUBLISHED["model"] + "-") and model != PUBLISHED["model"]:
        diffs.append(f"model {model} (published: {PUBLISHED['model']})")
    if run["recipe"]["name"] != PUBLISHED["recipe"] or rec != asdict(RECIPES[PUBLISHED["recipe"]]):
        diffs.append(f"recipe {run['recipe']['name']}"
                     + ("" if run["recipe"]["name"] != PUBLISHED["recipe"] else " with overrides")
                     + f" (published: {PUBLISHED['recipe']})")
    if len(run["epochs"]) != len(published):
        diffs.append(f"{len(run['epochs'])} epochs (published: {len(published)})")
    return (not diffs), "; ".join(diffs)


def _grid(n: int, cols: int = 3):
    rows = max(1, -(-n // cols))
    return rows, min(n, cols)


def shares_plot(runs: list[dict]):
    """Per-epoch update and gradient-norm shares of each run beside the published shares."""
    if not runs:
        return None
    nr, nc = _grid(len(runs))
    with figure(nr, nc, figsize=(4.6 * nc, 3.4 * nr)) as (fig, axes):
        ref = reference_shares()
        for ax, r in zip(axes.flat, runs):
            _shares_panel(ax, r, ref)
        for ax in list(axes.flat)[len(runs):]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=7,
                   bbox_to_anchor=(0.5, 1.04))
        fig.tight_layout()
        return svg(fig)


def cosine_plot(runs: list[dict]):
    """cos(τ, Δ_e) per epoch, one line per run: how aligned each epoch is with the task vector."""
    runs = [r for r in runs if r["epochs"] and r["epochs"][0].get("cos_tau_delta") is not None]
    if not runs:
        return None
    with figure(figsize=(8, 3.6)) as (fig, axes):
        ax = axes[0][0]
        for r in runs:
            ys = [e.get("cos_tau_delta") for e in r["epochs"]]
            ax.plot(range(1, len(ys) + 1), ys, ".-", ms=4, lw=1,
                    label=f"{r['dataset']} ({r.get('model', '?')}, {r['recipe']['name']})")
        ax.set_xlabel("epoch e")
        ax.set_ylabel("cos(τ, Δ_e)")
        ax.axhline(0, color="k", lw=0.5)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return svg(fig)


def alpha_plot(merge: dict):
    """Validation accuracy against α for the one-epoch and converged arms, per dataset."""
    datasets = merge["datasets"]
    nr, nc = _grid(len(datasets) + 1)
    with figure(nr, nc, figsize=(4.2 * nc, 3.2 * nr)) as (fig, axes):
        panels = list(axes.flat)
        for ax, d in zip(panels, datasets + ["mean"]):
            for kind, color in (("one_epoch", "tab:blue"), ("converged", "tab:orange")):
                k = merge["kinds"].get(kind)
                if not k:
                    continue
                xs = [p["alpha"] for p in k["val_curve"]]
                ys = [p["mean_val_accuracy"] if d == "mean" else p["val_accuracy"][d]
                      for p in k["val_curve"]]
                ax.plot(xs, ys, ".-", color=color, ms=3, lw=1, label=kind.replace("_", "-"))
                ax.axvline(k["best_alpha"], color=color, ls=":", lw=0.8)
            ax.set_title(d if d != "mean" else "mean over the datasets (chooses α)", fontsize=8)
            ax.set_xlabel("α")
            ax.set_ylabel("validation accuracy")
        for ax in panels[len(datasets) + 1:]:
            ax.set_visible(False)
        handles, labels = panels[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=7,
                   bbox_to_anchor=(0.5, 1.04))
        fig.tight_layout()
        return svg(fig)


def _shares_panel(ax, r: dict, ref: dict) -> None:
    ep = r["epochs"]
    x = list(range(1, len(ep) + 1))
    w = 0.27
    ax.bar([i - w for i in x], [e.get("update_norm_share") or 0 for e in ep], w,
           label="ours: ‖Δ_e‖ share")
    ax.set_ylabel("share of the sum over epochs")
    ax.bar(x, [e.get("grad_norm_share") or 0 for e in ep], w, label="ours: grad-norm share")
    ok, why = comparable(r, ref)
    if ok:
        rs = ref[r["dataset"]]
        ax.bar([i + w for i in range(1, len(rs) + 1)], rs, w, color="grey",
               label="published grad-norm share (ViT-B-16, paper-code)")
    ax.set_title(f"{r['dataset']} ({r.get('model', '?')}, {r['recipe']['name']})"
                 + ("" if ok else "\npublished shares not shown: " + why), fontsize=6)
    ax.set_xlabel("epoch")


def build(runs_dir: str | Path, out: str | Path = "reports/empirical.html") -> Path:
    """Render the finished runs and merges under ``runs_dir`` into ``out`` (HTML)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} not found: finetune first "
                                f"(tvgrad finetune …) or pass --out")
    runs = [read_json(p) for p in sorted(runs_dir.rglob("results.json"))]
    runs = [r for r in runs if r.get("complete")]
    if not runs:
        raise FileNotFoundError(f"no finished runs under {runs_dir} (no complete results.json); "
                                f"finetune first or pass the runs folder with --out")
    merges = [read_json(p) for p in sorted(runs_dir.rglob("merge-*.json"))]
    ref_acc = json.loads((REFERENCE / "finetuned_accuracy.json").read_text())
    for r in runs:
        r["published_comparable"], r["published_mismatch"] = comparable(r)
    html = environment().get_template("empirical.html.j2").render(
        runs=runs, merges=merges, plot=shares_plot(runs), ref_acc=ref_acc,
        cosines=cosine_plot(runs), alpha_plots=[alpha_plot(m) for m in merges])
    out = Path(out)
    atomic_write(out, html)
    return out
