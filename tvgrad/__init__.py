"""tvgrad: the claims of *On Task Vectors and Gradients* (arXiv 2508.16082) as executable,
falsifiable checks, on the suite's own random networks and on any PyTorch model.

.. code-block:: python

    import torch, tvgrad
    problem = tvgrad.ModuleProblem(model, loss_fn, batches, dtype=torch.float64)
    tvgrad.check("multi_epoch_second_order", problem, k=2)   # Outcome(verdict="holds", ...)

Subpackages: :mod:`tvgrad.theory` (claims, problems, campaign, theory report),
:mod:`tvgrad.empirical` (CLIP finetuning, merging, empirical report), :mod:`tvgrad.reports`
(report templates). The public names below are imported lazily, so ``import tvgrad`` (and
``tvgrad.io``, ``tvgrad.errors``) stays light: torch, sympy and Hypothesis load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_LAZY = {
    "check": "tvgrad.theory.api",
    "list_claims": "tvgrad.theory.api",
    "ModuleProblem": "tvgrad.theory.module_problem",
    "NonSmoothModel": "tvgrad.theory.module_problem",
    "Outcome": "tvgrad.theory.claims.base",
    "Variant": "tvgrad.theory.claims.base",
    "Claim": "tvgrad.theory.claims.base",
    "CLAIMS": "tvgrad.theory.claims",
    "Case": "tvgrad.theory.cases",
    "NetSpec": "tvgrad.theory.nets",
    "LOSSES": "tvgrad.theory.losses",
    "ACTIVATIONS": "tvgrad.theory.activations",
    "InvalidInput": "tvgrad.errors",
    "UnknownKey": "tvgrad.errors",
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    """Import the public names on first use (PEP 562)."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tvgrad' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
