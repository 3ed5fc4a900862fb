"""A campaign-level adversarial search over architectures for the explicit bound.

Where the bound claims' strategies draw moderate networks, this search draws the extremes the
bound must also survive: depth up to 6, width up to 128, inputs scaled up to 10³, up to 64
classes, saturating activations, radii from 10⁻⁶ to 10, and runs the four bound checks (with
their in-ball adversary, :func:`~tvgrad.theory.claims.bound_claims.ascend_hessian`) on each,
keeping the largest ratio of each claim. Any violation is reported with its case (a minimal
counterexample: ``tvgrad reproduce --claim … --case …`` re-runs it).

``python -m tvgrad.theory.adversary --seconds 120 --out reports/adversary.json``
"""

from __future__ import annotations

import argparse
import random
import time

from ..errors import InvalidInput
from .activations import SMOOTH_ACTIVATIONS
from .cases import Case
from .nets import NetSpec

RATIOS = {"ffn_hessian_bound": "exact_over_bound", "ffn_gradient_bound": "exact_over_bound",
          "ffn_third_derivative_bound": "lower_over_bound",
          "ffn_second_order_error_bound": "actual_over_best"}


def extreme_case(rng: random.Random) -> Case:
    """One draw from the extremes (cases the cost limits refuse are redrawn by the caller)."""
    loss = rng.choice(("mse", "cross_entropy"))
    depth = rng.randint(1, 6)
    widths = tuple(rng.choice((1, 2, 8, 32, 64, 128)) for _ in range(depth))
    out_dim = rng.choice((2, 10, 64)) if loss == "cross_entropy" else rng.choice((1, 4))
    spec = NetSpec(in_dim=rng.choice((1, 4, 16)), widths=widths, out_dim=out_dim,
                   activation=rng.choice(SMOOTH_ACTIVATIONS), bias=rng.random() < 0.8)
    return Case(spec=spec, loss=loss, n=rng.choice((1, 2, 8)), seed=rng.randrange(10 ** 6),
                eta=10 ** rng.uniform(-6, -2), epochs=rng.randint(2, 4),
                radius=10 ** rng.uniform(-6, 1), x_scale=rng.choice((1.0, 30.0, 1000.0)),
                y_scale=rng.choice((1.0, 10.0)))


def search(seconds: float, seed: int = 0, max_params: int = 20_000) -> dict:
    """Run the bound checks on extreme cases for ``seconds``; the largest ratio per claim and
    every violation (with its case).
    """
    from .campaign import reproduce_command
    from .claims import CLAIMS, VIOLATED
    if not (seconds > 0):
        raise InvalidInput(f"--seconds must be > 0, got {seconds!r}")
    rng = random.Random(seed)
    worst = {cid: {"ratio": 0.0, "case": None} for cid in RATIOS}
    violations, tried, skipped = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            case = extreme_case(rng)
        except InvalidInput:  # beyond the memory/time limits: redraw
            skipped += 1
            continue
        if case.spec.num_params > max_params:
            skipped += 1
            continue
        tried += 1
        for cid, key in RATIOS.items():
            out = CLAIMS[cid].run(case)
            if out.verdict == VIOLATED:
                violations.append({"claim": cid, "case": case.to_json(), "detail": out.detail,
                                   "reproduce": reproduce_command(cid, case.to_json())})
            r = out.measurements.get(key)
            if isinstance(r, float) and r == r and r > worst[cid]["ratio"]:
                worst[cid] = {"ratio": r, "case": case.to_json()}
    return {"seconds": seconds, "seed": seed, "cases": tried, "redrawn": skipped,
            "largest_ratio": worst, "violations": violations}


def main(argv: list[str] | None = None) -> int:
    """Print the largest ratios; exit 1 on any violation."""
    ap = argparse.ArgumentParser(prog="python -m tvgrad.theory.adversary", description=__doc__)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    res = search(args.seconds, args.seed)
    for cid, w in res["largest_ratio"].items():
        print(f"{cid:30} largest {RATIOS[cid]} = {w['ratio']:.4f}")
    print(f"{res['cases']} extreme cases in {args.seconds:g} s, {len(res['violations'])} "
          f"violations")
    for v in res["violations"]:
        print(f"  VIOLATED {v['claim']}: {v['detail']}\n    {v['reproduce']}")
    if args.out:
        from ..io import write_json
        write_json(args.out, res)
    return 1 if res["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
