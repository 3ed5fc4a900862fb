"""tvgrad.check and tvgrad.list_claims: the public API, its errors, and variants as data."""

import inspect
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tvgrad
from tvgrad.errors import InvalidInput, UnknownKey
from tvgrad.theory import claims as claims_pkg
from tvgrad.theory.cases import Case
from tvgrad.theory.claims import CLAIMS, Claim, Variant
from tvgrad.theory.nets import NetSpec


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    return tvgrad.ModuleProblem(model, F.cross_entropy, [(x[:5], y[:5]), (x[5:], y[5:])])


def test_the_readme_api_example(problem):
    outcome = tvgrad.check("multi_epoch_second_order", problem, k=2)
    assert outcome.verdict == "holds" and "slope_r2" in outcome.measurements
    assert tvgrad.check("multi_epoch_second_order", problem, k=2,
                        variant="coefficient_k2_over_2").verdict == "violated"


def test_check_takes_a_case_too():
    case = Case(spec=NetSpec(2, (3,), 1), n=4, epochs=2)
    assert tvgrad.check("multi_epoch_second_order", case).verdict == "holds"
    with pytest.raises(InvalidInput, match="part of the case"):
        tvgrad.check("multi_epoch_second_order", case, k=3)


@pytest.mark.parametrize("claim_id, kwargs, error, match", [
    ("no_such_claim", {}, UnknownKey, "unknown claim 'no_such_claim'"),
    ("multi_epoch_second_order", {"variant": "nope"}, InvalidInput, "has no variant 'nope'"),
    ("multi_epoch_second_order", {"kk": 2}, InvalidInput, r"has no parameter \['kk'\]"),
    ("multi_epoch_second_order", {"k": 0}, InvalidInput, "k .epochs. must be an integer >= 1, got 0"),
    ("one_epoch_exact", {"eta": -1.0}, InvalidInput, "eta must be finite and > 0, got -1.0"),
    ("symbolic_expansion", {}, InvalidInput, "runs on SymCase inputs only"),
    ("ffn_hessian_bound", {}, InvalidInput, "runs on Case inputs only"),
    ("ta_equals_mtl_step", {}, InvalidInput, "needs a problem with at least 2 tasks, got 1"),
    ("ta_vs_mtl_cross_term", {}, InvalidInput, "at least 2 tasks, got 1"),
    ("sgd_epoch_second_order", {"reshuffle": True}, InvalidInput, "reshuffle=True needs a batch_size"),
])
def test_errors_name_the_bad_value(problem, claim_id, kwargs, error, match):
    with pytest.raises(error, match=match):
        tvgrad.check(claim_id, problem, **kwargs)


def test_check_refuses_what_is_not_a_problem():
    with pytest.raises(InvalidInput, match="needs a tvgrad.ModuleProblem"):
        tvgrad.check("multi_epoch_second_order", object())


def test_sgd_claim_rebatches_and_reshuffles(problem):
    for kw in ({"batch_size": 3}, {"batch_size": 3, "epochs": 2, "reshuffle": True, "seed": 4}):
        out = tvgrad.check("sgd_epoch_second_order", problem, **kw)
        assert out.verdict == "holds", (kw, out.detail)
    out = tvgrad.check("sgd_epoch_second_order", problem, batch_size=3)
    assert out.measurements["steps"] == 3 and out.measurements["last_batch_smaller"]


def test_sgd_claim_measures_one_epoch_of_its_batches(problem):
    """8 samples in batches of 3 (3, 3, 2) for 2 epochs: 6 steps, 3 per epoch, and one epoch's
    summed batch gradients differ from 3·g (unequal sizes); batches of 4 (4, 4): equal sizes,
    so Σ_b g_b = 2g to rounding."""
    m = tvgrad.check("sgd_epoch_second_order", problem, batch_size=3, epochs=2).measurements
    assert m["steps"] == 6 and m["batches_per_epoch"] == 3 and m["last_batch_smaller"]
    assert m["first_order_gap_rel"] > 1e-3
    m = tvgrad.check("sgd_epoch_second_order", problem, batch_size=4, epochs=3).measurements
    assert m["steps"] == 6 and m["batches_per_epoch"] == 2 and not m["last_batch_smaller"]
    assert m["first_order_gap_rel"] < 1e-13


def test_the_sgd_first_order_gap_is_measured_for_a_small_gradient_too():
    """first_order_gap_rel = ‖Σ_b g_b − B·g‖ / ‖B·g‖ is a relative gap: defined for any
    non-zero full gradient, however small (here ‖B·g‖ < 1, batches 3, 3, 2), and equal to
    that ratio computed here from the batch gradients. Tolerance: the gap is above 10⁻³ of
    ‖B·g‖, so the cancellation in its numerator amplifies the gradients' few-u rounding
    (u ≈ 1.1e-16) at most 10³-fold: ≈ 1e-13 relative, under the 1e-12 allowed."""
    from tvgrad.theory.derivatives import gradient
    torch.manual_seed(3)
    model = nn.Linear(3, 2)
    x = 0.01 * torch.randn(8, 3)
    y = model(x).detach() + 0.01 * torch.randn(8, 2)
    prob = tvgrad.ModuleProblem(model, F.mse_loss, [(x, y)], dtype=torch.float64)
    m = tvgrad.check("sgd_epoch_second_order", prob, batch_size=3, epochs=1).measurements
    th = prob.theta0
    gb = [gradient(prob.loss_fn(0, torch.arange(i, min(i + 3, 8))), th) for i in (0, 3, 6)]
    ref = 3 * gradient(prob.loss_fn(0), th)
    assert 0 < float(ref.norm()) < 1
    want = float((sum(gb) - ref).norm() / ref.norm())
    assert want > 1e-3
    assert m["first_order_gap_rel"] == pytest.approx(want, rel=1e-12), (m, want)


def test_list_claims_says_which_run_on_any_model():
    rows = {c["id"]: c for c in tvgrad.list_claims()}
    assert rows["multi_epoch_second_order"]["runs_on_any_model"]
    assert rows["multi_epoch_second_order"]["params"] == {"k": 2, "eta": 1e-2}
    assert not rows["ffn_hessian_bound"]["runs_on_any_model"]
    assert {v["id"] for v in rows["sgd_epoch_second_order"]["variants"]} >= {"reversed_order"}


def test_each_claims_listed_params_are_the_defaults_its_check_runs_with():
    """``Claim.params`` (what list_claims shows, and what check() accepts) is exactly the
    keyword-only parameters of the claim's ``on_problem`` with their defaults: a listed default
    that differs from the one used (η 1e-3 shown, 1e-2 run) would misreport every API call."""
    with_api = [c for c in CLAIMS.values() if c.on_problem is not None]
    assert len(with_api) >= 5, [c.id for c in with_api]
    for claim in with_api:
        sig = inspect.signature(claim.on_problem).parameters.values()
        defaults = {p.name: p.default for p in sig if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert dict(claim.params) == defaults, (claim.id, dict(claim.params), defaults)
        assert all(type(claim.params[k]) is type(v) for k, v in defaults.items()), claim.id


# Dataclasses of tvgrad.theory that hold state while a computation runs; every other one is a value.
MUTABLE_DATACLASSES = {"tvgrad.theory.module_problem.TaskData", "tvgrad.theory.training.Trajectories",
                       "tvgrad.theory.campaign.ExampleRecord", "tvgrad.theory.campaign.RunResult",
                       "tvgrad.theory.claims.expansion.GridEval"}


def _theory_dataclasses() -> dict[str, type]:
    """Every dataclass defined in a module of tvgrad.theory (imported by walking the package)."""
    import dataclasses
    import importlib
    import pkgutil

    import tvgrad.theory as theory

    found = {}
    for info in pkgutil.walk_packages(theory.__path__, "tvgrad.theory."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj)
                    and obj.__module__ == info.name):
                found[f"{info.name}.{obj.__qualname__}"] = obj
    return found


def test_the_value_types_are_frozen():
    """Claims, variants, cases, architectures, activations, losses, bound terms, slope fits and
    comparison results are values shared across runs — the claim registry, its variants, the
    cases Hypothesis stores and shrinks — so none can be changed in place (a check that wrote
    into a registry Claim or a Case would change every later run). Every dataclass of
    tvgrad.theory is frozen but the few listed in ``MUTABLE_DATACLASSES``, which hold a run's
    state; checked on each dataclass itself and, for the registry's own values and a case, by
    trying to assign a field."""
    import dataclasses

    from tvgrad.theory import activations, bound, losses, module_problem, rounding
    from tvgrad.theory.claims import expansion, symbolic
    from tvgrad.theory.claims.base import Outcome

    found = _theory_dataclasses()
    named = (Outcome, Variant, Claim, Case, NetSpec, activations.ActivationConstants,
             activations.Activation, losses.Loss, bound.BoundTerms, bound.Bounds,
             bound.AtTheta0, module_problem.ParamLayout, rounding.Comparison, expansion.SlopeFit,
             symbolic.SymCase)
    # the walk finds the named values and the listed mutable ones (it sees every module)
    assert {f"{t.__module__}.{t.__qualname__}" for t in named} | MUTABLE_DATACLASSES <= set(found)
    assert sorted(name for name, t in found.items()
                  if not t.__dataclass_params__.frozen and name not in MUTABLE_DATACLASSES) == []
    assert sorted(name for name in MUTABLE_DATACLASSES if found[name].__dataclass_params__.frozen) == []
    claim = CLAIMS["multi_epoch_second_order"]
    for value, field in ((claim, "params"), (claim.variants[0], "terms"),
                         (Case(spec=NetSpec(1, (1,), 1)), "n"), (NetSpec(1, (1,), 1), "widths")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)


# -- variants as data ------------------------------------------------------------------------
def test_every_variant_replaces_named_terms_of_its_claim():
    for claim in CLAIMS.values():
        assert claim.terms, claim.id
        for v in claim.variants:
            assert v.terms and set(v.terms) <= set(claim.terms), (claim.id, v.id)


def test_no_check_branches_on_a_variant_id():
    """Each check computes the true claim only; mutations live in the Variant data."""
    for module in (claims_pkg.exact, claims_pkg.second_order, claims_pkg.bound_claims,
                   claims_pkg.symbolic):
        src = inspect.getsource(module)
        assert not re.search(r"variant\s*(==|in\s*\()", src), module.__name__


def test_a_variant_replacing_an_unknown_term_is_refused():
    base = CLAIMS["one_epoch_exact"]
    with pytest.raises(ValueError, match="replaces \\['typo'\\]"):
        Claim(id="x", title="t", statement="s", check=base.check, strategy=base.strategy,
              case_type=base.case_type, terms=base.terms,
              variants=(Variant("v", "d", {"typo": 1}),))


def test_terms_for_merges_the_variant():
    claim = CLAIMS["multi_epoch_second_order"]
    assert claim.terms_for(None) is claim.terms
    t = claim.terms_for("first_order_k_minus_1")
    assert t["second_order"] is claim.terms["second_order"]
    assert t["first_order"] is not claim.terms["first_order"]
