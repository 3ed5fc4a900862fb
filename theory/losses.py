"""The loss registry: each entry has its value, how random targets are drawn, and the
per-sample constants of the explicit bound (``theory/bound.md``).

Every loss is the *mean* over the samples of a per-sample loss ``ℓ(z, y)`` of the network
output ``z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..registry import Registry

__all__ = ["Loss", "LOSSES", "loss_value"]


def _ce_targets(gen: torch.Generator, n: int, out_dim: int, dtype: torch.dtype,
                scale: float) -> Tensor:
    return torch.randint(0, out_dim, (n,), generator=gen)


def _mse_targets(gen: torch.Generator, n: int, out_dim: int, dtype: torch.dtype,
                 scale: float) -> Tensor:
    return (torch.randn(n, out_dim, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _mse(out: Tensor, target: Tensor) -> Tensor:
    return 0.5 * ((out - target) ** 2).sum(dim=-1).mean()


def _ce_c1(out_bound: Tensor, y: Tensor, resid0: Tensor | None, J: Tensor | None,
           R: float) -> Tensor:
    # ∇_z ℓ = softmax(z) − e_y: ‖·‖² = Σp² − 2p_y + 1 ≤ 2
    return torch.full_like(out_bound, math.sqrt(2.0))


def _mse_c1(out_bound: Tensor, y: Tensor, resid0: Tensor | None, J: Tensor | None,
            R: float) -> Tensor:
    # ∇_z ℓ = z − y: ‖f(θ) − y‖ ≤ F + ‖y‖, and ≤ ‖f(θ₀) − y‖ + J·R (mean value theorem on the
    # segment from θ₀, which stays in the convex ball); the smaller of the two
    c1 = out_bound + y.double().reshape(len(out_bound), -1).norm(dim=1)
    if resid0 is not None and J is not None:
        c1 = torch.minimum(c1, resid0 * (1 + 1e-12) + J * R)
    return c1


def _ce_local(logits0: Tensor, y: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-sample cross-entropy constants from the probabilities at θ₀ (bound (c)).

    Over the ball the logits move by ‖z − z⁰‖₂ ≤ δ (δ = J·R plus the forward rounding error),
    so every log-probability moves by at most √2·δ and ``p_k ∈ [p⁰_k e^{−√2δ}, min(1, p⁰_k e^{√2δ})]``:
    by the mean value theorem on logsumexp, Δ log p_k = ⟨e_k − p̃, Δz⟩ with p̃ the softmax at a
    point between z⁰ and z, and ‖e_k − p̃‖₂² = (1 − p̃_k)² + Σ_{j≠k} p̃_j² ≤ 2(1 − p̃_k)² ≤ 2. The
    constant √2 is sharp: Δz = δ(e_k − e_j)/√2 with p concentrated on j moves log p_k by → √2·δ
    (``test_per_sample_cross_entropy_constants_are_sharp_at_the_worst_logit_moves``). Rounding:
    the computed s = √2·δ is off by ≤ 2u relative (u = 2⁻⁵³; √2 rounded, then the product), so
    e^{±s} is off by a factor e^{2us} ≤ 1 + 5e-13 for s ≤ 2000, inside the relative 1e-12 each
    interval is widened by below, with log_softmax's and exp's own few-u errors; for s > 2000 the
    interval is taken as [0, 1] (always valid). Then, with Gershgorin as for the global
    constant, ``c₂ = min(½, 2 max_k max_{p_k} p_k(1 − p_k))`` and
    ``c₁ = min(√2, (Σ_{k≠y} p_k,max² + (1 − p_y,min)²)^{1/2})``. The float64 softmax's own
    rounding is covered by widening each interval by a relative 1e-12.
    """
    lp = torch.log_softmax(logits0.double(), dim=-1)
    spread = (math.sqrt(2.0) * delta.double())[:, None]
    wide = spread > 2000  # beyond the rounding argument above: the trivial interval [0, 1]
    pmin = torch.where(wide, 0.0, torch.exp(lp - spread) * (1 - 1e-12))
    pmax = torch.where(wide, 1.0, torch.clamp(torch.exp(lp + spread) * (1 + 1e-12), max=1.0))
    # max of p(1 − p) over [pmin, pmax]: ¼ if ½ is inside, else at the endpoint nearest ½
    near = torch.clamp(torch.full_like(pmin, 0.5), pmin, pmax)
    c2 = torch.clamp(2 * (near * (1 - near)).max(dim=-1).values, max=0.5)
    onehot = nn.functional.one_hot(y.long().reshape(-1), lp.shape[-1]).bool()
    sq = torch.where(onehot, (1 - pmin) ** 2, pmax ** 2).sum(dim=-1)
    c1 = torch.clamp(torch.sqrt(sq) * (1 + 1e-12), max=math.sqrt(2.0))
    return c1, c2


@dataclass(frozen=True)
class Loss:
    """A loss of the registry.

    Attributes:
        name: registry key.
        value: ``value(out, target)``: the mean loss over the samples.
        targets: ``targets(generator, n, out_dim, dtype, scale)``: random targets.
        c1: per-sample ``c₁ ≥ ‖∇_z ℓ‖`` over the ball: ``c1(F, y, resid0, J, R)`` with ``F``
            an output-norm bound, ``resid0 = ‖f(θ₀) − y‖`` (or None) and ``J`` a Jacobian bound.
        c2: ``c₂ ≥ ‖∇²_z ℓ‖₂``.
        needs_residual: whether ``c1`` uses ``resid0`` (the bound computes it only then).
        min_out_dim: smallest network output this loss accepts.
        has_minimum: whether targets can be put at the outputs (∇L(θ₀) = 0 exactly).
        local: optional per-sample ``(c₁, c₂)`` over the ball from the outputs at θ₀:
            ``local(logits0, y, delta)`` with ``delta`` bounding how far the outputs move;
            the bound takes the smaller of these and the global constants.
        c3: ``c₃ ≥ sup_u |∇³_z ℓ[u, u, u]|`` over unit u (the third-order bound); None where
            unknown: that bound is then not computed.
    """

    name: str
    value: Callable[[Tensor, Tensor], Tensor]
    targets: Callable[..., Tensor]
    c1: Callable[..., Tensor]
    c2: float
    needs_residual: bool = False
    min_out_dim: int = 1
    has_minimum: bool = False
    local: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    c3: float | None = None


CE_C3 = 0.2721656
"""c₃ of cross-entropy, √6/9 = 0.27216553 rounded up: ∇³_z ℓ[u,u,u] is the third central
moment E_p[(X − E_pX)³] of X = u_k under k ~ p = softmax(z). The atoms of X lie in an
interval [−b, a] around the mean with a + b ≤ √2 (two coordinates of a unit u differ by at most
√2); over mean-zero laws on [−b, a] the linear functional E[Y³] is largest at an extreme point,
a law with two atoms x > 0 > −y (one moment constraint), where it is xy(x − y) ≤ (x + y)³/(6√3)
≤ 2√2/(6√3). Attained: p = (½ + 1/(2√3), ½ − 1/(2√3)) on u = (1, −1)/√2 (tests/theory/test_bound.py).
"""


LOSSES: Registry[Loss] = Registry("loss", {
    # ∇²_z ℓ = diag(p) − ppᵀ: Gershgorin gives ≤ max_i 2p_i(1 − p_i) ≤ ½, attained at
    # p = (½, ½, 0, …)
    "cross_entropy": Loss("cross_entropy", nn.functional.cross_entropy, _ce_targets, _ce_c1,
                          0.5, min_out_dim=2, local=_ce_local, c3=CE_C3),
    # ½‖z − y‖²: ∇²_z ℓ = I, ∇³_z ℓ = 0
    "mse": Loss("mse", _mse, _mse_targets, _mse_c1, 1.0, needs_residual=True, has_minimum=True,
                c3=0.0),
})


def loss_value(loss: str, out: Tensor, target: Tensor) -> Tensor:
    r"""Mean loss ``loss`` of outputs ``out`` against ``target`` (a registry key).

    * ``cross_entropy``: ``target`` holds class indices (int64).
    * ``mse``: ``target`` has the shape of ``out``; the loss is
      :math:`\frac1n\sum_i \tfrac12\lVert f(x_i)-y_i\rVert^2`.
    """
    return LOSSES[loss].value(out, target)
