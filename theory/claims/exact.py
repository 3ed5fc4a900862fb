"""Claims 1 and 2: the exact one-epoch identities of full-batch gradient descent.

Both are checked the way a user computes task vectors — finetune a real ``nn.Module`` with
``torch.optim.SGD``, then subtract the pretrained parameters — in float64 and float32, against
the derived per-coordinate rounding tolerance of :mod:`theory.rounding`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from .. import strategies
from ..nets import loss_value
from ..problems import Case, Problem
from ..rounding import U64, compare, gamma, sgd_step_tolerance, sum_tolerance, unit_roundoff
from .base import DIVERGED, HOLDS, VIOLATED, Claim, Outcome, Variant

DTYPES = (torch.float64, torch.float32)


def _flat(module: torch.nn.Module, attr: str = "data") -> Tensor:
    return torch.cat([getattr(p, attr).detach().reshape(-1) for p in module.parameters()])


def task_gradient(prob: Problem, tasks: list[int]) -> tuple[torch.nn.Module, Tensor, Tensor]:
    """A fresh copy of the θ₀ module with ``.grad`` = ∇ Σ_{t∈tasks} L_t (one backward of the
    summed per-task losses, as multitask training does). Returns (module, loss, flat grad)."""
    module = copy.deepcopy(prob.module)
    module.zero_grad(set_to_none=True)
    loss = sum(loss_value(prob.case.loss, module(prob.data[t].x), prob.data[t].y) for t in tasks)
    loss.backward()
    return module, loss.detach(), _flat(module, "grad")


def sgd_step(module: torch.nn.Module, lr: float) -> Tensor:
    """``torch.optim.SGD(lr).step()`` on the module's current ``.grad``; returns flat θ₁."""
    torch.optim.SGD(module.parameters(), lr=lr).step()
    return _flat(module)


def finetune_one_epoch(prob: Problem, task: int, lr: float) -> tuple[Tensor, Tensor, Tensor]:
    """One full-batch epoch of task ``task``: returns (τ̂ = θ₁ − θ₀, ĝ, loss at θ₁)."""
    module, _, g = task_gradient(prob, [task])
    theta1 = sgd_step(module, lr)
    with torch.no_grad():
        loss1 = loss_value(prob.case.loss, module(prob.data[task].x), prob.data[task].y)
    return theta1 - prob.theta0, g, loss1


# -- claim 1 --------------------------------------------------------------------------------
ONE_EPOCH_VARIANTS = (
    Variant("sign_flipped", "τ⁽¹⁾ = +η g"),
    Variant("lr_off_by_1e-4", "τ⁽¹⁾ = −η(1 + 10⁻⁴) g: the tolerance must resolve a 10⁻⁴ relative error"),
    Variant("no_tolerance", "τ⁽¹⁾ = −η g to the last bit (tolerance 0): rounding is real"),
)


def check_one_epoch_exact(case: Case, variant: str | None = None) -> Outcome:
    """τ⁽¹⁾ = −η g per coordinate within ``sgd_step_tolerance``, in float64 and float32."""
    meas = {}
    coef = {None: -1.0, "sign_flipped": 1.0, "lr_off_by_1e-4": -(1 + 1e-4),
            "no_tolerance": -1.0}[variant]
    for dtype in DTYPES:
        name = str(dtype).removeprefix("torch.")
        prob = Problem.build(case, dtype)
        tau, g, loss1 = finetune_one_epoch(prob, 0, case.eta)
        if not (torch.isfinite(loss1) and torch.isfinite(tau).all()):
            return Outcome(DIVERGED, meas, f"{name}: loss after one epoch is {loss1.item()}")
        tol = sgd_step_tolerance(prob.theta0, g, case.eta)
        if variant == "no_tolerance":
            tol = torch.zeros_like(tol)
        expected = coef * case.eta * g.double()
        cmp = compare(tau, expected, tol, f"τ⁽¹⁾ vs −ηg ({name})")
        meas[f"max_ratio_{name}"] = cmp.max_ratio
        meas[f"max_abs_{name}"] = cmp.max_abs
        meas[f"grad_norm_{name}"] = float(g.double().norm())
        if not cmp.ok:
            return Outcome(VIOLATED, meas, cmp.report)
    return Outcome(HOLDS, meas)


ONE_EPOCH_EXACT = Claim(
    id="one_epoch_exact",
    title="One full-batch epoch is exactly one gradient step",
    statement=r"\tau^{(1)} = \theta_1 - \theta_0 = -\eta\,\nabla L(\theta_0)",
    check=check_one_epoch_exact,
    strategy=lambda: strategies.cases(eta=(1e-6, 10.0)),
    case_type=Case,
    variants=ONE_EPOCH_VARIANTS,
    examples=strategies.edge_cases(epochs=1)
    + strategies.edge_cases(epochs=1, activation="relu")[:1],
    notes="Per coordinate |τ̂ + ηĝ| ≤ u(1+u)|θ₀| + (γ₂ + u(1+γ₂)(2+u))|ηĝ| "
          "(theory.rounding.sgd_step_tolerance), float64 and float32; relu included (no "
          "derivative beyond the gradient is involved).",
)


# -- claim 2 --------------------------------------------------------------------------------
ALPHAS = (1.0, 0.37)

TA_VARIANTS = (
    Variant("mean_instead_of_sum", "Σ_t τ_t equals one step of rate η on the *mean* loss"),
    Variant("alpha_lr_without_T", "θ₀ + αΣ_t τ_t equals one step of rate α·η on the mean loss"),
    Variant("sign_flipped", "Σ_t τ_t equals one step of rate −η on Σ_t L_t"),
)


def _step_from_grad(prob: Problem, grad_vec: Tensor, lr: float) -> Tensor:
    """θ₁ = SGD step of rate ``lr`` from θ₀ with the given flat gradient (as a module)."""
    module = copy.deepcopy(prob.module)
    i = 0
    for p in module.parameters():
        p.grad = grad_vec[i:i + p.numel()].reshape(p.shape).clone()
        i += p.numel()
    return sgd_step(module, lr)


def check_ta_equals_mtl_step(case: Case, variant: str | None = None) -> Outcome:
    """Σ_t τ_t⁽¹⁾ vs one step on Σ_t L_t; θ₀ + αΣ_t τ_t vs one step of rate αTη on the mean.

    Tolerances (per coordinate, exact reference −ηΣ_t ĝ_t with ĝ_t the per-task gradients):

    * each τ̂_t: ``sgd_step_tolerance(θ₀, ĝ_t, η)``; their floating sum: ``γ_{T−1}Σ|τ̂_t|``;
    * the multitask gradient Ĝ of the summed loss is the floating sum of the same per-task
      backward results: ``|Ĝ − Σĝ_t| ≤ γ_{T−1}Σ|ĝ_t|``, then the step: ``sgd_step_tolerance``;
    * with α: ``c = fl(α̃Ŝ)``, ``m = fl(θ₀ + c)``: ``|m − (θ₀+αS)| ≤ |α̃−α||Ŝ| + |α|e_S +
      u|α̃Ŝ| + u|m|/(1−u)``; the mean-loss step uses ``ḡ = fl(Ĝ/T)`` and lr = αTη computed in
      float64 then rounded to the dtype: ``|s − αηΣĝ| ≤ u|l̃ḡ| + |l̃ − αTη||ḡ| + αTη(|Ĝ −
      Σĝ|/T + u|Ĝ|/T)`` and ``+ u|m₂|/(1−u)`` for ``m₂ = fl(θ₀ − s)``.

    The mean-loss gradient is formed as ∇(Σ_t L_t)/T: backpropagating the mean instead
    rounds inside the backward pass, which this bound does not cover.
    """
    if case.tasks < 2:
        return Outcome(HOLDS, {"note": "T = 1 is claim one_epoch_exact"})
    meas = {}
    T = case.tasks
    for dtype in DTYPES:
        name = str(dtype).removeprefix("torch.")
        u = unit_roundoff(dtype)
        prob = Problem.build(case, dtype)
        taus, grads, tols = [], [], []
        for t in range(T):
            tau, g, loss1 = finetune_one_epoch(prob, t, case.eta)
            if not (torch.isfinite(loss1) and torch.isfinite(tau).all()):
                return Outcome(DIVERGED, meas, f"{name}: task {t} loss after one epoch {loss1.item()}")
            taus.append(tau)
            grads.append(g)
            tols.append(sgd_step_tolerance(prob.theta0, g, case.eta))
        S = taus[0]
        for t in taus[1:]:
            S = S + t
        err_S = sum(tols) + sum_tolerance(taus)
        _, _, G = task_gradient(prob, list(range(T)))
        err_G = sum_tolerance(grads)  # |Ĝ − Σ ĝ_t|

        # (a) Σ_t τ_t vs one step on Σ_t L_t (or a variant's step)
        if variant == "mean_instead_of_sum":
            grad_used, lr = G / T, case.eta
        elif variant == "sign_flipped":
            grad_used, lr = -G, case.eta
        else:
            grad_used, lr = G, case.eta
        delta = _step_from_grad(prob, grad_used, lr) - prob.theta0
        tol_a = err_S + sgd_step_tolerance(prob.theta0, grad_used, lr) + case.eta * err_G
        cmp = compare(S, delta, tol_a, f"Σ_t τ_t vs MTL step ({name}, T={T})")
        meas[f"max_ratio_sum_{name}"] = cmp.max_ratio
        if not cmp.ok:
            return Outcome(VIOLATED, meas, cmp.report)

        # (b) θ₀ + α Σ_t τ_t vs one step of rate α T η on the mean loss
        for alpha in ALPHAS:
            alpha_t = float(torch.tensor(alpha, dtype=dtype))
            merged = prob.theta0 + alpha * S
            lr = alpha * (1 if variant == "alpha_lr_without_T" else T) * case.eta
            gbar = G / T
            mtl = _step_from_grad(prob, gbar, lr)
            lr_t = float(torch.tensor(lr, dtype=dtype))
            Sd, Gd, gbd = S.double(), G.double(), gbar.double()
            err_m = (abs(alpha_t - alpha) * Sd.abs() + alpha * err_S + u * abs(alpha_t) * Sd.abs()
                     + u / (1 - u) * merged.double().abs())
            lr_exact_err = gamma(2, U64) * lr + u * (1 + gamma(2, U64)) * lr
            err_s = (u * lr_t * gbd.abs() + lr_exact_err * gbd.abs()
                     + lr * (err_G / T + u * Gd.abs() / T))
            err_mtl = err_s + u / (1 - u) * mtl.double().abs()
            tol_b = (err_m + err_mtl) * (1 + 16 * U64)
            cmp = compare(merged, mtl, tol_b,
                          f"θ₀ + αΣτ vs step of rate αTη on the mean ({name}, α={alpha})")
            meas[f"max_ratio_alpha{alpha:g}_{name}"] = cmp.max_ratio
            if not cmp.ok:
                return Outcome(VIOLATED, meas, cmp.report)
    return Outcome(HOLDS, meas)


TA_EQUALS_MTL_STEP = Claim(
    id="ta_equals_mtl_step",
    title="Task arithmetic of one-epoch task vectors is one multitask gradient step",
    statement=(r"\sum_t \tau_t^{(1)} = -\eta\,\nabla\Big(\sum_t L_t\Big)(\theta_0),\qquad "
               r"\theta_0 + \alpha\sum_t\tau_t^{(1)} = \theta_0 - \alpha T\eta\,"
               r"\nabla\Big(\tfrac1T\sum_t L_t\Big)(\theta_0)"),
    check=check_ta_equals_mtl_step,
    strategy=lambda: strategies.cases(min_tasks=2, max_tasks=5, max_n=32, eta=(1e-6, 10.0)),
    case_type=Case,
    variants=TA_VARIANTS,
    examples=strategies.edge_cases(tasks=2, epochs=1) + strategies.edge_cases(tasks=5, epochs=1)[:1],
    notes="Derived tolerance: per-task step bounds + γ_{T−1} summation bounds (see docstring).",
)
