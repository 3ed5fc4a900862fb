"""The slope machinery on synthetic residuals with known exponents."""

import math

import torch

from tvgrad.theory.claims import DIVERGED, HOLDS, INCONCLUSIVE, VIOLATED
from tvgrad.theory.claims.expansion import CONTAMINATION, GridEval, eta_grid, fit_slope, slope_outcome


def _ev(etas, q, ratio=None, floor=1e-30, finite=None):
    m = etas.numel()
    return GridEval(q, ratio if ratio is not None else 0.01 * torch.ones(m),
                    torch.full((m,), floor, dtype=torch.float64),
                    finite if finite is not None else torch.ones(m, dtype=torch.bool),
                    torch.ones(m, dtype=torch.bool))


def test_fit_recovers_exponents_and_band_formula():
    etas = eta_grid(1.0, 3.0)
    for p in (1.0, 2.0, 3.0):
        f = fit_slope(etas, 5 * etas ** p, torch.ones_like(etas, dtype=torch.bool))
        assert abs(f.slope - p) < 1e-12
        x = torch.log(etas)
        xc = x - x.mean()
        assert math.isclose(f.band, math.log1p(CONTAMINATION) * float((xc.abs()).sum() / (xc * xc).sum()))


def test_short_window_gives_no_fit():
    etas = eta_grid(1.0, 3.0)
    mask = torch.zeros_like(etas, dtype=torch.bool)
    mask[:3] = True
    assert fit_slope(etas, etas ** 2, mask) is None


def _q(etas, c1, c2, c3):
    e = etas[:, None]
    v = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    return e * c1 * v + e ** 2 * c2 * v + e ** 3 * c3 * v


def test_true_expansion_holds_and_wrong_second_order_term_is_violated():
    etas = eta_grid(0.1, 6.0)
    v = torch.tensor([1.0, -2.0], dtype=torch.float64)
    q = _q(etas, -3.0, 0.7, 0.2)
    assert slope_outcome(etas, _ev(etas, q), -3.0 * v, 0.7 * v).verdict == HOLDS
    bad = slope_outcome(etas, _ev(etas, q), -3.0 * v, -0.7 * v)
    assert bad.verdict == VIOLATED and "r2 slope" in bad.detail
    bad1 = slope_outcome(etas, _ev(etas, q), -2.0 * v, 0.7 * v)
    assert bad1.verdict == VIOLATED and "r1 slope" in bad1.detail


def test_everything_diverged_is_diverged_and_below_floor_is_inconclusive():
    etas = eta_grid(0.1, 6.0)
    v = torch.tensor([1.0, -2.0], dtype=torch.float64)
    q = _q(etas, -3.0, 0.7, 0.2)
    none = torch.zeros_like(etas, dtype=torch.bool)
    assert slope_outcome(etas, _ev(etas, q, finite=none), -3 * v, 0.7 * v).verdict == DIVERGED
    out = slope_outcome(etas, _ev(etas, q, ratio=torch.ones_like(etas)), -3 * v, 0.7 * v)
    assert out.verdict == INCONCLUSIVE


def test_chunked_grid_keeps_only_norms_and_agrees(monkeypatch):
    """Large models run the η grid in chunks (down to one η) and keep per-η norms only."""
    from tvgrad.theory.cases import Case
    from tvgrad.theory.claims import CLAIMS
    from tvgrad.theory.claims import second_order as so
    from tvgrad.theory.nets import NetSpec
    case = Case(spec=NetSpec(3, (5,), 2, "tanh"), n=6, epochs=3, seed=2)
    whole = CLAIMS["multi_epoch_second_order"].run(case)
    seen = []
    real = so._evaluate_rows

    def spy(prob, runs, combine, eps_g, pattern, th_norm, etas, v1, v2):
        seen.append(etas.numel())
        return real(prob, runs, combine, eps_g, pattern, th_norm, etas, v1, v2)
    monkeypatch.setattr(so, "_evaluate_rows", spy)
    monkeypatch.setattr(so, "CHUNK_BYTES", 1)  # one η per chunk
    chunked = CLAIMS["multi_epoch_second_order"].run(case)
    assert set(seen) == {1} and len(seen) >= 37
    assert chunked.verdict == whole.verdict == HOLDS
    for key in ("slope_r1", "slope_r2"):
        assert abs(chunked.measurements[key] - whole.measurements[key]) < 1e-6
