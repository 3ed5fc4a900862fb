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
