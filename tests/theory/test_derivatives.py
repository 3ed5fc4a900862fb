"""Every matrix-free HVP against the exact dense Hessian (torch.func.hessian), float64.

Tolerance: relative error ≤ 1e-10 in the 2-norm. The HVP and the dense Hessian evaluate the
same second derivatives through different operation orders; each is backward-stable with
error ≈ c·p·u·‖H‖‖v‖ with u = 1.1e-16 and p ≤ a few hundred parameters here, i.e. ≲ 1e-13
relative, so 1e-10 leaves three orders of margin for ill-conditioned cases while any
wrong formula (a missing term, a transposed block) is off by O(1).
"""

import pytest
import torch

from tvgrad.theory.cases import Case, Problem
from tvgrad.theory.derivatives import dense_hessian, flatten, gradient, hvp, hvp_fwd_rev, hvp_rev_rev
from tvgrad.theory.nets import NetSpec

REL_TOL = 1e-10

# Test cases as data: (name, factory) pairs; each factory builds a Case from a seed.
FACTORIES = {
    "tanh-mse-depth1": lambda s: Case(spec=NetSpec(3, (4,), 2, "tanh"), n=5, seed=s),
    "sigmoid-ce-depth2": lambda s: Case(spec=NetSpec(2, (3, 5), 3, "sigmoid"),
                                         loss="cross_entropy", n=6, seed=s),
    "softplus-nobias": lambda s: Case(spec=NetSpec(4, (6,), 1, "softplus", False), n=3, seed=s),
    "gelu-ce-depth3": lambda s: Case(spec=NetSpec(2, (3, 3, 3), 4, "gelu"),
                                      loss="cross_entropy", n=8, seed=s),
    "silu-width1": lambda s: Case(spec=NetSpec(1, (1,), 1, "silu"), n=1, seed=s),
    "relu-mse": lambda s: Case(spec=NetSpec(3, (5,), 2, "relu"), n=7, seed=s),
}
SEEDS = (0, 1)


def _report(a, b, what):
    diff = (a - b).abs()
    top = torch.topk(diff.reshape(-1), min(3, diff.numel()))
    return (f"{what}: rel err {float(diff.norm() / b.norm().clamp_min(1e-300)):.2e} > {REL_TOL:g}; "
            f"worst entries {[(int(i), float(a.reshape(-1)[i]), float(b.reshape(-1)[i])) for i in top.indices]}")


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", [hvp_fwd_rev, hvp_rev_rev], ids=["fwd_rev", "rev_rev"])
def test_hvp_matches_dense_hessian(name, seed, mode):
    prob = Problem.build(FACTORIES[name](seed))
    f = prob.loss_fn(0)
    th = prob.theta0
    H = dense_hessian(f, th)
    gen = torch.Generator().manual_seed(seed)
    for v in (torch.randn(th.shape, generator=gen, dtype=th.dtype), gradient(f, th)):
        got, want = mode(f, th, v), H @ v
        if float(want.norm()) == 0:
            assert float(got.norm()) == 0
            continue
        rel = float((got - want).norm() / want.norm())
        assert rel <= REL_TOL, _report(got, want, f"{name} seed={seed} {mode.__name__}")


def test_dense_hessian_symmetric_and_dict_params_agree():
    prob = Problem.build(FACTORIES["gelu-ce-depth3"](0))
    f = prob.loss_fn(0)
    H = dense_hessian(f, prob.theta0)
    assert torch.allclose(H, H.T, rtol=0, atol=1e-12 * float(H.abs().max()))
    params = prob.layout.unflatten(prob.theta0)
    fd = lambda p: f(prob.layout.flatten(p))  # noqa: E731
    Hd = dense_hessian(fd, params)
    assert torch.allclose(H, Hd, rtol=0, atol=1e-13 * float(H.abs().max()))
    v = {k: torch.ones_like(t) for k, t in params.items()}
    got = flatten(hvp_fwd_rev(fd, params, v))
    assert float((got - H @ flatten(v)).norm() / (H @ flatten(v)).norm()) <= REL_TOL
    assert torch.allclose(flatten(hvp_rev_rev(fd, params, v)), got, rtol=1e-12, atol=0)


def test_planted_wrong_hvp_is_caught():
    """A check that cannot fail is a defect: a Gauss–Newton product (J^T J v / n, the Hessian
    without its residual-times-curvature term) and an HVP 10⁻⁸ off in scale must both exceed
    the tolerance of the comparison used above."""
    prob = Problem.build(FACTORIES["tanh-mse-depth1"](0))
    f, th = prob.loss_fn(0), prob.theta0
    x, n = prob.data[0].x, prob.data[0].n
    H = dense_hessian(f, th)
    v = torch.randn(th.shape, generator=torch.Generator().manual_seed(0), dtype=th.dtype)

    def outputs(t):
        return torch.func.functional_call(prob.module, prob.layout.unflatten(t), (x,))
    _, Jv = torch.func.jvp(outputs, (th,), (v,))
    _, pullback = torch.func.vjp(outputs, th)
    gauss_newton = pullback(Jv)[0] / n  # MSE ½‖f − y‖² averaged: GN = JᵀJ/n
    want = H @ v
    for wrong in (gauss_newton, hvp(f, th, v) * (1 + 1e-8)):
        assert float((wrong - want).norm() / want.norm()) > REL_TOL
    assert float((hvp(f, th, v) - want).norm() / want.norm()) <= REL_TOL


def test_mismatched_shapes_are_clear_errors():
    from tvgrad.errors import InvalidInput
    prob = Problem.build(FACTORIES["tanh-mse-depth1"](0))
    f, th = prob.loss_fn(0), prob.theta0
    with pytest.raises(InvalidInput, match=r"v\[theta\] has shape \(3,\), theta has \(\d+,\)"):
        hvp(f, th, torch.ones(3, dtype=th.dtype))
    with pytest.raises(InvalidInput, match=r"parameter vector has 5 entries, the model has \d+"):
        prob.layout.unflatten(torch.ones(5))
    with pytest.raises(InvalidInput, match="v has keys"):
        hvp_fwd_rev(lambda p: (p["a"] ** 2).sum(), {"a": torch.ones(2)}, {"b": torch.ones(2)})


def test_tensor_against_dict_and_an_empty_sum_are_clear_errors():
    from tvgrad.errors import InvalidInput
    from tvgrad.theory.derivatives import SumOfParts
    with pytest.raises(InvalidInput, match="v and theta must both be tensors or both be dicts"):
        hvp_fwd_rev(lambda p: (p["a"] ** 2).sum(), {"a": torch.ones(2)}, torch.ones(2))
    with pytest.raises(InvalidInput, match="v and theta must both be tensors or both be dicts"):
        hvp_fwd_rev(lambda t: (t ** 2).sum(), torch.ones(2), {"a": torch.ones(2)})
    with pytest.raises(InvalidInput, match="a SumOfParts needs at least one part"):
        SumOfParts([])


def test_nested_sums_of_parts_multiply_the_weights():
    """Σ of (2, Σ of (3, f), (5, g)) is 6f + 10g: value, gradient and HVP."""
    from tvgrad.theory.derivatives import SumOfParts
    th = torch.tensor([0.3, -1.2], dtype=torch.float64)

    def f(t):
        return (t ** 3).sum()

    def g(t):
        return t[0] * t[1] ** 2
    s = SumOfParts([(2.0, SumOfParts([(3.0, f), (5.0, g)]))])
    assert [w for w, _ in s.parts] == [6.0, 10.0]

    def want(t):
        return 6 * f(t) + 10 * g(t)
    v = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert torch.allclose(s(th), want(th), rtol=1e-15, atol=0)
    assert torch.allclose(gradient(s, th), torch.func.grad(want)(th), rtol=1e-14, atol=1e-14)
    assert torch.allclose(hvp(s, th, v), torch.func.hessian(want)(th) @ v, rtol=1e-14, atol=1e-14)
    from tvgrad.theory.derivatives import grad_and_value
    grad_s, val = grad_and_value(s)(th)  # the trajectories' divergence check reads this value
    assert torch.allclose(val, want(th), rtol=1e-15, atol=0)
    assert torch.allclose(grad_s, torch.func.grad(want)(th), rtol=1e-14, atol=1e-14)
