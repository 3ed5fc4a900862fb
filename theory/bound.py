"""Explicit second-order error bound for feed-forward networks (theory/bound.md).

Every constant of theory/bound.md is one function or registry entry:

* activation constants ``a₁ = sup|σ'|``, ``a₂ = sup|σ''|`` and the growth ``|σ(z)| ≤ β + κ|z|``
  → ``ACTIVATIONS[name].constants`` (:mod:`tvgrad.theory.activations`; checked against a dense
  grid and sympy in ``tests/theory/test_bound.py``);
* loss constants ``c₁ ≥ ‖∇_z ℓ‖``, ``c₂ ≥ ‖∇²_z ℓ‖`` → ``LOSSES[name].c1`` / ``.c2``
  (:mod:`tvgrad.theory.losses`);
* per-layer spectral norms over the ball ``s_l = ‖W_l⁰‖₂ + R`` → :func:`spectral_upper`;
* per-sample hidden-norm bounds ``H_l`` → inside :func:`sample_bounds`;
* Jacobian bound ``J`` (``‖c_L‖``) and second-derivative bound ``S`` (``λ_max(Q_L)``) →
  :func:`sample_bounds`;
* ``M(R) ≥ sup_ball ‖∇²L‖₂`` → :func:`hessian_bound`; ``G(R) ≥ sup_ball ‖∇L‖`` →
  :func:`gradient_bound`; both from :func:`bounds`;
* regime radius (every iterate stays in the ball) → :func:`regime_radius`;
* a-priori and trajectory error bounds → :func:`apriori_error_bound`,
  :func:`trajectory_error_bound`; the naive baseline → ``bounds(..., naive=True)``.

ReLU has no second derivative: :func:`bounds` refuses it with :class:`NonSmoothActivation`.
Planted wrong variants replace entries of :class:`BoundTerms` (the constants), never a branch
in this code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..errors import InvalidInput
from .activations import ACTIVATIONS, ActivationConstants
from .cases import FFNProblem as Problem
from .losses import LOSSES


@dataclass(frozen=True)
class BoundTerms:
    """The constants a bound is computed from, as replaceable terms (planted variants).

    Attributes:
        activation: name ↦ :class:`ActivationConstants` (default: the registry's).
        c2: loss name ↦ c₂ ≥ ‖∇²_z ℓ‖₂ (default: the registry's).
        jacobian: the per-layer Jacobian coefficients ``c`` (n, L) ↦ the ones used (default:
            all layers).
        c1_scale: factor on the loss constant c₁ (1: as derived).
        weight_ball: R ↦ the ball term added to each ‖W_l⁰‖₂ (R: as derived).
        bias_ball: R ↦ the ball term added to each ‖b_l⁰‖ (R: as derived).
    """

    activation: Callable[[str], ActivationConstants] = lambda name: ACTIVATIONS[name].bound_constants()
    c2: Callable[[str], float] = lambda loss: LOSSES[loss].c2
    jacobian: Callable[[Tensor], Tensor] = lambda c: c
    c1_scale: float = 1.0
    weight_ball: Callable[[float], float] = lambda R: R
    bias_ball: Callable[[float], float] = lambda R: R


TRUE_TERMS = BoundTerms()


def spectral_upper(W: Tensor, iters: int = 30) -> float:
    """A *certified upper* bound on ‖W‖₂: min(‖W‖_F, sqrt(‖(WᵀW)^m‖_F^{1/m})) — never a
    possibly-low power-iteration estimate. ‖A‖₂ ≤ ‖A^m‖_F^{1/m} for symmetric PSD A = WᵀW and
    any m (the Frobenius norm dominates the largest eigenvalue of A^m = λ_max^m); repeated
    squaring with m = 2^iters' converges to ‖A‖₂ from above. 8 squarings (m = 256) leave at
    most a factor rank^{1/512} ≤ 1.02 for ranks ≤ 32000.
    """
    W = W.detach().double()
    fro = float(W.norm())
    if fro == 0:
        return 0.0
    A = W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T
    log_scale = 0.0  # track ‖A^m‖ as exp(log_scale) · ‖B‖ to avoid overflow
    m = 1
    B = A
    for _ in range(8):
        nb = float(B.norm())
        if nb == 0:
            return 0.0
        B = B / nb
        log_scale = 2 * (log_scale + math.log(nb))
        B = B @ B
        m *= 2
    est = math.exp((log_scale + math.log(float(B.norm()))) / m) if float(B.norm()) > 0 else 0.0
    return min(fro, math.sqrt(est) * (1 + 1e-9))  # margin for float64 rounding of 8 squarings


@dataclass(frozen=True)
class Bounds:
    """M(R) ≥ sup over the ball of ‖∇²L‖₂ and G(R) ≥ sup of ‖∇L‖, for radius R."""
    M: float  # ≥ sup over the ball of ‖∇²L‖₂
    G: float  # ≥ sup over the ball of ‖∇L‖
    R: float


def _layers(prob: Problem) -> list[tuple[Tensor, Tensor | None]]:
    params = prob.layout.unflatten(prob.theta0)
    out = []
    for i in range(prob.case.spec.depth + 1):
        out.append((params[f"layers.{i}.weight"], params.get(f"layers.{i}.bias")))
    return out


def layer_spectral_norms(prob: Problem) -> list[float]:
    """Certified upper spectral norms of θ₀'s weight matrices, computed once per problem (they
    do not depend on R, while the regime search evaluates the bound for many R).
    """
    cached = getattr(prob, "_spectral_norms", None)
    if cached is None:
        cached = [spectral_upper(W) for W, _ in _layers(prob)]
        prob._spectral_norms = cached
    return cached


def sample_bounds(prob: Problem, R: float, x: Tensor, naive: bool = False,
                  terms: BoundTerms = TRUE_TERMS) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample: (J ≥ ‖∂f/∂θ‖₂, S ≥ sup_{‖u‖=1}‖D²f[u,u]‖, F ≥ ‖f(x)‖) over the ball of
    radius R around θ₀, by the layer recursions of theory/bound.md.
    """
    spec = prob.case.spec
    k = terms.activation(spec.activation)
    layers = _layers(prob)
    Lnum = len(layers)
    s = [sn + terms.weight_ball(R) for sn in layer_spectral_norms(prob)]
    bnorm = [(float(b.norm()) + terms.bias_ball(R)) if b is not None else 0.0 for _, b in layers]
    has_b = 1.0 if spec.bias else 0.0
    n = x.shape[0]
    H = x.double().norm(dim=1)  # ‖h_0‖ per sample
    if naive:
        H = torch.full_like(H, float(H.max()))
    c = torch.zeros(n, Lnum, dtype=torch.float64)          # D_l = c_l · a
    Q = torch.zeros(n, Lnum, Lnum, dtype=torch.float64)    # S_l = aᵀ Q_l a
    for l in range(Lnum):
        e = torch.zeros(Lnum, dtype=torch.float64)
        e[l] = 1.0
        scale = torch.sqrt(H ** 2 + has_b)                 # ‖dW h‖ + ‖db‖ ≤ a_l sqrt(H²+1)
        if l == 0:
            c_new = scale[:, None] * e
            Q_new = torch.zeros_like(Q)
        else:
            E_prev = k.a2 * c[:, :, None] * c[:, None, :] + k.a1 * Q   # bound on ‖d²h_{l−1}‖
            cross = k.a1 * (e[None, :, None] * c[:, None, :] + c[:, :, None] * e[None, None, :])
            Q_new = cross + s[l] * E_prev                  # 2‖dW_l‖‖dh_{l−1}‖ + s_l‖d²h_{l−1}‖
            c_new = scale[:, None] * e + s[l] * k.a1 * c
        c, Q = c_new, Q_new
        z = s[l] * H + bnorm[l]                            # ‖z_l‖ bound
        if l < Lnum - 1:
            w = spec.widths[l]
            Hn = k.beta * math.sqrt(w) + k.kappa * z
            if k.bounded is not None:
                Hn = torch.clamp(Hn, max=k.bounded * math.sqrt(w))
            H = Hn
        else:
            F = z
    c = terms.jacobian(c)
    if naive:  # ℓ1 instead of ℓ2 / λ_max: every layer perturbed by a full unit at once
        J = c.sum(dim=1)
        S = Q.sum(dim=(1, 2))
    else:
        J = c.norm(dim=1)
        S = torch.linalg.eigvalsh(0.5 * (Q + Q.transpose(1, 2)))[:, -1].clamp_min(0)
    return J, S, F


def bounds(prob: Problem, R: float, task: int = 0, index: Tensor | None = None,
           naive: bool = False, terms: BoundTerms = TRUE_TERMS) -> Bounds:
    """M(R), G(R) for the mean loss of ``task`` (optionally over the samples ``index``).

    Args:
        prob: a feed-forward problem.
        R: ball radius ≥ 0.
        task: which task's loss.
        index: a subset of its samples (a batch), or None for all.
        naive: the naive baseline (ℓ1 sums, worst sample) instead of the careful bound.
        terms: the constants (planted variants replace some).
    """
    if not (R >= 0 and math.isfinite(R)):
        raise InvalidInput(f"radius R must be finite and >= 0, got {R!r}")
    d = prob.data[task]
    x, y = (d.x, d.y) if index is None else (d.x[index], d.y[index])
    J, S, F = sample_bounds(prob, R, x, naive, terms)
    loss = LOSSES[prob.case.loss]
    resid0 = None
    if loss.needs_residual and not naive:
        with torch.no_grad():
            out0 = torch.func.functional_call(prob.module, prob.layout.unflatten(prob.theta0), (x,))
        resid0 = (out0.double() - y.double()).norm(dim=1)
    c1, c2 = loss.c1(F, y, resid0, J, R) * terms.c1_scale, terms.c2(prob.case.loss)
    per_M = c2 * J ** 2 + c1 * S
    per_G = c1 * J
    if naive:
        return Bounds(float(per_M.max()), float(per_G.max()), R)
    return Bounds(float(per_M.mean()), float(per_G.mean()), R)


def hessian_bound(prob: Problem, R: float, **kw) -> float:
    """M(R) (see :func:`bounds`)."""
    return bounds(prob, R, **kw).M


def gradient_bound(prob: Problem, R: float, **kw) -> float:
    """G(R) (see :func:`bounds`)."""
    return bounds(prob, R, **kw).G


def _fixed_point_radius(reach: Callable[[float], float], R: float, iters: int = 60) -> float | None:
    """Smallest R found with ``reach(R) ≤ R`` by iterating R ← reach(R) (reach is increasing:
    the total step length a run can have inside the ball of radius R); None if it does not
    settle (outside the regime).
    """
    R = max(R, 1e-300)
    for _ in range(iters):
        Rn = reach(R)
        if Rn <= R:
            return R
        R = Rn * 1.0001
        if not math.isfinite(R) or R > 1e6:
            return None
    return None


def regime_radius(prob: Problem, steps: int, eta: float, g_norm: float, iters: int = 60,
                  task: int = 0) -> float | None:
    """Smallest R found with ``steps·η·G(R) ≤ R`` (then every iterate of ``steps`` GD steps
    stays in the ball, by induction: each step has length ≤ ηG(R)); ``None`` if the fixed-point
    iteration R ← steps·η·G(R) does not settle (outside the regime).
    """
    return _fixed_point_radius(lambda R: steps * eta * bounds(prob, R, task).G,
                               steps * eta * g_norm, iters)


def apriori_error_bound(b: Bounds, eta: float, k: int) -> float:
    """‖τ⁽ᵏ⁾ + kηg‖ ≤ η² M(R) G(R) k(k−1)/2 (valid when kηG(R) ≤ R)."""
    return eta ** 2 * b.M * b.G * k * (k - 1) / 2


def sgd_epoch_error_bound(prob: Problem, eta: float, batches: list[Tensor], R: float,
                         task: int = 0, terms: BoundTerms = TRUE_TERMS) -> float:
    """One SGD epoch over ``batches`` (index sets, in order): with per-batch bounds M_b, G_b
    (means over the batch's samples) on the ball of radius R,
    ‖τ + η Σ_b g_b‖ ≤ η² Σ_b M_b Σ_{c<b} G_c, valid when η Σ_b G_b ≤ R (then every iterate
    stays in the ball). The caller checks the regime with :func:`sgd_regime`. ``terms``
    gives the constants of M_b (see :func:`bounds`).
    """
    total, prefix = 0.0, 0.0
    for b in batches:
        total += bounds(prob, R, task, index=b, terms=terms).M * prefix
        prefix += bounds(prob, R, task, index=b).G
    return eta ** 2 * total


def sgd_regime(prob: Problem, eta: float, batches: list[Tensor], g_norm_sum: float,
               iters: int = 60, task: int = 0) -> float | None:
    """Smallest R found with η Σ_b G_b(R) ≤ R, or None (outside the regime)."""
    return _fixed_point_radius(
        lambda R: eta * sum(bounds(prob, R, task, index=b).G for b in batches),
        eta * g_norm_sum, iters)


def trajectory_error_bound(M_traj: float, eta: float, dists: list[float]) -> float:
    """‖τ⁽ᵏ⁾ + kηg‖ ≤ η M(R_t) Σ_{i<k} ‖θ_i − θ₀‖, with R_t = max_i ‖θ_i − θ₀‖ actually reached."""
    return eta * M_traj * sum(dists)
