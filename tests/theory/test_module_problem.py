"""The claims on models the suite did not generate: ModuleProblem wraps any nn.Module.

Test cases as data: each factory builds a (model, loss, data) triple from a seed; every
expansion claim must hold on each, and every must-reject variant must be rejected.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tvgrad
from tvgrad.errors import InvalidInput
from tvgrad.theory.claims import CLAIMS
from tvgrad.theory.derivatives import NotTwiceDifferentiable, gradient, hvp
from tvgrad.theory.module_problem import ModuleProblem, NonSmoothModel


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(27, 4))


class Block(nn.Module):
    """A pre-norm transformer block (nn.MultiheadAttention, LayerNorm, GELU) with a head."""

    def __init__(self, d: int = 8, heads: int = 2, classes: int = 3):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.att(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(x.mean(1))


class SDPABlock(nn.Module):
    """Attention written with F.scaled_dot_product_attention (fused kernels by default)."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, 2)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, 2, d // 2).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        return self.out(o.mean(1))


def cnn_data(seed: int, n: int = 6, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


def block_data(seed: int, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _problem(name: str, seed: int = 0) -> ModuleProblem:
    """Two tasks (for the multitask claims), each in two batches, the last smaller."""
    if name == "cnn-tanh":
        model, data = small_cnn(seed), [cnn_data(seed + t, n=5) for t in range(2)]
    else:
        torch.manual_seed(seed)
        model, data = Block(), [block_data(seed + t) for t in range(2)]
    tasks = [[(x[:3], y[:3]), (x[3:], y[3:])] for x, y in data]
    return ModuleProblem(model, F.cross_entropy, tasks=tasks)


MODELS = ["cnn-tanh", "mha-layernorm-gelu"]
EXPANSION = [("multi_epoch_second_order", {"k": 2}), ("multi_epoch_second_order", {"k": 3}),
             ("sgd_epoch_second_order", {}), ("sgd_epoch_second_order", {"epochs": 2}),
             ("ta_vs_mtl_cross_term", {"k": 2})]


@pytest.fixture(scope="module", params=MODELS)
def problem(request):
    return _problem(request.param)


@pytest.mark.parametrize("claim_id, params", EXPANSION)
def test_expansion_claims_hold_on_models_the_suite_did_not_generate(problem, claim_id, params):
    out = tvgrad.check(claim_id, problem, **params)
    assert out.verdict == "holds", out.detail
    assert abs(out.measurements["slope_r1"] - 2) < out.measurements["band_r1"]
    assert out.measurements["slope_r2"] > 3 - out.measurements["band_r2"]


@pytest.mark.parametrize("claim_id, variant", [
    (c, v.id) for c in ("multi_epoch_second_order", "sgd_epoch_second_order",
                        "ta_vs_mtl_cross_term") for v in CLAIMS[c].variants if v.must_reject])
def test_must_reject_variants_are_rejected_on_models(problem, claim_id, variant):
    out = tvgrad.check(claim_id, problem, variant=variant, **({"k": 3} if "sgd" not in claim_id else {}))
    assert out.verdict == "violated", (variant, out.detail[:500])


@pytest.mark.parametrize("claim_id", ["one_epoch_exact", "ta_equals_mtl_step"])
def test_exact_claims_and_their_variants_on_models(problem, claim_id):
    assert tvgrad.check(claim_id, problem, eta=0.05).verdict == "holds"
    for v in CLAIMS[claim_id].variants:
        assert tvgrad.check(claim_id, problem, eta=0.05, variant=v.id).verdict == "violated", v.id


def test_sdpa_attention_runs_under_the_math_backend():
    """The fused SDPA kernels have no double backward; the problem's loss runs attention
    under the math backend, so HVPs work where a plain functional_call fails."""
    torch.manual_seed(0)
    model, (x, y) = SDPABlock(), block_data(1, n=4)
    y = y % 2
    problem = ModuleProblem(model, F.cross_entropy, [(x, y)])
    out = tvgrad.check("multi_epoch_second_order", problem, k=2)
    assert out.verdict == "holds", out.detail
    m64 = model.double()
    params = {n: p.detach() for n, p in m64.named_parameters()}

    def plain(p):
        return F.cross_entropy(torch.func.functional_call(m64, p, (x.double(),)), y)
    try:
        hvp(plain, params, params)
    except NotTwiceDifferentiable as exc:  # the trap this backend choice avoids
        assert "scaled_dot_product" in str(exc)


def test_torchvision_vision_transformer_with_random_weights():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=16, patch_size=8, num_layers=1,
                                                 num_heads=2, hidden_dim=16, mlp_dim=32,
                                                 num_classes=3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 16, 16, generator=g), torch.randint(0, 3, (6,), generator=g)
    problem = ModuleProblem(model, F.cross_entropy, [(x[:4], y[:4]), (x[4:], y[4:])])
    assert problem.pattern is None  # GELU, LayerNorm, attention: smooth
    assert tvgrad.check("sgd_epoch_second_order", problem).verdict == "holds"
    assert tvgrad.check("sgd_epoch_second_order", problem, variant="reversed_order").verdict == "violated"


# -- kinks --------------------------------------------------------------------------------
def test_relu_kinks_are_tracked_and_excluded_never_violations():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    g = torch.Generator().manual_seed(3)
    problem = ModuleProblem(model, F.cross_entropy,
                            [(torch.randn(10, 3, generator=g), torch.randint(0, 2, (10,), generator=g))])
    assert problem.pattern is not None
    out = tvgrad.check("multi_epoch_second_order", problem, k=2)
    assert out.verdict in ("holds", "inconclusive"), out.detail
    assert out.measurements["pattern_changed_points"] > 0  # large η cross kinks: excluded


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(0.1), nn.Hardtanh(), nn.ReLU6(),
                                   nn.MaxPool1d(2), nn.ELU()])
def test_piecewise_modules_are_tracked(layer):
    model = nn.Sequential(nn.Linear(4, 8), nn.Unflatten(1, (1, 8)), layer, nn.Flatten(),
                          nn.LazyLinear(2))
    x = torch.randn(5, 4)
    model(x)  # materialise the lazy layer
    problem = ModuleProblem(model, F.cross_entropy, [(x, torch.randint(0, 2, (5,)))])
    assert problem.pattern is not None
    pat = problem.pattern(problem.theta0)
    assert torch.equal(pat, problem.pattern(problem.theta0.clone()))


def test_max_pooling_called_with_keyword_arguments_records_its_own_argmax_indices():
    """A forward that calls F.max_pool1d itself, with every option as a keyword (stride=1 ≠
    its default, the kernel size): the pattern is exactly the argmax indices of that call, so
    each keyword reaches the recorded call (only ``return_indices`` is replaced)."""
    class Pool(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.head = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            z = self.lin(x).unsqueeze(1)
            p = F.max_pool1d(z, kernel_size=3, stride=1, padding=1, dilation=1, ceil_mode=False)
            return self.head(p.flatten(1))
    torch.manual_seed(0)
    model, x = Pool(), torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    problem = ModuleProblem(model, F.cross_entropy, [(x, torch.randint(0, 2, (5,)))])
    with torch.no_grad():
        want = F.max_pool1d_with_indices(model.lin(x).unsqueeze(1), 3, stride=1, padding=1)[1]
    assert want.shape == (5, 1, 8)
    assert torch.equal(problem.pattern(problem.theta0), want.reshape(-1))


def test_comparisons_in_forward_are_part_of_the_pattern():
    class Piecewise(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            z = self.lin(x)
            return torch.where(z > 0, z, 0.1 * z)
    problem = ModuleProblem(Piecewise(), F.cross_entropy, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))])
    assert problem.pattern is not None


@pytest.mark.parametrize("op, name", [(lambda z: torch.sort(z, dim=1).values, "torch.sort"),
                                      (lambda z: torch.round(z), "torch.round"),
                                      (lambda z: z.max(dim=1, keepdim=True).values * z, "max")])
def test_untrackable_selections_are_refused_by_name(op, name):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return op(self.lin(x))
    with pytest.raises(NonSmoothModel, match=name):
        ModuleProblem(M(), F.cross_entropy, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))])


def test_an_op_without_double_backward_is_a_clear_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.Hardsigmoid(), nn.Linear(4, 2))
    problem = ModuleProblem(model, F.cross_entropy, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))])
    with pytest.raises(NotTwiceDifferentiable, match="hardsigmoid_backward"):
        tvgrad.check("multi_epoch_second_order", problem, k=2)


# -- conventions ----------------------------------------------------------------------------
def test_buffers_and_frozen_parameters_are_held_fixed_and_the_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)
    model(torch.randn(16, 3))  # non-trivial running statistics
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    problem = ModuleProblem(model, F.cross_entropy, [(x, y)])
    assert "0.bias" not in problem.layout.names and "0.bias" in problem.fixed
    assert "1.running_mean" in problem.fixed
    assert problem.num_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert tvgrad.check("multi_epoch_second_order", problem, k=2).verdict == "holds"
    assert tvgrad.check("one_epoch_exact", problem).verdict == "holds"
    assert model.training  # the user's model is never modified
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(problem.fixed["1.running_mean"], before["1.running_mean"].double())
    # eval mode: the loss is a function of θ alone, the same for any batch composition
    f = problem.loss_fn(0)
    assert torch.equal(f(problem.theta0), f(problem.theta0))


def test_float32_problem_and_its_twin():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    p32 = ModuleProblem(model, F.cross_entropy, [(torch.randn(5, 3), torch.randint(0, 2, (5,)))],
                        dtype=torch.float32)
    p64 = p32.to(torch.float64)
    assert p64.dtype == torch.float64 and p32.to(torch.float32) is p32
    assert torch.equal(p64.theta0.float(), p32.theta0)  # float32 → float64 is exact
    assert tvgrad.check("one_epoch_exact", p32).verdict == "holds"
    assert tvgrad.check("multi_epoch_second_order", p32, k=2).verdict == "holds"  # run in float64
    g = gradient(p64.loss_fn(0), p64.theta0)
    assert g.dtype == torch.float64


def test_multiple_inputs_and_per_task_losses():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(2, 2)

        def forward(self, x, z):
            return torch.tanh(self.a(x)) + self.b(z)
    g = torch.Generator().manual_seed(0)
    tasks = [[((torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g)),
               torch.randn(4, 2, generator=g))] for _ in range(2)]
    mse = lambda out, y: 0.5 * ((out - y) ** 2).sum(-1).mean()  # noqa: E731
    problem = ModuleProblem(Two(), [mse, F.mse_loss], tasks=tasks)
    assert problem.num_tasks == 2
    assert tvgrad.check("ta_vs_mtl_cross_term", problem, k=2).verdict == "holds"
    assert tvgrad.check("ta_equals_mtl_step", problem).verdict == "holds"


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="not a module"), "model must be a torch.nn.Module, got str"),
    (dict(dtype=torch.float16), "dtype must be torch.float64 or torch.float32"),
    (dict(batches=[]), "batches must be a non-empty list"),
    (dict(batches=[(torch.randn(3, 3), torch.tensor([0, 1]))]), "share a non-empty first"),
    (dict(batches=[(torch.randn(2, 3),)]), r"expected a pair \(inputs, targets\)"),
    (dict(batches=None), "pass exactly one of batches= .* or tasks="),
    (dict(loss_fn=[F.cross_entropy, F.cross_entropy]), "a list of 1 callables"),
    (dict(loss_fn=lambda o, y: (o - 0).sum(1)), "must return a scalar"),
    (dict(loss_fn=lambda o, y: o.sum() * float("nan")), "the loss at θ₀ is nan"),
    (dict(batches=[("x", torch.tensor([0, 1]))]), "batch inputs must be a tensor or a tuple of "
                                                  "tensors, got str"),
    (dict(batches=[((), torch.tensor([0, 1]))]), "batch inputs must be a tensor or a tuple"),
    (dict(batches=[(torch.randn(2, 3), [0, 1])]), "task 0, batch 0: targets must be a tensor"),
    (dict(batches=[(torch.randn(0, 3), torch.zeros(0, dtype=torch.long))]), "non-empty first"),
    # a 0-d target has no sample dimension, even beside a one-sample input
    (dict(batches=[(torch.randn(1, 3), torch.tensor(0))]), r"non-empty first .* and \(\)"),
    (dict(batches=[(torch.randn(2, 3), torch.tensor([0, 1])),
                   ((torch.randn(2, 3), torch.randn(2, 3)), torch.tensor([0, 1]))]),
     "task 0, batch 1: 2 input tensors, batch 0 has 1"),
    (dict(batches=None, tasks=[]), "tasks is empty: give at least one task's batches"),
])
def test_bad_input_names_the_value(kwargs, match):
    base = dict(model=nn.Linear(3, 2), loss_fn=F.cross_entropy,
                batches=[(torch.randn(2, 3), torch.tensor([0, 1]))])
    base.update(kwargs)
    model, loss = base.pop("model"), base.pop("loss_fn")
    with pytest.raises(InvalidInput, match=match):
        ModuleProblem(model, loss, **base)


def test_task_index_and_the_single_input_are_checked():
    problem = ModuleProblem(nn.Linear(3, 2), F.cross_entropy,
                            [(torch.randn(2, 3), torch.tensor([0, 1]))])
    assert problem.loss_fn(0) is not None
    for bad in (1, -1):
        with pytest.raises(InvalidInput, match=f"task {bad} out of range: the problem has 1"):
            problem.loss_fn(bad)
    assert "Linear" in repr(problem) and f"p={problem.num_params}" in repr(problem)


def test_frozen_model_is_refused():
    model = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(InvalidInput, match="no parameter with requires_grad=True"):
        ModuleProblem(model, F.cross_entropy, [(torch.randn(2, 3), torch.tensor([0, 1]))])


def test_micro_batches_give_the_full_batch_derivatives_and_verdicts():
    """Full-batch gradients and HVPs accumulated over micro-batches (one micro-batch's graph in
    memory at a time) equal the full-batch ones to rounding; the claims hold on them."""
    torch.manual_seed(0)
    model, data = small_cnn(0), [cnn_data(t, n=7) for t in range(2)]
    tasks = [[(x[:4], y[:4]), (x[4:], y[4:])] for x, y in data]
    full = ModuleProblem(model, F.cross_entropy, tasks=tasks)
    micro = ModuleProblem(model, F.cross_entropy, tasks=tasks, micro_batch=3)
    f, fm = full.loss_fn(0), micro.loss_fn(0)
    assert len(fm.parts) == 3 and [w for w, _ in fm.parts] == [3 / 7, 3 / 7, 1 / 7]
    th = full.theta0
    g, gm = gradient(f, th), gradient(fm, th)
    assert float((g - gm).norm()) <= 1e-13 * float(g.norm())
    h, hm = hvp(f, th, g), hvp(fm, th, g)
    assert float((h - hm).norm()) <= 1e-12 * float(h.norm())
    assert abs(float(f(th)) - float(fm(th))) <= 1e-14
    # training's own backward (.grad of the module, as the one-epoch claims step with it)
    for prob in (full, micro):
        module = prob.module_at_theta0()
        loss = prob.module_backward(module, [0])
        gb = torch.cat([q.grad.reshape(-1) for q in prob.trainable(module)]).double()
        assert float((gb - g).norm()) <= 1e-13 * float(g.norm())
        assert abs(float(loss) - float(f(th))) <= 1e-14
    for claim_id, params in (("multi_epoch_second_order", {"k": 2}),
                             ("sgd_epoch_second_order", {}), ("ta_vs_mtl_cross_term", {"k": 2}),
                             ("one_epoch_exact", {}), ("ta_equals_mtl_step", {})):
        assert tvgrad.check(claim_id, micro, **params).verdict == "holds", claim_id
    assert tvgrad.check("multi_epoch_second_order", micro, k=2,
                        variant="sign_flipped").verdict == "violated"
    with pytest.raises(InvalidInput, match="micro_batch must be an integer >= 1"):
        ModuleProblem(model, F.cross_entropy, tasks=tasks, micro_batch=0)
    # the edge: one sample per micro-batch (seven parts of weight 1/7)
    one = ModuleProblem(model, F.cross_entropy, tasks=tasks, micro_batch=1).loss_fn(0)
    assert [w for w, _ in one.parts] == [1 / 7] * 7
    assert float((gradient(one, th) - g).norm()) <= 1e-13 * float(g.norm())


def test_batch_indices_default_to_the_first_task():
    import torch

    import tvgrad
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    x, y = torch.randn(6, 2), torch.randn(6, 1)
    mse = torch.nn.functional.mse_loss
    prob = tvgrad.ModuleProblem(model, mse, tasks=[[(x[:2], y[:2]), (x[2:], y[2:])],
                                                   [(x[:3], y[:3]), (x[3:], y[3:])]])
    assert [len(b) for b in prob.batch_indices()] == [2, 4]
    assert [len(b) for b in prob.batch_indices(1)] == [3, 3]


@pytest.mark.parametrize("op", ["hardtanh", "relu6", "hardsigmoid", "hardswish"])
def test_the_kink_table_puts_each_kink_where_the_function_has_it(op):
    """For the clamped activations the recorded pattern (x > lo, x < hi, PyTorch's default
    edges) must change between two neighbouring inputs exactly where the function's slope
    jumps — found from autograd on a fine grid that avoids the kinks themselves."""
    from tvgrad.theory.module_problem import _KINKS
    fn = getattr(F, op)
    x = (torch.arange(1600, dtype=torch.float64) * 0.01 - 8.0 + 0.005).requires_grad_(True)
    slope = torch.autograd.grad(fn(x).sum(), x)[0]
    jumps = (slope[1:] - slope[:-1]).abs() > 0.1
    masks = _KINKS[fn]((x.detach(),), {})
    changes = torch.zeros_like(jumps)
    for m in masks:
        changes |= m[1:] != m[:-1]
    assert torch.equal(changes, jumps), (op, x[1:][changes].tolist(), x[1:][jumps].tolist())
    assert int(jumps.sum()) == 2


@pytest.mark.parametrize("fn", [torch.relu, F.relu, F.leaky_relu, F.elu, F.selu, F.celu,
                                torch.abs, torch.Tensor.abs, torch.Tensor.relu])
def test_the_functions_kinked_at_zero_record_which_side_of_zero_each_input_is(fn):
    """ReLU, leaky ReLU, |x| (slope jumps at 0) and the ELU family (curvature jumps at 0):
    one mask, x > 0 — on inputs that include (−1, 0) and (0, 1), so an edge moved to ±1 shows."""
    from tvgrad.theory.module_problem import _KINKS
    x = torch.arange(-200, 201, dtype=torch.float64) * 0.01 + 0.005
    masks = _KINKS[fn]((x,), {})
    assert len(masks) == 1 and torch.equal(masks[0], x > 0), fn


@pytest.mark.parametrize("fn", [F.hardtanh, torch.clamp])
@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_the_kink_table_reads_the_edges_given_by_position_or_by_name(fn, how):
    """``F.hardtanh(x, -0.5, 0.25)`` and ``torch.clamp(x, -0.5, 0.25)`` put their kinks at the
    edges given — second and third positional argument, or ``min_val``/``max_val``
    (``min``/``max``) — not at the defaults: the pattern is (x > −0.5, x < 0.25)."""
    from tvgrad.theory.module_problem import _KINKS
    x = torch.tensor([-0.75, -0.4, 0.0, 0.2, 0.3, 0.9], dtype=torch.float64)
    names = ("min_val", "max_val") if fn is F.hardtanh else ("min", "max")
    args, kwargs = ((x, -0.5, 0.25), {}) if how == "positional" else \
        ((x,), dict(zip(names, (-0.5, 0.25))))
    lo, hi = _KINKS[fn](args, kwargs)
    assert lo.tolist() == [False, True, True, True, True, True]
    assert hi.tolist() == [True, True, True, True, False, False]


def test_a_layout_round_trips_and_keeps_leading_batch_dims():
    """``ParamLayout.unflatten`` splits the last axis: a (B, p) stack of parameter vectors gives
    each named tensor as (B, *shape), row b being the unflattening of row b (its docstring's
    contract); ``flatten`` inverts it for one vector, a 0-d tensor included."""
    from tvgrad.theory.module_problem import ParamLayout
    params = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([6.0, 7.0]),
              "s": torch.tensor(8.0)}
    layout = ParamLayout.of(params)
    assert layout.sizes == (6, 2, 1) and layout.numel == 9
    vec = layout.flatten(params)
    assert torch.equal(vec, torch.arange(9.0))
    back = layout.unflatten(vec)
    assert all(torch.equal(back[k], params[k]) for k in params)
    stack = torch.stack([vec, 10 + vec, 20 + vec])           # (3, 9)
    got = layout.unflatten(stack)
    assert {k: tuple(t.shape) for k, t in got.items()} == {"w": (3, 2, 3), "b": (3, 2), "s": (3,)}
    for row in range(3):
        want = layout.unflatten(stack[row])
        assert all(torch.equal(got[k][row], want[k]) for k in params), row
    with pytest.raises(InvalidInput, match="parameter vector has 3 entries"):
        layout.unflatten(torch.ones(9, 3))


def test_a_model_with_a_zero_dimensional_parameter_is_checked():
    """A 0-d parameter (a learnable temperature, like CLIP's ``logit_scale``) is one entry of θ:
    the claims run on such a model (it used to fail in ``unflatten``'s reshape)."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.t = nn.Linear(2, 3), nn.Parameter(torch.tensor(1.5))

        def forward(self, x):
            return self.lin(x) * self.t
    torch.manual_seed(0)
    x, y = torch.randn(6, 2), torch.randint(0, 3, (6,))
    prob = ModuleProblem(Scaled(), F.cross_entropy, tasks=[[(x, y)]])
    assert () in prob.layout.shapes and prob.theta0.numel() == 10
    assert tvgrad.check("one_epoch_exact", prob).verdict == "holds"


def test_the_task_arguments_default_to_the_first_task():
    """``num_samples()``, ``batch_indices()`` and ``loss_fn()`` without a task are task 0's,
    on two tasks of different sizes and batchings (a default of -1 would read the last)."""
    torch.manual_seed(0)
    x, y = block_data(0, n=7)
    problem = ModuleProblem(Block(), F.cross_entropy,
                            tasks=[[(x[:2], y[:2]), (x[2:3], y[2:3])], [(x[3:], y[3:])]])
    assert problem.num_samples() == problem.num_samples(0) == 3 != problem.num_samples(1)
    assert [b.tolist() for b in problem.batch_indices()] == [[0, 1], [2]] \
        == [b.tolist() for b in problem.batch_indices(0)]
    th = problem.theta0
    assert problem.loss_fn()(th) == problem.loss_fn(0)(th) != problem.loss_fn(1)(th)
