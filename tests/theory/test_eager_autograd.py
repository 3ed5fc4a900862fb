"""The eager fast path of :mod:`tvgrad.theory.derivatives` and the parameter slots of
:class:`~tvgrad.theory.module_problem.ModuleProblem`.

Outside ``torch.func`` transforms, gradients and HVPs of a flat θ run on plain
``torch.autograd``; inside a transform (or for a θ in the caller's graph) they must compose as
``torch.func`` functions do. Tolerance for eager vs ``torch.func``: the two run the same
kernels, so they agree to the last bit in practice; we allow 4 ulps of the largest entry
(4·u·max|·|, u = 2⁻⁵³) should a future torch reorder a reduction, far below any wrong-formula
error (O(1) relative).
"""

import pytest
import torch
from torch.func import grad, jvp, vjp, vmap

from tvgrad.theory import derivatives
from tvgrad.theory.cases import Case, Problem
from tvgrad.theory.derivatives import HVPOperator, gradient, hvp
from tvgrad.theory.module_problem import ModuleProblem
from tvgrad.theory.nets import NetSpec

U = 2.0 ** -53


def _close(a, b, what):
    tol = 4 * U * float(b.abs().max())
    err = float((a - b).abs().max())
    assert err <= tol, f"{what}: max |difference| {err:.3e} > {tol:.3e} (4 ulps of max |entry|)"


@pytest.fixture(scope="module")
def problem():
    return Problem.build(Case(spec=NetSpec(3, (5, 4), 3, "gelu"), loss="cross_entropy", n=9, seed=3))


def test_eager_gradient_and_hvp_equal_torch_func(problem):
    f, th = problem.loss_fn(0), problem.theta0
    v = torch.randn(th.shape, generator=torch.Generator().manual_seed(0), dtype=th.dtype)
    _close(gradient(f, th), grad(f)(th), "gradient")
    _, pullback = vjp(grad(f), th)
    _close(hvp(f, th, v), pullback(v)[0], "HVP")
    _close(HVPOperator(f, th).grad, grad(f)(th), "HVPOperator.grad")


def test_eager_path_is_taken(problem, monkeypatch):
    """With torch.func's grad/vjp made to fail, the eager path still answers (so it is the one
    used), and inside a transform torch.func is reached (so the fallback is the one used)."""
    f, th = problem.loss_fn(0), problem.theta0
    want_g, want_hv = gradient(f, th), hvp(f, th, th)

    def boom(*a, **k):
        raise AssertionError("torch.func used on the eager path")
    monkeypatch.setattr(derivatives, "grad", boom)
    monkeypatch.setattr(derivatives, "vjp", boom)
    assert torch.equal(gradient(f, th), want_g)
    assert torch.equal(hvp(f, th, th), want_hv)
    with pytest.raises(AssertionError, match="torch.func used"):
        vmap(lambda t: gradient(f, t))(th[None])


def test_composes_under_vmap_and_jvp(problem):
    f, th = problem.loss_fn(0), problem.theta0
    gen = torch.Generator().manual_seed(1)
    thetas = th + 0.1 * torch.randn((3, th.numel()), generator=gen, dtype=th.dtype)
    batched = vmap(lambda t: gradient(f, t))(thetas)
    for i in range(3):
        _close(batched[i], gradient(f, thetas[i]), f"vmap row {i}")
    v = torch.randn(th.shape, generator=gen, dtype=th.dtype)
    _, tangent = jvp(lambda t: gradient(f, t), (th,), (v,))
    rel = float((tangent - hvp(f, th, v)).norm() / hvp(f, th, v).norm())
    assert rel <= 1e-12, f"jvp of the gradient vs HVP: relative difference {rel:.2e}"


def test_theta_in_the_callers_graph_keeps_its_derivative(problem):
    """A θ that requires grad goes through torch.func, so d/dθ of the gradient still flows."""
    f, th = problem.loss_fn(0), problem.theta0
    v = torch.randn(th.shape, generator=torch.Generator().manual_seed(2), dtype=th.dtype)
    t = th.clone().requires_grad_(True)
    (hv,) = torch.autograd.grad(torch.dot(gradient(f, t), v), t)
    rel = float((hv - hvp(f, th, v)).norm() / hv.norm())
    assert rel <= 1e-12, f"autograd through gradient() vs HVP: relative difference {rel:.2e}"


def test_eager_results_are_plain_values_that_keep_no_graph(problem):
    """Eager gradients and HVPs are values: no autograd graph hangs on them (a graph kept on
    each gradient of a trajectory would hold every step's forward pass in memory), while the
    operator keeps its own first-pass graph for its products."""
    f, th = problem.loss_fn(0), problem.theta0
    op = HVPOperator(f, th)
    for what, t in (("gradient", gradient(f, th)), ("operator's gradient", op.grad),
                    ("operator's first product", op(th)),
                    ("operator's second product, reusing the graph", op(th)), ("hvp", hvp(f, th, th))):
        assert t.grad_fn is None and not t.requires_grad, what


def test_affine_loss_has_zero_hessian():
    f = lambda t: (2.0 * t).sum()  # noqa: E731
    th = torch.ones(4, dtype=torch.float64)
    assert torch.equal(gradient(f, th), torch.full_like(th, 2.0))
    assert torch.equal(hvp(f, th, th), torch.zeros_like(th))


def test_a_tensor_of_the_caller_that_requires_grad_is_a_constant_for_theta():
    """A loss may close over a tensor that requires grad (a parameter of another module, not
    part of θ): for θ it is a constant, so ⟨θ, w⟩ has gradient w and Hessian zero, and a loss
    of w alone gradient zero — not ``None`` from autograd's graph, which reaches w but not θ."""
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    th = torch.ones(3, dtype=torch.float64)
    linear = lambda t: (t * w).sum()  # noqa: E731
    assert torch.equal(gradient(linear, th), w.detach())
    assert torch.equal(hvp(linear, th, th), torch.zeros_like(th))
    assert torch.equal(HVPOperator(linear, th)(th), torch.zeros_like(th))
    only_w = lambda t: (t.detach() * 0).sum() + (w ** 2).sum()  # noqa: E731
    assert torch.equal(gradient(only_w, th), torch.zeros_like(th))


class _Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 3)
        self.b.weight = self.a.weight  # tied

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_tied_parameters_take_functional_call_and_stay_tied():
    torch.manual_seed(0)
    model = _Tied().double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    mse = torch.nn.functional.mse_loss
    prob = ModuleProblem(model, mse, [(x, y)])
    assert prob._slots is None and prob.num_params == 9 + 3 + 3
    m = prob.module_at_theta0()
    mse(m(x), y).backward()
    want = torch.cat([m.a.weight.grad.reshape(-1), m.a.bias.grad, m.b.bias.grad])
    got = gradient(prob.loss_fn(0), prob.theta0)
    rel = float((got - want).norm() / want.norm())
    assert rel <= 1e-13, f"tied gradient: relative difference {rel:.2e}"


def test_slots_restore_the_module_after_an_exception(problem):
    own = dict(problem.module.named_parameters())
    params = problem.layout.unflatten(problem.theta0 * 2)
    with pytest.raises(RuntimeError, match="inside"):
        with problem._slots.holding(params):
            assert problem.module.layers[0].weight is params["layers.0.weight"]
            raise RuntimeError("inside")
    assert all(p is own[n] for n, p in problem.module.named_parameters())
