"""What a claim is: an id, a LaTeX statement, a check, the strategy it runs under, its named
terms, and the planted wrong variants (replacements of those terms) that its check must reject.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from hypothesis.strategies import SearchStrategy

from ...errors import InvalidInput

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
        with ``_`` (bulky traces such as residual curves) are left out.
        """
        out = {}
        for k, v in self.measurements.items():
            if k.startswith("_"):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                v = str(v)
            out[k] = v
        return out


class JsonCase:
    """``to_json`` / ``from_json`` for a dataclass case whose fields are JSON values (nested
    dataclasses are rebuilt by the case's own ``__post_init__``).
    """

    def to_json(self) -> str:
        """The case as one line of JSON (what ``--case`` of the reproduce commands takes)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        """The case of a JSON line written by :meth:`to_json`."""
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Variant:
    """A planted wrong version of a claim, as data: the terms of the claim it replaces.

    The suite must reject it (some input violates it), unless ``must_reject`` is False (a
    tightness probe, rejected only where the bound is tight).

    Attributes:
        id: stable identifier (``sign_flipped`` …).
        description: what is wrong, in one line.
        terms: replacements for entries of :attr:`Claim.terms` (the predicted terms, the
            tolerance, or the bound constants); every key must be one of the claim's terms.
        must_reject: False for tightness probes.
    """

    id: str
    description: str
    terms: Mapping[str, Any] = field(default_factory=dict)
    must_reject: bool = True


@dataclass(frozen=True)
class Claim:
    """A claim of the paper (or beyond it) as an executable, falsifiable check.

    Attributes:
        id: stable identifier (``one_epoch_exact`` …).
        title: one line.
        statement: the identity in LaTeX.
        check: ``check(case, terms) -> Outcome`` on a drawn case; ``terms`` are the claim's own
            :attr:`terms`, or a planted variant's replacements merged into them.
        strategy: zero-argument factory of the Hypothesis strategy drawing inputs.
        case_type: class of the inputs (has ``to_json``/``from_json``/``summary``).
        variants: planted wrong variants.
        terms: the named terms of the true claim that a variant may replace (predicted terms,
            tolerances, bound constants).
        examples: pinned edge cases, always run first (``@example``).
        notes: what the check measures and how its tolerance or band is derived.
        on_problem: ``on_problem(problem, terms, **params) -> Outcome`` on any
            :class:`~tvgrad.theory.module_problem.ModuleProblem` (None: cases only).
        params: the keyword parameters ``on_problem`` takes, with their defaults.
        estimate: the right-hand side is an estimate, not a bound: the campaign reports the
            claim as ``consistent`` / ``inconsistent``, never ``verified``.
        reproduce: the command that re-runs one case (``--claim ID --case JSON`` follow).
        subchecks: name ↦ a measurement key present on the examples that exercised that part
            of the check (e.g. the one-SGD-epoch bound); the campaign counts them, and a
            sub-check exercised too rarely keeps the claim from ``verified``.
    """

    id: str
    title: str
    statement: str
    check: Callable[[Any, Mapping[str, Any]], Outcome]
    strategy: Callable[[], SearchStrategy]
    case_type: type
    variants: tuple[Variant, ...]
    terms: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[Any, ...] = ()
    notes: str = ""
    on_problem: Callable[..., Outcome] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    estimate: bool = False
    reproduce: str = "tvgrad reproduce"
    subchecks: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for v in self.variants:
            extra = set(v.terms) - set(self.terms)
            if extra or not v.terms:
                raise ValueError(f"claim {self.id!r}, variant {v.id!r}: replaces "
                                 f"{sorted(v.terms)}, the claim's terms are {sorted(self.terms)}")

    def variant(self, variant_id: str) -> Variant:
        """The planted variant ``variant_id`` (:class:`InvalidInput` naming the known ones)."""
        for v in self.variants:
            if v.id == variant_id:
                return v
        raise InvalidInput(f"claim {self.id!r} has no variant {variant_id!r}; "
                           f"known: {[v.id for v in self.variants]}")

    def terms_for(self, variant: str | None = None) -> Mapping[str, Any]:
        """The claim's terms (``variant=None``), or the variant's replacements merged in."""
        if variant is None:
            return self.terms
        return {**self.terms, **self.variant(variant).terms}

    def run(self, case: Any, variant: str | None = None) -> Outcome:
        """Check the claim (or its planted ``variant``) on one drawn case."""
        return self.check(case, self.terms_for(variant))
