"""Claims 1 and 2: the exact one-epoch identities of full-batch gradient descent.

Both are checked the way a user computes task vectors — finetune a real ``nn.Module`` with
``torch.optim.SGD``, then subtract the pretrained parameters — in float64 and float32, against
the derived per-coordinate rounding tolerance of :mod:`theory.rounding`.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ...errors import InvalidInput, check_lr
from .. import strategies
from ..cases import Case, FFNProblem
from ..module_problem import ModuleProblem
from ..rounding import U64, compare, gamma, sgd_step_tolerance, sum_tolerance, unit_roundoff
from .base import DIVERGED, HOLDS, VIOLATED, Claim, Outcome, Variant

DTYPES = (torch.float64, torch.float32)


def _flat(params: list[torch.nn.Parameter], attr: str = "data") -> Tensor:
    return torch.cat([getattr(p, attr).detach().reshape(-1) for p in params])


def task_gradient(prob: ModuleProblem, tasks: list[int]) -> tuple[torch.nn.Module, Tensor, Tensor]:
    """A fresh copy of the θ₀ module with ``.grad`` = ∇ Σ_{t∈tasks} L_t (one backward of the
    summed per-task losses, as multitask training does). Returns (module, loss, flat grad).
    """
    module = prob.module_at_theta0()
    module.zero_grad(set_to_none=True)
    loss = prob.module_backward(module, tasks)
    return module, loss, _flat(prob.trainable(module), "grad")


def sgd_step(prob: ModuleProblem, module: torch.nn.Module, lr: float) -> Tensor:
    """``torch.optim.SGD(lr).step()`` on the module's current ``.grad``; returns flat θ₁."""
    params = prob.trainable(module)
    torch.optim.SGD(params, lr=lr).step()
    return _flat(params)


def finetune_one_epoch(prob: ModuleProblem, task: int, lr: float) -> tuple[Tensor, Tensor, Tensor]:
    """One full-batch epoch of task ``task``: returns (τ̂ = θ₁ − θ₀, ĝ, loss at θ₁)."""
    module, _, g = task_gradient(prob, [task])
    theta1 = sgd_step(prob, module, lr)
    with torch.no_grad():
        loss1 = prob.loss_fn(task)(theta1)
    return theta1 - prob.theta0, g, loss1


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# -- claim 1 --------------------------------------------------------------------------------
ONE_EPOCH_TERMS: Mapping = {
    "update": lambda eta, g: -eta * g,   # τ⁽¹⁾ = −η g
    "tolerance": lambda tol: tol,        # the derived per-coordinate rounding bound
}
ONE_EPOCH_VARIANTS = (
    Variant("sign_flipped", "τ⁽¹⁾ = +η g", {"update": lambda eta, g: eta * g}),
    Variant("lr_off_by_1e-4", "τ⁽¹⁾ = −η(1 + 10⁻⁴) g: the tolerance must resolve a 10⁻⁴ relative error",
            {"update": lambda eta, g: -(1 + 1e-4) * eta * g}),
    Variant("no_tolerance", "τ⁽¹⁾ = −η g to the last bit (tolerance 0): rounding is real",
            {"tolerance": lambda tol: torch.zeros_like(tol)}),
)


def one_epoch_on(problem: ModuleProblem, terms: Mapping = ONE_EPOCH_TERMS, *,
                 eta: float = 1e-2) -> Outcome:
    r"""One full-batch epoch is one gradient step, in float64 and float32.

    .. math::

        \hat\tau^{(1)} = \mathrm{fl}(\theta_1) - \theta_0 = -\eta\,\hat g
        \quad\text{per coordinate within } u(1+u)|\theta_0| + (\gamma_2 + u(1+\gamma_2)(2+u))|\eta\hat g|

    The module is finetuned with ``torch.optim.SGD`` and θ₀ subtracted, as a user computes a
    task vector (:func:`tvgrad.theory.rounding.sgd_step_tolerance` derives the tolerance).

    Args:
        problem: any problem (its first task is used).
        terms: the claim's terms (or a planted variant's).
        eta: the learning rate η > 0.

    Returns:
        ``holds``, ``violated`` (with the worst coordinates) or ``diverged``.
    """
    eta = check_lr(eta, "eta")
    meas = {}
    for dtype in DTYPES:
        name = _dtype_name(dtype)
        prob = problem.to(dtype)
        tau, g, loss1 = finetune_one_epoch(prob, 0, eta)
        if not (torch.isfinite(loss1) and torch.isfinite(tau).all()):
            return Outcome(DIVERGED, meas, f"{name}: loss after one epoch is {loss1.item()}")
        tol = terms["tolerance"](sgd_step_tolerance(prob.theta0, g, eta))
        cmp = compare(tau, terms["update"](eta, g.double()), tol, f"τ⁽¹⁾ vs −ηg ({name})")
        meas[f"max_ratio_{name}"] = cmp.max_ratio
        meas[f"max_abs_{name}"] = cmp.max_abs
        meas[f"grad_norm_{name}"] = float(g.double().norm())
        if not cmp.ok:
            return Outcome(VIOLATED, meas, cmp.report)
    return Outcome(HOLDS, meas)


def check_one_epoch_exact(case: Case, terms: Mapping = ONE_EPOCH_TERMS) -> Outcome:
    """:func:`one_epoch_on` on the problem of ``case`` with η = ``case.eta``."""
    return one_epoch_on(FFNProblem(case), terms, eta=case.eta)


ONE_EPOCH_EXACT = Claim(
    id="one_epoch_exact",
    title="One full-batch epoch is exactly one gradient step",
    statement=r"\tau^{(1)} = \theta_1 - \theta_0 = -\eta\,\nabla L(\theta_0)",
    check=check_one_epoch_exact,
    strategy=lambda: strategies.cases(eta=(1e-6, 10.0), **strategies.sized(max_depth=4, max_width=32)),
    case_type=Case,
    variants=ONE_EPOCH_VARIANTS,
    terms=ONE_EPOCH_TERMS,
    examples=strategies.edge_cases(epochs=1)
    + strategies.edge_cases(epochs=1, activation="relu")[:1],
    notes="Per coordinate |τ̂ + ηĝ| ≤ u(1+u)|θ₀| + (γ₂ + u(1+γ₂)(2+u))|ηĝ| "
          "(theory.rounding.sgd_step_tolerance), float64 and float32; relu included (no "
          "derivative beyond the gradient is involved).",
    on_problem=one_epoch_on,
    params={"eta": 1e-2},
)


# -- claim 2 --------------------------------------------------------------------------------
ALPHAS = (1.0, 0.37)

TA_TERMS: Mapping = {
    # (a) Σ_t τ_t = one step of rate η with the gradient G of Σ_t L_t: (gradient used, rate)
    "mtl_step": lambda G, T, eta: (G, eta),
    # (b) θ₀ + αΣ_t τ_t = one step of rate αTη on the mean loss (gradient G/T)
    "merged_lr": lambda alpha, T, eta: alpha * T * eta,
}
TA_VARIANTS = (
    Variant("mean_instead_of_sum", "Σ_t τ_t equals one step of rate η on the *mean* loss",
            {"mtl_step": lambda G, T, eta: (G / T, eta)}),
    Variant("alpha_lr_without_T", "θ₀ + αΣ_t τ_t equals one step of rate α·η on the mean loss",
            {"merged_lr": lambda alpha, T, eta: alpha * 1 * eta}),
    Variant("sign_flipped", "Σ_t τ_t equals one step of rate −η on Σ_t L_t",
            {"mtl_step": lambda G, T, eta: (-G, eta)}),
)


def _step_from_grad(prob: ModuleProblem, grad_vec: Tensor, lr: float) -> Tensor:
    """θ₁ = SGD step of rate ``lr`` from θ₀ with the given flat gradient (as a module)."""
    module = prob.module_at_theta0()
    i = 0
    for p in prob.trainable(module):
        p.grad = grad_vec[i:i + p.numel()].reshape(p.shape).clone()
        i += p.numel()
    return sgd_step(prob, module, lr)


def _merged_tolerance(S: Tensor, err_S: Tensor, G: Tensor, err_G: Tensor, merged: Tensor,
                      mtl: Tensor, alpha: float, lr: float, T: int, dtype: torch.dtype) -> Tensor:
    """Tolerance of part (b), θ₀ + αΣ_t τ_t vs the mean-loss step (see ta_equals_mtl_on)."""
    u = unit_roundoff(dtype)
    alpha_t = float(torch.tensor(alpha, dtype=dtype))
    lr_t = float(torch.tensor(lr, dtype=dtype))
    Sd, Gd, gbd = S.double(), G.double(), (G / T).double()
    err_m = (abs(alpha_t - alpha) * Sd.abs() + alpha * err_S + u * abs(alpha_t) * Sd.abs()
             + u / (1 - u) * merged.double().abs())
    lr_exact_err = gamma(2, U64) * lr + u * (1 + gamma(2, U64)) * lr
    err_s = (u * lr_t * gbd.abs() + lr_exact_err * gbd.abs()
             + lr * (err_G / T + u * Gd.abs() / T))
    err_mtl = err_s + u / (1 - u) * mtl.double().abs()
    return (err_m + err_mtl) * (1 + 16 * U64)


def _summed_step_tolerance(err_S: Tensor, theta0: Tensor, grad_used: Tensor, lr: float,
                           eta: float, err_G: Tensor) -> Tensor:
    r"""Tolerance of part (a), Σ_t τ̂_t vs the multitask step δ̂ = fl(θ₀ − l̃Ĝ) − θ₀ (see
    ta_equals_mtl_on), against the exact reference −ηΣ_t ĝ_t on each side:

    .. math::

        |\hat S - \hat\delta| \le e_S + \mathrm{sgd\_step\_tolerance}(\theta_0, \hat G, l)
            + \eta\,|\hat G - \textstyle\sum_t \hat g_t|

    (e_S: the τ̂_t and their floating sum; then the step's own rounding; then the summed
    gradient's error, which the step multiplies by η).
    """
    return err_S + sgd_step_tolerance(theta0, grad_used, lr) + eta * err_G


def _task_vectors(prob: ModuleProblem, eta: float) -> tuple[list, list, list] | str:
    """Each task's one-epoch τ̂_t, its gradient ĝ_t and step tolerance; or why it diverged."""
    taus, grads, tols = [], [], []
    for t in range(prob.num_tasks):
        tau, g, loss1 = finetune_one_epoch(prob, t, eta)
        if not (torch.isfinite(loss1) and torch.isfinite(tau).all()):
            return f"task {t} loss after one epoch {loss1.item()}"
        taus.append(tau)
        grads.append(g)
        tols.append(sgd_step_tolerance(prob.theta0, g, eta))
    return taus, grads, tols


def ta_equals_mtl_on(problem: ModuleProblem, terms: Mapping = TA_TERMS, *,
                     eta: float = 1e-2) -> Outcome:
    r"""Task arithmetic of one-epoch task vectors is one multitask gradient step.

    .. math::

        \sum_t \tau_t^{(1)} = -\eta\,\nabla\Big(\sum_t L_t\Big)(\theta_0),\qquad
        \theta_0 + \alpha\sum_t\tau_t^{(1)} = \theta_0 - \alpha T\eta\,
        \nabla\Big(\tfrac1T\sum_t L_t\Big)(\theta_0),\quad \alpha \in \{1, 0.37\}

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

    Args:
        problem: a problem with T ≥ 2 tasks.
        terms: the claim's terms (or a planted variant's).
        eta: the learning rate η > 0.
    """
    eta = check_lr(eta, "eta")
    T = problem.num_tasks
    if T < 2:
        raise InvalidInput(f"ta_equals_mtl_step needs a problem with at least 2 tasks, got {T} "
                           f"(pass tasks=[...] to ModuleProblem)")
    meas = {}
    for dtype in DTYPES:
        name = _dtype_name(dtype)
        prob = problem.to(dtype)
        per_task = _task_vectors(prob, eta)
        if isinstance(per_task, str):
            return Outcome(DIVERGED, meas, f"{name}: {per_task}")
        taus, grads, tols = per_task
        S = taus[0]
        for t in taus[1:]:
            S = S + t
        err_S = sum(tols) + sum_tolerance(taus)
        _, _, G = task_gradient(prob, list(range(T)))
        err_G = sum_tolerance(grads)  # |Ĝ − Σ ĝ_t|

        # (a) Σ_t τ_t vs one step on Σ_t L_t
        grad_used, lr = terms["mtl_step"](G, T, eta)
        delta = _step_from_grad(prob, grad_used, lr) - prob.theta0
        tol_a = _summed_step_tolerance(err_S, prob.theta0, grad_used, lr, eta, err_G)
        cmp = compare(S, delta, tol_a, f"Σ_t τ_t vs MTL step ({name}, T={T})")
        meas[f"max_ratio_sum_{name}"] = cmp.max_ratio
        if not cmp.ok:
            return Outcome(VIOLATED, meas, cmp.report)

        # (b) θ₀ + α Σ_t τ_t vs one step of rate α T η on the mean loss
        for alpha in ALPHAS:
            merged = prob.theta0 + alpha * S
            lr = terms["merged_lr"](alpha, T, eta)
            mtl = _step_from_grad(prob, G / T, lr)
            tol_b = _merged_tolerance(S, err_S, G, err_G, merged, mtl, alpha, lr, T, dtype)
            cmp = compare(merged, mtl, tol_b,
                          f"θ₀ + αΣτ vs step of rate αTη on the mean ({name}, α={alpha})")
            meas[f"max_ratio_alpha{alpha:g}_{name}"] = cmp.max_ratio
            if not cmp.ok:
                return Outcome(VIOLATED, meas, cmp.report)
    return Outcome(HOLDS, meas)


def check_ta_equals_mtl_step(case: Case, terms: Mapping = TA_TERMS) -> Outcome:
    """:func:`ta_equals_mtl_on` on the problem of ``case`` with η = ``case.eta``."""
    return ta_equals_mtl_on(FFNProblem(case), terms, eta=case.eta)


TA_EQUALS_MTL_STEP = Claim(
    id="ta_equals_mtl_step",
    title="Task arithmetic of one-epoch task vectors is one multitask gradient step",
    statement=(r"\sum_t \tau_t^{(1)} = -\eta\,\nabla\Big(\sum_t L_t\Big)(\theta_0),\qquad "
               r"\theta_0 + \alpha\sum_t\tau_t^{(1)} = \theta_0 - \alpha T\eta\,"
               r"\nabla\Big(\tfrac1T\sum_t L_t\Big)(\theta_0)"),
    check=check_ta_equals_mtl_step,
    strategy=lambda: strategies.cases(min_tasks=2, max_tasks=5, max_n=32, eta=(1e-6, 10.0),
                                      **strategies.sized(max_depth=4, max_width=32)),
    case_type=Case,
    variants=TA_VARIANTS,
    terms=TA_TERMS,
    examples=strategies.edge_cases(tasks=2, epochs=1) + strategies.edge_cases(tasks=5, epochs=1)[:1],
    notes="Derived tolerance: per-task step bounds + γ_{T−1} summation bounds (see docstring).",
    on_problem=ta_equals_mtl_on,
    params={"eta": 1e-2},
)
