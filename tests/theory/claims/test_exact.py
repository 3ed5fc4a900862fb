"""The derived tolerances of the exact claims (theory/claims/exact.py), term by term."""

import torch

from tvgrad.theory.claims.exact import _merged_tolerance


def test_merged_tolerance_covers_the_rate_rounded_to_the_dtype():
    r"""Part (b)'s step uses l̃ = fl₃₂(αTη): with every other error source zero (S = 0, exact
    sums, θ = 0, ḡ = 1) its tolerance is, per its docstring, u·l̃·|ḡ| + |l̃ − αTη|·|ḡ| +
    αTη·u·|Ĝ|/T, times (1 + 16u₆₄). The rate is chosen so that float32 rounds it down by
    0.999·2⁻²⁴ (almost u): a tolerance that drops |l̃ − αTη| is short by that much.
    """
    lr = 1.0 + 0.999 * 2.0 ** -24
    lr_t = float(torch.tensor(lr, dtype=torch.float32))
    assert lr_t == 1.0
    z, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    tol = _merged_tolerance(S=z, err_S=z, G=one, err_G=z, merged=z, mtl=z, alpha=1.0, lr=lr,
                            T=1, dtype=torch.float32)
    u = 2.0 ** -24
    needed = u * lr_t + abs(lr_t - lr) + lr * u
    assert float(tol[0]) >= needed, (float(tol[0]), needed)
    # and nothing more than those terms, |l̃ − αTη| taken at its bound u·αTη
    assert float(tol[0]) <= (u * lr_t + u * lr + lr * u) * (1 + 1e-6)
