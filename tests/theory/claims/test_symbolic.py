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
