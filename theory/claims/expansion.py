r"""Checking a claimed expansion ``q(η) = η v₁ + η² v₂ + O(η³)`` by log-log slopes.

A claim supplies a quantity ``q(η)`` (a task vector, or a difference of task vectors) computed
by actually running the trajectories for every η of a geometric grid, and the vectors ``v₁``
and ``v₂`` it predicts. Two residuals are measured:

.. math::

    r_1(\eta) = \lVert q(\eta) - \eta v_1\rVert \;(\text{claimed } O(\eta^2)),\qquad
    r_2(\eta) = \lVert q(\eta) - \eta v_1 - \eta^2 v_2\rVert \;(\text{claimed } O(\eta^3)).

**Window.** A grid point is usable when its trajectories are finite (no divergence), keep
their ReLU activation pattern (smooth activations always do), and the expansion holds there:
the *expansion ratio* — the largest ``‖τ + first-order term‖ / ‖first-order term‖`` over
the trajectories involved — is at most ``ρ = 0.1``. A residual's window is the longest run of
consecutive usable points where it is at least ``F = 100`` times the rounding floor (so
rounding moves ``ln r`` by at most ``ln(1.01)``) and where the next order of ``q`` itself is
small against the order the residual measures (below).

**Next-order estimates, from q alone.** The expansion ratio bounds the terms beyond the first
order against the first, not the cubic term against the quadratic one: a case can have ratio
0.04 at η = 5.6 while ``r₁`` there is 10× below its η² law (found by the ``deep`` profile on a
width-1 network; ``r₁``'s slope then read 1.95 against a band of 0.04 — a false violation).
With λ the grid ratio and ``q = Σ_k c_k η^k``, the differences of ``q`` along the grid

.. math::
    d_1(\eta) = q(\lambda\eta) - \lambda q(\eta),\quad
    d_{j+1}(\eta) = d_j(\lambda\eta) - \lambda^{j+1} d_j(\eta)

remove one order each (``d_j = c_{j+1}\prod_{i=1}^{j}(\lambda^{j+1}-\lambda^i)\,\eta^{j+1} +
O(\eta^{j+2})``), so ``ê₁(η) = (‖d₂‖/∏(λ³−λⁱ)) / (‖d₁‖/(λ²−λ)) ≈ ‖c₃‖η/‖c₂‖`` and
``ê₂(η) ≈ ‖c₄‖η/‖c₃‖`` estimate the relative size of the first neglected term of ``r₁`` and of
``r₂``. They are computed from the measured ``q`` only — never from the claimed ``v₁``, ``v₂`` —
so a wrong claim cannot move its own window. A point enters ``r₁``'s (``r₂``'s) window only where
``ê₁ ≤ ρ`` (``ê₂ ≤ ρ``), which needs the two (three) grid points above it; the top points of
the grid therefore never enter. A model so large that three rows of ``q`` exceed the claims'
chunk memory (``CHUNK_BYTES``, 1 GiB: p > 44 M in float64, e.g. ViT-B-32) relies on the
expansion ratio alone. A window needs at least 4 points spanning at
least one decade of η, else the example is *inconclusive* (counted, never verified).

**Band.** Least squares on ``(ln η_j, ln r_j)`` gives slope ``Σ_j w_j ln r_j`` with
``w_j = (x_j − x̄)/Σ(x − x̄)²``. If ``r = A η^p (1 + e(η))`` with ``|e| ≤ ε`` on the window,
the fitted slope is within ``atanh(ε)·Σ|w_j|`` of ``p`` — sharp: the slope error is
``Σ_j w_j ln(1+e_j)``, and since ``Σ_j w_j = 0`` the midpoint ``c`` of ``[ln(1−ε), ln(1+ε)]`` can
be subtracted, leaving at most ``Σ|w_j|·(ln(1+ε) − ln(1−ε))/2 = Σ|w_j|·atanh(ε)``, attained by
``e_j = ±ε`` with the sign of ``w_j``. Inside the window rounding contributes
at most 0.01 to ``ε`` and the neglected higher-order terms at most about ``2ρ = 0.2`` (their
size relative to the retained term is of the order of the expansion ratio, doubled as margin),
so ``ε = 0.21`` (an assumption on the window, stated and tested, not a derivation): the band is
``atanh(0.21)·Σ|w_j|``, 0.222 for a one-decade window (5 points) and
narrower for longer ones. If ``r₁``'s window exists but ``r₂`` stays below ``F×`` floor at
every point of the regime, the claimed η² term accounts for all of ``r₁`` to rounding level:
the example holds (``r2_at_rounding_level``). The claim "``r₁ = O(η²)``, ``r₂ = O(η³)``" is accepted when
``slope₁ ≥ 2 − band₁`` and ``slope₂ ≥ 3 − band₂`` (a vanishing leading coefficient gives a
*larger* slope, which is still consistent with the O-statement). Every planted wrong variant
leaves an ``η²`` (or ``η``) term in ``r₂`` (``r₁``), i.e. slope 2 (1), a full unit below.

**Rounding floor** of ``‖q(η)‖`` (float64), summed over the trajectories ``T`` involved, with
``N`` steps each: ``u[(N+1)(‖θ₀‖ + ‖τ‖) + 3η Σ_n‖g_n‖] + η N ε_g``, where the first term bounds
the per-step rounding of ``θ − ηg`` and of the final subtraction (Higham's model, norm-wise),
and ``ε_g`` estimates the rounding error of a float64 gradient evaluation as
``‖ĝ₆₄ − ĝ₃₂‖·u₆₄/u₃₂`` (rounding error scales with u). Evaluating ``η v₁ + η² v₂`` adds
``4u(η‖v₁‖ + η²‖v₂‖)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..rounding import U64
from .base import DIVERGED, HOLDS, INCONCLUSIVE, VIOLATED, Outcome

RHO = 0.1
FLOOR_FACTOR = 100.0
MIN_POINTS = 4
MIN_DECADES = 1.0
CONTAMINATION = 0.21
PER_DECADE = 4
QUIET_DECADES = 3.0


@dataclass
class GridEval:
    """What a claim measures on a grid of η (all shapes ``(m, …)``).

    Either ``q`` itself, or (for models too large to hold m copies of θ) only the norms the
    verdict needs: ``r1 = ‖q − ηv₁‖``, ``r2 = ‖q − ηv₁ − η²v₂‖`` and ``q_norm = ‖q‖`` per η
    (:func:`residual_norms`).
    """

    q: Tensor | None  # (m, p) the quantity whose expansion is claimed (or None, see r1/r2)
    ratio: Tensor    # (m,) expansion ratio (max over trajectories)
    floor: Tensor    # (m,) rounding floor of ‖q‖
    finite: Tensor   # (m,) no NaN/inf in any trajectory (else: diverged at that η)
    kept: Tensor     # (m,) every ReLU activation pattern kept along the way
    r1: Tensor | None = None
    r2: Tensor | None = None
    q_norm: Tensor | None = None
    e1: Tensor | None = None   # (m,) next-order estimates (:func:`next_order_ratios`), if the
    e2: Tensor | None = None   # evaluation computed them while it still had q (else from q)

    def residuals(self, etas: Tensor, v1: Tensor, v2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(r1, r2, ‖q‖) per η, from ``q`` or as stored."""
        if self.q is None:
            return self.r1, self.r2, self.q_norm
        return residual_norms(etas, self.q, v1, v2)

    @property
    def ok(self) -> Tensor:
        """Grid points that are finite and keep their activation pattern."""
        return self.finite & self.kept


def residual_norms(etas: Tensor, q: Tensor, v1: Tensor, v2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``‖q − ηv₁‖``, ``‖q − ηv₁ − η²v₂‖`` and ``‖q‖`` for each row of ``q`` (one per η)."""
    e = etas[:, None]
    pred1 = e * v1
    pred2 = pred1 + e * e * v2
    return (torch.linalg.vector_norm(q - pred1, dim=1), torch.linalg.vector_norm(q - pred2, dim=1),
            torch.linalg.vector_norm(q, dim=1))


def eta_grid(top: float, decades: float = 9.0, per_decade: int = PER_DECADE) -> Tensor:
    """Geometric grid from ``top`` down over ``decades`` decades, ``per_decade`` points each."""
    n = int(round(decades * per_decade)) + 1
    return top * 10.0 ** (-torch.arange(n, dtype=torch.float64) / per_decade)


def trajectory_floor(theta0_norm: float, tau: Tensor, etas: Tensor, steps: int,
                     grad_norm_sum: Tensor, eps_g: float) -> Tensor:
    """Rounding floor of one trajectory's ``‖τ‖`` (see module docstring)."""
    tau_norm = torch.linalg.vector_norm(tau, dim=1)
    return (U64 * ((steps + 1) * (theta0_norm + tau_norm) + 3 * etas * grad_norm_sum)
            + etas * steps * eps_g)


def _longest_run(mask: Tensor) -> tuple[int, int]:
    best, start = (0, 0), None
    vals = mask.tolist() + [False]
    for i, v in enumerate(vals):
        if v and start is None:
            start = i
        if not v and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


@dataclass(frozen=True)
class SlopeFit:
    """A least-squares log-log slope over a window of η, with its accepted band."""
    slope: float
    band: float
    eta_lo: float
    eta_hi: float
    points: int


def fit_slope(etas: Tensor, r: Tensor, mask: Tensor) -> SlopeFit | None:
    """LS slope of ln r vs ln η over the longest run of ``mask``; None if the window is short."""
    i, j = _longest_run(mask)
    if j - i < MIN_POINTS:
        return None
    e, rr = etas[i:j], r[i:j]
    hi, lo = float(e.max()), float(e.min())
    if math.log10(hi / lo) < MIN_DECADES - 1e-9:
        return None
    x, y = torch.log(e), torch.log(rr)
    xc = x - x.mean()
    w = xc / (xc * xc).sum()
    slope = float((w * y).sum())
    band = math.atanh(CONTAMINATION) * float(w.abs().sum())
    return SlopeFit(slope, band, lo, hi, j - i)


def next_order_ratios(etas: Tensor, q: Tensor, floor: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(ê₁, ê₂) per grid point (module docstring): estimated ‖c₃‖η/‖c₂‖ and ‖c₄‖η/‖c₃‖ from
    ``q`` along the descending grid ``etas``; ``inf`` where the points above are missing or
    not finite.

    With ``floor`` (the rounding floor of ‖q‖ per point), an estimate whose lower-order
    difference (‖d₁‖ for ê₁, ‖d₂‖ for ê₂) is within its own rounding (propagated: ``fl(d₁)(η) =
    fl(λη) + λ fl(η)``, ``fl(d_{j+1})(η) = fl(d_j)(λη) + λ^{j+1} fl(d_j)(η)``) is 0: that order of
    ``q`` is not resolved, so the residual that measures it is itself at rounding level for a
    true claim (below the window's 100× floor), while a wrong claim's residual is exposed.
    """
    m = etas.numel()
    e1 = torch.full((m,), math.inf, dtype=torch.float64)
    e2 = torch.full((m,), math.inf, dtype=torch.float64)
    if m < 3:  # ê₁ needs three rows (d₁ at two points, d₂ at one); ê₂ four (by the slices)
        return e1, e2
    lam = float(etas[0] / etas[1])
    d = [q[:-1] - lam * q[1:]]              # d_1 at points 1..m-1
    for j in (2, 3):
        d.append(d[-1][:-1] - lam ** j * d[-1][1:])  # d_j at points j..m-1
    n = [torch.linalg.vector_norm(x.double(), dim=1) for x in d]

    def coef(j):  # the η^{j+1} coefficient's factor in d_j: ∏_{i=1..j} (λ^{j+1} − λ^i)
        return math.prod(lam ** (j + 1) - lam ** i for i in range(1, j + 1))
    with torch.no_grad():
        r1 = torch.nan_to_num((n[1] / coef(2)) / (n[0][1:] / coef(1)), nan=math.inf)
        r2 = torch.nan_to_num((n[2] / coef(3)) / (n[1][1:] / coef(2)), nan=math.inf)
        if floor is not None:
            fl = [floor[:-1] + lam * floor[1:]]
            fl.append(fl[0][:-1] + lam ** 2 * fl[0][1:])
            r1 = torch.where(n[0][1:] <= fl[0][1:], 0.0, r1)  # d₁ unresolved: no η² to contaminate
            r2 = torch.where(n[1][1:] <= fl[1][1:], 0.0, r2)  # d₂ unresolved: no η³ likewise
    e1[2:] = r1
    e2[3:] = r2
    return e1, e2


def _fit_windows(etas: Tensor, residuals: dict, regime: Tensor, floor: Tensor,
                 meas: dict, smooth: dict | None = None) -> dict:
    """Slope fits of each residual over its window (regime points ≥ F× floor, and where the
    residual's next order is small: ``smooth[name]``).
    """
    fits = {}
    for name, r in residuals.items():
        mask = regime & (r >= FLOOR_FACTOR * floor)
        if smooth is not None:
            mask = mask & smooth[name]
        fits[name] = f = fit_slope(etas, r, mask)
        if f is not None:
            meas.update({f"slope_{name}": f.slope, f"band_{name}": f.band,
                         f"window_{name}": [f.eta_lo, f.eta_hi], f"points_{name}": f.points})
    return fits


def _detail_rows(etas, r1, r2, floor, ratio, ok) -> str:
    """Every grid point's residuals, floor and ratio, for failure messages."""
    return "\n".join(
        f"  η={etas[j].item():.3e}  r1={r1[j].item():.3e}  r2={r2[j].item():.3e}  "
        f"floor={floor[j].item():.2e}  ratio={ratio[j].item():.2e}  ok={bool(ok[j])}"
        for j in range(etas.numel()))


def slope_outcome(etas: Tensor, ev: GridEval, v1: Tensor, v2: Tensor,
                  extra: dict | None = None) -> Outcome:
    """Verdict for the claimed expansion ``q(η) = η v₁ + η² v₂ + O(η³)`` on a grid."""
    meas: dict = dict(extra or {})
    ok = ev.ok
    meas["grid_points"] = int(etas.numel())
    meas["diverged_points"] = int((~ev.finite).sum())
    meas["pattern_changed_points"] = int((ev.finite & ~ev.kept).sum())
    if not bool(ev.finite.any()):
        return Outcome(DIVERGED, meas, "every trajectory of the η grid diverged (NaN/inf)")
    if not bool(ok.any()):
        return Outcome(INCONCLUSIVE, meas, "a ReLU activation pattern changes at every η of "
                       "the grid (θ₀ sits on a kink): outside the smooth regime")
    r1, r2, q_norm = ev.residuals(etas, v1, v2)
    floor = ev.floor + 4 * U64 * (etas * v1.norm() + etas ** 2 * v2.norm())
    okr = ok & torch.isfinite(r1) & torch.isfinite(r2)
    if bool((r1[okr] == 0).all()) and float(v2.norm()) == 0.0:
        meas.update(exact=True)
        return Outcome(HOLDS, meas)  # e.g. zero gradient: τ ≡ 0 exactly, as predicted
    regime = okr & (ev.ratio <= RHO)
    meas["_curve"] = {"eta": etas.tolist(), "r1": r1.tolist(), "r2": r2.tolist(),
                      "floor": floor.tolist(), "regime": regime.tolist()}
    meas["regime_points"] = int(regime.sum())
    smooth = None
    e1, e2 = (ev.e1, ev.e2) if ev.e1 is not None or ev.q is None else \
        next_order_ratios(etas, ev.q, ev.floor)
    if e1 is not None:  # next orders estimated from q itself, never from v₁, v₂
        smooth = {"r1": e1 <= RHO, "r2": e2 <= RHO}
        meas["next_order_points_r1"] = int((regime & smooth["r1"]).sum())
        meas["next_order_points_r2"] = int((regime & smooth["r2"]).sum())
    fits = _fit_windows(etas, {"r1": r1, "r2": r2}, regime, floor, meas, smooth)
    detail_rows = _detail_rows(etas, r1, r2, floor, ev.ratio, ok)
    bad = []
    for name, p in (("r1", 2.0), ("r2", 3.0)):
        f = fits[name]
        if f is not None and f.slope < p - f.band:
            bad.append(f"{name} slope {f.slope:.3f} < {p:g} − band {f.band:.3f} over "
                       f"η ∈ [{f.eta_lo:.2e}, {f.eta_hi:.2e}] ({f.points} points)")
    if bad:
        return Outcome(VIOLATED, meas, "; ".join(bad) + "\n" + detail_rows)
    if fits["r1"] is not None and fits["r2"] is None and bool(
            (r2[regime] < FLOOR_FACTOR * floor[regime]).all()):
        # r₁'s η² law is resolved over ≥ 1 decade, and subtracting the claimed η²-term leaves
        # nothing above 100× rounding anywhere in the regime: the claimed term accounts for
        # all of r₁ there (e.g. a loss that is exactly quadratic along the trajectory).
        meas["r2_at_rounding_level"] = True
        return Outcome(HOLDS, meas)
    lvl = FLOOR_FACTOR * floor
    quiet = okr & (q_norm <= lvl) & (etas * v1.norm() <= lvl) \
        & (etas ** 2 * v2.norm() <= lvl)
    i, j = _longest_run(quiet)
    if fits["r1"] is None and j - i >= MIN_POINTS and \
            math.log10(float(etas[i] / etas[j - 1])) >= QUIET_DECADES:
        # Neither the update nor the prediction rises above rounding level over ≥ 3 decades of
        # η (a zero gradient up to rounding, e.g. reached through minibatch forward passes that
        # differ from the full-batch one in the last bits); larger η, where GD is unstable and
        # amplifies rounding noise, are outside the regime (ratio > ρ).
        meas.update(at_rounding_level=True)
        return Outcome(HOLDS, meas)
    if fits["r1"] is None or fits["r2"] is None:
        missing = [n for n, f in fits.items() if f is None]
        return Outcome(INCONCLUSIVE, meas,
                       f"no window of ≥{MIN_POINTS} points over ≥{MIN_DECADES:g} decade with "
                       f"ratio ≤ {RHO} and residual ≥ {FLOOR_FACTOR:g}× floor for {missing}\n"
                       + detail_rows)
    return Outcome(HOLDS, meas)


def adaptive_grid_check(evaluate: Callable[[Tensor, Tensor, Tensor], GridEval], v1: Tensor,
                        v2: Tensor, extra: dict | None = None) -> Outcome:
    """Run :func:`slope_outcome` on a grid from 10 down 9 decades; if the expansion ratio
    stays below ρ/10 on the whole grid (a very flat problem), move the grid up 4 decades
    (at most twice) so that the window can reach the residuals above rounding level.
    """
    top = 10.0
    for _ in range(3):
        etas = eta_grid(top)
        ev = evaluate(etas, v1, v2)
        usable = ev.ok & torch.isfinite(ev.ratio)
        # shift only a genuinely flat problem: a ratio that is exactly 0 everywhere means the
        # updates vanish (zero gradient), and a larger η would only amplify rounding noise
        if not bool(usable.any()) or not bool(ev.ok[0]) \
                or not 0 < float(ev.ratio[usable].max()) < RHO / 10:
            break
        top *= 1e4
    return slope_outcome(etas, ev, v1, v2, {**(extra or {}), "grid_top": top})
