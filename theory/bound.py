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
  :func:`trajectory_error_bound`; the naive baseline → ``bounds(..., naive=True)``;
* the third-order bound (g): ``a₃ = sup|σ'''|``, ``c₃ ≥ ‖∇³_z ℓ‖``, the cubic layer recursion
  ``Tf`` (:func:`sample_bounds` with ``third=True``, :func:`cubic_sup`), ``T(R) ≥ sup_ball
  ‖∇³L‖`` (``bounds(..., third=True).T``) → :func:`third_order_error_bound`.

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
from .derivatives import hvp
from .losses import LOSSES
from .rounding import U64, gamma


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
        jacobian_scale: factor on the Jacobian measured at θ₀ (bound (b); 1: as measured).
        c3: loss name ↦ c₃ ≥ sup_u |∇³_z ℓ[u,u,u]| (default: the registry's; None: unknown).
    """

    activation: Callable[[str], ActivationConstants] = lambda name: ACTIVATIONS[name].bound_constants()
    c2: Callable[[str], float] = lambda loss: LOSSES[loss].c2
    jacobian: Callable[[Tensor], Tensor] = lambda c: c
    c1_scale: float = 1.0
    weight_ball: Callable[[float], float] = lambda R: R
    bias_ball: Callable[[float], float] = lambda R: R
    jacobian_scale: float = 1.0
    c3: Callable[[str], float | None] = lambda loss: LOSSES[loss].c3


TRUE_TERMS = BoundTerms()


SQUARINGS = 8  # m = 2^8 = 256: an overshoot of at most rank^{1/512} (≤ 1.021 for rank ≤ 32000)


def spectral_upper(W: Tensor) -> float:
    r"""A *certified upper* bound on ‖W‖₂, scale-invariant and rounded outward.

    .. math::
        \|W\|_2 \le \min\Big(\|W\|_F,\ \|(W^\top W)^m\|_F^{1/(2m)}\Big),\quad m = 2^8,

    since for the symmetric PSD ``A = WᵀW`` the Frobenius norm of ``A^m`` dominates its
    largest eigenvalue ``‖W‖₂^{2m}`` (never a possibly-low power-iteration estimate); the
    overshoot is at most ``rank^{1/(2m)}``.

    Rounding, derived: ``W`` is first divided by its largest |entry| (exact up to one rounding
    per entry; undone at the end), so no square over- or underflows whatever the scale
    (1e-150 … 1e150). Each squaring ``B ← B·B`` of a Frobenius-normalised B (r × r, r ≤ the
    smaller dimension) has an elementwise error ≤ γ_r |B||B|, so a Frobenius error ≤ γ_r
    against a true ‖B²‖_F ≥ ‖B‖₂² ≥ 1/r: a relative error ≤ r·γ_r per squaring. An error made
    ``j`` squarings before the end is raised to the power 2^j and the estimate takes the
    m-th root, so each contributes ≤ r·γ_r·2^j/m and all together ≤ 2·r·γ_r; the square root
    halves it. The result is multiplied by ``(1 + 2·r·γ_r + 4u)`` (the last term for the
    normalisation and the final operations), and ``‖W‖_F`` by ``(1 + γ_{rc})``.
    """
    W = W.detach().double()
    peak = float(W.abs().max()) if W.numel() else 0.0
    if peak == 0 or not math.isfinite(peak):
        if not math.isfinite(peak):
            raise InvalidInput(f"spectral_upper: W has non-finite entries (max |w| = {peak})")
        return 0.0
    V = W / peak                                   # entries in [-1, 1], at least one ±1
    rows, cols = V.shape if V.dim() == 2 else (V.numel(), 1)
    r = min(rows, cols)
    fro = float(V.norm()) * (1 + gamma(rows * cols, U64))
    A = V.T @ V if rows >= cols else V @ V.T
    log_scale = 0.0  # ‖A^m‖_F = exp(log_scale) · ‖B‖_F with B kept at Frobenius norm 1
    B = A
    for _ in range(SQUARINGS):
        nb = float(B.norm())
        B = B / nb
        log_scale = 2 * (log_scale + math.log(nb))
        B = B @ B
    m = 2 ** SQUARINGS
    est = math.exp((log_scale + math.log(float(B.norm()))) / (2 * m))
    est *= 1 + 2 * r * gamma(r, U64) + 4 * U64
    return peak * min(fro, est)


@dataclass(frozen=True)
class Bounds:
    """M(R) ≥ sup over the ball of ‖∇²L‖₂ and G(R) ≥ sup of ‖∇L‖, for radius R."""
    M: float  # ≥ sup over the ball of ‖∇²L‖₂
    G: float  # ≥ sup over the ball of ‖∇L‖
    R: float
    T: float = math.nan  # ≥ sup over the ball of ‖∇³L‖ (only with third=True; nan: unknown)


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


def cubic_sup(P: Tensor) -> Tensor:
    r"""Per sample, an upper bound on ``sup_{‖a‖=1} P[a, a, a]`` for entrywise non-negative
    cubic forms ``P`` of shape (n, L, L, L).

    .. math::
        P[a,a,a] = \sum_i a_i\, a^\top P_i a \le \sum_i a_i \lambda_{\max}(P_i)
        \le \|\lambda_{\max}(P_\cdot)^+\|_2, \qquad P[a,a,a] \le \|P\|_F

    after symmetrising ``P`` over its three indices (which leaves ``P[a,a,a]`` unchanged);
    for non-negative entries the supremum is reached at ``a ≥ 0``. The smaller of the two.
    """
    perms = ((1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1))
    Ps = sum(P.permute(0, *q) for q in perms) / 6
    lam = torch.linalg.eigvalsh(Ps)[..., -1].clamp_min(0)     # (n, L): λ_max of each slice
    return torch.minimum(Ps.flatten(1).norm(dim=1), lam.norm(dim=1))


def sample_bounds(prob: Problem, R: float, x: Tensor, naive: bool = False,
                  terms: BoundTerms = TRUE_TERMS, third: bool = False) -> tuple[Tensor, ...]:
    """Per sample: (J ≥ ‖∂f/∂θ‖₂, S ≥ sup_{‖u‖=1}‖D²f[u,u]‖, F ≥ ‖f(x)‖) over the ball of
    radius R around θ₀, by the layer recursions of theory/bound.md; with ``third``, also the
    cubic forms P (n, L, L, L) with ‖D³f[u,u,u]‖ ≤ P[a,a,a], a_l = ‖u's part in layer l‖
    (bound (g); None when the activation has no a₃; :func:`cubic_sup` bounds their sup).
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
    third = third and k.a3 is not None
    P = torch.zeros(n, Lnum, Lnum, Lnum, dtype=torch.float64) if third else None  # P_l[a,a,a]
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
            if third:  # d³z_l = 3 dW_l d²h_{l−1} + W_l d³h_{l−1}, with ‖d³h_{l−1}‖ bounded by
                # a₃(c·a)³ + 3a₂(c·a)(aᵀQa) + a₁P[a,a,a]  (σ'''dz³ + 3σ''dz d²z + σ'd³z)
                E3 = (k.a3 * c[:, :, None, None] * c[:, None, :, None] * c[:, None, None, :]
                      + 3 * k.a2 * c[:, :, None, None] * Q[:, None, :, :] + k.a1 * P)
                P = 3 * e[None, :, None, None] * E_prev[:, None, :, :] + s[l] * E3
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
    return (J, S, F, P) if third else (J, S, F)


ACTIVATION_ULPS = 16
"""Assumed accuracy of torch's float64 elementwise activations, in units of roundoff: the
libm-style kernels behind tanh, sigmoid, softplus, erf (gelu) and silu are within a few ulps;
16 leaves room for the composite ones (silu = z·sigmoid(z), gelu = z·Φ(z))."""


def forward_error(prob: Problem, x: Tensor) -> Tensor:
    """Per sample, a bound on ‖fl(f(x; θ₀)) − f(x; θ₀)‖: how far the float64 output can be from
    the exact output of the stored weights.

    Layer by layer, with ``h̃`` the computed hidden vector and ``e`` its error bound:
    ``‖z̃ − z‖ ≤ ‖W‖₂·e + γ_{m+1}·‖|W||h̃| + |b|‖`` (a dot product of length m plus a bias:
    Higham, Accuracy and Stability, §3.1), then ``‖h̃' − σ(z)‖ ≤ a₁‖z̃ − z‖ + 16u‖σ(z̃)‖``
    (:data:`ACTIVATION_ULPS`). The per-layer magnitudes are themselves computed in float64
    and enlarged by one more γ.
    """
    spec = prob.case.spec
    act = ACTIVATIONS[spec.activation]
    a1 = act.bound_constants().a1
    h = x.double()
    e = torch.zeros(x.shape[0], dtype=torch.float64)
    layers = _layers(prob)
    norms = layer_spectral_norms(prob)
    for l, (W, b) in enumerate(layers):
        W = W.double()
        mag = h.abs() @ W.abs().T + (b.double().abs() if b is not None else 0.0)
        m = W.shape[1] + 1
        z = h @ W.T + (b.double() if b is not None else 0.0)
        ez = norms[l] * e + gamma(m, U64) * (1 + gamma(m, U64)) * mag.norm(dim=1)
        if l < len(layers) - 1:
            h = act.fn(z)
            e = a1 * ez + ACTIVATION_ULPS * U64 * h.norm(dim=1)
        else:
            e = ez
    return e


JACOBIAN_ENTRIES_MAX = 10_000_000
"""Per-sample Jacobians at θ₀ are formed only up to this many entries (n·out·p)."""


def jacobian_norms_at_theta0(prob: Problem, x: Tensor) -> Tensor | None:
    """Per sample, ‖∂f(x_i; θ)/∂θ‖₂ at θ₀ (exact: the largest singular value of the out × p
    Jacobian, enlarged by a relative 1e-12 for its rounding), or None when too large to form.
    """
    n, p = x.shape[0], prob.theta0.numel()
    out_dim = prob.case.spec.out_dim
    if n * out_dim * p > JACOBIAN_ENTRIES_MAX:
        return None

    def f1(theta: Tensor, xi: Tensor) -> Tensor:
        return torch.func.functional_call(prob.module, prob.layout.unflatten(theta),
                                          (xi[None],))[0]
    Js = torch.func.vmap(torch.func.jacrev(f1), in_dims=(None, 0))(prob.theta0, x)
    return torch.linalg.matrix_norm(Js.double(), ord=2) * (1 + 1e-12)


@dataclass(frozen=True)
class AtTheta0:
    """What :func:`bounds` needs at θ₀ that does not depend on R (computed once per task and
    batch: the regime searches call :func:`bounds` for many R).
    """

    out0: Tensor  # f(x; θ₀), float64
    fwd: Tensor  # forward_error(prob, x)
    J0: Tensor | None  # jacobian_norms_at_theta0(prob, x)


def at_theta0(prob: Problem, task: int, index: Tensor | None = None) -> AtTheta0:
    """The cached :class:`AtTheta0` of ``task`` (optionally over the samples ``index``)."""
    cache = prob.__dict__.setdefault("_at_theta0", {})
    key = (task, None if index is None else tuple(index.tolist()))
    if key not in cache:
        d = prob.data[task]
        x = d.x if index is None else d.x[index]
        with torch.no_grad():
            out0 = torch.func.functional_call(prob.module, prob.layout.unflatten(prob.theta0),
                                              (x,)).double()
        cache[key] = AtTheta0(out0, forward_error(prob, x), jacobian_norms_at_theta0(prob, x))
    return cache[key]


def loss_third_bound(c1, c2, c3, J, S, Tf):
    r"""Per sample, ``T ≥ sup_{‖u‖=1} |∇³_θ ℓ(f(θ))[u,u,u]|`` from bounds on the loss's
    derivatives (c₁, c₂, c₃) and the network's (J, S, Tf):

    .. math::
        \tfrac{d^3}{dt^3}\ell(f(\theta+tu)) = \ell'''[Df\,u]^3 + 3\ell''[Df\,u, D^2f[u,u]]
        + \ell'[D^3f[u,u,u]] \le c_3J^3 + 3c_2JS + c_1T_f

    (Faà di Bruno; a symmetric trilinear form's norm is its supremum on the diagonal, Banach).
    """
    return c3 * J ** 3 + 3 * c2 * J * S + c1 * Tf


def bounds(prob: Problem, R: float, task: int = 0, index: Tensor | None = None,
           naive: bool = False, terms: BoundTerms = TRUE_TERMS, third: bool = False) -> Bounds:
    """M(R), G(R) (and with ``third``, T(R)) for the mean loss of ``task`` (optionally over
    the samples ``index``).

    Args:
        prob: a feed-forward problem.
        R: ball radius ≥ 0.
        task: which task's loss.
        index: a subset of its samples (a batch), or None for all.
        naive: the naive baseline (ℓ1 sums, worst sample) instead of the careful bound.
        terms: the constants (planted variants replace some).
        third: also T(R) ≥ sup over the ball of ‖∇³L‖ (bound (g)): per sample
            c₃J³ + 3c₂JS + c₁Tf; nan when a₃ or c₃ is unknown.
    """
    if not (R >= 0 and math.isfinite(R)):
        raise InvalidInput(f"radius R must be finite and >= 0, got {R!r}")
    if prob.theta0.dtype != torch.float64:
        raise InvalidInput(f"the explicit bound is certified in float64 only (its residuals "
                           f"and norms carry float64 rounding margins); this problem is "
                           f"{prob.theta0.dtype}: use problem.to(torch.float64)")
    d = prob.data[task]
    x, y = (d.x, d.y) if index is None else (d.x[index], d.y[index])
    J, S, F, *P = sample_bounds(prob, R, x, naive, terms, third=third and not naive)
    t0 = None if naive else at_theta0(prob, task, index)
    if t0 is not None and t0.J0 is not None:
        # bound (b): the Jacobian measured at θ₀ plus its change over the ball. For the
        # symmetric bilinear D²f, sup over unit v, w of ‖D²f[v, w]‖ ≤ sup_u ‖D²f[u, u]‖ ≤ S
        # (polarization), so ‖J(θ)‖₂ ≤ ‖J(θ₀)‖₂ + S·R on the ball (mean value theorem).
        J = torch.minimum(J, terms.jacobian_scale * t0.J0 + S * R)
    loss = LOSSES[prob.case.loss]
    resid0 = None
    if loss.needs_residual and t0 is not None:
        # the exact residual of the stored weights and targets: the computed one plus the
        # forward rounding error (a computed 0 at a minimum is not an exact 0)
        r = (t0.out0 - y.double()).norm(dim=1)
        resid0 = r * (1 + 4 * U64) + t0.fwd * (1 + 4 * U64)
    c1 = loss.c1(F, y, resid0, J, R) * terms.c1_scale
    c2 = torch.full_like(c1, terms.c2(prob.case.loss))
    if loss.local is not None and t0 is not None:
        # bound (c): per-sample constants from the outputs at θ₀; a planted variant's change of
        # the global constant applies as the same factor
        lc1, lc2 = loss.local(t0.out0, y, J * R + t0.fwd)
        c1 = torch.minimum(c1, lc1 * terms.c1_scale)
        c2 = torch.minimum(c2, lc2 * (terms.c2(prob.case.loss) / loss.c2))
    per_M = c2 * J ** 2 + c1 * S
    per_G = c1 * J
    if naive:
        return Bounds(float(per_M.max()), float(per_G.max()), R)
    T = math.nan
    c3 = terms.c3(prob.case.loss)
    if P and P[0] is not None and c3 is not None:
        T = float(loss_third_bound(c1, c2, c3, J, S, cubic_sup(P[0])).mean())
    return Bounds(float(per_M.mean()), float(per_G.mean()), R, T)


def hessian_bound(prob: Problem, R: float, **kw) -> float:
    """M(R) (see :func:`bounds`)."""
    return bounds(prob, R, **kw).M


def gradient_bound(prob: Problem, R: float, **kw) -> float:
    """G(R) (see :func:`bounds`)."""
    return bounds(prob, R, **kw).G


def _fixed_point_radius(reach: Callable[[float], float], R: float, iters: int = 60) -> float | None:
    """Smallest R found with ``reach(R) ≤ R`` by iterating R ← reach(R) (reach is increasing:
    the total step length a run can have inside the ball of radius R); None if it does not
    settle within ``iters`` evaluations of ``reach`` (60 for every regime below), or if R
    passes 10⁶ (outside the regime).
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


def regime_radius(prob: Problem, steps: int, eta: float, g_norm: float,
                  task: int = 0) -> float | None:
    """Smallest R found with ``steps·η·G(R) ≤ R`` (then every iterate of ``steps`` GD steps
    stays in the ball, by induction: each step has length ≤ ηG(R)); ``None`` if the fixed-point
    iteration R ← steps·η·G(R) does not settle (outside the regime).
    """
    return _fixed_point_radius(lambda R: steps * eta * bounds(prob, R, task).G,
                               steps * eta * g_norm)


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
               task: int = 0) -> float | None:
    """Smallest R found with η Σ_b G_b(R) ≤ R, or None (outside the regime)."""
    return _fixed_point_radius(
        lambda R: eta * sum(bounds(prob, R, task, index=b).G for b in batches),
        eta * g_norm_sum)


def g_anchored_error_bound(M: float, g_norm: float, eta: float, k: int) -> float:
    r"""The g-anchored recursion: ‖τ⁽ᵏ⁾ + kηg‖ ≤ ‖g‖((1+ηM)^k − 1 − kηM)/M.

    .. math::
        \|	au^{(k)} + k\eta g\| \le \eta\|g\|\sum_{j=2}^{k}inom{k}{j}(\eta M)^{j-1}

    (the same quantity, summed without cancellation). Derivation (theory/bound.md, bound
    (a)): with d_i = ‖θ_i − θ₀‖ and every iterate θ_0…θ_{k−1} in the ball where ‖∇²L‖ ≤ M,
    ‖∇L(θ_i) − g‖ ≤ M d_i, so d_{i+1} ≤ d_i + η(‖g‖ + M d_i), i.e. d_i ≤ ‖g‖((1+ηM)^i − 1)/M,
    and τ⁽ᵏ⁾ + kηg = −η Σ_{i<k}(∇L(θ_i) − g) has norm ≤ ηM Σ_{i<k} d_i. The leading term is
    C(k,2)η²M‖g‖: the a-priori bound's with the exact ‖g‖ in place of G(R) ≥ ‖g‖.
    Valid when ‖g‖((1+ηM)^{k−1} − 1)/M ≤ R (:func:`g_regime_radius`).
    """
    x = eta * M
    return g_norm * eta * sum(math.comb(k, j) * x ** (j - 1) for j in range(2, k + 1))


def anchored_distance(M: float, g_norm: float, eta: float, i: int) -> float:
    """The g-anchored bound on ‖θ_i − θ₀‖: ‖g‖((1+ηM)^i − 1)/M, summed without cancellation
    as η‖g‖ Σ_{j=1}^{i} C(i,j)(ηM)^{j−1} (0 for i = 0; see :func:`g_anchored_error_bound`).
    """
    x = eta * M
    return g_norm * eta * sum(math.comb(i, j) * x ** (j - 1) for j in range(1, i + 1))


def g_regime_radius(prob: Problem, steps: int, eta: float, g_norm: float,
                    task: int = 0) -> float | None:
    """Smallest R found with ‖g‖((1+ηM(R))^{steps−1} − 1)/M(R) ≤ R: then θ_0…θ_{steps−1}
    stay in the ball (the bound on d_{steps−1} of :func:`g_anchored_error_bound`).
    """
    def reach(R: float) -> float:
        return anchored_distance(bounds(prob, R, task).M, g_norm, eta, steps - 1)
    return _fixed_point_radius(reach, max(steps - 1, 1) * eta * g_norm)


def certified_grad_norm(prob: Problem, g_computed: Tensor, task: int = 0) -> float:
    """An upper bound on the exact ‖∇L(θ₀)‖ from the float64 one: the computed norm enlarged
    by 1e-12 (the Jacobian's own rounding, relative, generous for these sizes) plus the
    forward error of the residuals times the Jacobian bound at R = 0 (the residual part of
    the gradient error; see :func:`forward_error`).
    """
    J = sample_bounds(prob, 0.0, prob.data[task].x)[0]
    extra = 0.0
    if LOSSES[prob.case.loss].needs_residual:
        extra = float((J * at_theta0(prob, task).fwd).mean())
    return float(g_computed.norm()) * (1 + 1e-12) + extra * (1 + 1e-12)


def third_order_error_bound(Hg: float, H0: float, M: float, T: float, g_norm: float,
                            eta: float, k: int, remainder_scale: float = 1.0) -> float:
    r"""Bound (g): the η² term computed exactly plus a certified η³ remainder.

    .. math::
        \|\tau^{(k)} + k\eta g\| \le \tbinom k2\eta^2\|Hg\|
        + \eta\sum_{j<k}\big(\|H\|\,\Delta_j + \tfrac T2 D_j^2\big)

    Derivation (theory/bound.md, bound (g)): with e_j = θ_j − θ₀ and every θ_0…θ_{k−1} in the
    ball where ‖∇²L‖ ≤ M and ‖∇³L‖ ≤ T, Taylor gives ∇L(θ_j) = g + H e_j + r_j with
    ‖r_j‖ ≤ T‖e_j‖²/2 (H = ∇²L(θ₀)). Writing e_j = −jηg + δ_j, δ_j = −η Σ_{i<j}(∇L(θ_i) − g):
    τ + kηg = −η Σ_j(∇L(θ_j) − g) = C(k,2)η²Hg − η Σ_j(Hδ_j + r_j). The distances are bounded
    step by step: D_j = min(g-anchored d_j, jη‖g‖ + Δ_j), Δ_j = η Σ_{i<j} m_i ≥ ‖δ_j‖ with
    m_i = min(M D_i, ‖H‖D_i + T D_i²/2) ≥ ‖∇L(θ_i) − g‖. As η → 0 the bound tends to the
    actual error's leading term C(k,2)η²‖Hg‖ (relative gap O(η)). Valid in the g-anchored
    regime (:func:`g_regime_radius`), M and T at that radius.

    Args:
        Hg: upper bound on the exact ‖∇²L(θ₀)g‖.
        H0: upper bound on ‖∇²L(θ₀)‖₂ (≤ M).
        M: M(R) on the regime's ball.
        T: T(R) on the regime's ball.
        g_norm: upper bound on ‖g‖.
        eta: learning rate.
        k: number of full-batch steps (epochs).
        remainder_scale: factor on the η³ remainder (1: as derived; planted variants only).
    """
    dev: list[float] = []
    rem = 0.0
    for j in range(k):
        delta = eta * sum(dev)
        D = min(anchored_distance(M, g_norm, eta, j), j * eta * g_norm + delta)
        dev.append(min(M * D, H0 * D + T / 2 * D * D))
        rem += H0 * delta + T / 2 * D * D
    return math.comb(k, 2) * eta ** 2 * Hg + remainder_scale * eta * rem


def certified_hg_norm(f, theta0: Tensor, g: Tensor, g_cert: float, H0: float) -> float:
    """An upper bound on the exact ‖∇²L(θ₀)g‖ from the float64 Hessian-vector product of the
    computed gradient g̃: ‖H g‖ ≤ ‖fl(H g̃)‖ + 10·p·u·‖H‖‖g̃‖ + ‖H‖(g_cert − ‖g̃‖), the middle term
    the product's rounding (the same c·p·u·‖H‖ allowance as the Hessian's eigensolver slack,
    an assumption on torch's float64 double backward) and the last the gradient's own error
    (:func:`certified_grad_norm` bounds ‖g − g̃‖ by ``g_cert − ‖g̃‖``). ``H0`` ≥ ‖∇²L(θ₀)‖₂.
    """
    gn = float(g.norm())
    hg = float(hvp(f, theta0, g).norm())
    return hg + 10 * theta0.numel() * U64 * H0 * gn + H0 * max(g_cert - gn, 0.0)


def trajectory_error_bound(M_traj: float, eta: float, dists: list[float]) -> float:
    """‖τ⁽ᵏ⁾ + kηg‖ ≤ η M(R_t) Σ_{i<k} ‖θ_i − θ₀‖, with R_t = max_i ‖θ_i − θ₀‖ actually reached."""
    return eta * M_traj * sum(dists)
