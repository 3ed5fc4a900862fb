"""Test cases as data: a JSON-serialisable :class:`Case` and the tensors it builds.

A :class:`Case` is everything a check needs (architecture, loss, data sizes, seed, η, k,
batching). Hypothesis draws Cases, never tensors, so a failing case shrinks to a small
network and prints as one line of JSON that ``python -m theory reproduce`` re-runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
from torch import Tensor
from torch.func import functional_call

from .errors import InvalidInput, check_lr, check_positive_int
from .nets import FFN, LOSSES, NetSpec, init_module, loss_value


@dataclass(frozen=True)
class Case:
    """One randomly drawn problem.

    Args:
        spec: the network architecture.
        loss: ``"cross_entropy"`` or ``"mse"``.
        n: samples per task.
        tasks: number of tasks T (each has its own data, same θ₀).
        seed: seeds the weights θ₀ and the data.
        eta: learning rate η (claims with an automatic η grid ignore it).
        epochs: k, the number of epochs.
        batch_size: ``None`` for full batch, else minibatch size (last batch smaller).
        reshuffle: draw a new sample order each epoch (minibatch claims).
        at_minimum: MSE targets equal the network's outputs, so ∇L(θ₀) = 0 exactly.
        radius: ball radius R around θ₀ (bound claims only).
        x_scale: inputs are multiplied by this (large inputs make σ'' terms dominate).
        y_scale: MSE targets are multiplied by this (large residuals weight the σ'' terms).
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
        if self.loss not in LOSSES:
            raise InvalidInput(f"unknown loss {self.loss!r}; choose one of {list(LOSSES)}")
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
        if self.at_minimum and self.loss != "mse":
            raise InvalidInput(
                "at_minimum=True needs loss='mse' (cross-entropy has no finite minimiser)"
            )

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> str:
        d = asdict(self)
        d["spec"]["widths"] = list(d["spec"]["widths"])
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Case":
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
        return replace(self, **kw)


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a parameter dict, to move between dicts and flat vectors."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, params: dict[str, Tensor]) -> "ParamLayout":
        return cls(tuple(params), tuple(tuple(p.shape) for p in params.values()))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    def flatten(self, params: dict[str, Tensor]) -> Tensor:
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        if vec.shape[-1] != sum(self.sizes):
            raise InvalidInput(f"parameter vector has {vec.shape[-1]} entries, the network "
                               f"has {sum(self.sizes)} parameters (shapes {self.shapes})")
        out, i = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            out[name] = vec[..., i:i + size].reshape(*vec.shape[:-1], *shape)
            i += size
        return out


@dataclass
class TaskData:
    x: Tensor
    y: Tensor


@dataclass
class Problem:
    """The tensors of a :class:`Case` in one dtype: θ₀ (module and flat), and data per task."""

    case: Case
    module: FFN
    layout: ParamLayout
    theta0: Tensor
    data: list[TaskData] = field(default_factory=list)

    @classmethod
    def build(cls, case: Case, dtype: torch.dtype = torch.float64) -> "Problem":
        spec = case.spec
        module = init_module(spec, seed=case.seed, dtype=dtype)
        params = {k: v.detach() for k, v in module.named_parameters()}
        layout = ParamLayout.of(params)
        gen = torch.Generator().manual_seed(case.seed + 7919)
        data = []
        for _ in range(case.tasks):
            shift = torch.randn(spec.in_dim, generator=gen, dtype=torch.float64)
            x = (torch.randn(case.n, spec.in_dim, generator=gen, dtype=torch.float64) + shift) \
                * case.x_scale
            x = x.to(dtype)
            if case.loss == "cross_entropy":
                y = torch.randint(0, spec.out_dim, (case.n,), generator=gen)
            elif case.at_minimum:
                with torch.no_grad():
                    y = module(x).detach()
            else:
                y = (torch.randn(case.n, spec.out_dim, generator=gen, dtype=torch.float64)
                     * case.y_scale).to(dtype)
            data.append(TaskData(x, y))
        return cls(case, module, layout, layout.flatten(params).clone(), data)

    def loss_fn(self, task: int = 0, index: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        """Mean loss of task ``task`` (optionally over the samples ``index``) as f(θ_flat)."""
        d = self.data[task]
        x, y = (d.x, d.y) if index is None else (d.x[index], d.y[index])
        module, layout, loss = self.module, self.layout, self.case.loss

        def f(theta: Tensor) -> Tensor:
            out = functional_call(module, layout.unflatten(theta), (x,))
            return loss_value(loss, out, y)

        return f

    def sum_loss_fn(self) -> Callable[[Tensor], Tensor]:
        """Σ_t L_t(θ) (the multitask loss)."""
        fs = [self.loss_fn(t) for t in range(self.case.tasks)]
        return lambda theta: sum(f(theta) for f in fs)

    def preactivations(self, theta: Tensor, task: int = 0) -> list[Tensor]:
        """Hidden pre-activations of task ``task``'s inputs at θ (ReLU pattern checks)."""
        return functional_call(self.module, self.layout.unflatten(theta),
                               (self.data[task].x,), {"return_pre": True})[1]


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
