"""A campaign that survives misuse: limits, signals, a shared output folder, budgets,
counterexamples of pinned examples, and case JSON of the wrong types."""

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tvgrad.cli import main
from tvgrad.errors import InvalidInput
from tvgrad.publish import OutputLocked, locked, snapshot
from tvgrad.theory import campaign
from tvgrad.theory.bench import alive, start_campaign
from tvgrad.theory.campaign import run_claim, summary_table, verify
from tvgrad.theory.cases import Case
from tvgrad.theory.claims import CLAIMS, HOLDS, VIOLATED, Claim, Outcome, Variant
from tvgrad.theory.claims.exact import ONE_EPOCH_EXACT
from tvgrad.theory.claims.symbolic import SymCase
from tvgrad.theory.nets import NetSpec
from tvgrad.theory.report import read_rows


# -- 1. limits --------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    (dict(spec=NetSpec(in_dim=3, widths=(10**6, 10**6), out_dim=2)), "of memory"),
    (dict(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2), epochs=10**9), "TVGRAD_CASE_SECONDS"),
    (dict(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2), n=10**9), "of memory"),
    (dict(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2), tasks=10**6), "needs about"),
    (dict(spec=NetSpec(in_dim=10**9, widths=(4,), out_dim=2)), "needs about"),
])
def test_cases_beyond_memory_or_time_are_refused_before_allocation(kw, message):
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match=message):
        Case(**kw)
    assert time.perf_counter() - t0 < 0.5  # refused from the sizes, nothing allocated


def test_symbolic_and_time_limit(monkeypatch):
    with pytest.raises(InvalidInput, match=r"symbolic case .*p 1000.*needs about"):
        SymCase(kind="gd", p=1000)
    SymCase(kind="cross", p=3, k=3, tasks=2)  # the campaign's sizes pass
    # within memory (≈ 270 MB) but not time: 2e-4·(T·p)³·k² = 2e-4·60³·16 ≈ 691 s > 300 s
    monkeypatch.delenv("TVGRAD_CASE_SECONDS", raising=False)
    with pytest.raises(InvalidInput, match=r"symbolic case .*p 30.*needs about 691 s"):
        SymCase(kind="cross", p=30, k=4, tasks=2)
    # its memory: ~p³ third-derivative symbols (a few hundred bytes each) per task, × k²
    from types import SimpleNamespace
    nbytes = SymCase.cost(SimpleNamespace(p=300, k=3, tasks=2))[0]  # the estimate, not built
    assert 300 * 2 * 300 ** 3 * 9 <= nbytes <= 1.02 * 300 * 2 * 300 ** 3 * 9
    monkeypatch.setenv("TVGRAD_CASE_SECONDS", "1e-9")
    with pytest.raises(InvalidInput, match=r"limit of 1e-09 s per case"):
        Case(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2))
    monkeypatch.setenv("TVGRAD_CASE_SECONDS", "nan")
    with pytest.raises(InvalidInput, match="TVGRAD_CASE_SECONDS must be a finite number"):
        Case(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2))


def test_reproduce_refuses_a_huge_case_with_one_line(capsys):
    case = json.loads(Case(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2)).to_json())
    case["spec"]["widths"] = [10**6, 10**6]
    rc = main(["reproduce", "--claim", "ffn_hessian_bound", "--case", json.dumps(case)])
    err = capsys.readouterr().err
    assert rc == 2 and "of memory" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("field, value", [("seed", 1.5), ("epochs", 2.0), ("n", "8")])
def test_case_json_of_the_wrong_type_is_a_clear_error(field, value, capsys):
    case = json.loads(Case(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2)).to_json())
    case[field] = value
    rc = main(["reproduce", "--claim", "one_epoch_exact", "--case", json.dumps(case)])
    err = capsys.readouterr().err
    assert rc == 2 and field in err and repr(value) in err


def test_too_many_jobs_for_the_memory(capsys):
    rc = main(["verify", "--jobs", "100000", "--out", "/tmp/never"])
    assert rc == 2 and "each worker needs about" in capsys.readouterr().err


# -- 2. processes -----------------------------------------------------------------------------
@pytest.mark.system
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_no_worker_survives_its_parent(tmp_path, sig):
    """Whatever stops the campaign, its workers stop with it, and a SIGTERM or Ctrl-C neither
    waits for the runs in progress (100 000 examples each: hours) nor loses the finished ones.
    How fast it stops is a speed target, measured by ``make bench`` (stop_latency)."""
    proc, workers = start_campaign(tmp_path / "out")
    t0 = time.time()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
    stopped = time.time() - t0
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), f"workers alive after {sig!r}"
    if sig != signal.SIGKILL:
        assert stopped < 30, f"stopping took {stopped:.1f} s: it waited for the runs"
        doc = json.loads((tmp_path / "out" / "theory.json").read_text())
        assert doc["complete"] is False  # the partial results are valid JSON


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_stopped_parallel_run_kills_its_workers_and_keeps_the_finished_runs(stop):
    """The parallel runner's stop path, without processes (the ``system`` test above runs it
    for real): when a run's result raises — Ctrl-C or SIGTERM arriving in the wait, or an
    error — every worker process is killed at once, the queued runs are cancelled without
    waiting, the runs finished before it are kept, and the exception goes on up."""
    events = []

    class Proc:
        def __init__(self, i):
            self.i = i

        def kill(self):
            events.append(("kill", self.i))

    class Future:
        def __init__(self, value):
            self.value = value

        def result(self):
            if isinstance(self.value, BaseException):
                raise self.value
            return self.value

    class Pool:
        def __init__(self, max_workers, initializer):
            assert max_workers == 2 and initializer is campaign._worker_init
            self._processes = {10: Proc(10), 11: Proc(11)}

        def submit(self, fn, arg):
            assert fn is campaign._job
            return Future(arg)

        def shutdown(self, wait=True, cancel_futures=False):
            events.append(("shutdown", wait, cancel_futures))

    class Bar:
        def set_postfix_str(self, s):
            events.append(("bar", s))

        def update(self):
            pass

    class Outputs:
        def add(self, key, res):
            events.append(("add", key, res))

    tasks = [("a", None), ("a", "v"), ("b", None)]
    args = ["run a", stop("stopped"), "run b"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(campaign, "ProcessPoolExecutor", Pool)
        with pytest.raises(stop, match="stopped"):
            campaign._run_parallel(tasks, args, 2, Outputs(), Bar())
    assert events == [("bar", "a"), ("add", ("a", None), "run a"), ("kill", 10), ("kill", 11),
                      ("shutdown", False, True)]
    events.clear()
    with pytest.MonkeyPatch.context() as mp:  # no stop: every result kept, then a plain shutdown
        mp.setattr(campaign, "ProcessPoolExecutor", Pool)
        campaign._run_parallel(tasks, ["run a", "run a/v", "run b"], 2, Outputs(), Bar())
    assert events[-2:] == [("add", ("b", None), "run b"), ("shutdown", True, False)], events
    assert ("bar", "a/v") in events


# -- 3. one run, one consistent output ----------------------------------------------------------
def test_a_second_run_into_the_same_folder_refuses_naming_the_holder(tmp_path):
    with locked(tmp_path, "tvgrad verify (test holder)"):
        with pytest.raises(OutputLocked, match=r"in use by tvgrad verify \(test holder\) \(pid "):
            verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, max_examples=1,
                   audit=False)
    verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, max_examples=1, audit=False)


def test_json_csv_and_html_are_published_together(tmp_path, monkeypatch):
    assert main(["verify", "--claim", "one_epoch_exact", "--profile", "ci", "--max-examples",
                 "2", "--no-audit", "--out", str(tmp_path)]) == 0
    snap = snapshot(tmp_path, "theory")
    assert {p.name for p in snap.iterdir()} == {"theory.json", "theory_examples.csv",
                                                "theory.html"}
    for name in ("theory.json", "theory_examples.csv", "theory.html"):
        assert (tmp_path / name).resolve() == snap / name
    before = (tmp_path / "theory.json").read_text()
    # a full disk while the next run publishes: the previous snapshot stays current, whole
    import tvgrad.publish as pub
    real_fsync = pub.os.fsync
    calls = {"n": 0}

    def full(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)
    monkeypatch.setattr(pub.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, max_examples=3,
               audit=False)
    assert (tmp_path / "theory.json").read_text() == before
    assert snapshot(tmp_path, "theory") == snap


# -- 4. the budget is a status --------------------------------------------------------------
@pytest.mark.parametrize("budget", ["nan", "inf", "-1", "0"])
def test_bad_budgets_are_refused(budget, tmp_path, capsys):
    rc = main(["verify", "--time-budget", budget, "--out", str(tmp_path)])
    assert rc == 2 and "time budget must be finite and > 0" in capsys.readouterr().err


def test_a_spent_budget_is_incomplete_everywhere_and_honoured(tmp_path, virtual_clock):
    """Every claim and variant shares the budget and no example starts after it: on a virtual
    clock of 0.25 s per example, the campaign ends within one example of the budget."""
    virtual_clock.step = 0.25
    budget, t0 = 3.0, virtual_clock.now
    doc = verify(profile="dev", out=tmp_path, max_examples=100000, time_budget=budget, jobs=1)
    took = virtual_clock.now - t0
    assert budget - virtual_clock.step < took <= budget + virtual_clock.step, took
    # every run the budget cut short is incomplete, never verified (a claim whose finite
    # search space Hypothesis exhausted in time may be verified)
    cut = [c for c in doc["claims"] if c["budget_exhausted"]]
    assert cut and all(c["status"] == "incomplete" for c in cut)
    c = doc["claims"][0]
    assert c["budget_exhausted"] and c["asked"] == 100000 + len(ONE_EPOCH_EXACT.examples)
    assert f"incomplete ({c['examples']} of {c['asked']})" in summary_table(doc)
    assert campaign.exit_code(doc) == 1


BIG = Case(spec=NetSpec(in_dim=2, widths=(8,), out_dim=2), n=4, seed=3)
"""The pinned case the shrinking tests start from (width 8, n = 4)."""


def _pins_big(cid: str, check) -> Claim:
    """A claim over one_epoch_exact's cases that pins :data:`BIG` and runs ``check``."""
    return Claim(id=cid, title="t", statement="s", check=check, strategy=ONE_EPOCH_EXACT.strategy,
                 case_type=Case, examples=(BIG,), variants=(), terms={})


# -- 5. reproduction --------------------------------------------------------------------------
def _fails_from_width_3():
    def check(case, variant=None):
        if max(case.spec.widths) >= 3 and case.n >= 2:
            return Outcome(VIOLATED, {"w": max(case.spec.widths)}, "planted failure")
        return Outcome(HOLDS)
    big = Case(spec=NetSpec(in_dim=5, widths=(7, 9), out_dim=4), n=12, epochs=3, seed=41)
    return Claim(id="broken_pinned", title="t", statement="s", check=check,
                 strategy=ONE_EPOCH_EXACT.strategy, case_type=Case, examples=(big,),
                 variants=(Variant("v", "d", {"x": 2}),), terms={"x": 1})


def test_a_failing_pinned_example_is_shrunk():
    res = run_claim(_fails_from_width_3(), max_examples=5, seed=0)
    case = json.loads(res.counterexample["case"])
    assert res.counterexample["verdict"] == VIOLATED
    assert case["spec"]["widths"] == [3] and case["n"] == 2 and case["epochs"] == 1
    assert case["spec"]["in_dim"] == 1 and case["seed"] == 0
    res = run_claim(_fails_from_width_3(), max_examples=5, seed=0, shrink=False)
    assert json.loads(res.counterexample["case"])["spec"]["widths"] == [7, 9]


def test_an_erroring_pinned_example_shrinks_to_the_same_exception_only():
    """A pinned example that raises is shrunk over candidates raising the *same* exception
    type: n = 1 raises a TypeError here, so the shrunk case keeps n = 2 (ValueError)."""
    def check(case, variant=None):
        if case.n == 1:
            raise TypeError("another bug")
        if max(case.spec.widths) >= 3:
            raise ValueError("the planted bug")
        return Outcome(HOLDS)
    claim = _pins_big("erroring_pinned", check)
    res = run_claim(claim, max_examples=3, seed=0)
    ce = res.counterexample
    case = json.loads(ce["case"])
    assert ce["verdict"] == "error" and case["n"] == 2 and case["spec"]["widths"] == [3]
    assert "ValueError: the planted bug" in res.error
    # with no time left the first failure is kept as it is
    from tvgrad.theory.campaign import shrink_case
    first = (BIG, "error", {}, "Traceback …\nValueError: the planted bug")
    assert shrink_case(claim, None, first, deadline=0.0) is first


def test_a_violated_case_without_detail_shrinks_past_candidates_that_raise():
    """Only an error's detail names an exception to match: a violated case may carry no
    detail at all, and its candidates that raise are skipped, never matched by type."""
    from tvgrad.theory.campaign import shrink_case

    def check(case, variant=None):
        if case.n == 1:
            raise TypeError("another bug")
        return Outcome(VIOLATED) if max(case.spec.widths) >= 3 else Outcome(HOLDS)
    claim = _pins_big("violated_quietly", check)
    case, verdict, _, detail = shrink_case(claim, None, (BIG, VIOLATED, {}, ""))
    assert (verdict, detail, case.spec.widths, case.n) == (VIOLATED, "", (3,), 2)


def test_every_claim_carries_a_case_to_reproduce(tmp_path, capsys):
    # the profile as the command line passes it (--profile or $TVGRAD_PROFILE): built at run
    # time, equal to the literal "ci" but not the same object
    doc = verify(claims=["one_epoch_exact", "symbolic_expansion"], profile="".join(["c", "i"]),
                 out=tmp_path, max_examples=2, audit=False)
    for c in doc["claims"]:
        ex = c["example"]
        assert ex["verdict"] == HOLDS and f"--claim {c['id']}" in ex["reproduce"]
        argv = ["reproduce", "--claim", c["id"], "--case", ex["case"]]
        assert main(argv) == 0
    capsys.readouterr()
    assert doc["environment"]["seed"] is None and doc["environment"]["derandomized"]
    # derandomized means the seed is ignored: another seed draws the same examples (the drawn
    # ones, after the pinned edge cases)
    verify(claims=["one_epoch_exact"], profile="".join(["c", "i"]), seed=12345,
           out=tmp_path / "again", max_examples=2, audit=False)

    def cases(d):
        return [r["case"] for r in read_rows(d / "theory_examples.csv")
                if r["claim"] == "one_epoch_exact"]
    drawn = len(cases(tmp_path)) - len(CLAIMS["one_epoch_exact"].examples)
    assert drawn >= 1 and cases(tmp_path / "again") == cases(tmp_path)
    doc = verify(claims=["one_epoch_exact"], profile="dev", seed=5, out=tmp_path / "d",
                 max_examples=1, audit=False)
    assert doc["environment"]["seed"] == 5


def test_replace_keeps_validation():
    c = Case(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2))
    with pytest.raises(InvalidInput, match="seed must be an integer"):
        replace(c, seed=-1)
    assert os.environ.get("TVGRAD_CASE_SECONDS") is None


def test_the_examples_of_a_seed_do_not_depend_on_what_was_loaded(tmp_path, monkeypatch):
    """Hypothesis mixes constants of loaded local modules into its draws; the campaign pins
    them, so importing a module full of odd constants changes nothing."""
    from tvgrad.theory import campaign as camp
    from tvgrad.theory.claims import CLAIMS
    claim = CLAIMS["ffn_second_order_error_bound"]
    before = [r.case for r in run_claim(claim, max_examples=60, seed=3, shrink=False).records]
    assert camp._FROZEN, "Hypothesis's local constants could not be pinned (a new Hypothesis?)"
    (tmp_path / "odd_constants_mod.py").write_text(
        "A = [" + ", ".join(map(str, range(1, 130))) + ", 0.1234567, 0.0004321, 0.77, 1.7e-5]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    importlib.import_module("odd_constants_mod")
    after = [r.case for r in run_claim(claim, max_examples=60, seed=3, shrink=False).records]
    assert before == after
    from hypothesis.internal.conjecture import providers
    local = providers._get_local_constants()  # what Hypothesis would mix into its draws
    assert not local.integers and not local.floats


# -- the limits' own numbers (blind spots found by mutation testing of theory/limits.py) -----
def test_limit_defaults_and_boundaries(monkeypatch):
    from tvgrad.theory import limits
    monkeypatch.delenv("TVGRAD_CASE_SECONDS", raising=False)
    assert limits.seconds_limit() == 300.0 and limits.FLOPS_PER_SECOND == 1e9
    limits.check_cost("a case", 1.0, 299.9e9)  # 299.9 s: accepted
    with pytest.raises(InvalidInput, match=r"needs about 300 s \(estimated\), more than the limit "
                                           r"of 300 s"):
        limits.check_cost("a case", 1.0, 300.4e9)
    for bad in ("0", "inf", "abc"):
        monkeypatch.setenv("TVGRAD_CASE_SECONDS", bad)
        with pytest.raises(InvalidInput, match=f"TVGRAD_CASE_SECONDS must be a finite number "
                                               f"> 0, got '{bad}'"):
            limits.seconds_limit()


def test_memory_messages_and_the_meminfo_parse(monkeypatch):
    import io

    from tvgrad.theory import limits
    fake = "MemTotal:       16000000 kB\nMemAvailable:    2097152 kB\n"
    monkeypatch.setattr(limits, "open", lambda *a, **k: io.StringIO(fake), raising=False)
    assert limits.available_bytes() == 2097152 * 1024  # 2 GiB
    with pytest.raises(InvalidInput, match=r"needs about 1.5 GB of memory, more than 50% of the "
                                           r"2 GB available"):
        limits.check_cost("a case", 1.5 * 2 ** 30, 1.0)
    limits.check_cost("a case", 0.9 * 2 ** 30, 1.0)  # under half: accepted

    def no_proc(*a, **k):
        raise OSError("no /proc")
    monkeypatch.setattr(limits, "open", no_proc, raising=False)
    import os
    expect = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert limits.available_bytes() == expect  # the physical memory where /proc is absent
    assert limits._fmt_bytes(3 * 2 ** 40) == "3 TB" and limits._fmt_bytes(512) == "512 B"
    assert limits._fmt_bytes(2.0 ** 60) == "1.02e+03 PB"
    assert limits._fmt_bytes(1023) == "1.02e+03 B" and limits._fmt_bytes(1024) == "1 KB"
    assert limits._fmt_bytes(2.0 ** 50) == "1 PB" and limits._fmt_bytes(2.0 ** 50 - 2 ** 30) == "1.02e+03 TB"

    # neither known — sysconf refuses the name (ValueError), fails (OSError) or does not
    # exist (AttributeError: Windows) — assume 8 GiB
    for error in (ValueError, OSError):
        def no_sysconf(name, error=error):
            raise error(f"unknown {name}")
        monkeypatch.setattr(os, "sysconf", no_sysconf)
        assert limits.available_bytes() == 8 * 2 ** 30, error
    monkeypatch.delattr(os, "sysconf")
    assert limits.available_bytes() == 8 * 2 ** 30


def test_pinned_case_shrinking_halves_integers_and_rounds_floats():
    """shrink_case's candidates for one field: an integer towards 0 and 1, by halving and by
    one; a float to one significant digit; nothing below the smallest value."""
    from tvgrad.theory.campaign import _simpler
    assert list(_simpler(1000)) == [0, 1, 500, 999]
    assert list(_simpler(3)) == [0, 1, 1, 2] and set(_simpler(1)) == {0}
    assert list(_simpler(0)) == [] and list(_simpler(True)) == []
    assert list(_simpler(0.123)) == [0.1] and list(_simpler(0.1)) == []


def test_the_summary_lists_the_bounds_tightest_first(tmp_path):
    doc = verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path, max_examples=1,
                 audit=False)
    doc["claims"][0]["statistics"] = {f"actual_over_{k}": {"median": m} for k, m in
                                      (("loose", 0.2), ("best", 0.99), ("middle", 0.5))}
    assert "median actual / bound: best 0.99, middle 0.5, loose 0.2" in summary_table(doc)


def test_an_unknown_claim_is_refused_before_anything_is_written(tmp_path):
    """Every claim id is checked up front: no output folder, lock or partial theory.json is
    left behind by a typo."""
    from tvgrad.errors import UnknownKey
    out = tmp_path / "new"
    with pytest.raises(UnknownKey, match="unknown claim 'nope'"):
        verify(claims=["one_epoch_exact", "nope"], profile="ci", out=out)
    assert not out.exists()


@pytest.mark.parametrize("kw, message", [
    (dict(kind="sgd"), r"unknown symbolic kind 'sgd'; choose one of"),
    (dict(kind="gd", k=0), "k must be an integer >= 1, got 0"),
    (dict(kind="gd", p=0), "p must be an integer >= 1, got 0"),
    (dict(kind="cross", tasks=0), "tasks must be an integer >= 1, got 0"),
    (dict(kind="gd", k=True), "k must be an integer >= 1, got True"),
    (dict(kind="gd", p=2.0), "p must be an integer >= 1, got 2.0"),
])
def test_symbolic_cases_reject_bad_input(kw, message):
    with pytest.raises(InvalidInput, match=message):
        SymCase(**kw)
    SymCase(kind=kw["kind"] if kw["kind"] != "sgd" else "gd", k=1, p=1, tasks=1)  # 1 is valid


def test_an_unknown_verdict_is_refused():
    """A claim that returns a verdict outside the four is a bug, never counted as one of them."""
    for v in ("holds", "violated", "diverged", "inconclusive"):
        assert Outcome(v).verdict == v
    with pytest.raises(ValueError, match="unknown verdict 'verified'"):
        Outcome("verified")


def test_claims_on_a_module_refuse_anything_but_a_module_problem():
    from tvgrad.theory.claims.second_order import cross_term_on, multi_epoch_on, sgd_epoch_on
    for fn in (multi_epoch_on, sgd_epoch_on, cross_term_on):
        with pytest.raises(InvalidInput, match="expected a tvgrad.ModuleProblem, got Case"):
            fn(Case(spec=NetSpec(in_dim=3, widths=(4,), out_dim=2)))


def test_quantiles_skip_non_finite_values_and_are_empty_without_any():
    from tvgrad.theory.campaign import _quantiles
    assert _quantiles([]) == {} and _quantiles([float("nan"), "x", None]) == {}
    q = _quantiles([float("inf"), 3.0, 1.0, 2.0, float("nan")])
    assert q == {"n": 3, "min": 1.0, "q05": 1.0, "median": 2.0, "q95": 3.0, "max": 3.0}


def _valid_candidates(case: Case) -> list[Case]:
    """shrink_case's candidates for ``case`` that are valid cases, in the order it tries them."""
    from tvgrad.theory.campaign import _simpler

    out = []
    for cand in _simpler(json.loads(case.to_json())):
        try:
            out.append(Case.from_json(json.dumps(cand)))
        except Exception:  # noqa: BLE001 - shrink_case skips the invalid ones too
            pass
    return out


def test_shrinking_stops_after_a_pass_that_finds_no_smaller_failure():
    """The greedy descent ends when one pass over the candidates finds nothing smaller that
    fails: a failure that shrinks nowhere costs one run per valid candidate, not ``max_tries``
    runs of the same candidates again and again."""
    from tvgrad.theory.campaign import shrink_case

    runs = []

    def check(case, variant=None):
        runs.append(case)
        return Outcome(VIOLATED) if case == BIG else Outcome(HOLDS)
    claim = _pins_big("shrinks_nowhere", check)
    valid = _valid_candidates(BIG)
    assert 3 <= len(valid) < 100
    first = (BIG, VIOLATED, {}, "")
    assert shrink_case(claim, None, first) is first
    assert runs == valid


def test_shrinking_restarts_from_each_smaller_failure_it_keeps():
    """Greedy descent: once a candidate fails the same way it becomes the current case, and
    every later candidate is a one-field simplification of it — not a leftover candidate of
    the case it replaced (which could undo the shrink just kept)."""
    from tvgrad.theory.campaign import shrink_case

    runs = []

    def check(case, variant=None):
        runs.append(case)
        return Outcome(VIOLATED) if max(case.spec.widths) >= 3 else Outcome(HOLDS)
    claim = _pins_big("shrinks_greedily", check)
    case, verdict, _, _ = shrink_case(claim, None, (BIG, VIOLATED, {}, ""))
    current, kept = BIG, 0
    for c in runs:
        assert c in _valid_candidates(current), (current, c)
        if max(c.spec.widths) >= 3:
            current, kept = c, kept + 1
    assert kept >= 2 and case == current and case.spec.widths == (3,)


def test_theory_json_is_strict_json_a_nan_is_refused_not_written(tmp_path):
    """theory.json is read by strict JSON parsers (browsers, jq): its writer refuses NaN and
    infinities (the campaign maps them to null before) instead of writing the non-standard
    ``NaN`` token; the snapshot already published stays current."""
    out = campaign._Outputs(tmp_path, [], {"claims": []}, CLAIMS, "theory")
    out.flush()
    before = (tmp_path / "theory.json").read_text()
    for bad in (float("nan"), float("inf")):
        out.doc["time_budget_s"] = bad
        with pytest.raises(ValueError, match="JSON compliant"):
            out.flush()
        assert (tmp_path / "theory.json").read_text() == before


def test_shrinking_gives_up_after_300_candidates(monkeypatch):
    """A long descent (the seed halved, then lowered one by one while ≥ 500) is cut at 300
    candidates tried — valid or not — and the smallest failure found so far is kept."""
    from tvgrad.theory.campaign import shrink_case

    def check(case, variant=None):
        return Outcome(VIOLATED) if case.seed >= 500 else Outcome(HOLDS)
    claim = _pins_big("long_descent", check)
    tried = []
    real = claim.case_type.from_json.__func__

    def from_json(cls, text):
        tried.append(text)
        return real(cls, text)
    monkeypatch.setattr(Case, "from_json", classmethod(from_json))
    start = replace(BIG, seed=10 ** 6)
    case, verdict, _, _ = shrink_case(claim, None, (start, VIOLATED, {}, ""))
    assert len(tried) == 300, len(tried)
    assert verdict == VIOLATED and 500 < case.seed < 1000  # still on its way down to 500


@pytest.mark.parametrize("jobs", [0, -2, 1.5, True])
def test_verify_refuses_a_bad_jobs_count_naming_it(tmp_path, jobs):
    """The Python API checks ``jobs`` as ``tvgrad verify --jobs`` does (it ran 0 or −2 as one
    worker, silently): refused before anything runs or is written."""
    with pytest.raises(InvalidInput, match=rf"jobs must be an integer >= 1, got {jobs!r}"):
        verify(claims=["one_epoch_exact"], profile="ci", out=tmp_path / "o", jobs=jobs,
               max_examples=1, audit=False)
    assert not (tmp_path / "o").exists()
