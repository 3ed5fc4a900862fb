"""The public API: check a claim on any model (``tvgrad.check``).

.. code-block:: python

    import torch, tvgrad
    problem = tvgrad.ModuleProblem(model, loss_fn, batches, dtype=torch.float64)
    tvgrad.check("multi_epoch_second_order", problem, k=2).verdict              # "holds"
    tvgrad.check("multi_epoch_second_order", problem, k=2,
                 variant="coefficient_k2_over_2").verdict                        # "violated"
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from .claims import CLAIMS, Claim, Outcome, get_claim
from .module_problem import ModuleProblem

__all__ = ["check", "list_claims"]


def check(claim_id: str, problem: Any, *, variant: str | None = None, **params: Any) -> Outcome:
    """Check one claim (or one of its planted wrong variants) on one problem.

    Args:
        claim_id: a key of :data:`~tvgrad.theory.claims.CLAIMS` (``tvgrad list`` prints them).
        problem: a :class:`~tvgrad.theory.module_problem.ModuleProblem` (any model), or a
            drawn case of the claim's own type (e.g. a feed-forward
            :class:`~tvgrad.theory.cases.Case`, as the campaign uses).
        variant: a planted wrong variant's id; the check must then return ``violated`` on a
            sensitive problem.
        **params: the claim's parameters (``eta`` for the exact claims; ``k`` for the
            k-epoch claims; ``epochs``, ``batch_size``, ``reshuffle``, ``seed`` for the SGD
            claim); :func:`list_claims` lists each claim's with their defaults.

    Returns:
        The :class:`~tvgrad.theory.claims.Outcome`: ``verdict`` (``holds``, ``violated``,
        ``diverged`` or ``inconclusive``), ``measurements`` and ``detail``.

    Raises:
        UnknownKey: an unknown claim id.
        InvalidInput: an unknown variant or parameter, a claim that does not run on this
            kind of problem (the symbolic proof, the feed-forward bounds), or bad values.
    """
    claim = get_claim(claim_id)
    if isinstance(problem, claim.case_type):
        if params:
            raise InvalidInput(f"{claim_id}: parameters {sorted(params)} are part of the case "
                               f"itself when checking a {claim.case_type.__name__}")
        return claim.run(problem, variant)
    if claim.on_problem is None:
        raise InvalidInput(f"claim {claim_id!r} runs on {claim.case_type.__name__} inputs only "
                           f"(it is not a statement about an arbitrary model)")
    if not isinstance(problem, ModuleProblem):
        raise InvalidInput(f"claim {claim_id!r} needs a tvgrad.ModuleProblem (or a "
                           f"{claim.case_type.__name__}), got {type(problem).__name__}")
    unknown = set(params) - set(claim.params)
    if unknown:
        raise InvalidInput(f"claim {claim_id!r} has no parameter {sorted(unknown)}; its "
                           f"parameters: {dict(claim.params)}")
    return claim.on_problem(problem, claim.terms_for(variant), **params)


def list_claims() -> list[dict[str, Any]]:
    """Every claim with its statement, parameters (with defaults) and planted variants."""
    out = []
    for c in CLAIMS.values():
        c: Claim
        out.append({"id": c.id, "title": c.title, "statement": c.statement,
                    "runs_on_any_model": c.on_problem is not None, "params": dict(c.params),
                    "variants": [{"id": v.id, "description": v.description,
                                  "must_reject": v.must_reject} for v in c.variants]})
    return out
