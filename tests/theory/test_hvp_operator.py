"""The HVP operator linearised once: bit-identical products, reused; Lanczos with a certified
residual."""

import torch

from tvgrad.theory.cases import Case, FFNProblem
from tvgrad.theory.derivatives import HVPOperator, SumOfParts, gradient, hvp_rev_rev
from tvgrad.theory.nets import NetSpec
from tvgrad.theory.spectrum import hessian_spectral_norm_dense, lanczos_top


def _prob(**kw):
    return FFNProblem(Case(spec=NetSpec(3, (6, 5), 3, "gelu"), loss="cross_entropy", n=7,
                           seed=2, **kw))


def test_reused_products_are_bit_identical_to_fresh_ones():
    prob = _prob()
    f, th = prob.loss_fn(0), prob.theta0
    op = HVPOperator(f, th)
    assert torch.equal(op.grad, gradient(f, th))
    g = torch.Generator().manual_seed(0)
    for _ in range(5):  # the same pullback, called again and again
        v = torch.randn(th.shape, generator=g, dtype=th.dtype)
        assert torch.equal(op(v), hvp_rev_rev(f, th, v))
    assert op.count == 5


def test_sum_of_parts_operator():
    prob = _prob(tasks=2)
    f = SumOfParts([(0.25, prob.loss_fn(0)), (0.75, prob.loss_fn(1))])
    th = prob.theta0
    v = torch.ones_like(th)
    assert torch.allclose(HVPOperator(f, th)(v), hvp_rev_rev(f, th, v), rtol=0, atol=1e-14)


def test_lanczos_residual_certifies_a_lower_bound_on_the_norm():
    prob = _prob()
    f, th = prob.loss_fn(0), prob.theta0
    exact, _ = hessian_spectral_norm_dense(f, th)
    val, x, r = lanczos_top(HVPOperator(f, th), th)
    assert exact >= val - r and r < 1e-8 * exact  # converged, and certified
    assert abs(val - exact) <= 1e-10 * exact


def test_sum_of_parts_over_a_dict_theta():
    """Parts accumulate for dict parameters as for flat ones (the dict branch of the sums)."""
    from tvgrad.theory.derivatives import gradient
    prob = _prob(tasks=2)
    fs = [prob.loss_fn(t) for t in range(2)]
    as_dict = [lambda d, f=f: f(prob.layout.flatten(d)) for f in fs]
    th = prob.layout.unflatten(prob.theta0.clone())
    f = SumOfParts([(0.25, as_dict[0]), (0.75, as_dict[1])])
    want = 0.25 * gradient(fs[0], prob.theta0) + 0.75 * gradient(fs[1], prob.theta0)
    got = prob.layout.flatten(gradient(f, th))
    assert torch.allclose(got, want, rtol=0, atol=1e-15)
    hv = prob.layout.flatten(hvp_rev_rev(f, th, th))
    want_hv = 0.25 * hvp_rev_rev(fs[0], prob.theta0, prob.theta0) \
        + 0.75 * hvp_rev_rev(fs[1], prob.theta0, prob.theta0)
    assert torch.allclose(hv, want_hv, rtol=0, atol=1e-13)
