"""Verdict and exit-code logic, through the campaign and through the real command line, on
synthetic claims whose every example has a fixed outcome."""

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from tvgrad.theory import campaign
from tvgrad.theory.claims import CLAIMS, DIVERGED, HOLDS, INCONCLUSIVE, VIOLATED, Claim, Outcome, Variant
from tvgrad.theory.claims.exact import ONE_EPOCH_EXACT

SYNTHETIC = textwrap.dedent('''
    from tvgrad.theory.claims import CLAIMS, Claim, Outcome, Variant
    from tvgrad.theory.claims.exact import ONE_EPOCH_EXACT

    def fixed(verdict, raise_in=None):
        def check(case, terms):
            if terms.get("error") or raise_in == "claim":
                raise RuntimeError("planted error")
            v = terms.get("verdict", verdict)
            return Outcome(v, {"x": 1.0}, f"always {v}")
        return check

    def claim(cid, verdict, variant_verdict="violated", raise_in=None, estimate=False):
        terms = {"verdict": verdict, "error": False}
        var = ({"error": True} if raise_in == "variant" else {"verdict": variant_verdict})
        return Claim(id=cid, title=cid, statement="s", check=fixed(verdict, raise_in),
                     strategy=ONE_EPOCH_EXACT.strategy, case_type=ONE_EPOCH_EXACT.case_type,
                     terms=terms, variants=(Variant("v", "planted", var),),
                     **({"estimate": True} if estimate else {}))  # else the default: a bound

    SYNTHETIC = {
        "always_holds": claim("always_holds", "holds"),
        "always_violated": claim("always_violated", "violated"),
        "always_diverged": claim("always_diverged", "diverged"),
        "always_inconclusive": claim("always_inconclusive", "inconclusive"),
        "always_errors": claim("always_errors", "holds", raise_in="claim"),
        "variant_errors": claim("variant_errors", "holds", raise_in="variant"),
        "variant_holds": claim("variant_holds", "holds", variant_verdict="holds"),
        "estimate_holds": claim("estimate_holds", "holds", estimate=True),
        "estimate_violated": claim("estimate_violated", "violated", estimate=True),
    }
    for k, v in SYNTHETIC.items():
        CLAIMS[k] = v
''')

EXPECTED = {  # claim id: (status, exit code of a run of that claim alone)
    "always_holds": ("verified", 0),
    "always_violated": ("violated", 1),
    "always_diverged": ("diverged", 1),
    "always_inconclusive": ("inconclusive", 1),
    "always_errors": ("error", 1),
    "variant_errors": ("verified", 1),   # an errored variant is not a rejection
    "variant_holds": ("verified", 1),    # a must-reject variant that was not rejected
    # an estimate (Claim.estimate: its right-hand side is not a bound) is never "verified",
    # and its status is reported, not counted in the exit code
    "estimate_holds": ("consistent", 0),
    "estimate_violated": ("inconsistent", 0),
}


@pytest.fixture
def synthetic(monkeypatch):
    ns: dict = {}
    exec(SYNTHETIC, ns)
    for cid in ns["SYNTHETIC"]:
        monkeypatch.setitem(CLAIMS, cid, ns["SYNTHETIC"][cid])
    yield ns["SYNTHETIC"]
    for cid in ns["SYNTHETIC"]:
        CLAIMS._entries.pop(cid, None)


@pytest.mark.parametrize("cid", sorted(EXPECTED))
def test_status_and_exit_code_through_the_campaign(synthetic, tmp_path, cid):
    doc = campaign.verify(claims=[cid], profile="ci", out=tmp_path, max_examples=4)
    c = doc["claims"][0]
    status, code = EXPECTED[cid]
    assert c["status"] == status
    assert campaign.exit_code(doc) == code
    if cid in ("variant_errors", "variant_holds"):
        assert c["falsifiability"][0]["rejected"] is False
    table = campaign.summary_table(doc)
    assert f"{cid:28} {status:12}" in table
    assert "incomplete: exercised" not in table  # that line is for incomplete claims only
    if cid == "variant_holds":
        assert "NOT REJECTED: variant v" in table
    if cid == "always_errors":
        # the erroring example is an example (counted, recorded) and the counterexample: its
        # case, its traceback, and the command that reruns it
        ce = c["counterexample"]
        assert c["examples"] == 1 and c["errors"] == 1, (c["examples"], c["errors"])
        assert ce["verdict"] == "error" and "RuntimeError: planted error" in ce["detail"], ce
        assert ce["reproduce"] == f"tvgrad reproduce --claim always_errors --case '{ce['case']}'"
        assert json.loads(ce["case"])["seed"] >= 0


def test_an_incomplete_claim_says_what_was_exercised_and_why(synthetic, tmp_path, virtual_clock):
    """Two examples are fewer than MIN_EXERCISED holding ones: the claim is incomplete and the
    table says how many exercised it and the minimum; a spent budget is named as the cause."""
    doc = campaign.verify(claims=["always_holds"], profile="ci", out=tmp_path / "a",
                          max_examples=2, audit=False)
    c = doc["claims"][0]
    assert (c["status"], c["exercised"], campaign.exit_code(doc)) == ("incomplete", {"claim": 2}, 1)
    table = campaign.summary_table(doc)
    assert (f"    incomplete: exercised {{'claim': 2}} (at least {campaign.MIN_EXERCISED} "
            "holding examples each)\n") in table + "\n", table
    assert "time budget" not in table
    virtual_clock.step = 10.0
    doc = campaign.verify(claims=["always_holds"], profile="ci", out=tmp_path / "b",
                          max_examples=50, audit=False, time_budget=25)
    table = campaign.summary_table(doc)
    assert doc["claims"][0]["status"] == "incomplete" and "; the time budget ran out" in table


def test_status_and_exit_code_through_the_command_line(tmp_path):
    """The real command in a subprocess: JSON status, stdout table and exit code."""
    (tmp_path / "synthetic_claims.py").write_text(SYNTHETIC)
    for cid, (status, code) in EXPECTED.items():
        out = tmp_path / cid
        r = subprocess.run(
            [sys.executable, "-c", "import sys, synthetic_claims; from tvgrad.cli import main; "
             "sys.exit(main(sys.argv[1:]))", "verify", "--profile", "ci", "--claim", cid,
             "--max-examples", "4", "--jobs", "1", "--no-html", "--out", str(out)],
            capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == code, (cid, r.stdout[-800:], r.stderr[-800:])
        doc = json.loads((out / "theory.json").read_text())
        assert doc["claims"][0]["status"] == status, cid
        assert f"{cid:28} {status:12}" in r.stdout, r.stdout


def _run(verdicts: list[str], budget: bool = False):
    res = campaign.RunResult("x", None, budget_exhausted=budget)
    for i, v in enumerate(verdicts):
        res.records.append(campaign.ExampleRecord(i, "{}", {}, v, 0.0, {"sgd_bound": 1.0}
                                                  if i % 2 else {}))
    return res


@pytest.mark.parametrize("verdicts, status", [
    ([HOLDS] * 5, "verified"),
    ([HOLDS] + [INCONCLUSIVE] * 19, "inconclusive"),        # 1 of 20: never verified
    ([HOLDS] * 4 + [INCONCLUSIVE] * 5, "inconclusive"),      # holds < 50 % of the others
    ([HOLDS] * 5 + [INCONCLUSIVE] * 5, "verified"),
    ([HOLDS] * 2, "incomplete"),                             # too few examples
    ([DIVERGED] * 5, "diverged"),
    ([HOLDS] * 3 + [DIVERGED] * 10, "verified"),             # diverged are not counted as held
    ([INCONCLUSIVE] * 3, "inconclusive"),
    ([HOLDS] * 2 + [INCONCLUSIVE] * 2, "incomplete"),         # only holding examples exercise
    ([HOLDS] * 2 + [DIVERGED] * 5, "incomplete"),             # the claim, not the others
    ([HOLDS] * 10 + [VIOLATED], "violated"),
])
def test_claim_status_rules(verdicts, status):
    assert campaign.claim_status(_run(verdicts)) == status
    # with the claim (no sub-checks): its exercised count is the holding examples alone
    assert campaign.claim_status(_run(verdicts), ONE_EPOCH_EXACT) == status


def test_the_statistics_are_of_the_holding_examples_only():
    """theory.json's per-measurement quantiles describe where the claim held: a violated,
    inconclusive, diverged or erroring example's measurement (here x = 100, −5, 7, 9) enters
    neither the quantiles nor the list of measured keys."""
    res = campaign.RunResult("x", None)
    for i, (v, m) in enumerate([(HOLDS, {"x": 1.0}), (INCONCLUSIVE, {"x": 100.0, "y": 1.0}),
                                (HOLDS, {"x": 2.0}), (DIVERGED, {"x": -5.0, "z": 1.0}),
                                (VIOLATED, {"x": 7.0}), ("error", {"x": 9.0, "w": 1.0})]):
        res.records.append(campaign.ExampleRecord(i, "{}", {}, v, 0.0, m))
    entry = campaign.summarise(ONE_EPOCH_EXACT, res, [])
    assert entry["exercised"] == {"claim": 2} and entry["holds"] == 2
    stats = entry["statistics"]
    assert set(stats) == {"x"} and (stats["x"]["n"], stats["x"]["min"], stats["x"]["max"]) == \
        (2, 1.0, 2.0), stats


def test_budget_cut_and_rare_subcheck_are_incomplete():
    assert campaign.claim_status(_run([HOLDS] * 10, budget=True)) == "incomplete"
    claim = replace(ONE_EPOCH_EXACT, subchecks={"sgd": "sgd_bound"})
    assert campaign.claim_status(_run([HOLDS] * 10), claim) == "verified"   # 5 exercised it
    assert campaign.claim_status(_run([HOLDS] * 5), claim) == "incomplete"  # only 2 did
    assert campaign.exercised(claim, _run([HOLDS] * 5)) == {"claim": 5, "sgd": 2}


def test_the_sgd_epoch_bound_subcheck_is_counted_in_the_campaign(tmp_path):
    doc = campaign.verify(claims=["ffn_second_order_error_bound"], profile="ci", out=tmp_path,
                          audit=False)
    c = doc["claims"][0]
    assert c["exercised"]["one-SGD-epoch bound"] >= campaign.MIN_EXERCISED
    assert c["status"] == "verified"


def test_regime_does_not_depend_on_the_claimed_terms():
    """The η regime comes from the trajectory itself (forward-mode derivative at η = 0): a wrong
    first-order term cannot empty the regime and hide as 'inconclusive' — it is violated."""
    from tvgrad.theory.cases import Case
    from tvgrad.theory.nets import NetSpec
    claim = CLAIMS["multi_epoch_second_order"]
    case = Case(spec=NetSpec(2, (4,), 2, "tanh"), n=6, epochs=3, seed=4)
    true = claim.run(case)
    wrong = claim.run(case, "first_order_k_minus_1")
    assert true.verdict == HOLDS and wrong.verdict == VIOLATED
    assert wrong.measurements["regime_points"] == true.measurements["regime_points"]
    # a claim whose *every* term is wrong, first order included, is rejected too
    bad = replace(claim, terms={"first_order": lambda e: -(e.k - 1) * e.g,
                                "second_order": lambda e: (e.k * e.k / 2) * e.hvp(e.g)})
    assert bad.run(case).verdict == VIOLATED


def test_trajectory_derivative_is_minus_the_summed_gradients():
    import torch

    from tvgrad.theory.cases import Case, FFNProblem
    from tvgrad.theory.claims.second_order import trajectory_derivative
    from tvgrad.theory.derivatives import gradient
    from tvgrad.theory.nets import NetSpec
    prob = FFNProblem(Case(spec=NetSpec(3, (5,), 2, "gelu"), n=7))
    fs = [prob.loss_fn(0, torch.arange(0, 4)), prob.loss_fn(0, torch.arange(4, 7))]
    d = trajectory_derivative(fs, prob.theta0)
    want = -(gradient(fs[0], prob.theta0) + gradient(fs[1], prob.theta0))
    assert float((d - want).norm()) <= 1e-14 * float(want.norm())


def test_trajectory_derivative_falls_back_to_reverse_mode_where_forward_mode_is_refused():
    """A step loss through an op without a forward-mode rule (here a custom autograd Function
    with no ``jvp``) makes ``jvp`` raise; the derivative of the endpoint is then taken in
    reverse mode (vjp of the vjp) — the same −Σ∇f_s(θ₀), not an error."""
    import torch

    from tvgrad.theory.claims.second_order import trajectory_derivative

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    def f(t):
        return Square.apply(t).sum() + (t ** 3).sum() / 3
    th = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with pytest.raises(RuntimeError):  # the premise: forward mode is refused
        torch.func.jvp(f, (th,), (torch.ones_like(th),))
    want = -2 * (2 * th + th ** 2)  # two steps of ∇f = 2θ + θ², at η = 0
    # a few roundings of O(|θ|²) entries: 8 ulps of the largest entry (6)
    tol = 8 * 2.0 ** -53 * float(want.abs().max())
    assert float((trajectory_derivative([f, f], th) - want).abs().max()) <= tol


def test_synthetic_claims_are_well_formed(synthetic):
    for c in synthetic.values():
        assert isinstance(c, Claim) and c.variants[0].terms
        assert isinstance(c.check(None, c.terms) if c.id != "always_errors" else Outcome(HOLDS),
                          Outcome)
    assert Variant  # imported for the fixture's namespace


def test_a_violated_counterexample_alone_makes_the_claim_violated():
    """The shrunk counterexample decides even where no record says violated (records are
    per example, the counterexample is Hypothesis's final call); one of another verdict does
    not."""
    res = _run([HOLDS] * 5)
    res.counterexample = {"verdict": VIOLATED}
    assert campaign.claim_status(res) == "violated"
    res.counterexample = {"verdict": DIVERGED}
    assert campaign.claim_status(res) == "verified"
