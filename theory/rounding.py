"""Derived floating-point tolerances for the exact identities (claims 1 and 2).

Standard model of floating-point arithmetic (Higham, *Accuracy and Stability of Numerical
Algorithms*, §2.2): for ``op`` in ``+ − × /``, ``fl(x op y) = (x op y)(1 + δ)`` with
``|δ| ≤ u``, the unit roundoff (``2⁻²⁴`` in float32, ``2⁻⁵³`` in float64), and
``γ_n = n u / (1 − n u)`` bounds the accumulated factor of ``n`` roundings.

All tolerances are evaluated in float64 from float64 copies of the operands and finally
multiplied by ``1 + 16 u₆₄`` so that the rounding of the tolerance formula itself (fewer than
16 float64 operations per coordinate) cannot make it too small. Every function returns a
*per-coordinate* bound; a check passes when every coordinate is inside its bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

U64 = 2.0 ** -53
SELF_ROUNDING = 1.0 + 16 * U64


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u = eps / 2`` for a floating dtype (round-to-nearest)."""
    return torch.finfo(dtype).eps / 2


def gamma(n: int, u: float) -> float:
    """Higham's ``γ_n = n u / (1 − n u)``: bound on ``|∏(1+δ_i)^{±1} − 1|`` for n factors."""
    if n * u >= 1:
        raise ValueError(f"gamma undefined for n*u >= 1 (n={n}, u={u})")
    return n * u / (1 - n * u)


def sgd_step_tolerance(theta0: Tensor, ghat: Tensor, lr: float) -> Tensor:
    r"""Bound on ``|τ̂ + η ĝ|`` per coordinate for one SGD step, τ̂ = fl(θ₁) − θ₀.

    The step is what ``torch.optim.SGD`` does, ``θ₁ = fl(θ₀ + fl(−η̃ ĝ))`` (or fused into one
    rounding), followed by the user's subtraction ``τ̂ = fl(θ₁ − θ₀)``. Here ĝ is the computed
    gradient (the identity concerns the update, not the accuracy of autograd) and η̃ is η
    rounded to the working dtype. Write ``a = θ₀``, ``b = η ĝ`` (exact), all ``|δ_i| ≤ u``:

    .. math::

        s &= \tilde\eta\hat g(1+\delta_1) = b(1+\theta_2),\ |\theta_2|\le\gamma_2,\qquad
        \theta_1 = (a - s)(1+\delta_2),\qquad \hat\tau = (\theta_1 - a)(1+\delta_3),\\
        \hat\tau + b &= (b - s) + (a - s)\delta_2 + (\theta_1 - a)\delta_3,\\
        |\hat\tau + b| &\le \gamma_2|b| + u(|a| + (1+\gamma_2)|b|)
            + u\big((1+\gamma_2)|b|(1+u) + u|a|\big)\\
        &= u(1+u)\,|a| + \big(\gamma_2 + u(1+\gamma_2)(2+u)\big)\,|b|
        \;\approx\; u|\theta_0| + 4u|\eta\hat g|.

    A fused multiply-add sets δ₁ = 0, and an η exact in the dtype sets the second rounding in
    θ₂ to 0; both only shrink the error, so the bound covers every CPU/GPU kernel.

    Args:
        theta0: θ₀ in the working dtype.
        ghat: the gradient used by the step, in the working dtype.
        lr: the learning rate η (Python float).

    Returns:
        float64 tensor of per-coordinate bounds on ``|τ̂ − (−η ĝ)|`` (exact −ηĝ).
    """
    u = unit_roundoff(theta0.dtype)
    g2 = gamma(2, u)
    a = theta0.detach().double().abs()
    b = (lr * ghat.detach().double()).abs() * (1 + U64)  # |fl64(η ĝ)| ≥ |b|/(1+u64)
    return (u * (1 + u) * a + (g2 + u * (1 + g2) * (2 + u)) * b) * SELF_ROUNDING


def sum_tolerance(terms: list[Tensor]) -> Tensor:
    """Bound on ``|fl(Σ x_i) − Σ x_i|`` for any summation order: ``γ_{T−1} Σ|x_i|``."""
    u = unit_roundoff(terms[0].dtype)
    mag = torch.stack([t.detach().double().abs() for t in terms]).sum(0)
    return gamma(len(terms) - 1, u) * mag * SELF_ROUNDING if len(terms) > 1 \
        else torch.zeros_like(mag)


@dataclass(frozen=True)
class Comparison:
    """Result of comparing a computed tensor to a reference under a per-coordinate tolerance."""

    ok: bool
    max_ratio: float  # max |actual − expected| / tol (≤ 1 passes); inf where tol = 0 < diff
    max_abs: float
    report: str       # the worst entries, for failure messages


def compare(actual: Tensor, expected: Tensor, tol: Tensor, what: str = "",
            worst: int = 5) -> Comparison:
    """Compare per coordinate in float64; report the ``worst`` entries and their tolerances."""
    a = actual.detach().double().reshape(-1)
    e = expected.detach().double().reshape(-1)
    t = tol.detach().double().reshape(-1)
    diff = (a - e).abs()
    if not torch.isfinite(diff).all():
        return Comparison(False, float("inf"), float("inf"),
                          f"{what}: non-finite entries in the comparison")
    broken = ~torch.isfinite(t) | (t < 0)
    if broken.any():  # a broken tolerance (NaN, ±inf, < 0) never lets a coordinate pass
        i = int(broken.nonzero()[0])
        return Comparison(False, float("inf"), float(diff.max()),
                          f"{what}: the tolerance at index {i} is {t[i].item()!r}, not a finite "
                          f"number >= 0 ({int(broken.sum())} such entries): a broken tolerance")
    ratio = torch.where(t > 0, diff / t.clamp_min(1e-300),
                        torch.where(diff > 0, torch.full_like(diff, float("inf")),
                                    torch.zeros_like(diff)))
    k = min(worst, ratio.numel())
    top = torch.topk(ratio, k).indices if k else torch.tensor([], dtype=torch.long)
    lines = [f"{what}: worst {k} of {ratio.numel()} coordinates (|diff| / tol ≤ 1 passes)",
             f"  {'index':>6} {'actual':>24} {'expected':>24} {'|diff|':>10} {'tol':>10} {'ratio':>8}"]
    for i in top.tolist():
        lines.append(f"  {i:>6} {a[i].item():>24.17g} {e[i].item():>24.17g} "
                     f"{diff[i].item():>10.3e} {t[i].item():>10.3e} {ratio[i].item():>8.3g}")
    max_ratio = float(ratio.max()) if ratio.numel() else 0.0
    return Comparison(max_ratio <= 1.0, max_ratio, float(diff.max()) if diff.numel() else 0.0,
                      "\n".join(lines))
