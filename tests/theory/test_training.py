"""run_steps: every learning rate's trajectory at once, vectorised or looped (theory/training.py)."""

import pytest
import torch
from torch._C._functorch import is_batchedtensor

from tvgrad.theory.training import _rowwise, run_steps

A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
TH0 = torch.tensor([1.0, -2.0], dtype=torch.float64)


def _quad(t):
    return 0.5 * t @ A @ t + t.sum() ** 3 / 30


def _branchy(t):  # data-dependent control flow: vmap refuses it, the loop runs it
    return _quad(t) if bool(t.detach().sum() < 1e6) else t.sum()


def _reference(losses, eta):
    th, gsum = TH0.clone(), 0.0
    for f in losses:
        g = torch.func.grad(f)(th)
        gsum += float(g.norm())
        th = th - eta * g
    return th - TH0, gsum


def test_every_row_is_its_own_gradient_descent_vectorised_or_looped():
    """Each row equals a plain loop of θ ← θ − η∇L_b(θ) (same ops: equal to rounding), for a
    vmap-able loss and for one that forces the row-by-row fallback; the gradient-norm sums
    are those of the steps taken."""
    etas = torch.tensor([1e-3, 0.05, 0.2], dtype=torch.float64)
    for f in (_quad, _branchy):
        steps = [f, f, f]
        tr = run_steps(steps, TH0, etas)
        assert bool(tr.finite.all()) and bool(tr.pattern_kept.all())
        for i, eta in enumerate(etas.tolist()):
            tau, gsum = _reference(steps, eta)
            assert torch.allclose(tr.tau[i], tau, rtol=1e-14, atol=1e-15), (f.__name__, i)
            assert abs(float(tr.grad_norm_sum[i]) - gsum) <= 1e-13 * gsum, (f.__name__, i)


def test_rowwise_tries_vmap_once_and_falls_back_to_the_loop_for_good():
    """``_rowwise`` maps a function over the rows with one ``vmap`` call where it works (the
    function sees one batched tensor); where it fails (data-dependent control flow) it runs the
    rows one by one, stacking tuple results part by part — and never tries ``vmap`` again (a
    failed ``vmap`` costs a trace on every later call: thousands per η grid)."""
    x = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
    seen = []

    def fine(row):
        seen.append(is_batchedtensor(row))
        return row * 2

    assert torch.equal(_rowwise(fine)(x), 2 * x) and seen == [True]

    def branchy(row):  # .item() has no batching rule
        seen.append(is_batchedtensor(row))
        return (row * 2, row + 1) if row.sum().item() > -1 else (row, row)

    seen.clear()
    f = _rowwise(branchy)
    for call in range(2):
        out = f(x)
        assert isinstance(out, tuple) and len(out) == 2
        assert torch.equal(out[0], 2 * x) and torch.equal(out[1], x + 1)
        assert seen == ([True] if call == 0 else []) + [False] * 3, (call, seen)
        seen.clear()


@pytest.mark.parametrize("error", [RuntimeError, NotImplementedError, ValueError, TypeError])
def test_rowwise_falls_back_on_each_error_vmap_raises_for_an_unsupported_function(error):
    """What ``vmap`` raises for a function it cannot batch depends on the op (RuntimeError for
    ``.item()``, NotImplementedError for an op without a batching rule, ValueError or TypeError
    from a user's model inspecting its input): each of the four switches to the loop; another
    error propagates."""
    x = torch.arange(4.0, dtype=torch.float64).reshape(2, 2)

    def refuses_batches(row, error=error):
        if is_batchedtensor(row):
            raise error("no batching")
        return row + 1

    assert torch.equal(_rowwise(refuses_batches)(x), x + 1)
    with pytest.raises(KeyError):
        _rowwise(lambda row: refuses_batches(row, KeyError))(x)


def test_different_step_losses_are_taken_in_order():
    def other(t):
        return (t ** 4).sum() / 4
    etas = torch.tensor([0.01, 0.1], dtype=torch.float64)
    tr = run_steps([_quad, other, _quad], TH0, etas)
    for i, eta in enumerate(etas.tolist()):
        tau, _ = _reference([_quad, other, _quad], eta)
        assert torch.allclose(tr.tau[i], tau, rtol=1e-14, atol=1e-15)
    swapped = run_steps([other, _quad, _quad], TH0, etas)
    assert not torch.allclose(swapped.tau, tr.tau)


def test_a_diverging_row_is_flagged_and_the_others_are_not():
    """θ ← θ − η·θ³ blows up for a large η: that row is not finite, the small-η row is."""
    def cubic(t):
        return (t ** 4).sum() / 4
    etas = torch.tensor([1e-3, 50.0], dtype=torch.float64)
    tr = run_steps([cubic] * 12, TH0, etas)
    assert tr.finite.tolist() == [True, False]


def test_pattern_flags_the_rows_whose_activation_pattern_changed():
    """pattern(θ) = sign(θ): a step of η = 0.9 on ½‖θ‖² keeps the signs, one of η = 1.5
    flips them (θ ← −0.5θ), so only that row is flagged."""
    def half_sq(t):
        return 0.5 * (t ** 2).sum()
    etas = torch.tensor([0.9, 1.5], dtype=torch.float64)
    tr = run_steps([half_sq], TH0, etas, pattern=lambda t: t > 0)
    assert tr.pattern_kept.tolist() == [True, False]
    assert torch.allclose(tr.tau[1], -1.5 * TH0, rtol=0, atol=0)
