"""The campaign: JSON/CSV outputs, counterexamples that shrink and reproduce, bad input."""

import csv
import json
import os
import subprocess
import sys

import pytest

from tvgrad.cli import main
from tvgrad.errors import InvalidInput
from tvgrad.theory import campaign
from tvgrad.theory.campaign import run_claim, verify
from tvgrad.theory.cases import Case
from tvgrad.theory.claims import CLAIMS, DIVERGED, HOLDS, VIOLATED, Claim, Outcome, Variant
from tvgrad.theory.claims.exact import ONE_EPOCH_EXACT
from tvgrad.theory.nets import NetSpec


def test_verify_writes_valid_json_and_csv(tmp_path):
    doc = verify(claims=["one_epoch_exact", "symbolic_expansion"], profile="ci", seed=1,
                 out=tmp_path, max_examples=5)
    on_disk = json.loads((tmp_path / "theory.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert on_disk["schema_version"] == 2 and on_disk["complete"]
    assert on_disk["environment"]["profile"] == "ci"
    c = {x["id"]: x for x in on_disk["claims"]}
    assert c["one_epoch_exact"]["status"] == "verified"
    assert c["one_epoch_exact"]["examples"] >= 5
    assert all(f["rejected"] for f in c["one_epoch_exact"]["falsifiability"])
    assert "max_ratio_float32" in c["one_epoch_exact"]["statistics"]
    rows = list(csv.DictReader((tmp_path / "theory_examples.csv").open()))
    assert {r["claim"] for r in rows} == {"one_epoch_exact", "symbolic_expansion"}
    assert campaign.exit_code(on_disk) == 0


def test_same_seed_same_numbers(tmp_path):
    a = verify(claims=["multi_epoch_second_order"], profile="dev", seed=7, out=tmp_path / "a",
               max_examples=4, audit=False)
    b = verify(claims=["multi_epoch_second_order"], profile="dev", seed=7, out=tmp_path / "b",
               max_examples=4, audit=False)
    assert a["claims"][0]["statistics"] == b["claims"][0]["statistics"]


def _always_holds(**kw) -> Claim:
    """A claim over one_epoch_exact's cases whose every example holds (``kw`` overrides)."""
    return Claim(**{"id": "always", "title": "t", "statement": "s",
                    "check": lambda case, variant=None: Outcome(HOLDS),
                    "strategy": ONE_EPOCH_EXACT.strategy, "case_type": ONE_EPOCH_EXACT.case_type,
                    "variants": (), "terms": {}, **kw})


def test_run_claim_draws_from_its_seed_unless_told_to_derandomize():
    """By default the seed picks the examples (two seeds, two sets of cases); with
    ``derandomize=True`` (the ci profile) the seed is ignored."""
    claim = _always_holds()

    def cases_of(**kw):
        return [r.case for r in run_claim(claim, max_examples=5, shrink=False, **kw).records]
    assert len(cases_of(seed=0)) == 5 and cases_of(seed=0) != cases_of(seed=1)
    assert cases_of(seed=0, derandomize=True) == cases_of(seed=1, derandomize=True)


def _broken_claim():
    """one_epoch_exact with a wrong check: 'violated' whenever the network has width > 2."""
    def check(case, variant=None):
        if max(case.spec.widths) > 2:
            return Outcome(VIOLATED, {"w": max(case.spec.widths)}, "planted failure")
        return Outcome(HOLDS)
    return Claim(id="broken", title="t", statement="s", check=check,
                 strategy=ONE_EPOCH_EXACT.strategy, case_type=ONE_EPOCH_EXACT.case_type,
                 variants=(Variant("v", "d", {"x": 2}),), terms={"x": 1})


def test_counterexample_is_shrunk_and_reproducible():
    res = run_claim(_broken_claim(), max_examples=50, seed=0)
    ce = res.counterexample
    assert ce["verdict"] == VIOLATED
    assert max(json.loads(ce["case"])["spec"]["widths"]) == 3  # minimal failing width
    assert json.loads(ce["case"])["spec"]["widths"] == [3]
    assert ce["reproduce"].startswith("tvgrad reproduce --claim broken --case ")
    assert ce["hypothesis_blob"] and "reproduce_failure" in ce["hypothesis_blob"]


def test_violation_gives_nonzero_exit(tmp_path, monkeypatch):
    monkeypatch.setitem(CLAIMS, "broken", _broken_claim())
    doc = verify(claims=["broken"], profile="ci", out=tmp_path, max_examples=10)
    assert doc["claims"][0]["status"] == "violated"
    assert campaign.exit_code(doc) == 1


def test_reproduce_cli(capsys):
    case = ONE_EPOCH_EXACT.examples[0].to_json()
    assert main(["reproduce", "--claim", "one_epoch_exact", "--case", case]) == 0
    assert '"verdict": "holds"' in capsys.readouterr().out
    assert main(["reproduce", "--claim", "one_epoch_exact", "--case", case,
                 "--variant", "sign_flipped"]) == 1
    assert "worst" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["verify", "--claim", "no_such_claim"], "unknown claim 'no_such_claim'"),
    (["verify", "--profile", "fast"], "unknown Hypothesis profile 'fast'"),
    (["verify", "--max-examples", "0"], "--max-examples must be >= 1, got 0"),
    (["reproduce", "--claim", "one_epoch_exact", "--case", "{}"], "--case is not a valid Case"),
    (["reproduce", "--claim", "one_epoch_exact", "--case",
      ONE_EPOCH_EXACT.examples[0].to_json(), "--variant", "nope"], "has no variant 'nope'"),
])
def test_cli_bad_input(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(InvalidInput, match="is not writable"):
        verify(claims=["one_epoch_exact"], profile="ci", out=ro / "x", max_examples=1)


def test_output_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInput, match="is not writable"):
        verify(claims=["one_epoch_exact"], profile="ci", out=f, max_examples=1)


def test_a_missing_output_dir_is_created_with_its_parents_and_left_empty(tmp_path):
    """``--out runs/2026/theory`` need not exist: it is made, parents included, and the
    writability probe leaves nothing behind."""
    out = tmp_path / "runs" / "2026" / "theory"
    assert campaign.check_out_dir(out) == out and out.is_dir() and list(out.iterdir()) == []
    assert campaign.check_out_dir(out) == out  # an existing one is fine too


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tvgrad", "verify", "--profile", "ci",
                        "--claim", "one_epoch_exact", "--max-examples", "3", "--out",
                        str(tmp_path), "--jobs", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "one_epoch_exact" in r.stdout and "verified" in r.stdout


def test_serial_progress_bars_fill_exactly(tmp_path, monkeypatch):
    """A serial run shows one bar over the runs (claims, then planted variants) and, per claim,
    one over its examples — pinned ones plus the random ones asked for — and each bar ends
    full: total = updates (a bar sized n alone, or n & pinned, would end at 5/3 or 5/2).
    Both are drawn on stderr (stdout carries the summary table), follow the terminal's width,
    and a claim's bar is cleared when its claim ends (one line per claim would pile up)."""
    import tqdm as tqdm_module

    bars = []

    class Bar:
        def __init__(self, total=None, desc=None, **kw):
            self.total, self.desc, self.n, self.closed, self.kw = total, desc, 0, False, kw
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def set_postfix_str(self, s):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm_module, "tqdm", Bar)
    claim = _always_holds(variants=(Variant("v", "d", {"x": 2}, must_reject=False),),
                          terms={"x": 1}, examples=ONE_EPOCH_EXACT.examples[:2])
    verify(registry={"always": claim}, profile="ci", out=tmp_path, max_examples=3, jobs=1)
    got = [(b.desc, b.total, b.n, b.closed) for b in bars]
    assert got == [("claims and variants", 2, 2, True), ("always", 5, 5, True)], got
    shown = dict(file=sys.stderr, dynamic_ncols=True)
    assert [b.kw for b in bars] == [dict(unit="run", **shown), dict(unit="ex", leave=False, **shown)]


@pytest.mark.parametrize("fails", ["raises", "violated"])
def test_the_first_failure_is_recorded_once_and_the_shrinking_calls_are_not_examples(fails):
    """The examples of a run are the cases checked up to its first failure, that failure last
    (``first_failure_index`` = their count, what a variant's "rejected after" reports); the
    calls Hypothesis makes while shrinking it, failing or not, are not examples."""
    def check(case, variant=None):
        if case.n >= 3:
            if fails == "raises":
                raise ValueError("planted")
            return Outcome(VIOLATED, detail="planted")
        return Outcome(HOLDS)
    pinned = Case(spec=NetSpec(in_dim=2, widths=(3,), out_dim=2), n=1)
    res = run_claim(_always_holds(check=check, examples=(pinned,)), max_examples=50, seed=0)
    verdicts = [r.verdict for r in res.records]
    failed = "error" if fails == "raises" else VIOLATED
    assert verdicts[-1] == failed and verdicts.count(failed) == 1, verdicts
    assert set(verdicts[:-1]) <= {HOLDS} and res.first_failure_index == len(verdicts)
    assert res.counterexample is not None and json.loads(res.counterexample["case"])["n"] == 3


def test_time_budget_stops_generation_and_is_reported(tmp_path, virtual_clock):
    """No example starts after the budget, pinned ones included (on a virtual clock of one
    second per example: the count does not depend on the machine's load). The run's reported
    seconds are the clock's time from its start, one per example, however it stopped."""
    claim = CLAIMS["multi_epoch_second_order"]
    n = len(claim.examples)
    # examples start at t = 0, 1, ..., each one if t <= budget: the pinned n, then 3 random
    res = run_claim(claim, max_examples=500, seed=0, budget_s=n + 2.5)
    assert res.budget_exhausted and res.error is None and res.counterexample is None
    assert len(res.records) == n + 3 and res.seconds == n + 3, res.seconds
    res = run_claim(claim, max_examples=500, seed=0, budget_s=n / 2)
    assert res.budget_exhausted and len(res.records) == n // 2 + 1  # within the pinned ones
    assert res.seconds == n // 2 + 1, res.seconds
    res = run_claim(claim, variant=claim.variants[0].id, max_examples=500, seed=0,
                    shrink=False)  # refuted, here on a pinned example
    assert res.counterexample is not None and res.seconds == len(res.records), \
        (len(res.records), res.seconds)
    doc = verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, time_budget=0.01,
                 max_examples=1000, audit=False)
    # a run cut short by its budget is incomplete, never verified (and not a success)
    assert doc["claims"][0]["budget_exhausted"] and doc["claims"][0]["status"] == "incomplete"
    assert campaign.exit_code(doc) == 1
    with pytest.raises(InvalidInput, match="time budget must be finite and > 0 seconds, got -1"):
        verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, time_budget=-1)
    with pytest.raises(InvalidInput, match="got nan"):
        verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, time_budget=float("nan"))


def test_deep_profile_draws_deep_networks():
    """Profile deep: every claim draws depth up to 6 and width up to 128 (log-uniform); outside
    it, each claim's own sizes. (What the campaign passes each run per profile, the audit's cap
    among it: :func:`test_each_profile_runs_its_claims_as_documented`.)"""
    from hypothesis import given, settings

    from tvgrad.theory import strategies
    seen = []
    with strategies.sizes("deep"):
        strat = CLAIMS["ta_vs_mtl_cross_term"].strategy()

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(strat)
    def draw(case):
        seen.append(case.spec)
    draw()
    assert max(s.depth for s in seen) == 6 and max(max(s.widths) for s in seen) > 64
    assert min(min(s.widths) for s in seen) == 1
    with strategies.sizes(None):  # outside deep: the claim's own sizes (depth ≤ 3, width ≤ 16)
        assert strategies.sized(max_depth=3, max_width=16) == {"max_depth": 3, "max_width": 16,
                                                               "width_dist": "uniform"}


@pytest.mark.parametrize("profile", ["ci", "dev", "verify", "deep"])
def test_each_profile_runs_its_claims_as_documented(profile, tmp_path, monkeypatch):
    """What each run of a campaign is given, per profile: only ``ci`` is derandomized (its seed
    ignored, recorded as None), only ``deep`` draws the deep sizes and caps its variants at
    the verify count; the JSON says the counts. The profile is passed as the command line
    passes it (--profile or $TVGRAD_PROFILE): a string built at run time, equal to the literal
    but not the same object — compared by value, so the four names, whatever their
    alphabetical order, each get their own settings."""
    from tvgrad.theory.profiles import EXAMPLES
    calls = []
    monkeypatch.setattr(campaign, "run_claim", lambda claim, **kw: calls.append(
        (kw["variant"], kw["max_examples"], kw["seed"], kw["derandomize"], kw["sizes"]))
        or campaign.RunResult(claim.id, kw["variant"]))
    doc = verify(claims=["one_epoch_exact"], profile="".join(profile), seed=7, out=tmp_path,
                 jobs=1)
    n = EXAMPLES[profile]
    nv = min(n, EXAMPLES["verify"]) if profile == "deep" else n
    ci, deep = profile == "ci", ("deep" if profile == "deep" else None)
    assert (doc["max_examples"], doc["variant_max_examples"]) == (n, nv)
    assert calls[0] == (None, n, 7, ci, deep)
    assert {c[1:] for c in calls[1:]} == {(nv, 7, ci, deep)} and len(calls) > 1
    assert (doc["environment"]["seed"], doc["environment"]["derandomized"]) == \
        (None if ci else 7, ci)


def test_the_profiles_are_registered_as_documented():
    """ci: 12 derandomized examples; dev 40; verify 200; deep 2000 (theory/profiles.py); each
    registered with Hypothesis under its name, with no deadline and no database; a failing
    property prints its ``@reproduce_failure`` blob; the health checks that a slow float64
    property trips by design (too slow, large data, many filtered draws) are off."""
    from hypothesis import HealthCheck, settings

    from tvgrad.theory.profiles import EXAMPLES
    assert EXAMPLES == {"ci": 12, "dev": 40, "verify": 200, "deep": 2000}
    for name, n in EXAMPLES.items():
        s = settings.get_profile(name)
        assert s.max_examples == n and s.deadline is None and s.database is None, name
        assert s.print_blob, name
        assert set(s.suppress_health_check) == {HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much}, name
    # (the others inherit Hypothesis's defaults, which derandomize too where CI is detected)
    assert settings.get_profile("ci").derandomize


def test_a_claims_summary_reports_its_seconds_to_the_millisecond():
    """theory.json's ``seconds`` keeps milliseconds (a pinned-only claim runs in a few ms; to
    10 ms it would read 0.0 or lose a third of its digits)."""
    from tvgrad.theory.campaign import RunResult, summarise
    s = summarise(CLAIMS["one_epoch_exact"], RunResult("one_epoch_exact", None, seconds=0.1234567), [])
    assert s["seconds"] == 0.123


def test_an_examples_row_reports_its_seconds_to_a_tenth_of_a_millisecond():
    """theory_examples.csv's ``seconds`` keeps 0.1 ms (one example of a small case runs in about
    a millisecond; to 1 ms it would read 0.001 for most of them, losing their spread), and its
    measurements go through as ``m.<name>`` columns, lists and dicts as JSON."""
    from tvgrad.theory.campaign import ExampleRecord, RunResult, example_rows
    rec = ExampleRecord(index=2, case="{}", summary={"depth": 1}, verdict="holds",
                        seconds=0.00123456, measurements={"ratio": 0.5, "pair": [1, 2]})
    (row,) = example_rows([RunResult("one_epoch_exact", None, records=[rec])])
    assert row["seconds"] == 0.0012
    assert (row["claim"], row["index"], row["verdict"], row["depth"]) == (
        "one_epoch_exact", 2, "holds", 1)
    assert row["m.ratio"] == 0.5 and row["m.pair"] == "[1, 2]"


def test_the_campaigns_duration_is_reported_to_ten_milliseconds(tmp_path, monkeypatch):
    """theory.json's ``duration_s`` is the wall time since the campaign started, to 0.01 s, as
    :class:`~tvgrad.theory.campaign._Outputs` publishes it (one snapshot here; it republishes
    after each run)."""
    from types import SimpleNamespace

    from tvgrad.theory.campaign import _Outputs
    clock = iter([1000.0, 1001.23456])  # the campaign module's clock only, not time.time itself
    monkeypatch.setattr(campaign, "time", SimpleNamespace(time=lambda: next(clock)))
    outputs = _Outputs(tmp_path, [], {}, {}, "theory")
    outputs.flush()
    doc = json.loads((tmp_path / "theory.json").read_text())
    assert doc == {"claims": [], "duration_s": 1.23}
    assert (tmp_path / "theory_examples.csv").exists()


def test_the_stored_curves_are_the_holding_examples_with_the_longest_r2_windows():
    """theory.json keeps CURVES_PER_CLAIM residual curves per expansion claim: the holding
    examples with a curve and an r₂ slope, longest r₂ window (``points_r2``) first, ties in
    the order drawn; non-finite curve values become null (JSON has no NaN)."""
    from tvgrad.theory.campaign import CURVES_PER_CLAIM, ExampleRecord, RunResult, representative_curves

    def rec(i, points, verdict=HOLDS, curve=True, slope=2.0):
        m = {"slope_r2": slope, "points_r2": points, "unrelated": 1}
        return ExampleRecord(i, f"case{i}", {}, verdict, 0.0, m,
                             curve={"eta": [1.0, float("nan")]} if curve else None)
    run = RunResult("multi_epoch_second_order", None, records=[
        rec(0, 3), rec(1, 9), rec(2, 30, verdict=VIOLATED), rec(3, 40, curve=False),
        rec(4, 50, slope=None), rec(5, None), rec(6, 5), rec(7, 9), rec(8, 4),
        rec(9, 60, verdict=DIVERGED), rec(10, 70, verdict="error")])
    picks = representative_curves(run)
    assert CURVES_PER_CLAIM == 3 and [p["index"] for p in picks] == [1, 7, 6]
    assert [p["index"] for p in representative_curves(run, limit=9)] == [1, 7, 6, 8, 0, 5]
    assert picks[0]["measurements"] == {"slope_r2": 2.0, "points_r2": 9}
    assert picks[0]["curve"] == {"eta": [1.0, None]} and picks[0]["case"] == "case1"


def test_the_example_to_reproduce_is_a_holding_one_wherever_it_lies():
    """theory.json's ``example`` of a claim is its first *holding* example (a case to paste
    into ``tvgrad reproduce`` that shows the claim at work), whatever verdicts come before it
    — diverged and errored examples sort before "holds" as strings, inconclusive and violated
    after; with none holding it is the first example, and with none at all there is none."""
    from tvgrad.theory.campaign import ExampleRecord, RunResult, _example
    from tvgrad.theory.claims import CLAIMS, DIVERGED, HOLDS, INCONCLUSIVE, VIOLATED
    claim = CLAIMS["one_epoch_exact"]

    def rec(i, verdict):
        return ExampleRecord(index=i, case=f"case{i}", summary={}, verdict=verdict, seconds=0.0,
                             measurements={})
    order = (DIVERGED, "error", INCONCLUSIVE, VIOLATED, HOLDS, HOLDS)
    run = RunResult(claim.id, None, [rec(i, v) for i, v in enumerate(order)])
    ex = _example(claim, run)
    assert (ex["verdict"], ex["case"]) == (HOLDS, "case4"), ex
    run = RunResult(claim.id, None, [rec(i, v) for i, v in enumerate(order[:4])])
    assert _example(claim, run)["case"] == "case0"
    assert _example(claim, RunResult(claim.id, None, [])) is None


def test_the_api_the_cli_and_make_verify_share_one_default_seed(tmp_path):
    """``verify()``, ``tvgrad verify`` and ``make verify`` run one seed unless told otherwise,
    so that each reproduces the others: the Makefile's ``SEED``, recorded by a default run."""
    import re
    from pathlib import Path

    from tvgrad.theory import DEFAULT_SEED
    make = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert re.search(r"^SEED\s*\?=\s*(\d+)\s*$", make, re.M).group(1) == str(DEFAULT_SEED)
    doc = verify(claims=["one_epoch_exact"], profile="dev", out=tmp_path, max_examples=1,
                 audit=False)
    assert doc["environment"]["seed"] == DEFAULT_SEED == 20260824
