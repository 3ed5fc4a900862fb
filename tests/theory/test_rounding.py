"""The derived one-step tolerance: never violated by the real kernels, and not vacuous."""

import pytest
import torch

from tvgrad.theory.rounding import compare, gamma, sgd_step_tolerance, sum_tolerance, unit_roundoff


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lr", [1e-8, 3e-3, 0.1, 1.0, 7.3])
def test_sgd_step_within_tolerance_and_tolerance_is_tight(dtype, lr):
    gen = torch.Generator().manual_seed(0)
    theta0 = (torch.randn(20000, generator=gen, dtype=torch.float64) * 10 ** torch.randint(
        -3, 3, (20000,), generator=gen)).to(dtype)
    g = torch.randn(20000, generator=gen, dtype=torch.float64).to(dtype)
    p = torch.nn.Parameter(theta0.clone())
    p.grad = g.clone()
    torch.optim.SGD([p], lr=lr).step()
    tau = p.detach() - theta0
    tol = sgd_step_tolerance(theta0, g, lr)
    cmp = compare(tau, -lr * g.double(), tol, "τ vs −ηg")
    assert cmp.ok, cmp.report
    # not vacuous: the worst coordinate uses a good part of its bound
    assert cmp.max_ratio > 0.1, cmp.report


def test_compare_reports_worst_entries_and_tolerance():
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    cmp = compare(a, a + torch.tensor([0, 1e-3, 0], dtype=torch.float64),
                  torch.full((3,), 1e-6, dtype=torch.float64), "demo")
    assert not cmp.ok and cmp.max_ratio == pytest.approx(1e3)
    assert "demo: worst" in cmp.report and "1.000e-06" in cmp.report
    # by default the five worst of many coordinates, worst first
    a = torch.zeros(8, dtype=torch.float64)
    off = torch.tensor([3, 7, 1, 8, 2, 6, 4, 5], dtype=torch.float64) * 1e-3
    cmp = compare(a, off, torch.full((8,), 1e-6, dtype=torch.float64), "many")
    assert cmp.report.splitlines()[0].startswith("many: worst 5 of 8 coordinates")
    rows = [int(line.split()[0]) for line in cmp.report.splitlines()[2:]]
    assert rows == [3, 1, 5, 7, 6]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e-6])
def test_a_broken_tolerance_never_passes(bad):
    """A NaN, infinite or negative tolerance is a bug in the check, not a pass — even where
    actual and expected agree exactly (before, a NaN tolerance passed a zero difference and an
    infinite one passed any)."""
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    tol = torch.tensor([1e-6, bad, 1e-6], dtype=torch.float64)
    cmp = compare(a, a.clone(), tol, "demo")
    assert not cmp.ok and "the tolerance at index 1 is" in cmp.report and "broken" in cmp.report
    assert compare(a, a.clone(), torch.tensor([1e-6, 0.0, 1e-6], dtype=torch.float64)).ok


@pytest.mark.parametrize("where", ["actual", "expected"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_value_never_passes(where, bad):
    """A NaN or inf in either side fails the comparison, however large the tolerance (a NaN
    difference compares false with everything, so a plain ``diff <= tol`` test would let an
    inf tolerance pass it, and ``not (diff > tol)`` would pass any)."""
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    b = a.clone()
    (a if where == "actual" else b)[1] = bad
    cmp = compare(a, b, torch.full((3,), 1e300, dtype=torch.float64), "demo")
    assert not cmp.ok and cmp.max_ratio == float("inf")
    assert "demo: non-finite entries in the comparison" in cmp.report


def test_a_difference_equal_to_its_tolerance_passes():
    """The tolerance is a bound (≤), not a strict one: a difference exactly at it passes, one
    ulp above fails (0.5 is exact in binary, so diff = tol exactly)."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    e = torch.tensor([1.5, 2.0], dtype=torch.float64)
    tol = torch.tensor([0.5, 0.0], dtype=torch.float64)
    cmp = compare(a, e, tol)
    assert cmp.ok and cmp.max_ratio == 1.0
    assert not compare(a, e, torch.nextafter(tol, torch.zeros_like(tol))).ok


def test_unit_roundoff_and_gamma():
    assert unit_roundoff(torch.float64) == 2.0 ** -53
    assert unit_roundoff(torch.float32) == 2.0 ** -24
    assert gamma(2, 2.0 ** -24) > 2 * 2.0 ** -24
    with pytest.raises(ValueError):
        gamma(2 ** 24, 2.0 ** -24)


def test_sum_tolerance_covers_any_order():
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(1000, generator=gen).float() * 10 ** k for k in range(-3, 4)]
    exact = sum(x.double() for x in xs)
    for order in (xs, xs[::-1]):
        s = order[0]
        for x in order[1:]:
            s = s + x
        assert compare(s, exact, sum_tolerance(xs)).ok


@pytest.mark.parametrize("diff", [1e-3, 1e-300, 5e-324])
def test_a_zero_tolerance_gives_an_infinite_ratio_to_any_difference(diff):
    """Where tol = 0 < |diff| the ratio is inf, as documented — not |diff| / (a tiny floor),
    which for a subnormal difference (5e-324, the smallest float64) would be below 1 and pass;
    where tol = 0 = |diff| the ratio is 0."""
    a = torch.tensor([0.0, 1.0], dtype=torch.float64)
    e = torch.tensor([diff, 1.0], dtype=torch.float64)
    cmp = compare(a, e, torch.zeros(2, dtype=torch.float64), "zero tol")
    assert not cmp.ok and cmp.max_ratio == float("inf"), cmp.report
    same = compare(a, a.clone(), torch.zeros(2, dtype=torch.float64), "zero tol")
    assert same.ok and same.max_ratio == 0.0


@pytest.mark.parametrize("T", [1, 2, 3, 5])
def test_sum_tolerance_charges_one_rounding_per_addition(T):
    """T terms take T − 1 additions, each off by at most u of its result: γ_{T−1} Σ|x_i|, with
    the self-rounding factor (one term: no addition, zero tolerance)."""
    from tvgrad.theory.rounding import SELF_ROUNDING
    xs = [torch.tensor([1.0, -2.0], dtype=torch.float32) for _ in range(T)]
    want = gamma(T - 1, unit_roundoff(torch.float32)) * T * torch.tensor(
        [1.0, 2.0], dtype=torch.float64) * SELF_ROUNDING
    assert torch.equal(sum_tolerance(xs), want), (sum_tolerance(xs), want)


def test_compare_of_empty_tensors_passes_with_nothing_off():
    """A model without parameters of a kind (an empty tensor) compares as passed, with the
    largest ratio and the largest difference both 0 — no made-up difference reported."""
    empty = torch.zeros(0, dtype=torch.float64)
    c = compare(empty, empty, empty, "empty")
    assert (c.ok, c.max_ratio, c.max_abs) == (True, 0.0, 0.0)
    assert "worst 0 of 0 coordinates" in c.report
