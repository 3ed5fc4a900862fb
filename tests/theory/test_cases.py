"""Networks, cases and their validation (bad input gets a clear error naming the value)."""

import json
import math

import pytest
import torch

from tvgrad.errors import InvalidInput
from tvgrad.theory.activations import ACTIVATIONS
from tvgrad.theory.cases import Case, Problem, batch_sequence
from tvgrad.theory.derivatives import gradient
from tvgrad.theory.losses import loss_value
from tvgrad.theory.nets import NetSpec, init_module


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_dim=2, widths=(), out_dim=1), "widths is empty"),
    (dict(in_dim=2, widths=(3, 0), out_dim=1), r"widths must be positive integers, got \(3, 0\)"),
    (dict(in_dim=2, widths=(3, -1), out_dim=1), "-1"),
    (dict(in_dim=0, widths=(3,), out_dim=1), "in_dim must be a positive integer, got 0"),
    (dict(in_dim=2, widths=(3,), out_dim=1, activation="swish9"), "unknown activation 'swish9'"),
])
def test_netspec_rejects_bad_input(kwargs, match):
    with pytest.raises(InvalidInput, match=match):
        NetSpec(**kwargs)


SPEC = NetSpec(3, (4,), 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=0.0), "eta must be finite and > 0, got 0.0"),
    (dict(eta=-1e-3), "-0.001"),
    (dict(eta=float("nan")), "nan"),
    (dict(eta=float("inf")), "inf"),
    (dict(epochs=0), "epochs k must be an integer >= 1, got 0"),
    (dict(loss="hinge"), "unknown loss 'hinge'"),
    (dict(n=0), "n .samples per task. must be an integer >= 1, got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(loss="cross_entropy", at_minimum=True), "at_minimum=True needs a loss with a finite minimiser"),
    (dict(radius=0.0), "radius must be finite and > 0, got 0.0"),
    (dict(radius=-0.1), "radius must be finite and > 0, got -0.1"),
    (dict(radius=float("inf")), "radius must be finite and > 0, got inf"),
    (dict(x_scale=0.0), "x_scale must be finite and > 0, got 0.0"),
    (dict(y_scale=float("nan")), "y_scale must be finite and > 0, got nan"),
    (dict(y_scale=float("inf")), "y_scale must be finite and > 0, got inf"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(seed=True), "seed must be an integer >= 0, got True"),
    (dict(seed=1.0), "seed must be an integer >= 0, got 1.0"),
])
def test_case_rejects_bad_input(kwargs, match):
    with pytest.raises(InvalidInput, match=match):
        Case(spec=SPEC, **kwargs)


def test_case_boundaries_that_are_valid():
    """The smallest valid values pass: seed 0, a tiny radius and scales, out_dim exactly the
    loss's minimum (2 classes for cross-entropy); out_dim one below it is refused."""
    Case(spec=SPEC, seed=0, radius=1e-300, x_scale=1e-300, y_scale=1e-300)
    Case(spec=NetSpec(3, (4,), 2), loss="cross_entropy")
    with pytest.raises(InvalidInput, match="loss 'cross_entropy' needs out_dim >= 2, got 1"):
        Case(spec=NetSpec(3, (4,), 1), loss="cross_entropy")
    c = Case(spec={"in_dim": 3, "widths": (4,), "out_dim": 2})  # a spec as a dict (from JSON)
    assert c.spec == SPEC


def test_unknown_loss_in_loss_value():
    with pytest.raises(InvalidInput, match="unknown loss 'l1'"):
        loss_value("l1", torch.zeros(2, 1), torch.zeros(2, 1))


def test_case_json_roundtrip():
    c = Case(spec=NetSpec(2, (3, 5), 4, "gelu", False), loss="cross_entropy", n=7, tasks=3,
             seed=11, eta=0.3, epochs=2, batch_size=3, reshuffle=True)
    assert Case.from_json(c.to_json()) == c
    assert json.loads(c.to_json())["spec"]["widths"] == [3, 5]


def test_a_partial_case_json_takes_the_documented_defaults():
    """``tvgrad reproduce --case`` accepts a hand-written JSON that gives only ``spec``: every
    other field takes the default that Case's docstring states ("(default ``v``)"), each read
    from the docstring and compared with the dataclass — so a default changed in the code (n
    8 → 7, say) or in the docs alone is caught."""
    import ast
    import dataclasses
    import inspect
    import re

    doc = inspect.getdoc(Case)
    case = Case.from_json(json.dumps({"spec": {"in_dim": 2, "widths": [3], "out_dim": 1}}))
    fields = [f for f in dataclasses.fields(Case) if f.name != "spec"]
    assert fields and all(f.default is not dataclasses.MISSING for f in fields)
    for f in fields:
        entry = re.search(rf"^    {f.name}: ((?:[^\n]|\n {{8}})*)", doc, re.M)  # with its continuation lines
        m = entry and re.search(r"\(default ``(.+?)``\)", entry.group(1))
        assert m, f"Case's docstring states no default for {f.name}"
        documented = ast.literal_eval(m.group(1))
        assert f.default == documented and type(f.default) is type(documented), (f.name, f.default, documented)
        assert getattr(case, f.name) == documented, f.name


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_same_theta0_in_float32_and_float64(act):
    spec = NetSpec(3, (5, 2), 2, act)
    a = init_module(spec, 3, torch.float64)
    b = init_module(spec, 3, torch.float32)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p.detach().float(), q.detach()), n


def test_num_params_matches_module():
    for spec in (NetSpec(3, (4,), 2), NetSpec(1, (1, 2, 3), 5, bias=False)):
        assert spec.num_params == sum(p.numel() for p in init_module(spec, 0).parameters())


def test_at_minimum_has_exactly_zero_gradient():
    prob = Problem.build(Case(spec=NetSpec(3, (6, 4), 2, "softplus"), n=9, at_minimum=True))
    assert torch.count_nonzero(gradient(prob.loss_fn(0), prob.theta0)) == 0


def test_batch_sequence_last_batch_smaller_and_reshuffle_deterministic():
    steps = batch_sequence(10, 4, 2, False, 0)
    assert [len(s) for s in steps] == [4, 4, 2, 4, 4, 2]
    assert torch.equal(torch.cat(steps[:3]), torch.arange(10))
    a = batch_sequence(10, 4, 3, True, 5)
    b = batch_sequence(10, 4, 3, True, 5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(torch.cat(a[:3]), torch.cat(a[3:6]))  # a new order per epoch
    assert [len(s) for s in batch_sequence(5, None, 2, False, 0)] == [5, 5]


def test_tasks_have_different_data():
    prob = Problem.build(Case(spec=SPEC, tasks=3, n=4))
    assert not torch.allclose(prob.data[0].x, prob.data[1].x)
    total = prob.sum_loss_fn()(prob.theta0)
    parts = sum(prob.loss_fn(t)(prob.theta0) for t in range(3))
    assert math.isclose(float(total), float(parts), rel_tol=1e-15)


_GROW = ("in_dim", "out_dim", "width", "depth", "n", "tasks", "epochs")


def _grown(case: Case, what: str) -> Case:
    s = case.spec
    spec = {"in_dim": dict(in_dim=s.in_dim + 1), "out_dim": dict(out_dim=s.out_dim + 1),
            "width": dict(widths=(s.widths[0] + 1,) + s.widths[1:]),
            "depth": dict(widths=s.widths + (s.widths[-1],))}.get(what)  # a copy of the last
    if spec is not None:
        from dataclasses import replace
        return Case(spec=replace(s, **spec), n=case.n, tasks=case.tasks, epochs=case.epochs)
    return Case(spec=s, **{**dict(n=case.n, tasks=case.tasks, epochs=case.epochs),
                           what: getattr(case, what) + 1})


def _cost_case():
    from hypothesis import strategies as st
    return st.builds(
        lambda i, o, w, n, t, k: Case(spec=NetSpec(i, tuple(w), o), n=n, tasks=t, epochs=k),
        st.integers(1, 8), st.integers(1, 8), st.lists(st.integers(1, 8), min_size=1, max_size=3),
        st.integers(1, 20000), st.integers(1, 3), st.integers(1, 3))


def test_a_bigger_case_never_costs_less():
    """The cost model (what refuses a case before it allocates) is monotone: one more input,
    output, unit, layer, sample, task or epoch never lowers the estimated bytes or flops."""
    from hypothesis import example, given, note
    from hypothesis import strategies as st

    @given(_cost_case(), st.sampled_from(_GROW))
    # out_dim 2 = Σ widths 2 and many samples: activations dominate the bytes
    @example(Case(spec=NetSpec(1, (2,), 1), n=20000), "out_dim")
    @example(Case(spec=NetSpec(1, (1,), 1), n=1, tasks=1, epochs=1), "depth")
    def check(case, what):
        big = _grown(case, what)
        note(f"{case.describe()} -> {what} + 1: {case.cost()} -> {big.cost()}")
        assert all(b >= a for a, b in zip(case.cost(), big.cost()))
    check()


def test_the_cost_estimate_is_the_documented_model():
    r"""Case.cost is the model its docstring states — the estimate quoted when a case is refused
    ("needs about … s"), and what ``TVGRAD_CASE_SECONDS`` is compared with:

    .. math::
        \text{bytes} = 8\,(4\,T n (d_\text{in} + d_\text{out} + \textstyle\sum w) + 64p + p^2),
        \quad \text{flops} = 6\,n\,p\,(50kT + p)\,T

    with a dense Hessian (p ≤ DENSE_MAX = 250); above, ~100 Lanczos products replace the p, and
    no p².
    Monotonicity alone (the test above) would pass a model with any other coefficients."""
    dense = Case(spec=NetSpec(3, (4, 5), 2), n=6, tasks=2, epochs=3)
    p = dense.spec.num_params
    assert p == (3 * 4 + 4) + (4 * 5 + 5) + (5 * 2 + 2) == 53
    acts = 2 * 6 * (3 + 2 + 4 + 5)
    assert dense.cost() == (8 * (4 * acts + 64 * p + p * p), 6.0 * 6 * p * (50 * 3 * 2 + p) * 2)
    lanczos = Case(spec=NetSpec(20, (80,), 2), n=3, tasks=1, epochs=2)
    p = lanczos.spec.num_params
    assert p == (20 * 80 + 80) + (80 * 2 + 2) == 1842
    acts = 1 * 3 * (20 + 2 + 80)
    assert lanczos.cost() == (8 * (4 * acts + 64 * p), 6.0 * 3 * p * (50 * 2 * 1 + 100) * 1)
    from tvgrad.theory.spectrum import DENSE_MAX
    edge = Case(spec=NetSpec(3, (50,), 2, bias=False), n=1)  # p = DENSE_MAX: still dense
    p = edge.spec.num_params
    assert p == DENSE_MAX == 250
    assert edge.cost() == (8 * (4 * 55 + 64 * p + p * p), 6.0 * 1 * p * (50 + p) * 1)


def test_reshuffled_batches_depend_on_the_seed_and_only_on_it():
    """With ``reshuffle`` each epoch's order is a seeded permutation: the same seed gives the
    same steps, different seeds different orders (a shuffle stream that ignored the seed would
    give every drawn case the same batches, narrowing what the SGD claims check)."""
    orders = {}
    for seed in range(6):
        steps = batch_sequence(8, 3, 2, True, seed)
        again = batch_sequence(8, 3, 2, True, seed)
        assert all(torch.equal(a, b) for a, b in zip(steps, again))
        assert [len(s) for s in steps] == [3, 3, 2] * 2
        orders[seed] = tuple(torch.cat(steps).tolist())
    assert len(set(orders.values())) == 6, orders
    plain = batch_sequence(8, 3, 2, False, 0)
    assert torch.equal(torch.cat(plain), torch.arange(8).repeat(2))


def test_preactivations_are_each_hidden_layers_input_to_its_activation():
    """``preactivations(θ, t)`` (the ReLU pattern checks' input) is, per hidden layer, W h + b
    on task t's inputs, with h the previous layer's activation — one (n, width) tensor per
    hidden layer, none for the output layer."""
    case = Case(spec=NetSpec(3, (5, 4), 2, "relu"), n=6, seed=1, tasks=2)
    prob = Problem.build(case)
    theta = prob.theta0 + 0.1  # away from θ₀: the parameters used are θ's, not the module's
    p = prob.layout.unflatten(theta)
    for task in range(2):
        h, want = prob.data[task].x, []
        for i in range(2):
            z = h @ p[f"layers.{i}.weight"].T + p[f"layers.{i}.bias"]
            want.append(z)
            h = torch.relu(z)
        got = prob.preactivations(theta, task)
        assert [tuple(z.shape) for z in got] == [(6, 5), (6, 4)]
        for g, w in zip(got, want):
            # the same products as nn.Linear, perhaps summed in another order: a few ulps (u ≈ 1e-16)
            assert torch.allclose(g, w, rtol=1e-14, atol=1e-14), task
    # without a task, task 0's (not the last task's, which -1 would read)
    first, last = prob.preactivations(theta), prob.preactivations(theta, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, prob.preactivations(theta, 0)))
    assert not torch.equal(first[0], last[0])


def test_the_relu_pattern_is_the_sign_of_every_hidden_preactivation_of_every_task():
    """A piecewise-linear network's kink probe (:attr:`pattern`) is ``z > 0`` for every hidden
    pre-activation z, layer by layer, task by task — the side of ReLU's kink each unit is on;
    a smooth activation has none. The draw has pre-activations in (−1, 0) and in (0, 1), so a
    threshold moved to ±1 changes the pattern."""
    case = Case(spec=NetSpec(3, (5, 4), 2, "relu"), n=6, seed=1, tasks=2)
    prob = Problem.build(case)
    zs = [z.reshape(-1) for t in range(2) for z in prob.preactivations(prob.theta0, t)]
    flat = torch.cat(zs)
    assert bool(((flat > -1) & (flat < 0)).any()) and bool(((flat > 0) & (flat < 1)).any())
    assert torch.equal(prob.pattern(prob.theta0), flat > 0)
    smooth = Problem.build(Case(spec=NetSpec(3, (5, 4), 2, "tanh"), n=6, seed=1))
    assert smooth.pattern is None
