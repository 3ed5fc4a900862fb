"""Claims of the explicit feed-forward bound (theory/bound.md): soundness against exact
Hessians and gradients, and the a-priori / trajectory error bounds with tightness records.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping

import torch
from hypothesis import strategies as st
from torch import Tensor

from .. import strategies
from ..activations import ACTIVATIONS, SMOOTH_ACTIVATIONS
from ..bound import (
    BoundTerms,
    apriori_error_bound,
    bounds,
    certified_grad_norm,
    certified_hg_norm,
    g_anchored_error_bound,
    g_regime_radius,
    regime_radius,
    sgd_epoch_error_bound,
    sgd_regime,
    third_order_error_bound,
    trajectory_error_bound,
)
from ..cases import Case, FFNProblem, batch_sequence
from ..derivatives import gradient, hvp
from ..nets import NetSpec
from ..rounding import U64
from ..sharp import CORNERS, corner_cases, load_sharp_cases
from ..spectrum import hessian_norm_certified
from .base import HOLDS, INCONCLUSIVE, VIOLATED, Claim, Outcome, Variant
from .expansion import trajectory_floor

# Tolerance on an exact norm: the Hessian's is certified by its own path
# (spectrum.hessian_norm_certified: eigh's backward error c·p·u·‖H‖₂ moves every eigenvalue by
# at most that (Weyl), c = 10; or Lanczos's residual). The gradient norm is a sum of p squares:
# relative p·u.

# The terms a planted variant may replace: the bound's constants, and a factor on the bound.
BOUND_TERMS: Mapping = {
    "activation": BoundTerms.activation,   # name ↦ (a₁, a₂, β, κ, sup|σ|)
    "c2": BoundTerms.c2,                   # loss ↦ c₂
    "jacobian": BoundTerms.jacobian,       # per-layer Jacobian coefficients used
    "c1_scale": 1.0,                       # factor on c₁
    "jacobian_scale": 1.0,                 # factor on the Jacobian measured at θ₀ (bound b)
    "weight_ball": BoundTerms.weight_ball,  # R ↦ term added to ‖W_l⁰‖₂ over the ball
    "bias_ball": BoundTerms.bias_ball,     # R ↦ term added to ‖b_l⁰‖ over the ball
    "scale": 1.0,                          # the bound as derived (every error bound)
    "scale_apriori": 1.0, "scale_trajectory": 1.0, "scale_sgd": 1.0,  # each error bound alone
    "scale_g_anchored": 1.0, "scale_third_order": 1.0,
    "c3": BoundTerms.c3,                   # loss ↦ c₃ (the third-order bound)
    "remainder_scale": 1.0,                # factor on the third-order bound's η³ remainder
}


def _terms(terms: Mapping) -> tuple[BoundTerms, float]:
    return (BoundTerms(terms["activation"], terms["c2"], terms["jacobian"], terms["c1_scale"],
                       terms["weight_ball"], terms["bias_ball"], terms["jacobian_scale"],
                       terms["c3"]),
            terms["scale"])


def _lowered(field: str, factor: float = 0.9):
    """An activation-constant term with ``field`` multiplied by ``factor`` (None stays None)."""
    def activation(name):
        k = ACTIVATIONS[name].bound_constants()
        v = getattr(k, field)
        return replace(k, **{field: None if v is None else v * factor})
    return activation


# Each constant of the bound lowered by 10 %, as data: a sharpness audit. A variant is a
# must-reject once a pinned case where that constant is sharp (SHARP_CASES) rejects it.
SHARPNESS = (
    ("a1_low", "a₁ = sup|σ'| lowered by 10 %", {"activation": _lowered("a1")}),
    ("a2_low", "a₂ = sup|σ''| lowered by 10 %", {"activation": _lowered("a2")}),
    ("sup_sigma_low", "sup|σ| (hidden-norm clamp) lowered by 10 %", {"activation": _lowered("bounded")}),
    ("beta_low", "β of |σ(z)| ≤ β + κ|z| lowered by 10 %", {"activation": _lowered("beta")}),
    ("kappa_low", "κ of |σ(z)| ≤ β + κ|z| lowered by 10 %", {"activation": _lowered("kappa")}),
    ("c1_low", "loss constant c₁ lowered by 10 %", {"c1_scale": 0.9}),
    ("c2_low", "loss constant c₂ lowered by 10 %", {"c2": lambda loss: 0.9 * BoundTerms.c2(loss)}),
    ("weight_ball_dropped", "‖W_l‖ over the ball without its + R", {"weight_ball": lambda R: 0.0}),
    ("bias_ball_dropped", "‖b_l‖ over the ball without its + R", {"bias_ball": lambda R: 0.0}),
    ("jacobian0_low", "‖J(θ₀)‖₂ measured at θ₀ lowered by 10 %", {"jacobian_scale": 0.9}),
    ("a3_low", "a₃ = sup|σ'''| lowered by 10 %", {"activation": _lowered("a3")}),
    ("c3_low", "loss constant c₃ lowered by 10 %",
     {"c3": lambda loss: None if BoundTerms.c3(loss) is None else 0.9 * BoundTerms.c3(loss)}),
)


def _last_layer_only(c):
    return c * (torch.arange(c.shape[1]) == c.shape[1] - 1).to(c)


@st.composite
def bound_cases(draw, *, error: bool = False, max_depth: int = 3, max_width: int = 16,
                width_dist: str = "uniform") -> Case:
    """Smooth-activation problems with a ball radius (log-uniform 10⁻³…1) or, for the error
    bound, k ≥ 2 epochs and a small η (the bound's regime needs kηG(R) ≤ R); network sizes as
    :func:`tvgrad.theory.strategies.cases`.
    """
    c = draw(strategies.cases(activations=("tanh",) + tuple(a for a in SMOOTH_ACTIVATIONS if a != "tanh"),
                              max_depth=max_depth, max_width=max_width, width_dist=width_dist,
                              max_n=32,
                              min_epochs=2 if error else 1,
                              max_epochs=6 if error else 1,
                              eta=(1e-5, 1e-1) if error else (1e-4, 1.0)))
    # large inputs and large residuals make the σ'' part of the curvature matter
    return c.with_(radius=draw(strategies.log_uniform(1e-3, 1.0)),
                   x_scale=draw(st.sampled_from((1.0, 3.0))),
                   y_scale=draw(st.sampled_from((1.0, 10.0))))


def _over_bound(value: float, bound: float) -> float:
    """The tightness value / bound, where a 0 bound (a loss constant in θ: bias-free, every
    input 0) reads 0 for a 0 value (0 ≤ 0·bound) and inf otherwise.
    """
    return value / bound if bound > 0 else (math.inf if value > 0 else 0.0)


def _points(prob: FFNProblem, R: float, f, seed: int):
    """θ₀, random points at radius R/2 and R, and θ₀ ± R·(top eigenvector of H(θ₀)); also
    returns ‖H(θ₀)‖₂ and that top eigenvector, which the computation gives for free.
    """
    th = prob.theta0
    gen = torch.Generator().manual_seed(seed + 31)
    norm0, vtop, slack0 = hessian_norm_certified(f, th)
    pts = [("theta0", th), ("top_eig+", th + R * vtop), ("top_eig-", th - R * vtop)]
    for i in range(3):
        u = torch.randn(th.shape, generator=gen, dtype=th.dtype)
        u = u / u.norm()
        pts.append((f"random_{i}", th + (R if i else R / 2) * u))
    return pts, (norm0, slack0), vtop


ASCENT_STEPS = 4


def _project(th0: Tensor, th: Tensor, R: float) -> Tensor:
    """The point of the ball of radius R around θ₀ nearest to θ."""
    d = th - th0
    n = float(d.norm())
    return th if n <= R else th0 + d * (R / n)


def third_contraction(f, th: Tensor, v: Tensor) -> Tensor:
    """∇³L(θ)[v, v, ·]: the gradient of ⟨v, ∇²L(θ)v⟩ (torch.func, double backward)."""
    return torch.func.grad(lambda t: torch.dot(v, hvp(f, t, v)))(th)


def ascend_hessian(f, th0: Tensor, R: float, v0: Tensor, steps: int = ASCENT_STEPS) -> Tensor:
    """An adversary inside the ball: projected gradient ascent on s·vᵀ∇²L(θ)v (v the top
    eigenvector, s its eigenvalue's sign; v refreshed by one power step per iterate), normalised
    steps of R/2, R/4, …; returns the last iterate (where the claim then evaluates the exact
    ‖∇²L‖₂). The third derivative is :func:`third_contraction`.
    """
    th, v = th0.clone(), v0
    for j in range(steps):
        Hv = hvp(f, th, v)
        s = 1.0 if float(torch.dot(v, Hv)) >= 0 else -1.0
        d = third_contraction(f, th, v) * s
        nd = float(d.norm())
        if nd == 0 or not math.isfinite(nd):
            break
        th = _project(th0, th + (R / 2 ** (j + 1)) * d / nd, R)
        v = Hv / max(float(Hv.norm()), 1e-300)
    return th


def ascend_gradient(f, th0: Tensor, R: float, steps: int = ASCENT_STEPS) -> Tensor:
    """The adversary for G(R): projected ascent on ‖∇L(θ)‖² (direction ∇²L·∇L)."""
    th = th0.clone()
    for j in range(steps):
        d = hvp(f, th, gradient(f, th))
        nd = float(d.norm())
        if nd == 0 or not math.isfinite(nd):
            break
        th = _project(th0, th + (R / 2 ** (j + 1)) * d / nd, R)
    return th


def check_hessian_bound(case: Case, terms: Mapping = BOUND_TERMS) -> Outcome:
    """M(R) ≥ ‖∇²L(θ)‖₂ at θ₀ and at points of the ball (surface along the top eigenvector).

    Refutes M only where ν − s > M at some point, ν the computed ‖∇²L‖₂ and s its certified
    slack (:func:`hessian_norm_certified`); a verdict of holds reports the point of largest ν
    (``worst_point``), its ν (``hessian_norm``) and s (``hessian_norm_slack``).
    """
    prob = FFNProblem(case)
    R = case.radius or case.eta
    f = prob.loss_fn(0)
    bt, scale = _terms(terms)
    b = bounds(prob, R, terms=bt)
    M = b.M * scale
    ratios, top = {}, (-math.inf, 0.0, "")
    pts, at0, vtop = _points(prob, R, f, case.seed)
    pts.append(("ascent", ascend_hessian(f, prob.theta0, R, vtop)))
    for name, th in pts:
        exact, slack = at0 if name == "theta0" else hessian_norm_certified(f, th)[::2]
        ratios[name] = _over_bound(exact, M)
        if exact - slack > M:  # certified: ‖∇²L‖₂ ≥ exact − slack (dense or Lanczos)
            return Outcome(VIOLATED, {"M": M, "exact": exact, "slack": slack, "point": name,
                                      "R": R},
                           f"‖∇²L‖₂ = {exact:.6e} at {name} exceeds M(R={R:.3e}) = {M:.6e}")
        top = max(top, (exact, slack, name))
    fixed = max(v for k, v in ratios.items() if k != "ascent")
    return Outcome(HOLDS, {"M": b.M, "R": R, "exact_over_bound": max(0.0, *ratios.values()),
                           "worst_point": top[2], "hessian_norm": top[0],
                           "hessian_norm_slack": top[1],
                           "exact_over_bound_theta0": ratios["theta0"],
                           "ascent_over_fixed_points": ratios["ascent"] / fixed
                           if fixed > 0 else math.nan})


def check_gradient_bound(case: Case, terms: Mapping = BOUND_TERMS) -> Outcome:
    """G(R) ≥ ‖∇L(θ)‖ at the same points."""
    prob = FFNProblem(case)
    R = case.radius or case.eta
    f = prob.loss_fn(0)
    bt, scale = _terms(terms)
    G = bounds(prob, R, terms=bt).G * scale
    worst, norms = 0.0, {}
    pts = _points(prob, R, f, case.seed)[0] + [("ascent", ascend_gradient(f, prob.theta0, R))]
    for name, th in pts:
        gn = float(gradient(f, th).norm())
        norms[name] = gn
        if gn > G * (1 + th.numel() * U64) + 1e-300:
            return Outcome(VIOLATED, {"G": G, "grad_norm": gn, "point": name, "R": R},
                           f"‖∇L‖ = {gn:.6e} at {name} exceeds G(R={R:.3e}) = {G:.6e}")
        worst = max(worst, gn / G if G > 0 else 0.0)
    fixed = max(v for k, v in norms.items() if k != "ascent")
    return Outcome(HOLDS, {"G": G, "R": R, "exact_over_bound": worst,
                           "ascent_over_fixed_points": norms["ascent"] / fixed
                           if fixed > 0 else math.nan})


POWER_STEPS = 4


def cubic_power(f, th: Tensor, u: Tensor, steps: int = POWER_STEPS) -> float:
    r"""A *lower* bound on ‖∇³L(θ)‖ (the symmetric trilinear form's norm, sup over unit u of
    |∇³L[u,u,u]|) by the higher-order power method u ← ∇³L[u,u,·]/‖·‖ from ``u``; the largest
    |∇³L[u,u,u]| met (:func:`third_contraction`).
    """
    best = 0.0
    u = u / u.norm()
    for _ in range(steps):
        w = third_contraction(f, th, u)
        best = max(best, abs(float(torch.dot(w, u))))
        nw = float(w.norm())
        if nw == 0 or not math.isfinite(nw):
            break
        u = w / nw
    return best


def check_third_derivative_bound(case: Case, terms: Mapping = BOUND_TERMS) -> Outcome:
    """T(R) ≥ ‖∇³L(θ)‖ at θ₀ and θ₀ ± R·v_top: the exact norm of a symmetric trilinear form
    is not computable in general, so each point gives a lower bound (power method from the
    Hessian's top eigenvector, and at θ₀ also from a random direction); any lower bound above
    T(R) refutes it. Slack on the computed |∇³L[u,u,u]|: 10·p·u·max(value, T), as for the Hessian.
    """
    prob = FFNProblem(case)
    R = case.radius or case.eta
    f = prob.loss_fn(0)
    bt, scale = _terms(terms)
    T = bounds(prob, R, terms=bt, third=True).T * scale
    if math.isnan(T):
        return Outcome(INCONCLUSIVE, {"R": R}, "no third-order constants (a₃ or c₃ unknown)")
    pts, _, vtop = _points(prob, R, f, case.seed)
    gen = torch.Generator().manual_seed(case.seed + 57)
    rnd = torch.randn(vtop.shape, generator=gen, dtype=vtop.dtype)
    worst, at = 0.0, {}
    p = prob.theta0.numel()
    for name, th in pts[:3]:  # θ₀, θ₀ ± R·v_top; from a random direction too at θ₀
        low = cubic_power(f, th, vtop)
        if name == "theta0":
            low = max(low, cubic_power(f, th, rnd))
        at[name] = low
        if low - 10 * p * U64 * max(low, T) > T:
            return Outcome(VIOLATED, {"T": T, "lower": low, "point": name, "R": R},
                           f"|∇³L[u,u,u]| = {low:.6e} at {name} exceeds T(R={R:.3e}) = {T:.6e}")
        worst = max(worst, _over_bound(low, T))
    return Outcome(HOLDS, {"T": T, "R": R, "lower_over_bound": worst,
                           "lower_over_bound_theta0": at["theta0"] / T if T > 0 else math.nan})


def check_error_bound(case: Case, terms: Mapping = BOUND_TERMS) -> Outcome:
    """‖τ⁽ᵏ⁾ + kηg‖ ≤ η²M(R)G(R)k(k−1)/2 (a priori, in the regime kηG(R) ≤ R), ≤ the
    g-anchored and the third-order bounds (in the g-anchored regime) and ≤ ηM(R_t)Σ‖θ_i − θ₀‖
    (trajectory); examples outside both regimes are counted as inconclusive. Every bound is
    checked; the best is reported with each one's tightness.
    """
    prob = FFNProblem(case)
    bt, scale = _terms(terms)
    f, th, k, eta = prob.loss_fn(0), prob.theta0, case.epochs, case.eta
    g = gradient(f, th)
    g_cert = certified_grad_norm(prob, g)
    R = regime_radius(prob, k, eta, float(g.norm()))
    Ra = g_regime_radius(prob, k, eta, g_cert)
    meas = {"eta": eta, "k": k}
    if R is None and Ra is None:
        return Outcome(INCONCLUSIVE, meas, "outside the regime: no R with kηG(R) ≤ R nor with "
                                           "‖g‖((1+ηM)^(k−1) − 1)/M ≤ R")
    nan = math.nan
    apriori = naive = anchored = third = lead = nan
    exact_H, _, slack_H = hessian_norm_certified(f, th)
    if R is not None:
        ab = bounds(prob, R, terms=bt)
        apriori = apriori_error_bound(ab, eta, k) * scale * terms["scale_apriori"]
        naive = apriori_error_bound(bounds(prob, R, naive=True), eta, k)
    if Ra is not None:
        aa = bounds(prob, Ra, terms=bt, third=True)
        anchored = g_anchored_error_bound(aa.M, g_cert, eta, k) * scale \
            * terms["scale_g_anchored"]
        if not math.isnan(aa.T):
            H0 = min(aa.M, exact_H + slack_H)
            hg = certified_hg_norm(f, th, g, g_cert, H0)
            lead = math.comb(k, 2) * eta ** 2 * hg
            third = third_order_error_bound(hg, H0, aa.M, aa.T, g_cert, eta, k,
                                            terms["remainder_scale"]) \
                * scale * terms["scale_third_order"]
    # the actual trajectory, with every iterate's distance to θ₀
    theta, dists = th.clone(), []
    for _ in range(k):
        dists.append(float((theta - th).norm()))
        theta = theta - eta * gradient(f, theta)
    tau = theta - th
    actual = float((tau + k * eta * g).norm())
    floor = float(trajectory_floor(float(th.norm()), tau[None], torch.tensor([eta], dtype=th.dtype),
                                   k, torch.tensor([k * float(g.norm())], dtype=th.dtype), 0.0)[0])
    R_t = max(dists + [float(tau.norm())])
    traj = trajectory_error_bound(bounds(prob, R_t, terms=bt).M, eta, dists) * scale \
        * terms["scale_trajectory"]
    best = min(b for b in (apriori, anchored, third) if not math.isnan(b))
    # tightness ratios only where the actual error is resolved (≥ 100× its rounding floor)
    resolved = actual >= 100 * floor
    ratio = (lambda b: actual / b if (resolved and b > 0) else math.nan)
    meas.update(R=R, R_anchored=Ra, R_traj=R_t, actual=actual,
                apriori=None if math.isnan(apriori) else apriori,
                g_anchored=None if math.isnan(anchored) else anchored,
                third_order=None if math.isnan(third) else third, best=best,
                # the η³ remainder over the leading term C(k,2)η²‖Hg‖ (the bound tends to the
                # actual error where this is small)
                third_order_remainder_share=(third - lead) / lead if lead > 0 else math.nan,
                trajectory=traj, naive=None if math.isnan(naive) else naive,
                rounding_floor=floor, actual_resolved=resolved,
                actual_over_apriori=ratio(apriori), actual_over_g_anchored=ratio(anchored),
                actual_over_third_order=ratio(third),
                actual_over_best=ratio(best),
                actual_over_trajectory=ratio(traj), actual_over_naive=ratio(naive),
                naive_over_apriori=naive / apriori if apriori > 0 else math.nan,
                apriori_over_g_anchored=apriori / anchored if anchored > 0 else math.nan,
                # useful: the bound below the first-order term itself (else it says nothing)
                best_over_first_order=best / (k * eta * g_cert) if g_cert > 0 else math.nan,
                hessian_exact_over_bound=_over_bound(exact_H, (ab if R is not None else aa).M))
    for name, bound in (("a-priori", apriori), ("g-anchored", anchored), ("third-order", third),
                        ("trajectory", traj)):
        if not math.isnan(bound) and actual - floor > bound:
            return Outcome(VIOLATED, meas, f"actual error {actual:.6e} exceeds the {name} bound "
                                           f"{bound:.6e} (rounding floor {floor:.1e})")
    # one SGD epoch with two batches (the last smaller when n is odd): the batch-weighted bound
    if case.n >= 2:
        batches = batch_sequence(case.n, (case.n + 1) // 2, 1, False, case.seed)
        fs = [prob.loss_fn(0, b) for b in batches]
        gs = [gradient(fb, th) for fb in fs]
        Rs = sgd_regime(prob, eta, batches, sum(float(gb.norm()) for gb in gs))
        if Rs is not None:
            theta = th.clone()
            for fb in fs:
                theta = theta - eta * gradient(fb, theta)
            s_actual = float((theta - th + eta * sum(gs)).norm())
            s_bound = sgd_epoch_error_bound(prob, eta, batches, Rs, terms=bt) * scale \
                * terms["scale_sgd"]
            meas.update(sgd_actual=s_actual, sgd_bound=s_bound,
                        sgd_actual_over_bound=s_actual / s_bound if (s_bound > 0 and s_actual >= 100 * floor) else math.nan)
            if s_actual - floor > s_bound:
                return Outcome(VIOLATED, meas, f"one-SGD-epoch error {s_actual:.6e} exceeds its "
                                               f"bound {s_bound:.6e}")
    return Outcome(HOLDS, meas)


PROBE = "tightness probe: rejected only on examples where the bound is within 2×"
# Planted wrong M(R): both claims that use M reject the same two ablations.
M_ABLATIONS = (
    Variant("a2_zero", "a₂ = sup|σ''| set to 0 (the σ'' part of the network's curvature ignored)",
            {"activation": lambda name: replace(ACTIVATIONS[name].bound_constants(), a2=0.0)}),
    Variant("c2_omitted", "loss curvature c₂ omitted in M (Gauss–Newton term dropped)",
            {"c2": lambda loss: 0.0}),
)
_edge = (Case(spec=NetSpec(1, (1,), 1, "tanh"), n=1, seed=1, eta=0.01, epochs=2, radius=0.01),
         Case(spec=NetSpec(2, (3,), 2, "sigmoid"), loss="cross_entropy", n=4, seed=2, eta=0.01,
              epochs=3, radius=0.1),
         Case(spec=NetSpec(3, (5, 4), 2, "softplus"), n=6, seed=3, eta=1e-3, epochs=2,
              radius=1.0, at_minimum=True),
         # one sample, large input and residual: the σ'' term of the curvature dominates
         Case(spec=NetSpec(1, (1,), 1, "tanh", False), n=1, seed=8, eta=1e-4, epochs=2,
              radius=0.01, x_scale=3.0, y_scale=10.0),
         Case(spec=NetSpec(1, (1,), 1, "sigmoid", False), n=1, seed=7, eta=1e-4, epochs=2,
              radius=0.01, x_scale=3.0, y_scale=10.0))

SHARP = load_sharp_cases()
_M_CONSTANTS = ("a1_low", "a2_low", "sup_sigma_low", "beta_low", "kappa_low", "c1_low", "c2_low",
                "weight_ball_dropped", "bias_ball_dropped", "jacobian0_low")
_G_CONSTANTS = ("a1_low", "sup_sigma_low", "beta_low", "kappa_low", "c1_low",
                "weight_ball_dropped", "bias_ball_dropped", "jacobian0_low")
_ERROR_BOUNDS = (("apriori_low", "a-priori bound lowered by 10 %", {"scale_apriori": 0.9}),
                 ("g_anchored_low", "g-anchored bound lowered by 10 %", {"scale_g_anchored": 0.9}),
                 ("trajectory_low", "trajectory bound lowered by 10 %", {"scale_trajectory": 0.9}),
                 ("third_order_low", "third-order bound lowered by 10 %", {"scale_third_order": 0.9}),
                 ("sgd_bound_low", "one-SGD-epoch bound lowered by 10 %", {"scale_sgd": 0.9}))
SHARP_NOTE = (" — a sharpness probe: a must-reject once a pinned sharp case (theory/"
              "sharp_cases.json, found by python -m tvgrad.theory.sharp) exists")


def _sharpness(claim_id: str, rows) -> tuple[Variant, ...]:
    """The 10 %-lowered constants of ``rows`` as variants of ``claim_id``."""
    have = SHARP.get(claim_id, {})
    return tuple(Variant(vid, desc + ("" if vid in have else SHARP_NOTE), terms,
                         must_reject=vid in have) for vid, desc, terms in rows)


def _sharp_examples(claim_id: str) -> tuple[Case, ...]:
    return tuple(SHARP.get(claim_id, {}).values())


_BY_ID = {vid: (vid, desc, terms) for vid, desc, terms in SHARPNESS}


def _strategy(error: bool = False, corner: Mapping | None = None):
    # depth 1–4 and widths 1–64, log-uniform (every octave of widths equally likely); the
    # corner of the sharp cases (CORNERS: the claim's own where it has one)
    return st.one_of(bound_cases(error=error, **strategies.sized(max_depth=4, max_width=64,
                                                                 width_dist="log")),
                     corner_cases(**(corner or {})))


FFN_HESSIAN_BOUND = Claim(
    id="ffn_hessian_bound", title="M(R) bounds the Hessian norm over the ball",
    statement=r"M(R) \ge \sup_{\|\theta-\theta_0\|\le R}\|\nabla^2 L(\theta)\|_2",
    check=check_hessian_bound, strategy=_strategy, case_type=Case,
    variants=(Variant("bound_times_half", "M(R)/2 — " + PROBE, {"scale": 0.5},
                      must_reject=False),
              *M_ABLATIONS,
              *_sharpness("ffn_hessian_bound", [_BY_ID[v] for v in _M_CONSTANTS])),
    terms=BOUND_TERMS, examples=_edge + _sharp_examples("ffn_hessian_bound"),
    notes="Exact ‖∇²L‖₂ by dense torch.func.hessian + eigh at θ₀, θ₀ ± R·v_top and random points "
          "at R/2 and R; slack 10·p·u·‖H‖ for the eigensolver (Weyl). theory/bound.md.")

FFN_GRADIENT_BOUND = Claim(
    id="ffn_gradient_bound", title="G(R) bounds the gradient norm over the ball",
    statement=r"G(R) \ge \sup_{\|\theta-\theta_0\|\le R}\|\nabla L(\theta)\|",
    check=check_gradient_bound, strategy=_strategy, case_type=Case,
    variants=(Variant("bound_times_half", "G(R)/2 — " + PROBE, {"scale": 0.5},
                      must_reject=False),
              Variant("last_layer_only", "Jacobian bound of the output layer's parameters only",
                      {"jacobian": _last_layer_only}),
              *_sharpness("ffn_gradient_bound", [_BY_ID[v] for v in _G_CONSTANTS])),
    terms=BOUND_TERMS, examples=_edge + _sharp_examples("ffn_gradient_bound"), notes="Same points as ffn_hessian_bound. theory/bound.md.")

FFN_THIRD_DERIVATIVE_BOUND = Claim(
    id="ffn_third_derivative_bound", title="T(R) bounds the third-derivative norm over the ball",
    statement=r"T(R) \ge \sup_{\|\theta-\theta_0\|\le R}\|\nabla^3 L(\theta)\|",
    check=check_third_derivative_bound,
    strategy=lambda: _strategy(corner=CORNERS["ffn_third_derivative_bound"]), case_type=Case,
    variants=(Variant("bound_times_half", "T(R)/2 — " + PROBE, {"scale": 0.5},
                      must_reject=False),
              Variant("a3_zero", "a₃ = sup|σ'''| set to 0 (the σ''' part of the third "
                      "derivative ignored)",
                      {"activation": lambda name: replace(ACTIVATIONS[name].bound_constants(),
                                                          a3=0.0)}),
              Variant("first_order_terms_only", "T without its loss-curvature terms (c₃ and "
                      "c₂ set to 0: only ℓ'·D³f)", {"c3": lambda loss: 0.0, "c2": lambda loss: 0.0}),
              *_sharpness("ffn_third_derivative_bound",
                          [_BY_ID[v] for v in ("a3_low", "c3_low")])),
    terms=BOUND_TERMS, examples=_edge + _sharp_examples("ffn_third_derivative_bound"),
    notes="Lower bounds on ‖∇³L‖ (power method u ← ∇³L[u,u,·] from the Hessian's top "
          "eigenvector at θ₀ and θ₀ ± R·v_top, and from a random direction at θ₀); "
          "any above T(R) refutes it. theory/bound.md, bound (g).")

FFN_SECOND_ORDER_ERROR_BOUND = Claim(
    id="ffn_second_order_error_bound",
    title="The k-epoch second-order error is within the explicit bound",
    statement=(r"\|\tau^{(k)} + k\eta g\| \le \eta^2 M(R) G(R)\binom{k}{2}\ \text{if } k\eta G(R)"
               r"\le R;\quad \le \|g\|\frac{(1+\eta M)^k - 1 - k\eta M}{M};\quad "
               r"\le \tbinom k2\eta^2\|Hg\| + \eta^3 R_3(M, T);\quad "
               r"\le \eta M(R_t)\sum_{i<k}\|\theta_i-\theta_0\|;\quad "
               r"\text{SGD epoch: } \|\tau+\eta\sum_b g_b\| \le \eta^2\sum_b M_b\sum_{c<b}G_c"),
    check=check_error_bound, strategy=lambda: _strategy(error=True), case_type=Case,
    variants=(Variant("bound_times_half", "both bounds halved — " + PROBE, {"scale": 0.5},
                      must_reject=False),
              *M_ABLATIONS,
              Variant("remainder_dropped", "the third-order bound without its η³ remainder "
                      "(leading term C(k,2)η²‖Hg‖ only)", {"remainder_scale": 0.0}),
              *_sharpness("ffn_second_order_error_bound", _ERROR_BOUNDS)),
    terms=BOUND_TERMS, examples=_edge + _sharp_examples("ffn_second_order_error_bound"),
    subchecks={"one-SGD-epoch bound": "sgd_bound"},
    notes="Examples outside both regimes (no R with kηG(R) ≤ R, none with "
          "‖g‖((1+ηM(R))^(k−1) − 1)/M(R) ≤ R) are inconclusive, never passed. Every bound is "
          "checked; tightness: actual over the a-priori (old), g-anchored and third-order (new), "
          "best of the three, trajectory and naive bounds in the statistics.")
