"""The derived tolerances of the exact claims (theory/claims/exact.py), term by term."""

import torch

from tvgrad.theory.claims.exact import _merged_tolerance, _summed_step_tolerance
from tvgrad.theory.rounding import sgd_step_tolerance


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


def test_merged_tolerance_charges_the_summed_gradients_error_once_per_task_mean():
    r"""The step is taken along the mean Ĝ/T, so the summed gradients' error err_G enters
    divided by T: the tolerance grows by exactly lr·Δerr_G/T·(1 + 16u₆₄) when err_G grows by
    Δerr_G (and is linear in it), for T = 1, 2, 5. A tolerance charging err_G whole would be up
    to T times too loose there."""
    u64 = 2.0 ** -53
    z = torch.zeros(3, dtype=torch.float64)
    G = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    err = torch.tensor([1e-16, 3e-16, 2e-17], dtype=torch.float64)
    for T in (1, 2, 5):
        lr = 0.3
        tol = [_merged_tolerance(S=z, err_S=z, G=G, err_G=s * err, merged=z, mtl=z, alpha=1.0,
                                 lr=lr, T=T, dtype=torch.float64) for s in (1.0, 2.0)]
        grew = tol[1] - tol[0]
        want = lr * err / T * (1 + 16 * u64)
        # the difference of two float64 sums of ≤ 8 positive terms of comparable size: its
        # rounding is ≤ 8u·tol ≤ 8u·15·|grew| < 3e-14 relative (tol/grew ≤ 15 here); 1e-12 leaves 30×
        assert torch.allclose(grew, want, rtol=1e-12, atol=0), (T, grew, want)


def test_merged_tolerance_takes_the_step_along_the_mean_gradient():
    r"""Part (b)'s step is along the mean ḡ = Ĝ/T: with every other error source zero its
    tolerance is (u·l̃·|ḡ| + e_l·|ḡ| + l·u·|Ĝ|/T)·(1 + 16u₆₄), e_l = γ₂l + u(1 + γ₂)l the rate's
    own error (γ₂ of float64). Checked at T = 2 and 3 with fractional and negative entries of ḡ,
    where a floor division Ĝ // T (0 and −1 instead of 0.375 and −0.125) or the sum Ĝ itself
    gives another tolerance; relative 1e-12 (a handful of float64 roundings, ≤ 1e-15)."""
    from tvgrad.theory.rounding import U64, gamma
    u = 2.0 ** -24
    G = torch.tensor([0.75, -0.25, 3.0, -5.5], dtype=torch.float64)
    z = torch.zeros(4, dtype=torch.float64)
    lr = 0.3
    lr_t = float(torch.tensor(lr, dtype=torch.float32))
    e_l = gamma(2, U64) * lr + u * (1 + gamma(2, U64)) * lr
    for T in (2, 3):
        tol = _merged_tolerance(S=z, err_S=z, G=G, err_G=z, merged=z, mtl=z, alpha=1.0, lr=lr,
                                T=T, dtype=torch.float32)
        g = (G / T).abs()
        want = (u * lr_t * g + e_l * g + lr * u * G.abs() / T) * (1 + 16 * U64)
        assert torch.allclose(tol, want, rtol=1e-12, atol=0), (T, tol.tolist(), want.tolist())


def test_summed_step_tolerance_is_the_three_terms_of_part_a():
    r"""Part (a), Σ_t τ̂_t vs the multitask step, is allowed e_S + sgd_step_tolerance(θ₀, Ĝ, l)
    + η·err_G: with e_S = err_G = 0 it is the step's own rounding bound, bit for bit; e_S adds
    itself; err_G adds η·err_G (the step multiplies the summed gradient's error by η, not by
    the variant's rate l). A tolerance dropping the step term, or charging err_G with the wrong
    sign or factor, differs here. (e_S's T ≥ 2 per-task step bounds already exceed the one
    step's, so the claim's cases hardly resolve such a narrowing — the seed-23 sample's
    ``// eta`` survived them — but the reported tolerance usage, ``max_ratio_sum_*``, changes.)"""
    theta0 = torch.tensor([1.0, -3.0, 0.25, 0.0], dtype=torch.float64)
    G = torch.tensor([0.5, 2.0, -1.0, 4.0], dtype=torch.float64)
    z = torch.zeros(4, dtype=torch.float64)
    e = torch.tensor([1e-16, 2e-16, 0.0, 5e-17], dtype=torch.float64)
    eta, lr = 0.3, 0.7
    step = sgd_step_tolerance(theta0, G, lr)
    assert (step > 0).all()
    assert torch.equal(_summed_step_tolerance(z, theta0, G, lr, eta, z), step)
    assert torch.equal(_summed_step_tolerance(e, theta0, G, lr, eta, z), e + step)
    assert torch.equal(_summed_step_tolerance(z, theta0, G, lr, eta, e), step + eta * e)


def test_merged_tolerance_carries_its_own_rounding_margin_bit_for_bit():
    r"""The tolerance of part (b) is a float64 sum of a few positive terms, so it is multiplied
    by (1 + 16u₆₄) to cover its own rounding. Isolated exactly: with only the summed gradients'
    error nonzero (G = 0, S = 0, merged = mtl = 0, α = 1) and powers of two throughout
    (η = 2⁻¹, err_G = 2⁻⁶⁰, T = 1 and 2), every product is exact, so the tolerance is
    η·err_G/T·(1 + 2⁻⁴⁹) bit for bit — a margin dropped or shrunk (1 + 16u₆₄ → 1, a margin of
    1u or 4u) lands on another double, though 16u₆₄ ≈ 1.8e-15 is far below what the other
    tests' relative comparisons resolve."""
    u64 = 2.0 ** -53
    z = torch.zeros(2, dtype=torch.float64)
    err = torch.full((2,), 2.0 ** -60, dtype=torch.float64)
    for T in (1, 2):
        tol = _merged_tolerance(S=z, err_S=z, G=z, err_G=err, merged=z, mtl=z, alpha=1.0,
                                lr=0.5, T=T, dtype=torch.float64)
        want = 0.5 * 2.0 ** -60 / T * (1 + 16 * u64)
        assert want != 0.5 * 2.0 ** -60 / T  # the margin is a distinct double here
        assert tol.tolist() == [want, want], (T, tol.tolist(), want)
