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

__all__ = ["corner_cases", "random_corner", "search", "load_sharp_cases"]

WIDTHS = ((1,), (2,), (1, 1), (2, 1))
ETAS = (1e-4, 1e-3, 1e-2)


def _corner(rng_choice, rng_int) -> Case:
    loss = rng_choice(("mse", "cross_entropy"))
    spec = NetSpec(in_dim=rng_choice((1, 2)), widths=rng_choice(WIDTHS),
                   out_dim=2 if loss == "cross_entropy" else rng_choice((1, 2)),
                   activation=rng_choice(SMOOTH_ACTIVATIONS), bias=rng_choice((True, False)))
    return Case(spec=spec, loss=loss, n=rng_choice((1, 2)), seed=rng_int(0, 13),
                eta=rng_choice(ETAS), epochs=rng_choice((2, 3)),
                radius=rng_choice((0.01, 0.3)), x_scale=rng_choice((1.0, 3.0)),
                y_scale=rng_choice((1.0, 10.0)))


@st.composite
def corner_cases(draw) -> Case:
    """Tiny networks where the bound is sharp (widths ≤ 2, n ≤ 2, inputs ×1 or ×3, targets
    ×1 or ×10, R 0.01 or 0.3, k 2–3).

    Args:
        draw: Hypothesis' draw function (supplied by ``@st.composite``).
    """
    return _corner(lambda xs: draw(st.sampled_from(xs)), lambda a, b: draw(st.integers(a, b)))


def random_corner(rng: random.Random) -> Case:
    """One corner case from a seeded ``random.Random`` (the search's sampler)."""
    return _corner(rng.choice, rng.randint)


def search(claim_id: str, variant_id: str, seconds: float, seed: int = 0) -> Case | None:
    """A corner case on which ``variant_id`` of ``claim_id`` is violated and the true claim
    holds, or None if ``seconds`` pass first.
    """
    from .claims import CLAIMS
    claim = CLAIMS[claim_id]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        case = random_corner(rng)
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
    """Search every sharpness variant of the bound claims; rewrite ``sharp_cases.json``."""
    from .claims import CLAIMS
    ap = argparse.ArgumentParser(prog="python -m tvgrad.theory.sharp", description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0, help="per (claim, variant)")
    ap.add_argument("--out", default=str(Path(__file__).parent / SHARP_FILE))
    args = ap.parse_args(argv)
    found: dict = {}
    for cid in ("ffn_hessian_bound", "ffn_gradient_bound", "ffn_third_derivative_bound",
                "ffn_second_order_error_bound"):
        for v in CLAIMS[cid].variants:
            if not v.id.endswith(("_low", "_dropped")):
                continue
            case = search(cid, v.id, args.seconds)
            print(f"{cid:30} {v.id:24} {'found' if case else 'none'}", flush=True)
            if case is not None:
                found.setdefault(cid, {})[v.id] = json.loads(case.to_json())
    from ..io import write_json
    write_json(args.out, found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
