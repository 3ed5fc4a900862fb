"""Test cases as data: a JSON-serialisable :class:`Case` and the :class:`FFNProblem` it builds.

A :class:`Case` is everything a check needs (architecture, loss, data sizes, seed, η, k,
batching). Hypothesis draws Cases, never tensors, so a failing case shrinks to a small
network and prints as one line of JSON that ``tvgrad reproduce`` re-runs. The problem a Case
builds is a :class:`~tvgrad.theory.module_problem.ModuleProblem` of a seeded feed-forward
network, so the claims run on it exactly as on any user's model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
from torch import Tensor
from torch.func import functional_call

from ..errors import InvalidInput, check_lr, check_positive_int
from .activations import get_activation
from .limits import check_cost
from .losses import LOSSES
from .module_problem import ModuleProblem
from .nets import NetSpec, init_module


@dataclass(frozen=True)
class Case:
    """One randomly drawn problem.

    Every field but ``spec`` has a default, so a hand-written ``tvgrad reproduce --case`` JSON
    may give only the fields it changes.

    Args:
        spec: the network architecture.
        loss: ``"cross_entropy"`` or ``"mse"`` (default ``"mse"``).
        n: samples per task (default ``8``).
        tasks: number of tasks T, each with its own data, same θ₀ (default ``1``).
        seed: seeds the weights θ₀ and the data (default ``0``).
        eta: learning rate η; claims with an automatic η grid ignore it (default ``0.01``).
        epochs: k, the number of epochs (default ``1``).
        batch_size: ``None`` for full batch, else minibatch size, the last batch smaller
            (default ``None``).
        reshuffle: draw a new sample order each epoch, minibatch claims (default ``False``).
        at_minimum: MSE targets equal the network's outputs, so ∇L(θ₀) = 0 exactly
            (default ``False``).
        radius: ball radius R around θ₀, bound claims only (default ``None``).
        x_scale: inputs are multiplied by this; large inputs make σ'' terms dominate
            (default ``1.0``).
        y_scale: MSE targets are multiplied by this; large residuals weight the σ'' terms
            (default ``1.0``).
    """

    spec: NetSpec
    loss: str = "mse"
    n: int = 8
    tasks: int = 1
    seed: int = 0
    eta: float = 1e-2
    epochs: int = 1
    batch_size: int | None = None
    reshuffle: bool = False
    at_minimum: bool = False
    radius: float | None = None
    x_scale: float = 1.0
    y_scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.spec, dict):
            object.__setattr__(self, "spec", NetSpec(**self.spec))
        loss = LOSSES[self.loss]  # UnknownKey names the known losses
        check_positive_int(self.n, "n (samples per task)")
        check_positive_int(self.tasks, "tasks")
        check_positive_int(self.epochs, "epochs k")
        object.__setattr__(self, "eta", check_lr(self.eta, "eta"))
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        if self.radius is not None:
            if not (self.radius > 0 and math.isfinite(self.radius)):
                raise InvalidInput(f"radius must be finite and > 0, got {self.radius!r}")
        for name in ("x_scale", "y_scale"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise InvalidInput(f"{name} must be finite and > 0, got {v!r}")
        if self.at_minimum and not loss.has_minimum:
            raise InvalidInput(f"at_minimum=True needs a loss with a finite minimiser "
                               f"(e.g. 'mse'), not {self.loss!r}")
        if self.spec.out_dim < loss.min_out_dim:
            raise InvalidInput(f"loss {self.loss!r} needs out_dim >= {loss.min_out_dim}, "
                               f"got {self.spec.out_dim}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InvalidInput(f"seed must be an integer >= 0, got {self.seed!r}")
        check_cost(f"case {self.describe()}", *self.cost())

    def describe(self) -> str:
        """The sizes of the case, in one line."""
        s = self.spec
        return (f"(widths {list(s.widths)}, in_dim {s.in_dim}, out_dim {s.out_dim}, n {self.n}, "
                f"tasks {self.tasks}, epochs {self.epochs}, {s.num_params} parameters)")

    def cost(self) -> tuple[float, float]:
        """Estimated (bytes, flops) of the most expensive check of this case.

        Memory: the data and activations (T·n·(in + out + Σ widths), kept for backward), ~64
        parameter-sized vectors (trajectories, gradients, HVP graphs), and a dense p×p Hessian
        where the checks use one (p ≤ DENSE_MAX = 250). Flops: about 6·n·p per gradient-sized
        product; ~50 products per epoch and task (the η grid with its HVPs, the bound
        searches), plus a dense Hessian's p products or ~100 Lanczos products.
        """
        from .spectrum import DENSE_MAX
        s, p = self.spec, self.spec.num_params
        acts = self.tasks * self.n * (s.in_dim + s.out_dim + sum(s.widths))
        dense = p <= DENSE_MAX  # a dense Hessian (p products, p² floats), else Lanczos (~100)
        nbytes = 8 * (4 * acts + 64 * p + (p * p if dense else 0))
        products = 50 * self.epochs * self.tasks + (p if dense else 100)
        return nbytes, 6.0 * self.n * p * products * self.tasks

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> str:
        """The case as one line of JSON (what ``tvgrad reproduce --case`` takes)."""
        d = asdict(self)
        d["spec"]["widths"] = list(d["spec"]["widths"])
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Case":
        """The case of a JSON line written by :meth:`to_json`."""
        d = json.loads(text)
        d["spec"] = NetSpec(**{**d["spec"], "widths": tuple(d["spec"]["widths"])})
        return cls(**d)

    def summary(self) -> dict:
        """Flat, CSV-friendly description."""
        s = self.spec
        return {
            "depth": s.depth, "widths": "x".join(map(str, s.widths)), "in_dim": s.in_dim,
            "out_dim": s.out_dim, "activation": s.activation, "bias": s.bias,
            "loss": self.loss, "n": self.n, "tasks": self.tasks, "seed": self.seed,
            "eta": self.eta, "epochs": self.epochs, "batch_size": self.batch_size,
            "reshuffle": self.reshuffle, "at_minimum": self.at_minimum, "radius": self.radius,
            "x_scale": self.x_scale, "y_scale": self.y_scale,
            "num_params": s.num_params,
        }

    def with_(self, **kw) -> "Case":
        """A copy with some fields replaced (validated again)."""
        return replace(self, **kw)


class FFNProblem(ModuleProblem):
    """The problem of a :class:`Case`: its seeded :class:`FFN` at θ₀ and its random data.

    Weights and data are drawn in float64 and cast, so the float32 and float64 problems of a
    case share θ₀ up to one rounding.
    """

    def __init__(self, case: Case, dtype: torch.dtype = torch.float64):
        self.case = case
        spec = case.spec
        loss = LOSSES[case.loss]
        module = init_module(spec, seed=case.seed, dtype=dtype)
        gen = torch.Generator().manual_seed(case.seed + 7919)
        tasks = []
        for _ in range(case.tasks):
            shift = torch.randn(spec.in_dim, generator=gen, dtype=torch.float64)
            x = (torch.randn(case.n, spec.in_dim, generator=gen, dtype=torch.float64) + shift) \
                * case.x_scale
            x = x.to(dtype)
            if case.at_minimum:
                with torch.no_grad():
                    y = module(x).detach()
            else:
                y = loss.targets(gen, case.n, spec.out_dim, dtype, case.y_scale)
            tasks.append([(x, y)])
        super().__init__(module, loss.value, tasks=tasks, dtype=dtype)

    @classmethod
    def build(cls, case: Case, dtype: torch.dtype = torch.float64) -> "FFNProblem":
        """The problem of ``case`` in ``dtype``."""
        return cls(case, dtype)

    def to(self, dtype: torch.dtype) -> "FFNProblem":
        """The same case in ``dtype`` (built from the float64 draws, as the original)."""
        return self if dtype == self.dtype else FFNProblem(self.case, dtype)

    def _probe(self) -> Callable[[Tensor], Tensor] | None:
        # The FFN's only kink is its activation: the pattern of the hidden pre-activations
        # (vmappable, so trajectories over an η grid stay vectorised).
        if get_activation(self.case.spec.activation).smooth:
            return None
        return self._pre_pattern

    def _pre_pattern(self, theta: Tensor) -> Tensor:
        return torch.cat([torch.cat([z.reshape(-1) > 0 for z in self.preactivations(theta, t)])
                          for t in range(self.num_tasks)])

    def preactivations(self, theta: Tensor, task: int = 0) -> list[Tensor]:
        """Hidden pre-activations of task ``task``'s inputs at θ (ReLU pattern checks)."""
        return functional_call(self.module, self.layout.unflatten(theta),
                               (self.data[task].x,), {"return_pre": True})[1]


Problem = FFNProblem  # the name the claims used before problems became generic


def batch_sequence(n: int, batch_size: int | None, epochs: int, reshuffle: bool,
                   seed: int) -> list[Tensor]:
    """Index sets of every SGD step, in order: ``epochs`` passes, last batch smaller.

    Without ``reshuffle`` every epoch visits the samples in the order 0..n-1.
    """
    check_positive_int(n, "n")
    check_positive_int(epochs, "epochs k")
    bs = n if batch_size is None else min(check_positive_int(batch_size, "batch_size"), n)
    gen = torch.Generator().manual_seed(seed + 104729)
    steps = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen) if reshuffle else torch.arange(n)
        steps.extend(order[i:i + bs] for i in range(0, n, bs))
    return steps
