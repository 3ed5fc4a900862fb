"""The registry of claims, in the order they are run and reported."""

from ..errors import InvalidInput
from .base import DIVERGED, HOLDS, INCONCLUSIVE, VERDICTS, VIOLATED, Claim, Outcome, Variant
from .exact import ONE_EPOCH_EXACT, TA_EQUALS_MTL_STEP
from .second_order import MULTI_EPOCH_SECOND_ORDER, SGD_EPOCH_SECOND_ORDER, TA_VS_MTL_CROSS_TERM
from .symbolic import SYMBOLIC_EXPANSION
from .bound_claims import FFN_GRADIENT_BOUND, FFN_HESSIAN_BOUND, FFN_SECOND_ORDER_ERROR_BOUND

CLAIMS: dict[str, Claim] = {c.id: c for c in (
    ONE_EPOCH_EXACT, TA_EQUALS_MTL_STEP, MULTI_EPOCH_SECOND_ORDER, SGD_EPOCH_SECOND_ORDER,
    TA_VS_MTL_CROSS_TERM, SYMBOLIC_EXPANSION, FFN_HESSIAN_BOUND, FFN_GRADIENT_BOUND,
    FFN_SECOND_ORDER_ERROR_BOUND,
)}


def get_claim(claim_id: str) -> Claim:
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise InvalidInput(f"unknown claim {claim_id!r}; known: {list(CLAIMS)}") from None


__all__ = ["CLAIMS", "get_claim", "Claim", "Outcome", "Variant", "VERDICTS", "HOLDS",
           "VIOLATED", "DIVERGED", "INCONCLUSIVE"]
