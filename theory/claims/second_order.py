"""Claims 3–5: second-order expansions of multi-epoch GD, minibatch SGD, and the gap between
task arithmetic and multitask learning, checked by log-log slopes (see ``expansion``).

Non-smooth activations (ReLU): the network is a polynomial in θ inside one activation pattern,
so the expansions hold there with H the almost-everywhere Hessian autograd returns. Every
trajectory is therefore checked to keep the ReLU pattern of θ₀ on all samples at every step;
grid points where it changes are excluded from the window (outside the smooth regime), and an
example left without a window is *inconclusive*. Smooth activations never change a pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Callable, Sequence

import torch
from torch import Tensor

from .. import strategies
from ..derivatives import gradient, hvp
from ..nets import get_activation
from ..problems import Case, Problem, batch_sequence
from ..training import run_steps
from .base import Claim, Outcome, Variant
from .exact import check_one_epoch_exact, check_ta_equals_mtl_step
from .expansion import GridEval, adaptive_grid_check, trajectory_floor

U32_OVER_U64 = 2.0 ** 29  # u₃₂ / u₆₄


@dataclass
class Run:
    """One trajectory: the loss of each step, and its exact first-order coefficient
    (τ = η·first + O(η²)), used for the expansion ratio and the floor."""

    steps: Sequence[Callable[[Tensor], Tensor]]
    first: Tensor


def _pattern(prob: Problem) -> Callable[[Tensor], Tensor] | None:
    if get_activation(prob.case.spec.activation).smooth:
        return None

    def pattern(theta: Tensor) -> Tensor:
        return torch.cat([torch.cat([z.reshape(-1) > 0 for z in prob.preactivations(theta, t)])
                          for t in range(prob.case.tasks)])

    return pattern


def gradient_rounding(prob: Problem, tasks: range | list[int] = (0,)) -> float:
    """ε_g ≈ ‖ĝ₆₄ − ĝ₃₂‖·u₆₄/u₃₂: estimated rounding error of one float64 gradient (the
    largest over the given tasks' losses); ``prob`` is the float64 problem already built."""
    p32 = Problem.build(prob.case, torch.float32)
    return max(float((gradient(prob.loss_fn(t), prob.theta0)
                      - gradient(p32.loss_fn(t), p32.theta0).double()).norm())
               for t in tasks) / U32_OVER_U64


def _evaluate(prob: Problem, runs: list[Run], combine: Callable[[list[Tensor]], Tensor],
              eps_g: float) -> Callable[[Tensor], GridEval]:
    pattern = _pattern(prob)
    th_norm = float(prob.theta0.norm())

    def evaluate(etas: Tensor) -> GridEval:
        taus, ratio, floor = [], torch.zeros_like(etas), torch.zeros_like(etas)
        finite = torch.ones_like(etas, dtype=torch.bool)
        kept = torch.ones_like(etas, dtype=torch.bool)
        for run in runs:
            tr = run_steps(run.steps, prob.theta0, etas, pattern)
            first = etas[:, None] * run.first
            fn = torch.linalg.vector_norm(first, dim=1)
            rel = torch.linalg.vector_norm(tr.tau - first, dim=1) / fn
            # A zero first-order term leaves the ratio undefined: 0 if τ is 0 too, else ∞
            # (outside the regime; e.g. rounding noise amplified by an unstable large η).
            resid = torch.linalg.vector_norm(tr.tau - first, dim=1)
            rel = torch.where(fn > 0, rel, torch.where(resid > 0, torch.inf, 0.0))
            ratio = torch.maximum(ratio, rel)
            floor = floor + trajectory_floor(th_norm, tr.tau, etas, len(run.steps),
                                             tr.grad_norm_sum, eps_g)
            finite &= tr.finite
            kept &= tr.pattern_kept
            taus.append(tr.tau)
        return GridEval(combine(taus), ratio, floor, finite, kept)

    return evaluate


# -- claim 3: multi-epoch GD -------------------------------------------------------------------
MULTI_EPOCH_VARIANTS = (
    Variant("coefficient_k2_over_2", "τ⁽ᵏ⁾ = −kηg + (k²/2) η² Hg"),
    Variant("sign_flipped", "τ⁽ᵏ⁾ = −kηg − C(k,2) η² Hg"),
    Variant("hessian_wrong_vector", "τ⁽ᵏ⁾ = −kηg + C(k,2) η² H v, v = θ₀ rescaled to ‖g‖"),
    Variant("first_order_k_minus_1", "τ⁽ᵏ⁾ = −(k−1)ηg + C(k,2) η² Hg"),
)


def check_multi_epoch(case: Case, variant: str | None = None) -> Outcome:
    """τ⁽ᵏ⁾ = −kηg + C(k,2)η²Hg + O(η³) for k full-batch GD epochs (float64)."""
    k = case.epochs
    if k == 1 and variant is None:
        return check_one_epoch_exact(case)  # C(1,2) = 0: the expansion is exact
    prob = Problem.build(case)
    f = prob.loss_fn(0)
    th = prob.theta0
    g = gradient(f, th)
    c = comb(k, 2)
    v1, v2 = -k * g, c * hvp(f, th, g)
    if variant == "coefficient_k2_over_2":
        v2 = (k * k / 2) * hvp(f, th, g)
    elif variant == "sign_flipped":
        v2 = -v2
    elif variant == "hessian_wrong_vector":
        w = th * (g.norm() / th.norm().clamp_min(1e-300))
        v2 = c * hvp(f, th, w)
    elif variant == "first_order_k_minus_1":
        v1 = -(k - 1) * g
    eps_g = gradient_rounding(prob)
    evaluate = _evaluate(prob, [Run([f] * k, -k * g)], lambda t: t[0], eps_g)
    return adaptive_grid_check(evaluate, v1, v2,
                               {"grad_norm": float(g.norm()), "hg_norm": float(hvp(f, th, g).norm())})


MULTI_EPOCH_SECOND_ORDER = Claim(
    id="multi_epoch_second_order",
    title="k epochs of GD: first order exact, second order C(k,2)η²Hg",
    statement=(r"\tau^{(k)} = -k\eta\,g + \binom{k}{2}\eta^2 H g + O(\eta^3),\quad "
               r"g=\nabla L(\theta_0),\ H=\nabla^2 L(\theta_0)"),
    check=check_multi_epoch,
    # k = 1 is the exact claim one_epoch_exact (and a pinned example here): draw k ≥ 2 so that
    # every random example exercises the second-order term.
    strategy=lambda: strategies.cases(min_epochs=2, max_epochs=6),
    case_type=Case,
    variants=MULTI_EPOCH_VARIANTS,
    examples=strategies.edge_cases(epochs=3) + strategies.edge_cases(epochs=2, activation="relu")[:1],
    notes="Slopes of ‖τ+kηg‖ (≥ 2 − band) and ‖τ+kηg−C(k,2)η²Hg‖ (≥ 3 − band) over an "
          "automatic η window; band = ln(1.21)·Σ|w_j| (see theory.claims.expansion).",
)


# -- claim 4: minibatch SGD --------------------------------------------------------------------
SGD_VARIANTS = (
    Variant("sign_flipped", "second-order term with the sign flipped"),
    Variant("coefficient_half", "second-order term halved"),
    Variant("reversed_order", "η² Σ_n H_{b(n)} Σ_{m>n} g_{b(m)} (batch order reversed)"),
    Variant("full_batch_formula", "the GD formula −Nηg + C(N,2)η²Hg with full-data g, H"),
)


def check_sgd_epoch(case: Case, variant: str | None = None) -> Outcome:
    """τ = −η Σ_n g_{b(n)} + η² Σ_n H_{b(n)} Σ_{m<n} g_{b(m)} + O(η³) (float64)."""
    steps_idx = batch_sequence(case.n, case.batch_size, case.epochs, case.reshuffle, case.seed)
    N = len(steps_idx)
    if N == 1 and variant is None:
        return check_one_epoch_exact(case)
    prob = Problem.build(case)
    th = prob.theta0
    fs = [prob.loss_fn(0, idx) for idx in steps_idx]
    gs = [gradient(f, th) for f in fs]
    gsum = torch.stack(gs).sum(0)
    prefix = torch.zeros_like(th)
    v2 = torch.zeros_like(th)
    for f, g in zip(fs, gs):
        v2 = v2 + hvp(f, th, prefix)
        prefix = prefix + g
    v1 = -gsum
    f_full = prob.loss_fn(0)
    g_full = gradient(f_full, th)
    per_epoch = len(batch_sequence(case.n, case.batch_size, 1, False, case.seed))
    one_epoch = torch.stack(gs[:per_epoch]).sum(0)
    ref = per_epoch * g_full
    extra = {
        "steps": N, "batches_per_epoch": per_epoch,
        "last_batch_smaller": bool(case.n % (case.batch_size or case.n) != 0),
        # −ηΣ_b g_b vs −ηB g over one epoch: equal only for equal batch sizes
        "first_order_gap_rel": (float((one_epoch - ref).norm() / ref.norm())
                                if float(ref.norm()) > 0 else float("nan")),
    }
    if variant == "sign_flipped":
        v2 = -v2
    elif variant == "coefficient_half":
        v2 = v2 / 2
    elif variant == "reversed_order":
        suffix, v2 = torch.zeros_like(th), torch.zeros_like(th)
        for f, g in zip(reversed(fs), reversed(gs)):
            v2 = v2 + hvp(f, th, suffix)
            suffix = suffix + g
    elif variant == "full_batch_formula":
        v1, v2 = -N * g_full, comb(N, 2) * hvp(f_full, th, g_full)
    eps_g = gradient_rounding(prob)
    evaluate = _evaluate(prob, [Run(fs, -gsum)], lambda t: t[0], eps_g)
    return adaptive_grid_check(evaluate, v1, v2, extra)


SGD_EPOCH_SECOND_ORDER = Claim(
    id="sgd_epoch_second_order",
    title="Minibatch SGD: ordered second-order term over any batch sequence",
    statement=(r"\tau = -\eta\sum_{n=1}^{N} g_{b(n)} + \eta^2\sum_{n=1}^{N} H_{b(n)}"
               r"\sum_{m<n} g_{b(m)} + O(\eta^3);\ \text{one epoch: } -\eta\sum_b g_b "
               r"= -\eta B g \text{ only for equal batch sizes}"),
    check=check_sgd_epoch,
    strategy=lambda: strategies.cases(max_epochs=3, minibatch=True, max_n=48, min_steps=2),
    case_type=Case,
    variants=SGD_VARIANTS,
    examples=strategies.edge_cases(epochs=1, minibatch=True)
    + strategies.edge_cases(epochs=2, minibatch=True)[:1],
    notes="Same slope machinery as multi_epoch_second_order; g_b, H_b are the gradient and "
          "Hessian at θ₀ of batch b's mean loss; reshuffled epochs are one longer sequence.",
)


# -- claim 5: task arithmetic vs multitask learning -------------------------------------------
CROSS_VARIANTS = (
    Variant("sign_flipped", "Σ_t τ_t − Δ_MTL = +η² C(k,2) Σ_t Σ_{s≠t} H_t g_s"),
    Variant("coefficient_k2_over_2", "coefficient k²/2 instead of C(k,2)"),
    Variant("all_pairs", "Σ over all (t, s), s = t included"),
)


def check_cross_term(case: Case, variant: str | None = None) -> Outcome:
    """Σ_t τ_t⁽ᵏ⁾ − Δ_MTL⁽ᵏ⁾ = −η² C(k,2) Σ_t Σ_{s≠t} H_t g_s + O(η³) (float64)."""
    k, T = case.epochs, case.tasks
    if k == 1 and variant is None:
        return check_ta_equals_mtl_step(case)  # the gap is exactly zero at k = 1
    prob = Problem.build(case)
    th = prob.theta0
    fs = [prob.loss_fn(t) for t in range(T)]
    F = prob.sum_loss_fn()
    gs = [gradient(f, th) for f in fs]
    G = torch.stack(gs).sum(0)
    coef = (k * k / 2) if variant == "coefficient_k2_over_2" else comb(k, 2)
    if variant == "all_pairs":
        cross = sum(hvp(f, th, G) for f in fs)
    else:
        cross = sum(hvp(f, th, G - g) for f, g in zip(fs, gs))
    v2 = (coef if variant == "sign_flipped" else -coef) * cross
    v1 = torch.zeros_like(th)
    eps_g = gradient_rounding(prob, range(T))
    runs = [Run([f] * k, -k * g) for f, g in zip(fs, gs)] + [Run([F] * k, -k * G)]
    evaluate = _evaluate(prob, runs, lambda taus: sum(taus[:-1]) - taus[-1], eps_g * T)
    return adaptive_grid_check(evaluate, v1, v2, {"cross_norm": float(cross.norm())})


TA_VS_MTL_CROSS_TERM = Claim(
    id="ta_vs_mtl_cross_term",
    title="Task arithmetic minus multitask GD: the cross-task curvature-gradient term",
    statement=(r"\sum_t \tau_t^{(k)} - \Delta_{\mathrm{MTL}}^{(k)} = -\eta^2\binom{k}{2}"
               r"\sum_t\sum_{s\neq t} H_t g_s + O(\eta^3)"),
    check=check_cross_term,
    strategy=lambda: strategies.cases(min_tasks=2, max_tasks=5, min_epochs=2, max_epochs=6, max_n=32,
                                      max_width=16, max_depth=3),
    case_type=Case,
    variants=CROSS_VARIANTS,
    examples=strategies.edge_cases(tasks=2, epochs=3)
    + strategies.edge_cases(tasks=3, epochs=2, activation="relu")[:1],
    notes="Beyond the paper. Δ_MTL⁽ᵏ⁾ = k GD steps of rate η on Σ_t L_t. Same slope machinery.",
)
