"""The registry of claims, in the order they are run and reported."""

from ...registry import Registry
from .base import DIVERGED, HOLDS, INCONCLUSIVE, VERDICTS, VIOLATED, Claim, Outcome, Variant
from .bound_claims import (
    FFN_GRADIENT_BOUND,
    FFN_HESSIAN_BOUND,
    FFN_SECOND_ORDER_ERROR_BOUND,
    FFN_THIRD_DERIVATIVE_BOUND,
)
from .exact import ONE_EPOCH_EXACT, TA_EQUALS_MTL_STEP
from .second_order import MULTI_EPOCH_SECOND_ORDER, SGD_EPOCH_SECOND_ORDER, TA_VS_MTL_CROSS_TERM
from .symbolic import SYMBOLIC_EXPANSION

CLAIMS: Registry[Claim] = Registry("claim", {c.id: c for c in (
    ONE_EPOCH_EXACT, TA_EQUALS_MTL_STEP, MULTI_EPOCH_SECOND_ORDER, SGD_EPOCH_SECOND_ORDER,
    TA_VS_MTL_CROSS_TERM, SYMBOLIC_EXPANSION, FFN_HESSIAN_BOUND, FFN_GRADIENT_BOUND,
    FFN_THIRD_DERIVATIVE_BOUND, FFN_SECOND_ORDER_ERROR_BOUND,
)})


def get_claim(claim_id: str) -> Claim:
    """The claim ``claim_id`` (:class:`~tvgrad.errors.UnknownKey` naming the known ones)."""
    return CLAIMS[claim_id]


__all__ = ["CLAIMS", "get_claim", "Claim", "Outcome", "Variant", "VERDICTS", "HOLDS",
           "VIOLATED", "DIVERGED", "INCONCLUSIVE"]
