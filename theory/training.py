"""Gradient-descent trajectories, vectorised over a grid of learning rates with ``vmap``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.func import vmap

from .derivatives import grad_and_value

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


def _rowwise(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """``fn`` over the rows of a matrix: ``vmap`` where every op supports it, else a loop.

    The first failure of ``vmap`` (an op without a batching rule, a data-dependent branch in
    a user's model) switches to the loop for good; both give the same numbers row by row.
    """
    state = {"vmap": True}

    def apply(theta: Tensor):
        if state["vmap"]:
            try:
                return vmap(fn)(theta)
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                state["vmap"] = False
        rows = [fn(row) for row in theta]
        if isinstance(rows[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*rows))
        return torch.stack(rows)

    return apply


def run_steps(step_losses: Sequence[Loss], theta0: Tensor, etas: Tensor,
              pattern: Callable[[Tensor], Tensor] | None = None) -> Trajectories:
    """θ_{n+1} = θ_n − η ∇L_{b(n)}(θ_n) for every η in ``etas`` at once.

    Args:
        step_losses: the loss of each step, in order (k copies of L for k GD epochs).
        theta0: flat θ₀.
        etas: ``(m,)`` learning rates.
        pattern: optional map θ ↦ activation pattern (ReLU and other kinks). Rows whose
            pattern ever differs from θ₀'s are flagged in ``pattern_kept``.

    Returns:
        The endpoints, finiteness, pattern flags and gradient-norm sums of every row.
    """
    m = etas.shape[0]
    theta = theta0.expand(m, -1).clone()
    finite = torch.ones(m, dtype=torch.bool)
    kept = torch.ones(m, dtype=torch.bool)
    gsum = torch.zeros(m, dtype=theta0.dtype)
    base = pattern(theta0) if pattern is not None else None
    rows_pattern = _rowwise(pattern) if pattern is not None else None
    cache: dict = {}
    for f in step_losses:
        if f not in cache:  # one vectorised (or looped) map per distinct step loss
            cache[f] = _rowwise(grad_and_value(f))
        g, loss = cache[f](theta)
        finite &= torch.isfinite(loss) & torch.isfinite(g).all(dim=1)
        gsum += torch.linalg.vector_norm(g, dim=1)
        theta = theta - etas[:, None] * g
        finite &= torch.isfinite(theta).all(dim=1)
        if rows_pattern is not None:
            kept &= (rows_pattern(theta) == base).all(dim=1)
    return Trajectories(theta - theta0, finite, kept, gsum)
