"""Every planted variant of the exact, multi-epoch, cross-term and symbolic claims is exactly
the change it names, and the true terms are the paper's (a variant made coarser or a term
changed by a factor is often still rejected or still holds, so only these tests see it; the
SGD-epoch variants: ``test_second_order.py``, the bound constants: ``test_bound.py``)."""

from math import comb
from types import SimpleNamespace

import pytest
import sympy as sp
import torch

from tvgrad.theory.claims.exact import ONE_EPOCH_TERMS, ONE_EPOCH_VARIANTS, TA_TERMS, TA_VARIANTS
from tvgrad.theory.claims.second_order import (
    CROSS_TERMS,
    CROSS_VARIANTS,
    MULTI_EPOCH_VARIANTS,
    MULTI_TERMS,
    SGD_TERMS,
    _cross,
)
from tvgrad.theory.claims.symbolic import SYM_TERMS, SYM_VARIANTS

G = torch.Generator().manual_seed(0)


def _vec(p: int = 5) -> torch.Tensor:
    return torch.randn(p, generator=G, dtype=torch.float64)


def _sym(p: int = 5) -> torch.Tensor:
    A = torch.randn(p, p, generator=G, dtype=torch.float64)
    return A + A.T


def _by_id(variants) -> dict:
    return {v.id: v.terms for v in variants}


def test_one_epoch_terms_and_variants():
    eta, g, tol = 0.3, _vec(), _vec().abs()
    assert torch.equal(ONE_EPOCH_TERMS["update"](eta, g), -eta * g)
    assert ONE_EPOCH_TERMS["tolerance"](tol) is tol
    v = _by_id(ONE_EPOCH_VARIANTS)
    assert set(v) == {"sign_flipped", "lr_off_by_1e-4", "no_tolerance"}
    assert torch.equal(v["sign_flipped"]["update"](eta, g), eta * g)
    assert torch.equal(v["lr_off_by_1e-4"]["update"](eta, g), -(1 + 1e-4) * eta * g)
    assert torch.equal(v["no_tolerance"]["tolerance"](tol), torch.zeros_like(tol))
    assert all(len(t) == 1 for t in v.values())  # each changes one term


def test_task_arithmetic_terms_and_variants():
    G_, T, eta, alpha = _vec(), 3, 0.2, 0.37
    got, rate = TA_TERMS["mtl_step"](G_, T, eta)
    assert got is G_ and rate == eta
    assert TA_TERMS["merged_lr"](alpha, T, eta) == alpha * T * eta
    v = _by_id(TA_VARIANTS)
    assert set(v) == {"mean_instead_of_sum", "alpha_lr_without_T", "sign_flipped"}
    got, rate = v["mean_instead_of_sum"]["mtl_step"](G_, T, eta)
    assert torch.equal(got, G_ / T) and rate == eta
    assert v["alpha_lr_without_T"]["merged_lr"](alpha, T, eta) == alpha * eta
    got, rate = v["sign_flipped"]["mtl_step"](G_, T, eta)
    assert torch.equal(got, -G_) and rate == eta


@pytest.mark.parametrize("k", [2, 3, 5])
def test_multi_epoch_terms_and_variants(k):
    H, g, th0 = _sym(), _vec(), _vec()
    e = SimpleNamespace(k=k, g=g, Hg=H @ g, hvp=lambda v: H @ v, theta0=th0)
    assert torch.equal(MULTI_TERMS["first_order"](e), -k * g)
    assert torch.equal(MULTI_TERMS["second_order"](e), comb(k, 2) * (H @ g))
    v = _by_id(MULTI_EPOCH_VARIANTS)
    assert set(v) == {"coefficient_k2_over_2", "sign_flipped", "hessian_wrong_vector",
                      "first_order_k_minus_1", "second_order_omitted"}
    assert torch.equal(v["coefficient_k2_over_2"]["second_order"](e), k * k / 2 * (H @ g))
    assert torch.equal(v["sign_flipped"]["second_order"](e), -(comb(k, 2) * (H @ g)))
    w = th0 * g.norm() / th0.norm()  # θ₀ rescaled to ‖g‖
    assert torch.allclose(v["hessian_wrong_vector"]["second_order"](e), comb(k, 2) * (H @ w),
                          rtol=1e-14, atol=1e-14)
    assert torch.equal(v["first_order_k_minus_1"]["first_order"](e), -(k - 1) * g)
    assert torch.equal(v["second_order_omitted"]["second_order"](e), torch.zeros_like(g))
    # at θ₀ = 0 the wrong vector is 0, not NaN
    e0 = SimpleNamespace(**{**vars(e), "theta0": torch.zeros_like(th0)})
    assert torch.equal(v["hessian_wrong_vector"]["second_order"](e0), torch.zeros_like(g))


@pytest.mark.parametrize("k", [2, 4])
def test_cross_term_terms_and_variants(k):
    """Three tasks: the cross term is Σ_t H_t Σ_{s≠t} g_s, written out."""
    Hs, gs = [_sym() for _ in range(3)], [_vec() for _ in range(3)]
    e = SimpleNamespace(k=k, gs=gs, G=sum(gs), hvps=[(lambda v, H=H: H @ v) for H in Hs])
    cross = sum(Hs[t] @ gs[s] for t in range(3) for s in range(3) if s != t)
    assert torch.allclose(_cross(e), cross, rtol=1e-13, atol=1e-13)
    e.cross = cross
    assert torch.equal(CROSS_TERMS["first_order"](e), torch.zeros_like(e.G))
    assert torch.equal(CROSS_TERMS["second_order"](e), -comb(k, 2) * cross)
    v = _by_id(CROSS_VARIANTS)
    assert set(v) == {"sign_flipped", "coefficient_k2_over_2", "all_pairs"}
    assert torch.equal(v["sign_flipped"]["second_order"](e), comb(k, 2) * cross)
    assert torch.equal(v["coefficient_k2_over_2"]["second_order"](e), -(k * k / 2) * cross)
    all_pairs = sum(Hs[t] @ gs[s] for t in range(3) for s in range(3))
    assert torch.allclose(v["all_pairs"]["second_order"](e), -comb(k, 2) * all_pairs,
                          rtol=1e-13, atol=1e-13)


def test_symbolic_terms_and_variants():
    for k in range(1, 7):
        assert SYM_TERMS["coefficient"](k) == comb(k, 2)
    assert SYM_TERMS["sign"] == 1
    v = _by_id(SYM_VARIANTS)
    assert set(v) == {"coefficient_k2_over_2", "sign_flipped"}
    assert v["coefficient_k2_over_2"]["coefficient"](3) == sp.Rational(9, 2)
    assert v["coefficient_k2_over_2"]["coefficient"](4) == 8
    assert v["sign_flipped"] == {"sign": -1}


def test_one_step_shortcuts_run_the_exact_claims_for_the_true_terms_only():
    """k = 1 (N = 1 for SGD) has no η² term: the true terms are checked exactly, by the
    one-epoch and task-arithmetic claims; a variant's terms still go through the expansion
    (a shortcut for every terms would let a variant borrow the true claim's verdict)."""
    from torch import nn
    from torch.nn import functional as F

    import tvgrad
    from tvgrad.theory.claims.exact import one_epoch_on, ta_equals_mtl_on
    from tvgrad.theory.claims.second_order import cross_term_on, multi_epoch_on, sgd_epoch_on
    torch.manual_seed(0)
    tasks = [[(torch.randn(4, 3), torch.randint(0, 2, (4,)))] for _ in range(2)]
    prob = tvgrad.ModuleProblem(nn.Linear(3, 2), F.cross_entropy, tasks=tasks,
                                dtype=torch.float64)
    exact1, exact_ta = one_epoch_on(prob).measurements, ta_equals_mtl_on(prob).measurements
    assert multi_epoch_on(prob, k=1).measurements == exact1
    assert sgd_epoch_on(prob).measurements == exact1  # one batch: N = 1
    assert cross_term_on(prob, k=1).measurements == exact_ta
    wrong = dict(MULTI_TERMS, first_order=lambda e: -(e.k - 1) * e.g)
    assert multi_epoch_on(prob, wrong, k=1).measurements.keys() != exact1.keys()
    assert sgd_epoch_on(prob, dict(SGD_TERMS)).measurements.keys() != exact1.keys()
    assert cross_term_on(prob, dict(CROSS_TERMS), k=1).measurements.keys() != exact_ta.keys()


def test_the_cross_term_claim_records_the_dense_cross_term_norm():
    """cross_norm = ‖Σ_t H_t Σ_{s≠t} g_s‖ from dense Hessians (two tasks: H₀g₁ + H₁g₀)."""
    from torch import nn
    from torch.nn import functional as F

    import tvgrad
    from tvgrad.theory.claims.second_order import cross_term_on
    torch.manual_seed(1)
    tasks = [[(torch.randn(5, 3), torch.randint(0, 2, (5,)))] for _ in range(2)]
    prob = tvgrad.ModuleProblem(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)),
                                F.cross_entropy, tasks=tasks, dtype=torch.float64)
    out = cross_term_on(prob, k=2)
    th = prob.theta0
    f0, f1 = prob.loss_fn(0), prob.loss_fn(1)
    want = torch.func.hessian(f0)(th) @ torch.func.grad(f1)(th) \
        + torch.func.hessian(f1)(th) @ torch.func.grad(f0)(th)
    assert out.verdict == "holds", out.detail
    assert abs(out.measurements["cross_norm"] - float(want.norm())) <= 1e-12 * float(want.norm())


def test_the_tightness_probes_are_exactly_the_variants_nothing_requires_rejected():
    """A variant with ``must_reject=False`` is a tightness probe: the audit reports whether it
    was rejected and never fails on it. Exactly these five are probes — the four bound claims'
    halved bounds (rejected only where a bound is within 2×) and ``bias_ball_dropped``, which
    has no stored sharp case — so a probe made required (an audit that fails on a sound claim)
    or a planted error made optional (one the audit no longer requires) changes this set."""
    from tvgrad.theory.claims import CLAIMS
    from tvgrad.theory.claims.bound_claims import PROBE
    probes = {(cid, v.id) for cid, c in CLAIMS.items() for v in c.variants if not v.must_reject}
    assert probes == {("ffn_hessian_bound", "bound_times_half"),
                      ("ffn_gradient_bound", "bound_times_half"),
                      ("ffn_third_derivative_bound", "bound_times_half"),
                      ("ffn_second_order_error_bound", "bound_times_half"),
                      ("ffn_hessian_bound", "bias_ball_dropped")}, sorted(probes)
    for cid, vid in probes:
        v = CLAIMS[cid].variant(vid)
        assert vid != "bound_times_half" or (PROBE in v.description and v.terms == {"scale": 0.5})
