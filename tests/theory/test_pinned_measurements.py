"""What the true claims measure on their pinned examples, as data: ``pinned_measurements.json``.

A bound made looser, a reference computed at the wrong point, a measurement of the wrong
quantity: none of these turns a true claim ``violated``, so no verdict notices them (the
sharp cases see a bound *lowered*; nothing sees one *raised*). This test compares the
well-conditioned measurements of every true claim's pinned examples with the snapshot.

Which fields: the bounds and their radii (M, G, T, the a-priori, g-anchored, third-order,
trajectory, naive and SGD-epoch error bounds and their ratios, R), the exact references' ratios to them (dense
``eigh`` of the Hessian: Weyl, absolutely well-conditioned), the norms of the predicted terms
(‖∇L‖, ‖H∇L‖, the cross term), the rounding floor (a formula), and the configuration the
checks derived (grid, steps, batches). Not compared: rounding-level residuals (``max_ratio``),
float32 values, differences with cancellation (the actual second-order error, the first-order
gap), iterative searches (ascent, power method), fitted slopes and point counts.

Tolerance, relative ``RTOL = 1e-8``. A float64 value computed by a different but equally valid
order of summation (another BLAS, another thread count) differs by at most γ_n·κ, with γ_n =
n·u/(1 − n·u), u = 2⁻⁵³: the longest reduction in these cases is n < 10⁴ (3 654 parameters at
most; γ_n < 1.2e-12), and the compared fields are well-conditioned — relative condition
numbers with respect to the input scale ≤ 5 on every pinned example (measured by moving
``x_scale`` by 1e-10; allowing κ ≤ 100), so a valid run stays within 1.2e-10, 80× below RTOL.
Measured: between 1 and 2 threads every compared field is bit-identical (only the float32
gradient norm moved, 1.5e-10 relative, and it is not compared).
A compared field the snapshot holds below ``TINY = 1e-12`` is rounding-determined (a gradient
at a minimum, a radius built from it): it must stay below ``100·TINY``, not match.

A change smaller than RTOL (a margin of 1e-12) is left to the margin tests. If a change is
intended, rewrite the snapshot with ``python tests/theory/test_pinned_measurements.py`` and say
why in the commit.
"""

import json
import sys
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).with_name("pinned_measurements.json")
RTOL, TINY = 1e-8, 1e-12
COMPARED = {
    # exact claims: the gradient the step is made of (float64 only)
    "grad_norm_float64",
    # expansion claims: the predicted terms' norms and the η grid the check derived
    "grad_norm", "hg_norm", "cross_norm", "grid_top", "grid_points", "steps",
    "batches_per_epoch", "last_batch_smaller",
    # symbolic: what was proved
    "kind", "k", "p", "tasks",
    # bound claims: the bounds, radii and exact-over-bound ratios
    "M", "G", "T", "R", "eta", "exact_over_bound", "exact_over_bound_theta0",
    "hessian_exact_over_bound", "R_anchored", "R_traj", "apriori", "g_anchored",
    "third_order", "best", "trajectory", "naive", "sgd_bound", "rounding_floor",
    "best_over_first_order", "naive_over_apriori", "apriori_over_g_anchored",
    # the expansion claims' k = 1 shortcut taken or not
    "exact",
}
FORMULAS = {"rounding_floor"}
"""Computed by a formula from positive terms at any size: compared relatively even when tiny."""
RATIOS = {"best_over_first_order": ("best",), "naive_over_apriori": ("naive", "apriori"),
          "apriori_over_g_anchored": ("apriori", "g_anchored")}
"""A ratio of rounding-determined values is itself rounding-determined although not tiny: left
out where one of its parts is below TINY (the example at a minimum)."""


def _measure(claim_id: str) -> list[dict]:
    from tvgrad.theory.claims import CLAIMS
    claim = CLAIMS[claim_id]
    out = []
    for case in claim.examples:
        m = claim.run(case).clean_measurements()
        keep = {k: v for k, v in sorted(m.items()) if k in COMPARED}
        for ratio, parts in RATIOS.items():
            if any(abs(m.get(x, 1.0)) < TINY for x in parts):
                keep.pop(ratio, None)
        out.append(keep)
    return out


def _claim_ids() -> list[str]:
    from tvgrad.theory.claims import CLAIMS
    return list(CLAIMS)


def _mismatch(key: str, got, want) -> str | None:
    if isinstance(want, bool) or not isinstance(want, float):
        return None if got == want else f"{key}: {got!r}, snapshot {want!r}"
    if not isinstance(got, float):
        return f"{key}: {got!r}, snapshot {want!r}"
    if abs(want) < TINY and key not in FORMULAS:
        return None if abs(got) < 100 * TINY else \
            f"{key}: {got!r}, snapshot {want!r} (rounding level: must stay < {100 * TINY:g})"
    rel = abs(got - want) / abs(want) if want else abs(got)
    return None if rel <= RTOL else f"{key}: {got!r}, snapshot {want!r} (relative {rel:.2e} > {RTOL:g})"


def test_the_snapshot_covers_every_claim():
    want = json.loads(SNAPSHOT.read_text())
    assert set(want) == set(_claim_ids()), sorted(set(want) ^ set(_claim_ids()))


@pytest.mark.parametrize("claim_id", _claim_ids())
def test_pinned_measurements_match_the_snapshot(claim_id):
    want = json.loads(SNAPSHOT.read_text())[claim_id]
    got = _measure(claim_id)
    assert len(got) == len(want), (claim_id, len(got), len(want))
    bad = []
    for i, (g, w) in enumerate(zip(got, want)):
        if set(g) != set(w):
            bad.append(f"example {i}: fields {sorted(set(g) ^ set(w))} added or lost")
        bad += [f"example {i}: {msg}" for k in sorted(set(g) & set(w))
                if (msg := _mismatch(k, g[k], w[k]))]
    assert not bad, f"{claim_id} (relative tolerance {RTOL:g}):\n" + "\n".join(bad[:12])


def test_the_comparison_rejects_a_change_just_above_its_tolerance():
    """The comparison itself can fail: a relative change of 2·RTOL, a changed integer, a
    rounding-level value grown to 1e-9, and a formula's tiny value changed by 1 %."""
    assert _mismatch("M", 1.0 + 2 * RTOL, 1.0)
    assert _mismatch("M", 1.0 + 0.5 * RTOL, 1.0) is None
    assert _mismatch("grid_points", 13, 12)
    assert _mismatch("last_batch_smaller", True, False)
    assert _mismatch("R", 1e-9, 1e-16)
    assert _mismatch("R", 5e-15, 1e-16) is None
    assert _mismatch("rounding_floor", 1.01e-16, 1e-16)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    SNAPSHOT.write_text(json.dumps({c: _measure(c) for c in _claim_ids()}, indent=1,
                                   sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
