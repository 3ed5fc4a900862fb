"""Render ``theory.json`` (+ ``theory_examples.csv``) into one self-contained HTML file.

The report is drawn from those two files alone — no claim is re-run (``theory.json`` stores
the residual curves it plots). No network and no CDN: plots are inline SVG from matplotlib
(text drawn as paths), the page is a Jinja2 template with autoescape, so any string from a
record (an activation name, a case description) appears as text, never as markup.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from importlib import resources
from pathlib import Path

from markupsafe import Markup

from ..errors import InvalidInput
from ..io import atomic_write, read_json
from ..publish import locked, publish, snapshot
from ..render import environment, figure, svg
from . import SCHEMA_VERSION

__all__ = ["render", "write_report", "write_clip_report", "read_rows", "render_theory_into",
           "render_clip_into"]
EXPANSION_CLAIMS = ("multi_epoch_second_order", "sgd_epoch_second_order", "ta_vs_mtl_cross_term")


def _floats(rows: list[dict], key: str) -> list[float]:
    out = []
    for r in rows:
        try:
            v = float(r.get(key, ""))
        except ValueError:
            continue
        if math.isfinite(v):
            out.append(v)
    return out


def slope_histograms(rows: list[dict]) -> Markup | None:
    """Histograms of the fitted slopes of every holding example of the expansion claims."""
    with figure(1, len(EXPANSION_CLAIMS), figsize=(10, 2.6)) as (fig, axes):
        return _slope_histograms(fig, axes, rows)


def _slope_histograms(fig, axes, rows: list[dict]) -> Markup | None:
    any_data = False
    for ax, cid in zip(axes[0], EXPANSION_CLAIMS):
        sub = [r for r in rows if r["claim"] == cid and r["verdict"] == "holds"]
        for key, ref, color in (("m.slope_r1", 2, "tab:blue"), ("m.slope_r2", 3, "tab:orange")):
            vals = _floats(sub, key)
            if vals:
                any_data = True
                ax.hist(vals, bins=30, color=color, alpha=0.7,
                        label=f"{'‖τ−ηv₁‖' if ref == 2 else '‖τ−ηv₁−η²v₂‖'} (n={len(vals)})")
            ax.axvline(ref, color=color, ls="--", lw=1)
        ax.set_title(cid, fontsize=8)
        ax.set_xlabel("fitted log-log slope")
        ax.legend(fontsize=6)
    return svg(fig) if any_data else None


def residual_curves(claim: dict) -> Markup | None:
    """Error vs η for the representative examples stored with ``claim`` in theory.json."""
    picks = claim.get("curves") or []
    if not picks:
        return None
    with figure(1, len(picks), figsize=(3.4 * len(picks), 2.8)) as (fig, axes):
        for ax, pick in zip(axes[0], picks):
            _curve_panel(ax, pick)
        return svg(fig)


def _curve_panel(ax, pick: dict) -> None:
    c, m, r = pick["curve"], pick["measurements"], pick["summary"]
    eta = c["eta"]
    for key, label, color in (("r1", "‖q − ηv₁‖", "tab:blue"), ("r2", "‖q − ηv₁ − η²v₂‖", "tab:orange")):
        pts = [(e, v) for e, v in zip(eta, c[key]) if v is not None and v > 0]
        if pts:
            ax.loglog(*zip(*pts), ".-", color=color, ms=3, lw=0.8, label=label)
    floor = [(e, 100 * f) for e, f in zip(eta, c["floor"]) if f is not None and f > 0]
    if floor:
        ax.loglog(*zip(*floor), color="grey", ls=":", lw=1, label="100× rounding floor")
    for key, p, color in (("r1", 2, "tab:blue"), ("r2", 3, "tab:orange")):
        w = m.get(f"window_{key}")
        if w:
            ax.axvspan(w[0], w[1], color=color, alpha=0.08)
            # reference slope p through the residual at the window's geometric centre
            mid = math.sqrt(w[0] * w[1])
            j = min(range(len(eta)), key=lambda i: abs(math.log(eta[i] / mid)))
            r0 = c[key][j]
            if r0 is not None and r0 > 0:
                xs = [w[0], w[1]]
                ax.loglog(xs, [r0 * (x / eta[j]) ** p for x in xs], color="k", lw=0.7,
                          ls="--", label=f"slope {p}")
    what = (f"{r['activation']} d={r['depth']}" if "activation" in r
            else f"{r.get('datasets')} n={r.get('n')}")
    ax.set_title(f"{what} k={r['epochs']}: slopes "
                 f"{m.get('slope_r1', float('nan')):.2f} / {m.get('slope_r2', float('nan')):.2f}",
                 fontsize=7)
    ax.set_xlabel("η")
    ax.legend(fontsize=6)


def tolerance_usage(rows: list[dict]) -> Markup | None:
    """Histogram of the share of the derived rounding tolerance the exact claims used."""
    with figure(figsize=(6, 2.6)) as (fig, axes):
        return _tolerance_usage(fig, axes[0][0], rows)


def _tolerance_usage(fig, ax, rows: list[dict]) -> Markup | None:
    any_data = False
    for cid, key in (("one_epoch_exact", "m.max_ratio_float64"), ("one_epoch_exact", "m.max_ratio_float32"),
                     ("ta_equals_mtl_step", "m.max_ratio_sum_float32")):
        vals = [v for v in _floats([r for r in rows if r["claim"] == cid], key) if v > 0]
        if vals:
            any_data = True
            ax.hist(vals, bins=30, range=(0, 1), alpha=0.6, label=f"{cid} {key[2:]}")
    ax.set_xlabel("max over coordinates of |computed − exact| / derived tolerance (≤ 1 passes)")
    ax.legend(fontsize=6)
    return svg(fig) if any_data else None


def bound_tightness(rows: list[dict]) -> Markup | None:
    """Actual error vs bound (log-log, y = x), ratios by depth, activation, loss and width,
    and the Hessian-norm bound vs the exact norm.
    """
    err = [r for r in rows if r["claim"] == "ffn_second_order_error_bound" and r["verdict"] == "holds"]
    hess = [r for r in rows if r["claim"] == "ffn_hessian_bound" and r["verdict"] == "holds"]
    if not err and not hess:
        return None
    with figure(1, 6, figsize=(19, 3)) as (fig, axes):
        _bound_scatter(axes[0][0], err)
        for ax, field in zip(axes[0][1:5], ("depth", "activation", "loss", "widths")):
            _ratio_boxes(ax, err, field)
        _hessian_hist(axes[0][5], hess)
        return svg(fig)


def _bound_scatter(ax, err: list[dict]) -> None:
    for key, label, color in (("m.apriori", "a priori", "tab:blue"),
                              ("m.trajectory", "trajectory", "tab:orange"),
                              ("m.naive", "naive", "grey")):
        pts = [(float(r[key]), float(r["m.actual"])) for r in err
               if r.get(key) and float(r["m.actual"]) > 0 and float(r[key]) > 0]
        if pts:
            ax.loglog(*zip(*pts), ".", ms=3, color=color, label=label)
    lims = ax.get_xlim()
    ax.loglog(lims, lims, "k--", lw=0.8, label="y = x")
    ax.set_xlabel("bound")
    ax.set_ylabel("actual ‖τ + kηg‖")
    ax.legend(fontsize=6)


def _width_group(widths: str) -> str:
    w = max(int(x) for x in widths.split("x"))
    return "1–4" if w <= 4 else "5–8" if w <= 8 else "9–16" if w <= 16 else ">16"


def _ratio_boxes(ax, err: list[dict], field: str) -> None:
    groups: dict = defaultdict(list)
    for r in err:
        v = _float(r.get("m.actual_over_apriori"))
        if v > 0:  # the widest layer groups the widths
            groups[_width_group(r[field]) if field == "widths" else r[field]].append(v)
    keys = sorted(groups)
    if keys:
        ax.boxplot([groups[k] for k in keys])
        ax.set_xticks(range(1, len(keys) + 1), keys, fontsize=7)
        ax.set_yscale("log")
    ax.set_title(f"actual / a-priori by {field}", fontsize=8)


def _hessian_hist(ax, hess: list[dict]) -> None:
    vals = [v for v in (_float(r.get("m.exact_over_bound")) for r in hess) if v > 0]
    if vals:
        ax.hist(vals, bins=30)
        ax.set_xlabel("max exact ‖∇²L‖₂ / M(R) over the checked points")


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def verdicts_by(rows: list[dict], field: str) -> dict:
    """Verdict counts grouped by one case field (activation, loss, depth)."""
    table: dict = defaultdict(lambda: defaultdict(int))
    for r in rows:
        table[r.get(field, "")][r["verdict"]] += 1
    return {k: dict(v) for k, v in sorted(table.items())}


def theorem_text() -> str:
    """theory/bound.md (shipped in the package), shown as escaped preformatted text."""
    return (resources.files("tvgrad.theory") / "bound.md").read_text(encoding="utf-8")


def _curves(doc: dict) -> dict:
    claims = {c["id"]: c for c in doc.get("claims", [])}
    return {cid: residual_curves(claims[cid]) for cid in EXPANSION_CLAIMS if cid in claims}


def render(doc: dict, rows: list[dict], clip: dict | None = None,
           title: str = "does the theory of “On Task Vectors and Gradients” hold?") -> str:
    """The HTML page of a campaign document and its example rows.

    Args:
        doc: the campaign document (``theory.json`` or ``clip_claims.json``).
        rows: its example rows (the CSV).
        clip: a ``clip_claims.json`` document, shown as its own section.
        title: the page's heading.
    """
    plots = {"slopes": slope_histograms(rows), "tolerance": tolerance_usage(rows),
             "bound": bound_tightness(rows), "curves": _curves(doc),
             "clip_curves": _curves(clip) if clip else {}}
    return environment().get_template("theory.html.j2").render(
        doc=doc, plots=plots, theorem=theorem_text(), clip=clip, title=title,
        by_activation=verdicts_by(rows, "activation"), by_loss=verdicts_by(rows, "loss"),
        by_depth=verdicts_by(rows, "depth"))


def read_rows(csv_path: Path) -> list[dict]:
    """The example rows of ``theory_examples.csv`` (none if the file is absent)."""
    if not csv_path.exists():
        return []
    with csv_path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _load(path: Path, command: str) -> dict:
    if not path.exists():
        raise InvalidInput(f"{path} not found: run `{command} --out {path.parent}` first")
    doc = read_json(path)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise InvalidInput(f"{path} has schema version {doc.get('schema_version')!r}; this "
                           f"tvgrad renders version {SCHEMA_VERSION}: re-run `{command}`")
    return doc


def _texts(src: Path, stem: str) -> dict[str, str]:
    return {name: (src / name).read_text(encoding="utf-8")
            for name in (f"{stem}.json", f"{stem}_examples.csv") if (src / name).exists()}


def render_theory_into(snap: Path, out_dir: Path) -> None:
    """Render ``snap/theory.json`` + CSV into ``snap/theory.html`` (with a section on CLIP when
    ``out_dir`` holds a CLIP campaign: its current snapshot).
    """
    doc = _load(snap / "theory.json", "tvgrad verify")
    clip_src = snapshot(out_dir, "clip_claims")
    clip = (_load(clip_src / "clip_claims.json", "tvgrad verify-clip")
            if (clip_src / "clip_claims.json").exists() else None)
    atomic_write(snap / "theory.html", render(doc, read_rows(snap / "theory_examples.csv"),
                                              clip=clip))


def render_clip_into(snap: Path) -> None:
    """Render ``snap/clip_claims.json`` + CSV into ``snap/clip_claims.html``."""
    clip = _load(snap / "clip_claims.json", "tvgrad verify-clip")
    setup = clip.get("clip", {})
    atomic_write(snap / "clip_claims.html", render(
        clip, read_rows(snap / "clip_claims_examples.csv"),
        title=f"the claims on CLIP ({setup.get('model')}, weights {setup.get('pretrained')})"))


def write_report(out_dir: str | Path) -> Path:
    """Re-render ``out_dir/theory.html`` from the current ``theory.json`` and CSV (with a
    section on CLIP when ``clip_claims.json`` is there too), published together with them as
    a new snapshot (:mod:`tvgrad.publish`).

    Raises:
        InvalidInput: no ``theory.json`` in ``out_dir`` (run ``tvgrad verify`` first), one
            written by another schema version, or another run holds the folder.
    """
    out_dir = Path(out_dir)
    src = snapshot(out_dir, "theory")
    _load(src / "theory.json", "tvgrad verify")
    with locked(out_dir, "tvgrad report"):
        publish(out_dir, "theory", _texts(src, "theory"),
                finalize=lambda snap: render_theory_into(snap, out_dir))
    return out_dir / "theory.html"


def write_clip_report(out_dir: str | Path) -> Path:
    """Re-render ``clip_claims.html`` from the current ``clip_claims.json`` (+ CSV); refresh
    ``theory.html`` too when a theory campaign is in the same folder (its CLIP section).
    """
    out_dir = Path(out_dir)
    src = snapshot(out_dir, "clip_claims")
    _load(src / "clip_claims.json", "tvgrad verify-clip")
    with locked(out_dir, "tvgrad report"):
        publish(out_dir, "clip_claims", _texts(src, "clip_claims"), finalize=render_clip_into)
    if (snapshot(out_dir, "theory") / "theory.json").exists():
        write_report(out_dir)
    return out_dir / "clip_claims.html"
