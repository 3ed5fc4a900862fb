r"""Feed-forward networks and losses, as real ``nn.Module`` objects and as pure functions.

The same :class:`FFN` is used two ways:

* as a module that a user would finetune with ``torch.optim.SGD`` (claims that must
  mirror "finetuned minus pretrained parameters" do this), and
* through :func:`torch.func.functional_call` on a parameter dict or a flat vector
  (derivatives, vmapped trajectories).

Network: :math:`f(x;\theta) = W_L\,\sigma(\cdots\sigma(W_1 x + b_1)\cdots) + b_L` with
``depth`` hidden layers of the given ``widths``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import InvalidInput
from .activations import get_activation


@dataclass(frozen=True)
class NetSpec:
    """Architecture of a feed-forward network.

    Args:
        in_dim: input dimension (≥ 1).
        widths: hidden widths, one per hidden layer (depth = ``len(widths)`` ≥ 1).
        out_dim: output dimension (≥ 1; number of classes for cross-entropy).
        activation: a key of :data:`ACTIVATIONS`.
        bias: whether every layer has a bias.
    """

    in_dim: int
    widths: tuple[int, ...]
    out_dim: int
    activation: str = "tanh"
    bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        if not self.widths:
            raise InvalidInput("widths is empty: a network needs at least one hidden layer")
        for w in self.widths:
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise InvalidInput(f"widths must be positive integers, got {self.widths!r}")
        for name in ("in_dim", "out_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {v!r}")
        get_activation(self.activation)

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.widths)

    @property
    def dims(self) -> tuple[int, ...]:
        """Layer sizes: input, hidden widths, output."""
        return (self.in_dim, *self.widths, self.out_dim)

    @property
    def num_params(self) -> int:
        """Number of parameters (weights and biases)."""
        d = self.dims
        return sum(d[i] * d[i + 1] + (d[i + 1] if self.bias else 0) for i in range(len(d) - 1))


class FFN(nn.Module):
    """The feed-forward network of a :class:`NetSpec` (layers ``layers.0 … layers.depth``)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        d = spec.dims
        self.layers = nn.ModuleList(
            nn.Linear(d[i], d[i + 1], bias=spec.bias) for i in range(len(d) - 1)
        )
        self._act = get_activation(spec.activation).fn

    def forward(self, x: Tensor, return_pre: bool = False):
        """Output, or (output, hidden pre-activations) with ``return_pre`` (ReLU patterns)."""
        pre = []
        h = x
        for layer in self.layers[:-1]:
            z = layer(h)
            pre.append(z)
            h = self._act(z)
        out = self.layers[-1](h)
        return (out, pre) if return_pre else out


def init_module(spec: NetSpec, seed: int, dtype: torch.dtype = torch.float64) -> FFN:
    """A seeded :class:`FFN` with LeCun-normal weights (std 1/√fan_in) and small biases (std 0.1)."""
    gen = torch.Generator().manual_seed(seed)
    net = FFN(spec).to(dtype)
    # Drawn in float64 and then cast, so the float32 and float64 problems are the same θ₀.
    f64 = torch.float64
    with torch.no_grad():
        for layer in net.layers:
            fan_in = layer.weight.shape[1]
            w = torch.randn(layer.weight.shape, generator=gen, dtype=f64) * (1.0 / math.sqrt(fan_in))
            layer.weight.copy_(w.to(dtype))
            if layer.bias is not None:
                layer.bias.copy_((0.1 * torch.randn(layer.bias.shape, generator=gen, dtype=f64)).to(dtype))
    return net
