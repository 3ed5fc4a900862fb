"""What a claim is: an id, a LaTeX statement, a check, the strategy it runs under, and the
planted wrong variants that its check must reject."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from hypothesis.strategies import SearchStrategy

from ..errors import InvalidInput

HOLDS, VIOLATED, DIVERGED, INCONCLUSIVE = "holds", "violated", "diverged", "inconclusive"
VERDICTS = (HOLDS, VIOLATED, DIVERGED, INCONCLUSIVE)


@dataclass(frozen=True)
class Outcome:
    """The verdict of one check on one input.

    ``holds``: the claim is confirmed on this input. ``violated``: it is refuted (``detail``
    says how, with the worst entries and the tolerance). ``diverged``: the trajectory's loss
    or parameters became NaN/inf, so nothing can be said. ``inconclusive``: the input is
    outside the regime where the check can decide (e.g. no η window above rounding level);
    counted and reported, never as verified.
    """

    verdict: str
    measurements: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    def clean_measurements(self) -> dict[str, Any]:
        """Measurements with non-finite floats turned into strings (valid JSON); keys starting
        with ``_`` (bulky traces such as residual curves) are left out."""
        out = {}
        for k, v in self.measurements.items():
            if k.startswith("_"):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                v = str(v)
            out[k] = v
        return out


@dataclass(frozen=True)
class Variant:
    """A planted wrong version of a claim. The suite must reject it (some input violates it)."""

    id: str
    description: str
    must_reject: bool = True  # False: a tightness probe (rejected only where the bound is tight)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper (or beyond it) as an executable, falsifiable check.

    Args:
        id: stable identifier (``one_epoch_exact`` …).
        title: one line.
        statement: the identity in LaTeX.
        check: ``check(case, variant_id_or_None) -> Outcome``; ``None`` checks the true claim.
        strategy: zero-argument factory of the Hypothesis strategy drawing inputs.
        case_type: class of the inputs (has ``to_json``/``from_json``/``summary``).
        variants: planted wrong variants.
        examples: pinned edge cases, always run first (``@example``).
        notes: what the check measures and how its tolerance or band is derived.
    """

    id: str
    title: str
    statement: str
    check: Callable[[Any, str | None], Outcome]
    strategy: Callable[[], SearchStrategy]
    case_type: type
    variants: tuple[Variant, ...]
    examples: tuple[Any, ...] = ()
    notes: str = ""

    def run(self, case: Any, variant: str | None = None) -> Outcome:
        if variant is not None and variant not in {v.id for v in self.variants}:
            raise InvalidInput(
                f"claim {self.id!r} has no variant {variant!r}; "
                f"known: {[v.id for v in self.variants]}")
        return self.check(case, variant)
