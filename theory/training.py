"""Gradient-descent trajectories, vectorised over a grid of learning rates with ``vmap``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.func import grad, vmap

Loss = Callable[[Tensor], Tensor]


@dataclass
class Trajectories:
    """Endpoints of one run of steps for every η of a grid.

    Attributes:
        tau: ``(m, p)`` task vectors θ_N − θ₀, one row per η.
        finite: ``(m,)`` False where a parameter or a step's loss became NaN/inf.
        pattern_kept: ``(m,)`` False where a ReLU activation pattern changed on the way.
        grad_norm_sum: ``(m,)`` Σ_n ‖∇L_{b(n)}(θ_n)‖ along the run (for rounding floors).
    """

    tau: Tensor
    finite: Tensor
    pattern_kept: Tensor
    grad_norm_sum: Tensor


def run_steps(step_losses: Sequence[Loss], theta0: Tensor, etas: Tensor,
              pattern: Callable[[Tensor], Tensor] | None = None) -> Trajectories:
    """θ_{n+1} = θ_n − η ∇L_{b(n)}(θ_n) for every η in ``etas`` at once.

    Args:
        step_losses: the loss of each step, in order (k copies of L for k GD epochs).
        theta0: flat θ₀.
        etas: ``(m,)`` learning rates.
        pattern: optional map θ ↦ boolean activation pattern (ReLU). Rows whose pattern ever
            differs from θ₀'s are flagged in ``pattern_kept``.
    """
    m = etas.shape[0]
    theta = theta0.expand(m, -1).clone()
    finite = torch.ones(m, dtype=torch.bool)
    kept = torch.ones(m, dtype=torch.bool)
    gsum = torch.zeros(m, dtype=theta0.dtype)
    base = pattern(theta0) if pattern is not None else None
    for f in step_losses:
        loss = vmap(f)(theta)
        g = vmap(grad(f))(theta)
        finite &= torch.isfinite(loss) & torch.isfinite(g).all(dim=1)
        gsum += torch.linalg.vector_norm(g, dim=1)
        theta = theta - etas[:, None] * g
        finite &= torch.isfinite(theta).all(dim=1)
        if base is not None:
            kept &= (vmap(pattern)(theta) == base).all(dim=1)
    return Trajectories(theta - theta0, finite, kept, gsum)
