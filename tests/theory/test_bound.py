"""The explicit bound's ingredients: constants, certified spectral norms, exact references."""

import math

import pytest
import sympy as sp
import torch

from tvgrad.theory.activations import ACTIVATIONS, SMOOTH_ACTIVATIONS, NonSmoothActivation
from tvgrad.theory.bound import apriori_error_bound, bounds, regime_radius, spectral_upper
from tvgrad.theory.cases import Case, Problem
from tvgrad.theory.claims import CLAIMS, HOLDS, VIOLATED
from tvgrad.theory.nets import NetSpec
from tvgrad.theory.spectrum import hessian_spectral_norm_dense, hessian_spectral_norm_lanczos

Z = torch.linspace(-30, 30, 2_000_001, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SMOOTH_ACTIVATIONS))
def test_activation_constants_dominate_a_dense_grid(name):
    """a₁, a₂, a₃ ≥ max over a 3·10⁻⁵-spaced grid of |σ'|, |σ''|, |σ'''| (autograd), and within
    10⁻⁶ of it; |σ(z)| ≤ β + κ|z| on the grid."""
    k = ACTIVATIONS[name].constants
    fn = ACTIVATIONS[name].fn
    z = Z.clone().requires_grad_(True)
    d1 = torch.autograd.grad(fn(z).sum(), z, create_graph=True)[0]
    d2 = torch.autograd.grad(d1.sum(), z, create_graph=True)[0]
    d3 = torch.autograd.grad(d2.sum(), z)[0]
    for bound, vals in ((k.a1, d1.detach()), (k.a2, d2.detach()), (k.a3, d3)):
        m = float(vals.abs().max())
        assert m <= bound <= m + 1e-6, (name, m, bound)
    assert bool((fn(Z).abs() <= k.beta + k.kappa * Z.abs() + 1e-15).all())


@pytest.mark.parametrize("name", sorted(SMOOTH_ACTIVATIONS))
def test_growth_constants_cannot_be_lowered(name):
    r"""|σ(z)| ≤ β + κ|z| and sup|σ| are sharp: β is the max over the grid of |σ(z)| − κ|z| (to
    1e-11: the grid contains z = 0, where each maximum is; softplus's β carries a 1e-12 margin
    for log's rounding), κ lowered by 10 % is exceeded somewhere on the grid (with β kept),
    and sup|σ| (where finite) is reached to 1e-12 within |z| ≤ 30."""
    k = ACTIVATIONS[name].constants
    a = ACTIVATIONS[name].fn(Z).abs()
    assert abs(float((a - k.kappa * Z.abs()).max()) - k.beta) <= 1e-11, (name, k.beta)
    assert bool((a > k.beta + 0.9 * k.kappa * Z.abs()).any()), name
    if k.bounded is not None:
        assert abs(float(a.max()) - k.bounded) <= 1e-12, (name, k.bounded)


def test_closed_forms_with_sympy():
    z = sp.Symbol("z", real=True)
    t = sp.tanh(z)
    d3 = sp.diff(t, z, 3)  # extremum of tanh'' where tanh''' = 0: tanh² = 1/3
    zs = sp.atanh(1 / sp.sqrt(3))
    assert sp.simplify(d3.subs(z, zs)) == 0
    assert abs(float(sp.diff(t, z, 2).subs(z, zs)) + 4 / (3 * math.sqrt(3))) < 1e-12
    s = 1 / (1 + sp.exp(-z))
    zs = sp.log(2 + sp.sqrt(3))  # σ''' = 0 for the sigmoid
    assert abs(float(sp.diff(s, z, 3).subs(z, zs))) < 1e-12
    assert abs(abs(float(sp.diff(s, z, 2).subs(z, zs))) - 1 / (6 * math.sqrt(3))) < 1e-12
    phi = sp.exp(-z ** 2 / 2) / sp.sqrt(2 * sp.pi)
    assert abs(float((2 * phi).subs(z, 0)) - ACTIVATIONS["gelu"].constants.a2) < 1e-6


@pytest.mark.parametrize("shape", [(5, 3), (40, 7), (3, 64), (1, 9)])
def test_spectral_upper_is_an_upper_bound_and_tight(shape):
    W = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    true = float(torch.linalg.matrix_norm(W, 2))
    up = spectral_upper(W)
    assert true <= up <= true * 1.03


def test_lanczos_matches_dense():
    prob = Problem.build(Case(spec=NetSpec(4, (8, 6), 3, "gelu"), loss="cross_entropy", n=12, seed=2))
    f = prob.loss_fn(0)
    a, _ = hessian_spectral_norm_dense(f, prob.theta0)
    b, _ = hessian_spectral_norm_lanczos(f, prob.theta0)
    assert abs(a - b) <= 1e-9 * a


def test_relu_is_refused_with_a_clear_message():
    prob = Problem.build(Case(spec=NetSpec(2, (3,), 1, "relu"), n=3))
    with pytest.raises(NonSmoothActivation, match="no second-order bound for activation 'relu'"):
        bounds(prob, 0.1)


def test_relu_second_order_argument_fails_across_a_kink():
    """The smooth argument needs sup|σ''| < ∞. For ReLU, a trajectory that crosses a kink
    changes the gradient by a jump, not by M·‖Δθ‖: the error is first order in η there."""
    from tvgrad.theory.claims.second_order import check_multi_epoch
    case = Case(spec=NetSpec(2, (8, 8), 2, "relu"), n=16, epochs=3, seed=3)
    out = check_multi_epoch(case)
    assert out.measurements["pattern_changed_points"] > 0  # kinks crossed at larger η


def test_bad_radius():
    prob = Problem.build(Case(spec=NetSpec(2, (3,), 1), n=3))
    with pytest.raises(ValueError, match="radius R must be finite and >= 0, got -1"):
        bounds(prob, -1.0)


def test_regime_and_apriori_bound_monotone():
    prob = Problem.build(Case(spec=NetSpec(2, (4,), 1, "tanh"), n=5))
    g = float(torch.func.grad(prob.loss_fn(0))(prob.theta0).norm())
    R = regime_radius(prob, 3, 1e-3, g)
    assert R is not None and 3 * 1e-3 * bounds(prob, R).G <= R
    assert regime_radius(prob, 3, 1e3, g) is None
    b1, b2 = bounds(prob, 0.1), bounds(prob, 0.2)
    assert b2.M >= b1.M and b2.G >= b1.G
    assert apriori_error_bound(b1, 1e-3, 1) == 0.0
    assert bounds(prob, 0.1, naive=True).M >= b1.M


@pytest.mark.parametrize("variant", ["c2_omitted"])
def test_planted_bound_variant_rejected_on_a_pinned_case(variant):
    claim = CLAIMS["ffn_hessian_bound"]
    assert any(claim.run(c, variant).verdict == VIOLATED for c in claim.examples)
    assert all(claim.run(c).verdict == HOLDS for c in claim.examples)


def test_registries_name_unknown_keys_and_missing_constants():
    from tvgrad.errors import InvalidInput, UnknownKey
    from tvgrad.theory.activations import Activation
    from tvgrad.theory.losses import LOSSES
    with pytest.raises(UnknownKey, match="unknown loss 'hinge'; choose one of"):
        LOSSES["hinge"]
    with pytest.raises(UnknownKey, match="unknown activation 'swish9'"):
        ACTIVATIONS["swish9"]
    with pytest.raises(InvalidInput, match="'mish' has no bound constants registered"):
        Activation("mish", torch.nn.functional.mish, True).bound_constants()
    with pytest.raises(InvalidInput, match="already registered"):
        ACTIVATIONS.register("tanh", ACTIVATIONS["tanh"])


def test_each_stored_sharp_case_rejects_its_lowered_constant():
    """Lowering a constant of the bound by 10 % (as data, through the variant mechanism) is
    violated on its stored sharp case, where the true bound holds."""
    from tvgrad.theory.sharp import load_sharp_cases
    sharp = load_sharp_cases()
    assert sum(len(v) for v in sharp.values()) >= 15
    for cid, per in sharp.items():
        claim = CLAIMS[cid]
        for vid, case in per.items():
            assert claim.variant(vid).must_reject, (cid, vid)
            assert claim.run(case).verdict == HOLDS, (cid, vid)
            assert claim.run(case, vid).verdict == VIOLATED, (cid, vid)


def test_corner_strategy_draws_tiny_sharp_region_cases():
    from hypothesis import given, settings

    from tvgrad.theory.sharp import corner_cases

    @settings(max_examples=30, database=None, derandomize=True)
    @given(corner_cases())
    def check(case):
        assert max(case.spec.widths) <= 2 and case.n <= 2 and case.radius in (0.01, 0.3)
        assert case.spec.activation != "relu"
        assert case.x_scale in (1.0, 3.0) and case.y_scale in (1.0, 10.0)
    check()


def test_the_third_derivative_claim_draws_its_wider_corner():
    """T(R)'s corner adds tiny inputs and ×100 targets (where its c₃ and σ‴ terms are sharp);
    the claim's strategy reaches both; bad scales are refused naming the value."""
    from hypothesis import given, settings

    from tvgrad.theory.sharp import CORNERS, corner_cases
    seen = set()

    @settings(max_examples=400, database=None, derandomize=True)
    @given(CLAIMS["ffn_third_derivative_bound"].strategy())
    def check(case):
        seen.add((case.x_scale, case.y_scale))
    check()
    assert {1e-3, 3.0} <= {x for x, _ in seen} and 100.0 in {y for _, y in seen}
    assert CORNERS["ffn_third_derivative_bound"]["x_scales"][0] == 1e-3
    for bad in ((), (0.0,), (float("inf"),), (1.0, -2.0)):
        with pytest.raises(ValueError, match=r"x_scales must be a non-empty sequence"):
            corner_cases(x_scales=bad).example()


def test_every_lowered_by_10_percent_variant_lowers_by_exactly_10_percent():
    """A sharpness variant is informative only if it is a *small* change: one that lowered a
    constant by more (or flipped its sign) would be rejected on far less sharp cases. Each
    variant described as "lowered by 10 %" multiplies exactly one term by 0.9."""
    from dataclasses import fields

    from tvgrad.theory.activations import SMOOTH_ACTIVATIONS
    from tvgrad.theory.bound import TRUE_TERMS
    from tvgrad.theory.losses import LOSSES
    seen = 0
    for claim in CLAIMS.values():
        for v in claim.variants:
            if "lowered by 10 %" not in v.description:
                continue
            seen += 1
            ratios = []
            for key, val in v.terms.items():
                if isinstance(val, (int, float)):
                    ratios.append(val)  # a factor on a constant or a bound (default 1)
                elif key == "activation":
                    for name in SMOOTH_ACTIVATIONS:
                        base, low = TRUE_TERMS.activation(name), val(name)
                        ratios += [getattr(low, f.name) / getattr(base, f.name)
                                   for f in fields(base) if getattr(base, f.name)]
                else:  # a per-loss constant (c2, c3)
                    for loss in LOSSES:
                        base = getattr(TRUE_TERMS, key)(loss)
                        if base:
                            ratios.append(val(loss) / base)
            changed = [r for r in ratios if r != 1.0]
            assert changed and all(abs(r - 0.9) < 1e-12 for r in changed), \
                (claim.id, v.id, ratios)
    assert seen >= 20


def test_the_named_bounds_are_those_of_bounds_and_a_zero_matrix_has_norm_zero():
    from tvgrad.theory.bound import gradient_bound, hessian_bound
    prob = Problem(Case(spec=NetSpec(2, (3,), 2, "tanh"), n=3, seed=0))
    b = bounds(prob, 0.2)
    assert hessian_bound(prob, 0.2) == b.M and gradient_bound(prob, 0.2) == b.G
    assert b.M > 0 and b.G > 0 and b.M != b.G
    assert spectral_upper(torch.zeros(4, 3, dtype=torch.float64)) == 0.0
    assert spectral_upper(torch.zeros(0, 3, dtype=torch.float64)) == 0.0  # no entries: norm 0


def test_the_measured_jacobian_is_formed_up_to_its_size_limit_and_only_tightens(monkeypatch):
    """At n·out·p = JACOBIAN_ENTRIES_MAX the per-sample Jacobians at θ₀ are formed; one entry
    over, they are not, and the bounds fall back to the recursion alone: never lower."""
    from tvgrad.theory import bound
    case = Case(spec=NetSpec(2, (3,), 2, "tanh"), n=3, seed=0, x_scale=3.0)
    size = case.n * case.spec.out_dim * case.spec.num_params
    monkeypatch.setattr(bound, "JACOBIAN_ENTRIES_MAX", size)
    p1 = Problem(case)
    assert bound.jacobian_norms_at_theta0(p1, p1.data[0].x) is not None
    with_j0 = bounds(p1, 0.05)
    monkeypatch.setattr(bound, "JACOBIAN_ENTRIES_MAX", size - 1)
    p2 = Problem(case)
    assert bound.jacobian_norms_at_theta0(p2, p2.data[0].x) is None
    without = bounds(p2, 0.05)
    assert without.G >= with_j0.G and without.M >= with_j0.M
    assert without.G > with_j0.G  # the measured Jacobian is the tighter one here


def test_the_fixed_point_radius_settles_or_gives_up():
    from tvgrad.theory.bound import _fixed_point_radius
    assert _fixed_point_radius(lambda R: 0.5, 1.0) == 1.0  # reach ≤ R at once
    R = _fixed_point_radius(lambda R: 0.1 + R / 2, 1e-3)   # converges towards 0.2
    assert R is not None and 0.2 <= R <= 0.2 * 1.001
    assert _fixed_point_radius(lambda R: 2 * R + 1, 1.0) is None       # grows past 1e6
    # a finite radius past 1e6 gives up at once, even where the iteration would settle there
    assert _fixed_point_radius(lambda R: 2e6, 1.0) is None
    # the edge (R ← 1.0001·reach): settles at 999 999.5, gives up at 1 000 000.5
    assert _fixed_point_radius(lambda R: 999_999.5 / 1.0001, 1.0) == pytest.approx(999_999.5)
    assert _fixed_point_radius(lambda R: 1_000_000.5 / 1.0001, 1.0) is None
    assert _fixed_point_radius(lambda R: float("inf"), 1.0) is None
    assert _fixed_point_radius(lambda R: R * 1.5, 1.0, iters=3) is None  # never settles
    assert _fixed_point_radius(lambda R: 0.0, 0.0) == 1e-300  # R = 0 starts at the smallest


def test_bound_claims_report_ratios_that_match_dense_references():
    """The tightness ratios the report shows: at θ₀ they are the dense ‖∇²L(θ₀)‖₂ / M(R),
    ‖∇L(θ₀)‖ / G(R) and a lower bound on ‖∇³L(θ₀)‖ / T(R); the worst over the points is at
    least that, at most 1 (the claims hold); the ascent's ratio to the fixed points is a
    ratio of two of those norms."""
    case = Case(spec=NetSpec(2, (3,), 2, "tanh"), n=3, seed=2, radius=0.1, x_scale=3.0)
    prob = Problem(case)
    f, th = prob.loss_fn(0), prob.theta0
    b = bounds(prob, 0.1, third=True)
    H = torch.func.hessian(f)(th)
    h0 = float(torch.linalg.eigvalsh(H).abs().max())
    m = CLAIMS["ffn_hessian_bound"].run(case).measurements
    assert m["M"] == b.M and m["R"] == 0.1
    assert abs(m["exact_over_bound_theta0"] - h0 / b.M) <= 1e-12 * h0 / b.M
    assert h0 / b.M <= m["exact_over_bound"] <= 1
    assert 0.5 < m["ascent_over_fixed_points"] < 2
    m = CLAIMS["ffn_gradient_bound"].run(case).measurements
    g0 = float(torch.func.grad(f)(th).norm())
    assert m["G"] == b.G and g0 / b.G <= m["exact_over_bound"] * (1 + 1e-12) <= 1 + 1e-12
    assert 0.5 < m["ascent_over_fixed_points"] < 2
    # gradients below 1 at every point (inputs and targets scaled by 0.3): still a ratio
    small = Case(spec=NetSpec(2, (3,), 2, "tanh"), n=3, seed=2, radius=0.1, x_scale=0.3,
                 y_scale=0.3)
    m = CLAIMS["ffn_gradient_bound"].run(small).measurements
    assert m["exact_over_bound"] * m["G"] < 1 and 0.5 < m["ascent_over_fixed_points"] < 2, m
    m = CLAIMS["ffn_third_derivative_bound"].run(case).measurements
    assert m["T"] == b.T and 0 < m["lower_over_bound_theta0"] <= m["lower_over_bound"] <= 1


def test_the_true_terms_are_the_bound_as_derived():
    """Every factor among the bound claims' true terms is exactly 1 and every constant is the
    derived one (a planted variant replaces a term, so a true term made loose — a bound ×2 —
    would still see every lowered variant rejected; only this test sees it)."""
    from tvgrad.theory.bound import BoundTerms
    from tvgrad.theory.claims.bound_claims import BOUND_TERMS
    factors = {k: v for k, v in BOUND_TERMS.items() if isinstance(v, float)}
    assert set(factors) == {"c1_scale", "jacobian_scale", "scale", "scale_apriori",
                            "scale_trajectory", "scale_sgd", "scale_g_anchored",
                            "scale_third_order", "remainder_scale"}
    assert all(v == 1.0 for v in factors.values()), factors
    for name in ("activation", "c2", "jacobian", "weight_ball", "bias_ball", "c3"):
        assert BOUND_TERMS[name] is getattr(BoundTerms, name), name
    assert BoundTerms.weight_ball(0.3) == 0.3 and BoundTerms.bias_ball(0.3) == 0.3


def _assert_zeroes_only(activation_terms, field: str) -> None:
    """``activation_terms`` (a variant's ``activation``) gives every smooth activation's true
    constants with ``field`` set to 0 and every other constant unchanged."""
    from dataclasses import fields

    from tvgrad.theory.bound import TRUE_TERMS
    for name in SMOOTH_ACTIVATIONS:
        base, low = TRUE_TERMS.activation(name), activation_terms(name)
        assert getattr(low, field) == 0.0, (name, field, getattr(low, field))
        assert all(getattr(low, f.name) == getattr(base, f.name) for f in fields(base)
                   if f.name != field), (name, field)


def test_the_ablation_variants_are_exactly_what_they_name():
    """a2_zero zeroes a₂ and nothing else, c2_omitted gives c₂ = 0 for every loss, and
    last_layer_only keeps the output layer's Jacobian coefficients (the last column of the
    (n, L) matrix c) unchanged and zeroes the others (an ablation that dropped more — every
    layer — is rejected as well, so only this test sees it)."""
    from tvgrad.theory.losses import LOSSES
    hess, grad = CLAIMS["ffn_hessian_bound"], CLAIMS["ffn_gradient_bound"]
    _assert_zeroes_only(hess.variant("a2_zero").terms["activation"], "a2")
    assert all(hess.variant("c2_omitted").terms["c2"](loss) == 0.0 for loss in LOSSES)
    keep = grad.variant("last_layer_only").terms["jacobian"]
    c = torch.arange(1.0, 13.0, dtype=torch.float64).reshape(4, 3)
    expected = torch.zeros_like(c)
    expected[:, -1] = c[:, -1]
    assert torch.equal(keep(c), expected)
    assert torch.equal(keep(c[:, :1]), c[:, :1])  # one layer: it is the output layer


def test_the_third_derivative_ablations_are_exactly_what_they_name():
    """T(R)'s ablations: a3_zero zeroes a₃ and nothing else, first_order_terms_only gives
    c₂ = c₃ = 0 for every loss (only ℓ'·D³f left). An a₃ merely lowered (to 1, or to −1) is
    still below tanh's 2, so rejections of the variant cannot tell it from the one named."""
    from tvgrad.theory.losses import LOSSES
    third = CLAIMS["ffn_third_derivative_bound"]
    _assert_zeroes_only(third.variant("a3_zero").terms["activation"], "a3")
    terms = third.variant("first_order_terms_only").terms
    assert set(terms) == {"c2", "c3"}
    assert all(terms["c2"](loss) == 0.0 and terms["c3"](loss) == 0.0 for loss in LOSSES)


def test_the_fixed_point_radius_gives_up_after_sixty_evaluations():
    """The iteration's budget, as documented: a reach that settles at its 60th evaluation gives
    a radius, one that settles at its 61st gives None (R grows by 1.00011 a step here, far from
    the 10⁶ cut-off). Every regime (GD, SGD, g-anchored) uses this budget."""
    from tvgrad.theory.bound import _fixed_point_radius

    def settles_at(n):
        calls = []

        def reach(R):
            calls.append(R)
            return R if len(calls) >= n else R * 1.00001
        return reach, calls
    reach, calls = settles_at(60)
    R = _fixed_point_radius(reach, 1.0)
    assert R is not None and len(calls) == 60 and R == calls[-1]
    reach, calls = settles_at(61)
    assert _fixed_point_radius(reach, 1.0) is None and len(calls) == 60


def test_every_task_argument_defaults_to_the_first_task():
    """On two tasks with different data, each function's default task is task 0 (a default of
    -1 would read the last task, the same on every single-task problem)."""
    from tvgrad.theory.bound import certified_grad_norm, g_regime_radius, sgd_epoch_error_bound, sgd_regime
    prob = Problem.build(Case(spec=NetSpec(2, (3,), 1, "tanh"), n=4, tasks=2, seed=1))
    g = [torch.func.grad(prob.loss_fn(t))(prob.theta0) for t in (0, 1)]
    gn = float(g[0].norm())
    batches = [torch.arange(0, 2), torch.arange(2, 4)]
    calls = {
        "bounds.M": lambda **t: bounds(prob, 0.1, **t).M,
        "bounds.G": lambda **t: bounds(prob, 0.1, **t).G,
        "regime_radius": lambda **t: regime_radius(prob, 3, 1e-2, gn, **t),
        "g_regime_radius": lambda **t: g_regime_radius(prob, 3, 1e-2, gn, **t),
        "sgd_regime": lambda **t: sgd_regime(prob, 1e-2, batches, gn, **t),
        "sgd_epoch_error_bound": lambda **t: sgd_epoch_error_bound(prob, 1e-2, batches, 0.1, **t),
        "certified_grad_norm": lambda **t: certified_grad_norm(prob, g[0], **t),
    }
    for name, f in calls.items():
        default, first, second = f(), f(task=0), f(task=1)
        assert default is not None and default == first != second, (name, default, first, second)


def test_the_third_order_bound_takes_its_remainder_as_derived_by_default():
    """``remainder_scale`` (planted variants only) is 1 unless given: the default bound is the
    η² term plus the whole η³ remainder."""
    from tvgrad.theory.bound import third_order_error_bound
    args = dict(Hg=2.0, H0=3.0, M=5.0, T=7.0, g_norm=1.5, eta=0.01, k=4)
    lead = third_order_error_bound(**args, remainder_scale=0.0)
    assert lead == math.comb(4, 2) * 0.01 ** 2 * 2.0
    full = third_order_error_bound(**args, remainder_scale=1.0)
    assert full > lead and third_order_error_bound(**args) == full
