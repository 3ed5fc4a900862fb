"""Bound (g): the third-order constants, the cubic layer recursion T(R), and the error bound
that tends to the actual error as η → 0 (theory/bound.md)."""

import math

import mpmath
import pytest
import sympy as sp
import torch

from tvgrad.theory.activations import ACTIVATIONS, ActivationConstants
from tvgrad.theory.bound import (
    bounds,
    certified_grad_norm,
    certified_hg_norm,
    cubic_sup,
    third_order_error_bound,
)
from tvgrad.theory.cases import Case, FFNProblem
from tvgrad.theory.claims import CLAIMS, HOLDS, INCONCLUSIVE, VIOLATED
from tvgrad.theory.claims.bound_claims import cubic_power
from tvgrad.theory.derivatives import gradient
from tvgrad.theory.losses import CE_C3, LOSSES
from tvgrad.theory.nets import NetSpec
from tvgrad.theory.spectrum import hessian_norm_certified


def test_a3_closed_forms_with_sympy():
    z = sp.Symbol("z", real=True)
    assert sp.diff(sp.tanh(z), z, 3).subs(z, 0) == -2
    s = 1 / (1 + sp.exp(-z))
    assert sp.simplify(sp.diff(s, z, 3).subs(z, 0)) == sp.Rational(-1, 8)
    phi = sp.exp(-z ** 2 / 2) / sp.sqrt(2 * sp.pi)
    g3 = sp.diff(z * (1 + sp.erf(z / sp.sqrt(2))) / 2, z, 3)
    assert sp.simplify(g3 + z * phi * (4 - z ** 2)) == 0
    zs = sp.sqrt((7 - sp.sqrt(33)) / 2)  # where σ'''' = 0: z⁴ − 7z² + 4 = 0
    assert abs(float(sp.diff(g3, z).subs(z, zs))) < 1e-12
    assert 0 <= ACTIVATIONS["gelu"].constants.a3 - abs(float(g3.subs(z, zs))) < 1e-6


def test_cross_entropy_c3_is_attained_and_never_exceeded():
    """c₃ = √6/9: attained by the two-point law, and above |E_p[(u − ū)³]| for random logits and
    unit directions (up to 12 classes) and for directions optimised against it."""
    p = 0.5 + 1 / (2 * math.sqrt(3))
    P, u = torch.tensor([p, 1 - p], dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64) / math.sqrt(2)
    mom = lambda P, u: float((P * (u - (P * u).sum()) ** 3).sum())  # noqa: E731
    assert abs(abs(mom(P, u)) - math.sqrt(6) / 9) < 1e-15
    assert 0 <= CE_C3 - math.sqrt(6) / 9 < 1e-7
    g = torch.Generator().manual_seed(0)
    for trial in range(300):
        C = 2 + trial % 11
        z = torch.randn(C, generator=g, dtype=torch.float64) * (1 + trial % 4)
        v = torch.randn(C, generator=g, dtype=torch.float64)
        assert abs(mom(torch.softmax(z, 0), v / v.norm())) <= CE_C3
    # the autograd third derivative of the loss itself, at the attaining point
    logits = torch.log(P)
    f = lambda t: torch.nn.functional.cross_entropy((logits + t * u)[None],  # noqa: E731
                                                    torch.tensor([0]))
    d3 = torch.func.grad(torch.func.grad(torch.func.grad(f)))(torch.tensor(0.0, dtype=torch.float64))
    assert abs(abs(float(d3)) - math.sqrt(6) / 9) < 1e-12
    assert LOSSES["mse"].c3 == 0.0


def test_cubic_sup_bounds_random_and_optimised_directions():
    g = torch.Generator().manual_seed(1)
    P = torch.rand(3, 4, 4, 4, generator=g, dtype=torch.float64)
    P[1] = 0
    P[2, 0, 0, 0] = 5.0
    up = cubic_sup(P)
    assert float(up[1]) == 0.0
    for i in range(3):
        a = torch.rand(4, generator=g, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([a], lr=0.05)
        for _ in range(300):  # projected ascent: the supremum from below
            b = a.abs() / a.norm()
            val = torch.einsum("ijk,i,j,k->", P[i], b, b, b)
            opt.zero_grad()
            (-val).backward()
            opt.step()
        assert float(val.detach()) <= float(up[i]) * (1 + 1e-12)
    # a rank-one cubic c⊗c⊗c: both bounds are exact (‖c‖³)
    c = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert abs(float(cubic_sup(torch.einsum("i,j,k->ijk", c, c, c)[None])[0]) - c.norm() ** 3) < 1e-12


CASES = [Case(spec=NetSpec(2, (4, 3), 2, "tanh"), n=4, seed=0, radius=0.3, x_scale=3.0),
         Case(spec=NetSpec(1, (1,), 1, "tanh", False), n=1, seed=8, radius=0.01, x_scale=3.0,
              y_scale=10.0),
         Case(spec=NetSpec(3, (5,), 3, "gelu"), loss="cross_entropy", n=5, seed=2, radius=0.1),
         Case(spec=NetSpec(2, (3, 3), 2, "silu"), n=3, seed=4, radius=1.0, x_scale=3.0),
         Case(spec=NetSpec(2, (2,), 2, "sigmoid"), loss="cross_entropy", n=2, seed=5,
              radius=0.3),
         Case(spec=NetSpec(1, (2, 2), 1, "softplus"), n=2, seed=6, radius=0.3, y_scale=10.0)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.summary())
def test_T_bounds_the_third_derivative_at_points_of_the_ball(case):
    """T(R) ≥ |∇³L(θ)[u,u,u]| (power method) at θ₀ and random points of the ball; T grows with
    R and is unknown (nan) without a₃."""
    prob = FFNProblem(case)
    f, th, R = prob.loss_fn(0), prob.theta0, case.radius
    T = bounds(prob, R, third=True).T
    assert math.isfinite(T) and T > 0
    g = torch.Generator().manual_seed(case.seed)
    for i in range(4):
        u = torch.randn(th.shape, generator=g, dtype=th.dtype)
        pt = th + (R * i / 3) * u / u.norm()
        assert cubic_power(f, pt, torch.randn(th.shape, generator=g, dtype=th.dtype), 8) <= T
    assert bounds(prob, 2 * R, third=True).T >= T
    assert math.isnan(bounds(prob, R).T)


def test_unknown_third_order_constants_give_no_T_and_an_inconclusive_claim():
    no_a3 = lambda name: ActivationConstants(1.0, 0.7698004, 0.0, 1.0, 1.0)  # noqa: E731
    case = CASES[0]
    from tvgrad.theory.bound import BoundTerms
    assert math.isnan(bounds(FFNProblem(case), 0.1, terms=BoundTerms(activation=no_a3),
                             third=True).T)
    claim = CLAIMS["ffn_third_derivative_bound"]
    out = claim.check(case, {**claim.terms, "activation": no_a3})
    assert out.verdict == INCONCLUSIVE and "a₃ or c₃ unknown" in out.detail


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("sign", [1, -1])
def test_third_order_bound_on_a_cubic_in_one_dimension(k, sign):
    """L(θ) = ½hθ² + (t/6)θ³ with ‖∇²L‖ ≤ M = |h| + |t|(|θ₀| + R) and ‖∇³L‖ = |t|: gradient
    descent in 50-digit arithmetic stays within the bound. With h = −2, t = 3, θ₀ = −0.4
    (``sign = 1``: concave, every term of the remainder of the same sign) the bound is attained
    exactly for every k, so none of its coefficients can be lowered; with θ₀ = +0.4 it tends
    to the actual error as η → 0 (its leading term C(k,2)η²|Hg| is the error's own)."""
    mpmath.mp.dps = 50
    h, t, th0 = mpmath.mpf(-2), mpmath.mpf(3), mpmath.mpf("0.4") * -sign
    grad = lambda th: h * th + t / 2 * th ** 2  # noqa: E731
    g, H0 = grad(th0), h + t * th0
    ratios = []
    for eta in (mpmath.mpf("1e-2"), mpmath.mpf("1e-4"), mpmath.mpf("1e-6")):
        th = th0
        for _ in range(k):
            th = th - eta * grad(th)
        err = abs(th - th0 + k * eta * g)
        R = float(k * eta * abs(g)) * 2
        M = float(abs(h) + abs(t) * (abs(th0) + R))
        bound = third_order_error_bound(float(abs(g * H0)), float(abs(H0)), M, float(abs(t)),
                                        float(abs(g)), float(eta), k)
        assert err <= bound * (1 + 1e-14) + mpmath.mpf(10) ** -45
        if k >= 2:
            ratios.append(float(err) / bound)
    if k == 1:
        assert bound == 0.0
    elif sign == 1:
        assert all(abs(r - 1) < 1e-12 for r in ratios), ratios
    else:
        assert ratios[-1] > 1 - 1e-4 and ratios[0] < ratios[-1]


def test_planted_third_order_variants_are_rejected_where_the_bound_is_tight():
    """k = 2, small η: the bound is within O(η) of the actual error, so lowering it by 10 % or
    dropping its η³ remainder is violated, while the true bound holds."""
    claim = CLAIMS["ffn_second_order_error_bound"]
    case = Case(spec=NetSpec(2, (4,), 2, "tanh"), n=4, seed=3, eta=1e-5, epochs=2, x_scale=3.0,
                y_scale=10.0)
    out = claim.run(case)
    assert out.verdict == HOLDS and out.measurements["actual_over_third_order"] > 0.95
    assert claim.run(case, "third_order_low").verdict == VIOLATED
    assert claim.run(case, "remainder_dropped").verdict == VIOLATED


def test_certified_hg_norm_covers_the_exact_product_at_a_computed_minimum():
    """At θ₀ where the float64 gradient is (nearly) zero, ‖Hg‖ is certified through the
    gradient's forward-error term, never a computed 0."""
    case = Case(spec=NetSpec(2, (3,), 2, "tanh"), n=3, seed=1, at_minimum=True)
    prob = FFNProblem(case)
    f, th = prob.loss_fn(0), prob.theta0
    g = gradient(f, th)
    gc = certified_grad_norm(prob, g)
    H0 = sum(hessian_norm_certified(f, th)[::2])
    hg = certified_hg_norm(f, th, g, gc, H0)
    assert hg >= H0 * (gc - float(g.norm())) > 0


def test_certified_hg_norm_is_the_product_plus_its_two_allowances():
    r"""Off a minimum: ``cert = ‖fl(H g̃)‖ + 10·p·u·‖H‖·‖g̃‖ + ‖H‖(g_cert − ‖g̃‖)``. Soundness
    against the dense float64 Hessian (cert ≥ ‖H_dense g̃‖), and each allowance as stated:
    with g_cert = ‖g̃‖, cert − ‖fl(H g̃)‖ (the same HVP) is the rounding allowance to within
    the subtraction's u·cert ≤ u‖H‖‖g̃‖, i.e. 1/(10p) of it (≈ 0.6 % at p = 17): checked to
    1 %; and raising g_cert by d adds ‖H‖·d. The allowance is itself ≫ the HVP's actual
    error, so a constant 10 cut to 9 or 1 changes no verdict — only this resolves it."""
    from tvgrad.theory.derivatives import hvp
    from tvgrad.theory.rounding import U64
    case = Case(spec=NetSpec(2, (3,), 2, "tanh"), n=3, seed=1, x_scale=3.0)
    prob = FFNProblem(case)
    f, th = prob.loss_fn(0), prob.theta0
    p = th.numel()
    g = gradient(f, th)
    gn = float(g.norm())
    H0 = sum(hessian_norm_certified(f, th)[::2])
    cert = certified_hg_norm(f, th, g, gn, H0)
    dense = float((torch.func.hessian(f)(th) @ g).norm())
    assert cert >= dense > 0
    allowance = 10 * p * U64 * H0 * gn
    used = cert - float(hvp(f, th, g).norm())
    assert abs(used / allowance - 1) <= 0.01, (used / allowance, p)
    d = 1e-3 * gn
    more = certified_hg_norm(f, th, g, gn + d, H0) - cert
    assert abs(more / (H0 * d) - 1) <= 1e-12, more / (H0 * d)  # subtraction: ≤ 10³u here


def test_the_third_order_bound_is_the_tightest_on_the_pinned_cases():
    claim = CLAIMS["ffn_second_order_error_bound"]
    tighter = 0
    for case in claim.examples:
        m = claim.run(case).measurements
        if m.get("third_order") is not None and m.get("g_anchored") is not None:
            tighter += m["third_order"] <= m["g_anchored"]
            assert m["R_anchored"] is not None  # computed in the g-anchored regime
    assert tighter >= 3


def test_cubic_recursion_is_the_majorant_of_a_width_one_chain():
    """f = W₂σ(W₁σ(W₀x)) with scalar weights and no biases: sympy differentiates f three times
    along a direction (dW_l = a_l) with σ a generic function; every coefficient of that
    expansion is a positive integer, so replacing σ⁽ʲ⁾ by aⱼ, each σ(z_l) by its bound H_l, each
    weight by s_l = |W_l| and x by |x| gives the majorant — which the layer recursion's cubic
    form P[a, a, a] must equal (to rounding) for every a ≥ 0. Lowering any coefficient of the
    recursion breaks the equality."""
    from tvgrad.theory.bound import layer_spectral_norms, sample_bounds
    case = Case(spec=NetSpec(1, (1, 1), 1, "tanh", bias=False), n=1, seed=3, x_scale=3.0)
    prob = FFNProblem(case)
    x = prob.data[0].x
    s = layer_spectral_norms(prob)
    k = ACTIVATIONS["tanh"].constants
    P = sample_bounds(prob, 0.0, x, third=True)[3][0]
    t = sp.Symbol("t")
    W = sp.symbols("W0:3")
    a = sp.symbols("a0:3")
    sig = sp.Function("sig")
    xs = sp.Symbol("x")
    h1 = sig((W[0] + t * a[0]) * xs)
    h2 = sig((W[1] + t * a[1]) * h1)
    d3 = sp.diff((W[2] + t * a[2]) * h2, t, 3).subs(t, 0).doit()
    deriv = {1: k.a1, 2: k.a2, 3: k.a3}
    d3 = d3.replace(lambda e: isinstance(e, sp.Subs),
                    lambda e: sp.Float(deriv[e.args[0].derivative_count]))
    d3 = d3.replace(lambda e: isinstance(e, sp.Derivative),
                    lambda e: sp.Float(deriv[e.derivative_count]))
    H0 = abs(float(x[0, 0]))
    H1 = min(s[0] * H0, 1.0)  # tanh: |σ(z)| ≤ min(|z|, 1)
    H2 = min(s[1] * H1, 1.0)
    d3 = d3.subs(sig(W[1] * sig(W[0] * xs)), H2).subs(sig(W[0] * xs), H1)
    d3 = d3.subs({W[0]: s[0], W[1]: s[1], W[2]: s[2], xs: H0})
    assert d3.free_symbols <= set(a), d3.free_symbols
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        v = torch.rand(3, generator=g, dtype=torch.float64)
        v = v / v.norm()
        ref = float(d3.subs(dict(zip(a, v.tolist()))))
        got = float(torch.einsum("ijk,i,j,k->", P, v, v, v))
        assert abs(got - ref) <= 1e-12 * ref, (got, ref)


def test_loss_third_bound_has_the_chain_rule_coefficients():
    """sympy differentiates ℓ(f(t)) three times for generic ℓ and f; with ℓ⁽ʲ⁾ → cⱼ and
    f', f'', f''' → J, S, Tf its value must equal :func:`loss_third_bound`'s."""
    from tvgrad.theory.bound import loss_third_bound
    t = sp.Symbol("t")
    ell, f = sp.Function("ell"), sp.Function("f")
    d3 = sp.diff(ell(f(t)), t, 3).doit()
    vals = {"c1": 0.7, "c2": 1.3, "c3": 0.27, "J": 2.0, "S": 5.0, "Tf": 11.0}
    d3 = d3.subs({sp.Derivative(f(t), (t, 3)): vals["Tf"], sp.Derivative(f(t), (t, 2)): vals["S"],
                  sp.Derivative(f(t), t): vals["J"]})
    d3 = d3.replace(lambda e: isinstance(e, (sp.Subs, sp.Derivative)),
                    lambda e: sp.Float(vals[f"c{(e.args[0] if isinstance(e, sp.Subs) else e).derivative_count}"]))
    assert not d3.free_symbols, d3
    assert abs(float(d3) - loss_third_bound(**vals)) < 1e-12


def test_the_remainder_share_is_measured_against_the_dense_leading_term_and_is_order_eta():
    r"""``third_order_remainder_share`` = (bound − L)/L with L = C(k,2)η²‖Hg‖: recovered from
    the dense Hg to the certified margin (1e-9 relative here), and O(η): 100× smaller η gives
    a share 50–200× smaller. ``hessian_exact_over_bound`` is the dense ‖∇²L(θ₀)‖₂ over M."""
    claim = CLAIMS["ffn_second_order_error_bound"]
    shares = []
    for eta in (1e-3, 1e-5):
        case = Case(spec=NetSpec(2, (4,), 2, "tanh"), n=4, seed=3, eta=eta, epochs=2,
                    x_scale=3.0, y_scale=10.0)
        m = claim.run(case).measurements
        prob = FFNProblem(case)
        f, th = prob.loss_fn(0), prob.theta0
        H = torch.func.hessian(f)(th)
        lead = eta ** 2 * float((H @ torch.func.grad(f)(th)).norm())
        share = m["third_order_remainder_share"]
        assert share > 0 and abs(m["third_order"] / (1 + share) / lead - 1) < 1e-9, (eta, m)
        shares.append(share)
        h0 = float(torch.linalg.eigvalsh(H).abs().max())
        assert 0 < m["hessian_exact_over_bound"] <= 1
        assert abs(m["hessian_exact_over_bound"] * _bound_M(prob, m) / h0 - 1) < 1e-9
    assert 50 < shares[0] / shares[1] < 200, shares


def _bound_M(prob, m) -> float:
    """M of the bound the claim divided by: at the a-priori regime's R where there is one."""
    R = m["R"] if m["R"] is not None else m["R_anchored"]
    return bounds(prob, R).M


def test_the_adversaries_stop_where_their_direction_vanishes():
    """On a quadratic loss ∇³L = 0, so the Hessian ascent has no direction and must return θ₀
    (not 0/0 = NaN); at a minimum ∇²L·∇L = 0, so must the gradient ascent."""
    from tvgrad.theory.claims.bound_claims import ascend_gradient, ascend_hessian
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)

    def quad(t):
        return 0.5 * t @ A @ t
    th0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    v = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert torch.equal(ascend_hessian(quad, th0, 0.1, v), th0)
    zero = torch.zeros(2, dtype=torch.float64)
    assert torch.equal(ascend_gradient(quad, zero, 0.1), zero)
