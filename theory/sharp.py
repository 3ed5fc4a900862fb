"""Sharp cases for the constants of the explicit bound: where lowering one constant by 10 %
makes the bound claims violated.

The bound is sharpest on tiny networks (width 1–2, one or two samples, large inputs or residuals,
a small or moderate ball), a region a uniform random strategy rarely draws. :func:`corner_cases`
draws from that region (it is mixed into the bound claims' strategy); :func:`search` looks in it
for a case that rejects a given planted variant while the true claim holds; found cases are
stored as data in ``sharp_cases.json`` beside this file and pinned as examples, and the variant
they reject becomes a must-reject.

``python -m tvgrad.theory.sharp [--seconds S]`` re-runs the search for every sharpness variant
and rewrites ``sharp_cases.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from importlib import resources
from pathlib import Path

from hypothesis import strategies as st

from .activations import SMOOTH_ACTIVATIONS
from .cases import Case
from .nets import NetSpec

__all__ = ["corner_cases", "random_corner", "search", "load_sharp_cases", "CORNERS"]

WIDTHS = ((1,), (2,), (1, 1), (2, 1))
ETAS = (1e-4, 1e-3, 1e-2)
X_SCALES = (1.0, 3.0)
Y_SCALES = (1.0, 10.0)
THIRD_ORDER_CORNER = {"x_scales": (1e-3, 1.0, 3.0), "y_scales": (1.0, 10.0, 100.0)}
"""The corner of the third-derivative bound T(R), wider in both scales. Its σ‴ term
ℓ′·w·σ‴(z)·x³ dominates where a large residual (targets ×100) meets large inputs at a
pre-activation near the peak of |σ‴|; its c₃ term c₃‖J‖³ dominates where tiny inputs (×10⁻³)
make the output almost linear in the parameters (D²f and D³f carry a factor x). On tiny
networks without biases T(R) is then within 2-5 % of the exact ‖∇³L‖ (the sharp cases of a3_low,
sigmoid, and c3_low, softplus)."""
CORNERS = {"ffn_third_derivative_bound": THIRD_ORDER_CORNER}
"""Claim id ↦ the corner options its strategy and :func:`search` use (others: the defaults)."""


def _check_scales(name: str, scales) -> tuple[float, ...]:
    scales = tuple(scales)
    if not scales or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                             and 0 < v < float("inf") for v in scales):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers > 0, got "
                         f"{scales!r}")
    return tuple(float(v) for v in scales)


def _corner(rng_choice, rng_int, x_scales=X_SCALES, y_scales=Y_SCALES) -> Case:
    x_scales, y_scales = _check_scales("x_scales", x_scales), _check_scales("y_scales", y_scales)
    loss = rng_choice(("mse", "cross_entropy"))
    spec = NetSpec(in_dim=rng_choice((1, 2)), widths=rng_choice(WIDTHS),
                   out_dim=2 if loss == "cross_entropy" else rng_choice((1, 2)),
                   activation=rng_choice(SMOOTH_ACTIVATIONS), bias=rng_choice((True, False)))
    return Case(spec=spec, loss=loss, n=rng_choice((1, 2)), seed=rng_int(0, 13),
                eta=rng_choice(ETAS), epochs=rng_choice((2, 3)),
                radius=rng_choice((0.01, 0.3)), x_scale=rng_choice(x_scales),
                y_scale=rng_choice(y_scales))


@st.composite
def corner_cases(draw, *, x_scales=X_SCALES, y_scales=Y_SCALES) -> Case:
    """Tiny networks where the bound is sharp (widths ≤ 2, n ≤ 2, inputs ×1 or ×3 and targets
    ×1 or ×10 by default, R 0.01 or 0.3, k 2–3).

    Args:
        draw: Hypothesis' draw function (supplied by ``@st.composite``).
        x_scales: the input scales drawn from (finite numbers > 0).
        y_scales: the target scales drawn from (finite numbers > 0).
    """
    return _corner(lambda v: draw(st.sampled_from(v)), lambda a, b: draw(st.integers(a, b)),
                   x_scales, y_scales)


def random_corner(rng: random.Random, *, x_scales=X_SCALES, y_scales=Y_SCALES) -> Case:
    """One corner case from a seeded ``random.Random`` (the search's sampler)."""
    return _corner(rng.choice, rng.randint, x_scales, y_scales)


def search(claim_id: str, variant_id: str, seconds: float, seed: int = 0) -> Case | None:
    """A corner case on which ``variant_id`` of ``claim_id`` is violated and the true claim
    holds, or None if ``seconds`` pass first.
    """
    from .claims import CLAIMS
    claim = CLAIMS[claim_id]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        case = random_corner(rng, **CORNERS.get(claim_id, {}))
        try:
            if claim.run(case, variant_id).verdict == "violated" \
                    and claim.run(case).verdict == "holds":
                return case
        except ValueError:  # e.g. a case the claim refuses
            continue
    return None


SHARP_FILE = "sharp_cases.json"


def load_sharp_cases() -> dict[str, dict[str, Case]]:
    """Claim id ↦ variant id ↦ the stored sharp case (empty if none stored)."""
    try:
        text = (resources.files("tvgrad.theory") / SHARP_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {cid: {vid: Case.from_json(json.dumps(c)) for vid, c in per.items()}
            for cid, per in json.loads(text).items()}


def main(argv: list[str] | None = None) -> int:
    """Search every sharpness variant of the bound claims; rewrite ``sharp_cases.json`` (a
    stored case the search does not find again in its time is kept: some came from targeted
    scans, e.g. a3_low's, a combination the uniform corner draws rarely).
    """
    from .claims import CLAIMS
    ap = argparse.ArgumentParser(prog="python -m tvgrad.theory.sharp", description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0, help="per (claim, variant)")
    ap.add_argument("--out", default=str(Path(__file__).parent / SHARP_FILE))
    args = ap.parse_args(argv)
    found: dict = {cid: {vid: json.loads(c.to_json()) for vid, c in per.items()}
                   for cid, per in load_sharp_cases().items()}
    for cid in ("ffn_hessian_bound", "ffn_gradient_bound", "ffn_third_derivative_bound",
                "ffn_second_order_error_bound"):
        for v in CLAIMS[cid].variants:
            if not v.id.endswith(("_low", "_dropped")):
                continue
            case = search(cid, v.id, args.seconds)
            kept = case is None and v.id in found.get(cid, {})
            print(f"{cid:30} {v.id:24} {'found' if case else 'kept' if kept else 'none'}",
                  flush=True)
            if case is not None:
                found.setdefault(cid, {})[v.id] = json.loads(case.to_json())
    from ..io import write_json
    write_json(args.out, found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
