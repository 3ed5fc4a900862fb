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
    """Fitted slopes minus the claimed ones (2 for r₁, 3 for r₂) of every holding example of
    the expansion claims, with the accepted band (the median band of the fits) shaded.
    """
    with figure(2, len(EXPANSION_CLAIMS), figsize=(11, 5.2)) as (fig, axes):
        return _slope_histograms(fig, axes, rows)


def _slope_histograms(fig, axes, rows: list[dict]) -> Markup | None:
    import numpy as np
    any_data = False
    for col, cid in enumerate(EXPANSION_CLAIMS):
        sub = [r for r in rows if r["claim"] == cid and r["verdict"] == "holds"]
        for row, (key, ref, color, what) in enumerate((
                ("r1", 2, "tab:blue", "‖q − ηv₁‖: slope − 2"),
                ("r2", 3, "tab:orange", "‖q − ηv₁ − η²v₂‖: slope − 3"))):
            ax = axes[row][col]
            vals = [v - ref for v in _floats(sub, f"m.slope_{key}")]
            bands = _floats(sub, f"m.band_{key}")
            band = float(np.median(bands)) if bands else None
            if band:
                ax.axvspan(-band, band if key == "r1" else max(band, max(vals, default=0)),
                           color=color, alpha=0.12, label=f"accepted (band {band:.3f})")
            if vals:
                any_data = True
                edges = np.histogram_bin_edges(vals, bins="auto")
                if len(edges) < 8:  # a tight cluster: spread the bins over the band
                    lo, hi = min(vals + [-(band or 0.01)]), max(vals + [band or 0.01])
                    edges = np.linspace(lo, hi, 25)
                ax.hist(vals, bins=edges, color=color, alpha=0.8, label=f"n = {len(vals)}")
                ax.axvline(float(np.median(vals)), color="k", lw=0.8,
                           label=f"median {np.median(vals):+.4f}")
            ax.axvline(0, color="k", ls="--", lw=0.6)
            ax.set_title(f"{cid}", fontsize=8)
            ax.set_xlabel(what, fontsize=8)
            ax.set_ylabel("examples", fontsize=8)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return svg(fig) if any_data else None


def residual_curves(claim: dict) -> Markup | None:
    """Error vs η for the representative examples stored with ``claim`` in theory.json."""
    picks = claim.get("curves") or []
    if not picks:
        return None
    with figure(1, len(picks), figsize=(4.6 * len(picks), 3.2)) as (fig, axes):
        for ax, pick in zip(axes[0], picks):
            _curve_panel(ax, pick)
        for ax in axes[0][:-1]:  # one legend, beside the last panel
            ax.get_legend().remove()
        fig.tight_layout()
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
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("residual norm")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def tolerance_usage(rows: list[dict]) -> Markup | None:
    """Histogram of the share of the derived rounding tolerance the exact claims used."""
    with figure(figsize=(8, 3)) as (fig, axes):
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
    ax.set_ylabel("examples")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return svg(fig) if any_data else None


BOUNDS = (("m.third_order", "third-order bound C(k,2)η²‖Hg‖ + η³R₃(M, T) (new)", "tab:red"),
          ("m.g_anchored", "g-anchored bound ‖g‖((1+ηM)ᵏ−1−kηM)/M (new)", "tab:green"),
          ("m.apriori", "a-priori bound η²M(R)G(R)C(k,2) (old)", "tab:blue"),
          ("m.trajectory", "trajectory bound ηM(R_t)Σ‖θᵢ−θ₀‖", "tab:orange"),
          ("m.naive", "naive bound", "grey"))


def _error_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["claim"] == "ffn_second_order_error_bound"
            and r["verdict"] == "holds"]


def bound_scatter(rows: list[dict]) -> Markup | None:
    """The actual second-order error against each bound, log-log, with y = x (below it: sound)."""
    err = _error_rows(rows)
    if not err:
        return None
    with figure(figsize=(7.5, 5.5)) as (fig, axes):
        ax = axes[0][0]
        for key, label, color in BOUNDS:
            pts = [(_float(r.get(key)), _float(r["m.actual"])) for r in err]
            pts = [(x, y) for x, y in pts if x > 0 and y > 0 and max(x, y) < 1e250
                   and min(x, y) > 1e-250]
            if pts:
                ax.loglog(*zip(*pts), ".", ms=4, color=color, label=f"{label} (n = {len(pts)})")
        lo, hi = ax.get_xlim()
        ax.loglog([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x (above: the bound fails)")
        ax.set_xlabel("bound on ‖τ⁽ᵏ⁾ + kηg‖")
        ax.set_ylabel("actual ‖τ⁽ᵏ⁾ + kηg‖")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return svg(fig)


def ratio_groups(rows: list[dict], field: str, key: str = "m.actual_over_apriori") -> dict:
    """Ratios ``key`` of the holding error-bound examples grouped by ``field`` (the widest
    layer groups the widths).
    """
    groups: dict = defaultdict(list)
    for r in _error_rows(rows):
        v = _float(r.get(key))
        if v > 0 and 1e-250 < v < 1e250:
            groups[_width_group(r[field]) if field == "widths" else (r[field] or "(none)")].append(v)
    return dict(sorted(groups.items()))


def ratio_plots(rows: list[dict]) -> Markup | None:
    """Actual / a-priori and actual / trajectory bound by depth, width, activation and loss,
    medians written above the boxes.
    """
    if not _error_rows(rows):
        return None
    fields = ("depth", "widths", "activation", "loss")
    with figure(2, 2, figsize=(11, 7.5)) as (fig, axes):
        for ax, field in zip(axes.flat, fields):
            _ratio_boxes(ax, rows, field)
        fig.tight_layout()
        return svg(fig)


def _width_group(widths: str) -> str:
    w = max(int(x) for x in widths.split("x"))
    return ("1–4" if w <= 4 else "5–8" if w <= 8 else "9–16" if w <= 16 else "17–64" if w <= 64
            else ">64")


def _ratio_boxes(ax, rows: list[dict], field: str) -> None:
    import numpy as np
    for shift, key, color, label in ((-0.3, "m.actual_over_apriori", "tab:blue", "a-priori (old)"),
                                     (-0.1, "m.actual_over_g_anchored", "tab:green", "g-anchored (new)"),
                                     (0.1, "m.actual_over_third_order", "tab:red", "third-order (new)"),
                                     (0.3, "m.actual_over_trajectory", "tab:orange", "trajectory")):
        groups = ratio_groups(rows, field, key)
        keys = list(groups)
        if not keys:
            continue
        pos = [i + 1 + shift for i in range(len(keys))]
        b = ax.boxplot([groups[k] for k in keys], positions=pos, widths=0.17, patch_artist=True,
                       manage_ticks=False)
        for patch in b["boxes"]:
            patch.set_facecolor(color)
            patch.set_alpha(0.5)
        for x, k in zip(pos, keys):
            med = float(np.median(groups[k]))
            ax.annotate(f"{med:.2g}", (x, med), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=6, color=color)
        ax.set_xticks(range(1, len(keys) + 1), keys, fontsize=7)
        ax.plot([], [], color=color, lw=6, alpha=0.5, label=f"actual / {label} bound")
    ax.set_yscale("log")
    ax.axhline(1, color="k", ls="--", lw=0.6)
    ax.set_xlabel(field if field != "widths" else "widest layer")
    ax.set_ylabel("actual error / bound (≤ 1: sound)")
    ax.legend(fontsize=6, loc="lower left")


def regime(rows: list[dict]) -> dict:
    """How many error-bound examples fell outside both regimes (no a-priori and no g-anchored
    bound), the share where the best bound is below the first-order term (useful), and the
    medians of the ratios.
    """
    import numpy as np
    ex = [r for r in rows if r["claim"] == "ffn_second_order_error_bound"
          and r["verdict"] != "diverged"]
    outside = [r for r in ex if not r.get("m.apriori") and not r.get("m.g_anchored")]
    med = {}
    for name in ("apriori", "g_anchored", "third_order", "best", "trajectory"):
        v = [x for x in _floats(_error_rows(rows), f"m.actual_over_{name}") if x > 0]
        med[f"median_{name}"] = float(np.median(v)) if v else None
    useful = _floats(_error_rows(rows), "m.best_over_first_order")
    return {"examples": len(ex), "outside": len(outside),
            "share_outside": len(outside) / len(ex) if ex else None,
            "share_useful": (sum(v < 1 for v in useful) / len(useful)) if useful else None,
            **med}


def hessian_hist(rows: list[dict]) -> Markup | None:
    """Max exact ‖∇²L‖₂ / M(R) over the checked points."""
    vals = [v for v in (_float(r.get("m.exact_over_bound")) for r in rows
                        if r["claim"] == "ffn_hessian_bound" and r["verdict"] == "holds") if v > 0]
    if not vals:
        return None
    with figure(figsize=(7, 3)) as (fig, axes):
        ax = axes[0][0]
        ax.hist(vals, bins=30, color="tab:green")
        ax.set_xlabel("exact ‖∇²L(θ)‖₂ / M(R), max over the checked points (≤ 1: sound)")
        ax.set_ylabel("examples")
        return svg(fig)


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def verdicts_by(rows: list[dict], field: str) -> dict:
    """Verdict counts grouped by one case field (activation, loss, depth)."""
    table: dict = defaultdict(lambda: defaultdict(int))
    for r in rows:
        table[r.get(field) or "(not applicable)"][r["verdict"]] += 1
    return {k: dict(v) for k, v in sorted(table.items())}


NOTATION = (
    (r"\theta_0", "the parameters before finetuning (all of them, one vector)"),
    (r"\eta", "the learning rate; k the number of epochs; T the number of tasks"),
    (r"g = \nabla L(\theta_0),\ H = \nabla^2 L(\theta_0)", "gradient and Hessian of the mean loss at θ₀ (g_t, H_t: task t; g_b, H_b: batch b)"),
    (r"\tau^{(k)} = \theta_k - \theta_0", "the task vector after k epochs; Δ_e = θ_e − θ_{e−1} one epoch's update"),
    (r"q = \tau^{(k)}", "what an expansion check measures (for the cross term: Σ_t τ_t − Δ_MTL)"),
    (r"v_1,\ v_2", "the claimed first- and second-order coefficients: q = ηv₁ + η²v₂ + O(η³); r₁ = ‖q − ηv₁‖ must fall with slope 2 in η, r₂ = ‖q − ηv₁ − η²v₂‖ with slope ≥ 3"),
    (r"R,\ M(R),\ G(R)", "a ball radius around θ₀ and the certified bounds on ‖∇²L‖₂ and ‖∇L‖ over it"),
    (r"\binom{k}{2}", "k(k−1)/2, the number of ordered pairs of epochs"),
)
"""Symbols used in the report, defined once at its top."""


def theorem_text() -> str:
    """theory/bound.md (shipped in the package), rendered as Markdown with MathML."""
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
             "bound_scatter": bound_scatter(rows), "ratios": ratio_plots(rows),
             "hessian": hessian_hist(rows), "curves": _curves(doc),
             "clip_curves": _curves(clip) if clip else {}}
    return environment().get_template("theory.html.j2").render(
        doc=doc, plots=plots, theorem=theorem_text(), clip=clip, title=title,
        regime=regime(rows), notation=NOTATION,
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
