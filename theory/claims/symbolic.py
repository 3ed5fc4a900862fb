r"""Claim 6: the algebra behind claims 1, 3 and 5, proved exactly with sympy.

Loss model: a generic cubic around θ₀ in ``p`` parameters with symbolic coefficients,

.. math::

    L(\theta_0 + d) = L_0 + g^\top d + \tfrac12 d^\top H d + \tfrac16 T[d,d,d],
    \qquad \nabla L(\theta_0 + d) = g + H d + \tfrac12 T[d, d],

with ``H`` and ``T`` symmetric. GD is ``d_{i+1} = d_i − η∇L(d_i)`` from ``d_0 = 0``. For a
general smooth loss the Taylor remainder of ∇L is O(‖d‖³) = O(η³) and cannot reach the η⁰–η²
coefficients, so proving the identity for this cubic proves it modulo O(η³) in general.

Each step is expanded and truncated after η² (terms of degree ≥ 3 in η can never come back
down, since every d_i is a multiple of η: this is computing in the ring modulo η³), so the η⁰,
η¹ and η² coefficients are exact. The check subtracts the claimed expansion and expands every
η⁰–η² coefficient: they are polynomials in the symbols, and a polynomial is zero exactly when
its expanded form is the literal 0 — an exact proof, not a numeric comparison. (The cubic
term T only enters at η³, which is why it drops out: that is the content of the claim.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import product
from math import comb
from typing import Any, Callable, Mapping

import sympy as sp
from hypothesis import strategies as st

from ...errors import InvalidInput, check_positive_int
from ..limits import check_cost
from .base import HOLDS, VIOLATED, Claim, JsonCase, Outcome, Variant

ETA = sp.Symbol("eta", positive=True)
KINDS = ("one_step", "gd", "cross")


@dataclass(frozen=True)
class SymCase(JsonCase):
    """``kind``: ``one_step`` (k = 1, exact, no truncation), ``gd`` (k epochs) or ``cross``
    (``tasks`` tasks, k epochs); ``p`` parameters.
    """

    kind: str
    k: int = 1
    p: int = 2
    tasks: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown symbolic kind {self.kind!r}; choose one of {KINDS}")
        for name in ("k", "p", "tasks"):
            check_positive_int(getattr(self, name), name)
        check_cost(f"symbolic case (kind {self.kind}, k {self.k}, p {self.p}, tasks "
                   f"{self.tasks})", *self.cost())

    def cost(self) -> tuple[float, float]:
        """Estimated (bytes, flops): sympy holds ~p³ third-derivative symbols per task (a few
        hundred bytes each, ×k² expanded terms), and its time grew like (T·p)³·k² in
        measurements (0.2-0.5 s at T·p = 8-12, k = 3-4); one "flop" here is 1e-4 s of sympy.
        """
        tp = self.tasks * self.p
        nbytes = 300.0 * self.tasks * (self.p ** 3 + self.p ** 2 + self.p) * self.k ** 2
        return nbytes, 2e-4 * tp ** 3 * self.k ** 2 * 1e9

    def summary(self) -> dict:
        """Flat, CSV-friendly description."""
        return asdict(self)


class CubicTask:
    """Symbolic g, H (symmetric), T (symmetric) of one task."""

    def __init__(self, p: int, tag: str):
        self.p = p
        self.g = sp.Matrix(p, 1, lambda i, _: sp.Symbol(f"g{tag}_{i}"))
        self.H = sp.Matrix(p, p, lambda i, j: sp.Symbol(f"H{tag}_{min(i, j)}{max(i, j)}"))
        self.T = {idx: sp.Symbol(f"T{tag}_{''.join(map(str, sorted(idx)))}")
                  for idx in product(range(p), repeat=3)}

    def grad(self, d: sp.Matrix) -> sp.Matrix:
        """∇L(θ₀ + d) = g + H d + ½ T[d, d] (exact)."""
        p = self.p
        quad = sp.Matrix(p, 1, lambda i, _: sp.Rational(1, 2) * sum(
            self.T[(i, j, l)] * d[j] * d[l] for j in range(p) for l in range(p)))
        return self.g + self.H * d + quad


def gd_exact(tasks: list[CubicTask], k: int) -> sp.Matrix:
    """d_k of k GD steps on Σ of the tasks' losses, fully expanded (no truncation)."""
    p = tasks[0].p
    d = sp.zeros(p, 1)
    for _ in range(k):
        d = (d - ETA * sum((t.grad(d) for t in tasks), sp.zeros(p, 1))).applyfunc(sp.expand)
    return d


def gd(tasks: list[CubicTask], k: int, order: int = 3) -> sp.Matrix:
    """d_k of k GD steps on Σ of the tasks' losses, modulo η^order.

    Computed with truncated power series in η: ``d = Σ_{j<order} η^j d_j``. Then
    ``∇L(d)_j = [j=0] g + H d_j + ½ Σ_{a+b=j} T[d_a, d_b]`` and one step maps
    ``d_j ← d_j − ∇L(d)_{j−1}``. Dropping η^{≥order} is exact in the ring modulo η^order
    because d₀ = 0 (every later term is a multiple of η), so no dropped term can come back.
    """
    p = tasks[0].p
    d = [sp.zeros(p, 1) for _ in range(order)]
    for _ in range(k):
        grad = [sp.zeros(p, 1) for _ in range(order)]
        for t in tasks:
            for j in range(order):
                c = t.H * d[j] + (t.g if j == 0 else sp.zeros(p, 1))
                for a in range(j + 1):
                    da, db = d[a], d[j - a]
                    c += sp.Matrix(p, 1, lambda i, _: sp.Rational(1, 2) * sum(
                        t.T[(i, x, y)] * da[x] * db[y] for x in range(p) for y in range(p)))
                grad[j] += c
        d = [d[0]] + [(d[j] - grad[j - 1]).applyfunc(sp.expand) for j in range(1, order)]
    return sum((ETA ** j * d[j] for j in range(order)), sp.zeros(p, 1))


def _zero_through_eta2(diff: sp.Matrix) -> tuple[bool, str]:
    for i, e in enumerate(diff):
        e = sp.expand(e)
        for power in range(3):
            c = sp.expand(e.coeff(ETA, power))
            if c != 0:
                return False, f"component {i}: coefficient of η^{power} is {c} (claimed 0)"
    return True, ""


def _binomial(k: int):
    return comb(k, 2)


SYM_TERMS: Mapping = {
    "coefficient": _binomial,   # C(k, 2), the coefficient of the η² term
    "sign": 1,                  # + for GD (−ηg at one step), − for the cross term
}
SYM_VARIANTS = (
    Variant("coefficient_k2_over_2", "k²/2 instead of C(k,2) (gd, cross)",
            {"coefficient": lambda k: sp.Rational(k * k, 2)}),
    Variant("sign_flipped", "second-order term with the sign flipped (gd, cross); +ηg (one_step)",
            {"sign": -1}),
)


def check_symbolic(case: SymCase, terms: Mapping = SYM_TERMS) -> Outcome:
    """Prove the claimed identity for ``case`` exactly (sympy), with the given terms."""
    return _check_symbolic(case, terms["coefficient"], terms["sign"])


@lru_cache(maxsize=None)
def _check_symbolic(case: SymCase, coefficient: Callable[[int], Any], sign: int) -> Outcome:
    k, p = case.k, case.p
    coef = coefficient(k)
    meas = {"kind": case.kind, "k": k, "p": p, "tasks": case.tasks}
    if case.kind == "one_step":
        t = CubicTask(p, "")
        d1 = gd_exact([t], 1)  # exact: no truncation at all
        diff = (d1 - (-sign) * ETA * t.g).applyfunc(sp.expand)
        ok = all(e == 0 for e in diff)
        detail = "" if ok else f"d_1 + {'-' if sign < 0 else ''}ηg = {list(diff)} ≠ 0"
    elif case.kind == "gd":
        t = CubicTask(p, "")
        dk = gd([t], k)
        claimed = -k * ETA * t.g + sign * coef * ETA ** 2 * (t.H * t.g)
        ok, detail = _zero_through_eta2(dk - claimed)
    else:
        ts = [CubicTask(p, str(i)) for i in range(case.tasks)]
        ta = sum((gd([t], k) for t in ts), sp.zeros(p, 1))
        mtl = gd(ts, k)
        cross = sum((ts[a].H * ts[b].g for a in range(len(ts)) for b in range(len(ts)) if a != b),
                    sp.zeros(p, 1))
        claimed = -sign * coef * ETA ** 2 * cross
        ok, detail = _zero_through_eta2(ta - mtl - claimed)
    return Outcome(HOLDS if ok else VIOLATED, meas, detail)


def symbolic_cases() -> list[SymCase]:
    """Everything the claim proves: one step (p = 1..3), GD k = 1..6 (p = 1, 2, 3), cross
    term T = 2, 3 with k = 1..6 (p = 2).
    """
    out = [SymCase("one_step", 1, p) for p in (1, 2, 3)]
    out += [SymCase("gd", k, p) for p in (1, 2, 3) for k in range(1, 7)]
    out += [SymCase("cross", k, 2, T) for T in (2, 3) for k in range(1, 7)]
    return out


SYMBOLIC_EXPANSION = Claim(
    id="symbolic_expansion",
    title="Exact symbolic proof of the one-step identity, the k-step expansion and the cross term",
    statement=(r"d_1 = -\eta g\ \text{exactly};\quad d_k \equiv -k\eta g + \binom{k}{2}\eta^2 Hg"
               r"\pmod{\eta^3},\ k=1..6;\quad \sum_t d_{t,k} - d_{\mathrm{MTL},k} \equiv "
               r"-\binom{k}{2}\eta^2\sum_t\sum_{s\ne t}H_t g_s \pmod{\eta^3},\ T=2,3"),
    check=check_symbolic,
    strategy=lambda: st.sampled_from(symbolic_cases()),
    case_type=SymCase,
    variants=SYM_VARIANTS,
    terms=SYM_TERMS,
    examples=tuple(symbolic_cases()),
    notes="sympy: the η⁰–η² coefficients of (computed − claimed) simplify to 0 exactly.",
)
