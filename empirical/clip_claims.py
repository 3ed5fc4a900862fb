r"""The paper's claims checked on CLIP itself (``tvgrad verify-clip``).

The same checks, tolerances and planted variants as on the suite's feed-forward networks —
the very functions of :mod:`tvgrad.theory.claims` — run on the CLIP problem of
:mod:`tvgrad.empirical.clip_problem`, with Hypothesis drawing the dataset(s), the subset seed,
the number of samples n, the epochs k ∈ 2..4, the batch split (a smaller last batch) and the
number of tasks T ∈ 2..3. One more row, ``clip_trajectory_bound``, compares the k-epoch error
with the trajectory bound evaluated with *estimated* Hessian norms:

.. math::

    \|\tau^{(k)} + k\eta g\| \le \eta\sum_{i<k}\hat M_i\,\|\theta_i-\theta_0\|,\qquad
    \hat M_i = \max_{\theta\in\{\theta_0,\ (\theta_0+\theta_i)/2,\ \theta_i\}}|\lambda|_{\max}
    \big(\nabla^2L(\theta)\big)

(:math:`\tau^{(k)}+k\eta g = -\eta\sum_i(\nabla L(\theta_i)-\nabla L(\theta_0))` and each
difference is at most the sup of ‖∇²L‖ on the segment [θ₀, θᵢ] times ‖θᵢ − θ₀‖). Lanczos
(``scipy.sparse.linalg.eigsh`` over HVPs) gives a *lower* estimate of each norm, and three
points do not cover a segment: the row is an estimate, reported as ``consistent`` or
``inconsistent``, never ``verified``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
import torch
from hypothesis import strategies as st

from ..errors import InvalidInput, check_lr, check_positive_int
from ..registry import Registry
from ..theory.claims import CLAIMS, Claim, Outcome, Variant
from ..theory.claims.base import HOLDS, INCONCLUSIVE, VIOLATED, JsonCase
from ..theory.claims.exact import one_epoch_on, ta_equals_mtl_on
from ..theory.claims.second_order import cross_term_on, multi_epoch_on, sgd_epoch_on
from ..theory.derivatives import gradient
from ..theory.strategies import log_uniform
from .clip_problem import ClipSetup, clip_problem

__all__ = ["ClipCase", "clip_cases", "clip_claims", "TRAJECTORY_BOUND"]


@dataclass(frozen=True)
class ClipCase(JsonCase):
    """One drawn CLIP example: the setup, the task datasets and subset, and the claim's knobs.

    Attributes:
        setup: model, weights, data root, device.
        datasets: one per task (T = len).
        n: samples per task.
        seed: seeds the subsets.
        k: epochs.
        batch_size: SGD batch size (None: full batch).
        eta: learning rate of the exact claims and of the bound estimate.
    """

    setup: ClipSetup
    datasets: tuple[str, ...]
    n: int = 4
    seed: int = 0
    k: int = 2
    batch_size: int | None = None
    eta: float = 1e-2

    def __post_init__(self) -> None:
        if isinstance(self.setup, dict):
            object.__setattr__(self, "setup", ClipSetup(**self.setup))
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise InvalidInput("datasets is empty")
        unknown = set(self.datasets) - set(self.setup.datasets)
        if unknown:
            raise InvalidInput(f"datasets {sorted(unknown)} are not among the setup's "
                               f"{list(self.setup.datasets)}")
        check_positive_int(self.n, "n (samples per task)")
        check_positive_int(self.k, "k (epochs)")
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        object.__setattr__(self, "eta", check_lr(self.eta, "eta"))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InvalidInput(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.n > self.setup.max_n:
            raise InvalidInput(f"n = {self.n} is more than the setup's max_n = "
                               f"{self.setup.max_n} samples per task (raise --max-n)")

    def summary(self) -> dict:
        """Flat, CSV-friendly description."""
        return {"model": self.setup.model, "pretrained": self.setup.pretrained,
                "datasets": "+".join(self.datasets), "tasks": len(self.datasets), "n": self.n,
                "seed": self.seed, "epochs": self.k, "batch_size": self.batch_size,
                "eta": self.eta}

    def problem(self, tasks: int | None = None, batch_size: int | None = None):
        """The CLIP problem of the first ``tasks`` datasets (all by default)."""
        ds = self.datasets[:tasks] if tasks else self.datasets
        return clip_problem(self.setup, ds, n=self.n, seed=self.seed, batch_size=batch_size)


@st.composite
def clip_cases(draw, setup: ClipSetup, *, min_tasks: int = 1, max_tasks: int = 1,
               min_k: int = 2, max_k: int = 4, minibatch: bool = False,
               eta: tuple[float, float] = (1e-3, 1e-1)) -> ClipCase:
    """Random CLIP examples under ``setup``.

    Args:
        draw: Hypothesis' draw function (supplied by ``@st.composite``).
        setup: the campaign's model, weights and data.
        min_tasks: fewest tasks T (each a different dataset).
        max_tasks: most tasks T (capped by the number of datasets).
        min_k: fewest epochs.
        max_k: most epochs.
        minibatch: draw a batch size with at least two batches, the last smaller if possible.
        eta: range of the log-uniform learning rate (exact claims, bound estimate).
    """
    if min_tasks > len(setup.datasets):
        raise InvalidInput(f"T = {min_tasks} tasks needs {min_tasks} datasets, the setup has "
                           f"{len(setup.datasets)}: {list(setup.datasets)}")
    T = draw(st.integers(min_tasks, min(max_tasks, len(setup.datasets))))
    datasets = tuple(draw(st.permutations(setup.datasets))[:T])
    n = draw(st.integers(3 if minibatch else 1, max(setup.max_n, 3 if minibatch else 1)))
    bs = None
    if minibatch:
        uneven = [b for b in range(1, n) if n % b]
        bs = draw(st.sampled_from(uneven or list(range(1, n))))
    return ClipCase(setup, datasets, n=n, seed=draw(st.integers(0, 2 ** 16)),
                    k=draw(st.integers(min_k, max_k)), batch_size=bs,
                    eta=draw(log_uniform(*eta)))


# -- the trajectory-bound estimate ----------------------------------------------------------
def lanczos_norm(f, theta: torch.Tensor, tol: float = 1e-4, maxiter: int = 60) -> tuple[float, int]:
    """Largest |eigenvalue| of ∇²f(θ) by Lanczos over HVPs (a lower estimate of ‖∇²f(θ)‖₂),
    and the number of HVPs it took.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    from ..theory.derivatives import HVPOperator
    p = theta.numel()
    count = [0]
    H = HVPOperator(f, theta)  # the gradient graph built once, reused by every product

    def mv(v):
        count[0] += 1
        vec = torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=theta.dtype)
        return H(vec.to(theta.device)).detach().cpu().numpy()
    op = LinearOperator((p, p), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(p)
    try:
        vals = eigsh(op, k=1, which="LM", tol=tol, maxiter=maxiter, v0=v0,
                     return_eigenvectors=False)
    except ArpackNoConvergence as exc:  # the best Ritz value so far is still a lower estimate
        vals = exc.eigenvalues if len(exc.eigenvalues) else np.array([0.0])
    return float(np.abs(vals).max()), count[0]


def trajectory_bound_on(problem, terms: Mapping, *, k: int = 2, eta: float = 1e-2) -> Outcome:
    """‖τ⁽ᵏ⁾ + kηg‖ against η Σᵢ M̂ᵢ ‖θᵢ − θ₀‖ with Lanczos-estimated M̂ᵢ (module docstring).

    ``holds`` reads *consistent*, ``violated`` *inconsistent*: the right-hand side is an
    estimate (Lanczos values are lower estimates; a segment is sampled at three points).
    """
    k, eta = check_positive_int(k, "k (epochs)"), check_lr(eta, "eta")
    prob = problem.to(torch.float64)
    f, th = prob.loss_fn(0), prob.theta0
    g = gradient(f, th)
    theta, iterates = th.clone(), []
    for i in range(k):
        iterates.append(theta)
        theta = theta - eta * (g if i == 0 else gradient(f, theta))
    actual = float((theta - th + k * eta * g).norm())
    if not math.isfinite(actual):
        return Outcome("diverged", {"eta": eta, "k": k}, "the trajectory diverged")
    norm0, hvps = lanczos_norm(f, th)
    total, M_hat = 0.0, []
    for ti in iterates[1:]:
        m = norm0
        for point in ((th + ti) / 2, ti):
            est, n = lanczos_norm(f, point)
            m, hvps = max(m, est), hvps + n
        M_hat.append(m)
        total += m * float((ti - th).norm())
    estimate = eta * total * terms["scale"]
    # rounding of ‖τ + kηg‖: k steps of θ − ηg plus the subtraction, norm-wise (Higham)
    floor = 2.0 ** -53 * ((k + 1) * (float(th.norm()) + float((theta - th).norm()))
                          + 3 * k * eta * float(g.norm()))
    meas = {"eta": eta, "k": k, "actual": actual, "estimate": estimate, "M_hat": M_hat,
            "hessian_norm_theta0": norm0, "rounding_floor": floor, "hvps": hvps,
            "actual_over_estimate": actual / estimate if estimate > 0 else math.nan}
    if actual < 100 * floor:
        return Outcome(INCONCLUSIVE, meas, "the error is at rounding level: nothing to compare")
    if actual - floor > estimate:
        return Outcome(VIOLATED, meas, f"‖τ + kηg‖ = {actual:.6e} exceeds the estimated "
                                       f"trajectory bound {estimate:.6e}")
    return Outcome(HOLDS, meas)


TRAJECTORY_TERMS: Mapping = {"scale": 1.0}
TRAJECTORY_BOUND = "clip_trajectory_bound"


# -- the claims on CLIP -----------------------------------------------------------------------
def _check(claim_id: str):
    """The case-level check of a theory claim on CLIP (same terms, same function)."""
    def check(case: ClipCase, terms: Mapping) -> Outcome:
        if claim_id == "one_epoch_exact":
            return one_epoch_on(case.problem(1), terms, eta=case.eta)
        if claim_id == "ta_equals_mtl_step":
            return ta_equals_mtl_on(case.problem(), terms, eta=case.eta)
        if claim_id == "multi_epoch_second_order":
            return multi_epoch_on(case.problem(1), terms, k=case.k, eta=case.eta)
        if claim_id == "sgd_epoch_second_order":
            return sgd_epoch_on(case.problem(1, case.batch_size), terms, eta=case.eta)
        if claim_id == "ta_vs_mtl_cross_term":
            return cross_term_on(case.problem(), terms, k=case.k, eta=case.eta)
        return trajectory_bound_on(case.problem(1), terms, k=case.k, eta=case.eta)
    return check


def clip_claims(setup: ClipSetup) -> Registry[Claim]:
    """The registry of claims on CLIP under ``setup`` (ids as in theory.json).

    The multitask claims are left out when the setup has a single dataset.
    """
    multi = len(setup.datasets) >= 2
    T = dict(min_tasks=2, max_tasks=3)
    plans = [("one_epoch_exact", dict(min_k=1, max_k=1)),
             ("ta_equals_mtl_step", dict(min_k=1, max_k=1, **T)),
             ("multi_epoch_second_order", {}),
             ("sgd_epoch_second_order", dict(min_k=1, max_k=1, minibatch=True)),
             ("ta_vs_mtl_cross_term", dict(max_k=3, **T))]
    first = ClipCase(setup, setup.datasets[:1], n=min(4, setup.max_n), k=2)
    out: Registry[Claim] = Registry("CLIP claim")
    for cid, kw in plans:
        if "min_tasks" in kw and not multi:
            continue
        theory = CLAIMS[cid]
        ex = first if "min_tasks" not in kw else replace(first, datasets=setup.datasets[:2])
        if kw.get("minibatch"):
            ex = replace(ex, n=max(ex.n, 3), batch_size=2)
        out.register(cid, replace(
            theory, check=_check(cid), case_type=ClipCase, on_problem=None, params={},
            strategy=lambda kw=kw: clip_cases(setup, **kw), examples=(ex,),
            notes=f"On CLIP ({setup.model}, {setup.pretrained}): " + theory.notes,
            reproduce="tvgrad reproduce-clip"))
    out.register(TRAJECTORY_BOUND, Claim(
        id=TRAJECTORY_BOUND, title="The k-epoch error against the trajectory bound with "
                                   "Lanczos-estimated Hessian norms (an estimate)",
        statement=(r"\|\tau^{(k)} + k\eta g\| \le \eta\sum_{i<k}\hat M_i\|\theta_i-\theta_0\|,"
                   r"\ \hat M_i \text{ by Lanczos along } [\theta_0,\theta_i]"),
        check=_check(TRAJECTORY_BOUND), strategy=lambda: clip_cases(setup, max_k=3),
        case_type=ClipCase, terms=TRAJECTORY_TERMS,
        variants=(Variant("hessian_norms_ignored", "M̂ᵢ = 0: the curvature along the trajectory "
                          "ignored (the comparison must be able to read inconsistent)",
                          {"scale": 0.0}),
                  Variant("estimate_times_tenth", "the estimate divided by 10 — tightness probe",
                          {"scale": 0.1}, must_reject=False)),
        examples=(first,), estimate=True, reproduce="tvgrad reproduce-clip",
        notes="Lanczos (scipy eigsh over HVPs) gives lower estimates of ‖∇²L‖ at θ₀, the "
              "midpoint and the end of each segment: the row says consistent or inconsistent, "
              "never verified. Examples whose error is at rounding level are inconclusive."))
    return out
