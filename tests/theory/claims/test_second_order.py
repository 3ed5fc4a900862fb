"""The planted variants of the SGD-epoch claim are exactly the changes they name (a variant
made coarser — e.g. a remainder instead of a halving — is still rejected by the audit, so only
these tests see it), and the module's constants."""

from math import comb
from types import SimpleNamespace

import torch

from tvgrad.theory.claims.second_order import SGD_TERMS, SGD_VARIANTS, _ordered_second


def _expansion(N: int = 4, p: int = 5, seed: int = 0) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    gs = [torch.randn(p, generator=g, dtype=torch.float64) for _ in range(N)]
    Hs = []
    for _ in range(N + 1):
        A = torch.randn(p, p, generator=g, dtype=torch.float64)
        Hs.append(A + A.T)
    return SimpleNamespace(gs=gs, N=N, g_full=torch.randn(p, generator=g, dtype=torch.float64),
                           hvps=[(lambda v, H=H: H @ v) for H in Hs[:N]],
                           hvp_full=lambda v: Hs[N] @ v)


def test_each_sgd_variant_is_the_change_it_names():
    e = _expansion()
    v1, v2 = SGD_TERMS["first_order"](e), SGD_TERMS["second_order"](e)
    assert torch.equal(v1, -torch.stack(e.gs).sum(0))
    variants = {v.id: v.terms for v in SGD_VARIANTS}
    assert torch.equal(variants["sign_flipped"]["second_order"](e), -v2)
    assert torch.equal(variants["coefficient_half"]["second_order"](e), v2 / 2)
    assert torch.allclose(variants["reversed_order"]["second_order"](e),
                          _ordered_second(e, range(e.N - 1, -1, -1)), rtol=0, atol=0)
    assert not torch.allclose(variants["reversed_order"]["second_order"](e), v2)
    full = variants["full_batch_formula"]
    assert torch.equal(full["first_order"](e), -e.N * e.g_full)
    assert torch.equal(full["second_order"](e), comb(e.N, 2) * e.hvp_full(e.g_full))
    assert set(variants) == {"sign_flipped", "coefficient_half", "reversed_order",
                             "full_batch_formula"}


def test_ordered_second_is_the_sum_over_earlier_steps():
    r"""Σ_n H_{b(n)} Σ_{m<n} g_{b(m)}, written out for N = 3."""
    e = _expansion(N=3)
    h = e.hvps
    want = h[1](e.gs[0]) + h[2](e.gs[0] + e.gs[1])
    assert torch.allclose(_ordered_second(e), want, rtol=1e-15, atol=1e-15)


def test_the_float32_to_float64_roundoff_ratio_is_finfos():
    """gradient_rounding scales the float32-vs-float64 gradient difference by u₆₄/u₃₂ to
    estimate the float64 gradient's own error: U32_OVER_U64 is that ratio of unit roundoffs,
    2⁻²⁴ / 2⁻⁵³ = 2²⁹, as torch.finfo gives it (a wrong ratio moves every expansion claim's
    rounding floor, and with it which η are resolved, by the same factor)."""
    from tvgrad.theory.claims.second_order import U32_OVER_U64
    from tvgrad.theory.rounding import unit_roundoff
    assert U32_OVER_U64 == unit_roundoff(torch.float32) / unit_roundoff(torch.float64) == 2.0 ** 29
