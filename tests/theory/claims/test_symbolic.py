"""The truncated power-series GD of the symbolic claim (theory/claims/symbolic.py)."""

import pytest
import sympy as sp

from tvgrad.theory.claims.symbolic import ETA, CubicTask, gd, gd_exact


def _truncated(d: sp.Matrix, order: int) -> sp.Matrix:
    return d.applyfunc(lambda e: sum((sp.expand(e).coeff(ETA, j) * ETA ** j
                                      for j in range(order)), sp.Integer(0)))


@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize(("p", "tasks", "k"), [(1, 1, 3), (2, 1, 2), (1, 2, 3)])
def test_truncated_gd_is_exact_gd_modulo_eta_to_the_order(order, p, tasks, k):
    r"""``gd(tasks, k, order)`` is k exact GD steps (:func:`gd_exact`) modulo η^order, for
    every order — not just the claim's 3, where the cubic term T never enters (T[d_a, d_b]
    first reaches d at η³). From order 4 on, the T term of ∇L(d)_j = ... + ½Σ_{a+b=j}
    T[d_a, d_b] does enter (T[d₁, d₁] at η³), so a sum over a that misses pairs (the
    seed-23 sample's ``range(j + 1)`` → ``range(j >> 1)``, equivalent at order 3) differs."""
    ts = [CubicTask(p, str(i)) for i in range(tasks)]
    diff = (gd(ts, k, order) - _truncated(gd_exact(ts, k), order)).applyfunc(sp.expand)
    assert all(e == 0 for e in diff), list(diff)


def test_the_symbolic_cost_is_the_documented_model_and_refuses_a_slow_case(monkeypatch):
    r"""SymCase.cost is the model its docstring states (what refuses a case before sympy runs):
    bytes 300·T·(p³ + p² + p)·k², "flops" 2e-4·(T·p)³·k²·1e9 (1e-4 s of sympy each); and a
    cross case with T·p = 60, k = 4 (about 691 s estimated, 0.27 GB) is refused for its time
    under the default 300 s limit — a model that lost its time term would let it run."""
    from tvgrad.errors import InvalidInput
    from tvgrad.theory.claims.symbolic import SymCase
    monkeypatch.delenv("TVGRAD_CASE_SECONDS", raising=False)
    c = SymCase("cross", k=3, p=4, tasks=2)
    assert c.cost() == (300.0 * 2 * (64 + 16 + 4) * 9, 2e-4 * 8 ** 3 * 9 * 1e9)
    with pytest.raises(InvalidInput, match=r"needs about 691 s \(estimated\)"):
        SymCase("cross", k=4, p=30, tasks=2)


@pytest.mark.parametrize("kind", ["one_step", "gd", "cross"])
def test_each_kind_of_symbolic_case_proves_its_own_identity(kind):
    """A symbolic case checks the identity of its kind: with the sign flipped, a one-step case
    fails the exact d₁ = −ηg (its detail names d₁), a k-epoch case and a two-task cross case fail
    their η² expansions — so a kind dispatched to another kind's branch (a one-step case run as
    a one-task cross case, where TA − MTL ≡ 0 whatever the sign) is caught."""
    from tvgrad.theory.claims import VIOLATED
    from tvgrad.theory.claims.symbolic import SYM_TERMS, SymCase, check_symbolic
    case = {"one_step": SymCase("one_step"), "gd": SymCase("gd", k=2),
            "cross": SymCase("cross", k=2, tasks=2)}[kind]
    assert check_symbolic(case).verdict == "holds"
    out = check_symbolic(case, {**SYM_TERMS, "sign": -SYM_TERMS["sign"]})
    assert out.verdict == VIOLATED and out.measurements["kind"] == kind
    assert out.detail.startswith("d_1") == (kind == "one_step"), out.detail[:80]
    if kind == "one_step":  # the residual it shows is d₁ + sign·ηg, with the variant's sign −1
        assert out.detail.startswith("d_1 + -ηg = ["), out.detail[:80]

