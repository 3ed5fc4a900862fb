"""The activation registry: each entry has its function, a smoothness flag and, for smooth
ones, the constants of the explicit bound (``theory/bound.md``).

``smooth`` is False for ReLU: its second derivative does not exist at 0, so claims that need a
Hessian only hold inside one activation pattern (see :mod:`tvgrad.theory.claims.expansion`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import InvalidInput
from ..registry import Registry

__all__ = ["ActivationConstants", "Activation", "ACTIVATIONS", "SMOOTH_ACTIVATIONS",
           "get_activation", "NonSmoothActivation"]


class NonSmoothActivation(InvalidInput):
    """The bound needs sup|σ''| < ∞; ReLU's second derivative does not exist at 0."""


@dataclass(frozen=True)
class ActivationConstants:
    """Constants of σ used by the bound.

    Attributes:
        a1: sup |σ'|.
        a2: sup |σ''|.
        beta: offset of the growth bound |σ(z)| ≤ β + κ|z|.
        kappa: slope of the growth bound.
        bounded: sup |σ| if finite, else None.
        a3: sup |σ'''| (the third-order bound, theory/bound.md (g)); None where unknown: that
            bound is then not computed.
    """

    a1: float
    a2: float
    beta: float
    kappa: float
    bounded: float | None
    a3: float | None = None


@dataclass(frozen=True)
class Activation:
    """An elementwise activation.

    Attributes:
        name: registry key.
        fn: the function (a torch op, so it also runs under ``torch.func`` transforms).
        smooth: False where σ'' does not exist everywhere (ReLU).
        constants: the bound's constants (None for non-smooth activations).
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    smooth: bool
    constants: ActivationConstants | None = None

    def bound_constants(self) -> ActivationConstants:
        """The bound's constants, or an error naming the activation and what is missing."""
        if self.smooth and self.constants is None:
            raise InvalidInput(f"activation {self.name!r} has no bound constants registered "
                               f"(a₁, a₂, β, κ, sup|σ|): give Activation(..., constants="
                               f"ActivationConstants(...)) to use it in the bound claims")
        if not self.smooth:
            raise NonSmoothActivation(
                f"no second-order bound for activation {self.name!r}: its second derivative "
                f"does not exist at 0 (sup|σ''| = ∞). The expansion holds only inside one "
                f"activation pattern; see theory/bound.md, 'Non-smooth activations'.")
        return self.constants


# Constants rounded *up* in the last printed digit; derivations in theory/bound.md, checked
# against a dense grid and sympy in tests/theory/test_bound.py.
ACTIVATIONS: Registry[Activation] = Registry("activation", {
    # a2 = 4/(3√3) = 0.76980036; a3 = 2: tanh''' = −2(1 − t²)(1 − 3t²), largest at t = 0
    "tanh": Activation("tanh", torch.tanh, True,
                       ActivationConstants(1.0, 0.7698004, 0.0, 1.0, 1.0, a3=2.0)),
    # a2 = 1/(6√3) = 0.09622504; a3 = 1/8: σ''' = s(1−s)(1 − 6s + 6s²), largest at s = ½
    "sigmoid": Activation("sigmoid", torch.sigmoid, True,
                          ActivationConstants(0.25, 0.0962251, 0.5, 0.25, 1.0, a3=0.125)),
    # a3 = sup|sigmoid''| = 1/(6√3)
    "softplus": Activation("softplus", nn.functional.softplus, True,
                           ActivationConstants(1.0, 0.25, math.log(2) + 1e-12, 1.0, None,
                                               a3=0.0962251)),
    # a1 = Φ(√2)+√2φ(√2) = 1.12890415, a2 = 2φ(0) = 0.79788456; σ''' = −zφ(z)(4 − z²) is
    # largest where z⁴ − 7z² + 4 = 0, z² = (7 − √33)/2: a3 = 0.77876964
    "gelu": Activation("gelu", nn.functional.gelu, True,
                       ActivationConstants(1.1289042, 0.7978846, 0.0, 1.0, None, a3=0.7787697)),
    # a1 = 1.09983932 at z = 2.39936, a2 at 0, a3 = 0.30818152 at z = ±1.03196
    "silu": Activation("silu", nn.functional.silu, True,
                       ActivationConstants(1.0998394, 0.5, 0.0, 1.0, None, a3=0.3081816)),
    "relu": Activation("relu", torch.relu, False),
})
SMOOTH_ACTIVATIONS = tuple(n for n, a in ACTIVATIONS.items() if a.smooth)


def get_activation(name: str) -> Activation:
    """The registered activation ``name`` (:class:`~tvgrad.errors.UnknownKey` if unknown)."""
    return ACTIVATIONS[name]
