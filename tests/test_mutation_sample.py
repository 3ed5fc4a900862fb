"""The mutation-sample tool's own logic (the sampling run itself is slow and not in CI)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "mutation"))
import sample  # noqa: E402


def test_tests_for_mirrors_the_module_and_adds_the_claims_tests():
    assert "tests/theory/test_rounding.py" in sample.tests_for("theory/rounding.py")
    assert "tests/theory/claims" in sample.tests_for("theory/bound.py")
    assert "tests/theory/claims/test_expansion.py" in sample.tests_for("theory/claims/expansion.py")
    assert "tests/theory/test_verdicts.py" in sample.tests_for("theory/campaign.py")


def test_report_counts_rates_without_the_equivalent_mutants(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [dict(module="theory/a.py", line=i, operator="op", occurrence=0,
                 killed_by_tests=t, killed_by_verify=v) for i, (t, v) in
            enumerate([(True, True), (True, False), (False, False), (False, False)])]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = sample.report(log, {"theory/a.py:3:op:0": "equivalent: shape only"})
    assert "4 sampled mutants, 1 equivalent; of the 3 others:" in text
    assert "killed by the self-test + verify (make test not run on the survivors: a lower " \
           "bound for make test + make verify): 2/3 = 67 %" in text
    assert "killed by verify alone: 1/3 = 33 %" in text
    assert "equivalent: shape only" in text


def test_report_of_a_self_tested_sample_gives_the_campaigns_share(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [dict(module="theory/a.py", line=i, operator="op", occurrence=0, killed_by_tests=t,
                 killed_by_campaign=c, killed_by_verify=t or c) for i, (t, c) in
            enumerate([(True, True), (True, False), (False, True), (False, False)])]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = sample.report(log, {})
    assert "killed by verify alone: 3/4 = 75 %" in text
    assert "killed by the campaign alone (tvgrad verify without --self-test): 2/4 = 50 %" in text
    assert "| mutant | self-test | campaign | make verify | note |" in text
    assert "| `theory/a.py:1:op:0` | killed | survived | killed |  |" in text


def test_wilson_interval_is_not_degenerate_at_a_full_kill():
    lo, hi = sample.wilson(30, 30)
    assert round(lo, 3) == 0.886 and hi == 1.0
    lo, hi = sample.wilson(15, 30)
    assert lo < 0.5 < hi and abs((0.5 - lo) - (hi - 0.5)) < 1e-12


def test_a_remeasured_mutant_must_change_the_recorded_lines():
    """The hunk positions and index line may move with the code; the changed lines may not."""
    then = ("diff --git a/t.py b/t.py\nindex 1..2 100644\n--- a/t.py\n+++ b/t.py\n"
            "@@ -97 +97 @@ def f():\n-    a = b + c\n+    a = b / c\n")
    now = then.replace("index 1..2", "index 3..4").replace("-97 +97", "-100 +100")
    assert sample._changed_lines(now) == sample._changed_lines(then) == [
        "-    a = b + c", "+    a = b / c"]
    assert sample._changed_lines(now.replace("b / c", "b * c")) != sample._changed_lines(then)


def test_report_of_an_as_verify_sample_measures_the_campaign_only_where_it_ran(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [dict(module="theory/a.py", line=i, operator="op", occurrence=0, killed_by_tests=t,
                 killed_by_campaign=c, killed_by_verify=t or bool(c)) for i, (t, c) in
            enumerate([(True, None), (True, None), (False, True), (False, False)])]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = sample.report(log, {})
    assert "killed by verify alone: 3/4 = 75 %" in text
    assert "the campaign (run only where the self-test passed, as in make verify) killed 1 of " \
           "those 2" in text
    assert "killed by the campaign alone" not in text
    assert "| `theory/a.py:0:op:0` | killed | not run | killed |  |" in text


def test_report_with_make_test_counts_what_make_test_killed_among_verifys_survivors(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [dict(module="theory/a.py", line=i, operator="op", occurrence=0, killed_by_tests=t,
                 killed_by_campaign=c, killed_by_verify=t or bool(c), killed_by_make_test=mt)
            for i, (t, c, mt) in enumerate([(True, None, None), (False, True, None),
                                            (False, False, True), (False, False, False)])]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = sample.report(log, {})
    assert "killed by make test + make verify: 3/4 = 75 %" in text
    assert "killed by verify alone: 2/4 = 50 %" in text
    assert "| mutant | self-test | campaign | make verify | make test (verify's survivors) | " \
           "note |" in text
    assert "| `theory/a.py:2:op:0` | survived | survived | survived | killed |  |" in text
    assert "| `theory/a.py:0:op:0` | killed | not run | killed | not run |  |" in text


@pytest.mark.parametrize("reverse", [False, True])
def test_a_seed_draws_the_same_sample_whatever_order_cosmic_ray_dumps(tmp_path, monkeypatch,
                                                                       reverse):
    """cosmic-ray lists the mutants in an order that varies between runs; the sample of a seed
    must not (a logged sample is re-drawn from its seed)."""
    items = [[{"mutations": [{"module_path": f"theory/{m}.py", "operator_name": "core/Op",
                              "occurrence": o, "start_pos": [o + 1, 0]}]}]
             for m in "abc" for o in range(4)]
    if reverse:
        items = items[::-1]

    class Done:
        stdout = "\n".join(json.dumps(i) for i in items)

    monkeypatch.setattr(sample.subprocess, "run", lambda *a, **k: Done())
    ms = sample._mutants(tmp_path, keep_annotations=True)
    assert [(m["module"], m["occurrence"]) for m in ms] == \
        [(f"theory/{m}.py", o) for m in "abc" for o in range(4)]


def test_with_tests_refuses_a_checkout_whose_make_test_already_fails(tmp_path, monkeypatch):
    """Else every survivor of make verify would read "killed by make test"."""
    monkeypatch.setattr(sample, "_mutants", lambda *a: [])
    monkeypatch.setattr(sample, "_make_test", lambda: (False, 1.0, ["tests/test_x.py::test_y"]))
    try:
        sample.audit(1, 0, tmp_path / "log.jsonl", False, [], with_tests=True)
    except SystemExit as e:
        assert "make test fails on the unmutated checkout" in str(e)
        assert "tests/test_x.py::test_y" in str(e)
    else:
        raise AssertionError("audit ran on a checkout whose make test fails")


def test_make_test_failures_are_read_from_pytest_summary(monkeypatch):
    out = ("..F.\nFAILED tests/theory/test_a.py::test_b - AssertionError: x\n"
           "ERROR tests/test_c.py::test_d\n1 failed, 3 passed\n")

    class Proc:
        returncode, stdout, stderr = 1, out, ""
    seen = {}

    def run(cmd, **kw):
        seen.update(cmd=cmd, env=kw["env"])
        return Proc
    monkeypatch.setattr(sample.subprocess, "run", run)
    monkeypatch.delenv("TVGRAD_PROFILE", raising=False)
    ok, _, failures = sample._make_test()
    assert not ok and failures == ["tests/theory/test_a.py::test_b", "tests/test_c.py::test_d"]
    assert seen["env"]["TVGRAD_PROFILE"] == "ci" and "not slow and not gpu" in seen["cmd"]


@pytest.mark.parametrize("call", ["_run", "_self_test", "_make_test"])
def test_a_command_that_hangs_counts_as_failing(monkeypatch, call):
    """A mutant that makes a command hang is caught by that command, not lost."""
    def run(cmd, **kw):
        raise sample.subprocess.TimeoutExpired(cmd, kw["timeout"])
    monkeypatch.setattr(sample.subprocess, "run", run)
    result = getattr(sample, call)(["x"], 1) if call == "_run" else getattr(sample, call)(1)
    assert result[0] is False
    if call != "_run":
        assert result[2] == ["(timed out)"]


FUTURE = "from __future__ import annotations\n"
SRC = ("def f(a: int | None = 1 | 2, *, b: list[int] = []) -> dict[str, int | None]:\n"
       "    x: int | None = a | b\n"
       "    return x\n")


def test_mutants_inside_annotations_are_recognised_and_nothing_else():
    src = FUTURE + SRC
    ops = [(i + 1, j) for i, line in enumerate(src.splitlines()) for j, ch in enumerate(line)
           if ch == "|"]
    inside = {pos: sample.in_annotation(src, pos) for pos in ops}
    # line 2: `int | None` (annotation), `1 | 2` (default value), `int | None` (return);
    # line 3: `int | None` (annotation), `a | b` (value)
    assert [inside[p] for p in ops] == [True, False, True, True, False], inside


def test_annotations_are_kept_where_they_are_evaluated():
    """Without the __future__ import, annotations are evaluated: their mutants are not excluded."""
    assert not any(sample.in_annotation(SRC, (1, j)) for j in range(len(SRC.splitlines()[0])))



GOOD = ("def run(claim, *, variant=None, seed=0):\n"
        "    return {**claim, 'seed': seed * 2}\n"
        "\n"
        "x = run({}, seed=3)\n")


def _git_diff(tmp_path, before: str, after: str) -> str:
    """``git diff -U0`` of ``before`` → ``after`` in a repository of its own (as sample.py logs
    a mutant: the pre-image committed, the mutant applied to the working tree)."""
    git = lambda *a: sample.subprocess.run(["git", *a], cwd=tmp_path, check=True,  # noqa: E731
                                           capture_output=True, text=True).stdout
    git("init", "-q")
    (tmp_path / "m.py").write_text(before)
    git("add", "m.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pre-image")
    (tmp_path / "m.py").write_text(after)
    return git("diff", "-U0", "--", "m.py")


@pytest.mark.parametrize("after, why", [
    (GOOD.replace("claim, *,", "claim, >>,"), "invalid syntax, line 1"),
    (GOOD.replace("{**claim", "{&claim"), "invalid syntax, line 2"),
    (GOOD.replace("seed * 2", "seed >> 2"), None),
    (GOOD.replace("seed * 2", "seed ** 2").replace("x = run", "y = run"), None),
    (GOOD.replace("x = run", "z = 1\nx = run"), None),  # a pure insertion: "@@ -3,0 +4 @@"
])
def test_an_incompetent_mutant_is_recognised_from_its_logged_diff(tmp_path, after, why):
    """The logged ``git diff -U0`` and the blob its ``index`` line names rebuild the mutated
    module exactly (two hunks too), and only a module that does not parse is incompetent."""
    diff = _git_diff(tmp_path, GOOD, after)
    assert sample.mutated_source(diff, tmp_path) == after
    assert sample.incompetent(sample.mutated_source(diff, tmp_path)) == why
    # a diff whose blob this repository lacks, or whose pre-image differs, tells nothing
    assert sample.mutated_source(diff.replace("index ", "index 0000000"), tmp_path) is None
    wrong = "\n".join(x + "#" if x[:1] == "-" and x[:3] != "---" else x for x in diff.split("\n"))
    if wrong != diff:
        assert sample.mutated_source(wrong, tmp_path) is None
    assert sample.incompetent(None) is None


def test_report_leaves_the_incompetent_mutants_out_of_the_rates(tmp_path, monkeypatch):
    """Whether logged by the tool or re-read from a diff logged before it did, an incompetent
    mutant counts neither as killed nor in the denominator, and its row says why."""
    repo = tmp_path / "repo"
    repo.mkdir()
    diff = _git_diff(repo, GOOD, GOOD.replace("claim, *,", "claim, >>,"))
    log = tmp_path / "log.jsonl"
    recs = [dict(module="theory/a.py", line=i, operator="op", occurrence=0, killed_by_tests=t,
                 killed_by_verify=t) for i, t in enumerate([True, True, True, False])]
    recs[0]["incompetent"] = "invalid syntax, line 7"
    recs[1]["diff"] = diff
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    monkeypatch.setattr(sample, "ROOT", repo)
    text = sample.report(log, {})
    assert text.startswith("4 sampled mutants, 2 incompetent (the mutated module does not "
                           "parse), 0 equivalent; of the 2 others:"), text
    assert "killed by verify alone: 1/2 = 50 %" in text
    assert "| `theory/a.py:0:op:0` | killed | killed | incompetent: invalid syntax, line 7 |" \
        in text
    assert "| `theory/a.py:1:op:0` | killed | killed | incompetent: invalid syntax, line 1 |" \
        in text
    assert "| `theory/a.py:2:op:0` | killed | killed |  |" in text


def _audit_one(tmp_path, monkeypatch, mutated_text: str, diff: str) -> dict:
    """``audit`` of one mutant of ``theory/a.py`` in a checkout under ``tmp_path`` whose
    application writes ``mutated_text`` and gives ``diff``: its log record."""
    mod = tmp_path / "theory" / "a.py"
    mod.parent.mkdir()
    m = dict(module="theory/a.py", operator="core/Op", occurrence=0, line=1)
    monkeypatch.setattr(sample, "ROOT", tmp_path)
    monkeypatch.setattr(sample, "_mutants", lambda *a: [m])

    @sample.contextlib.contextmanager
    def mutated(_):
        mod.write_text(mutated_text)
        yield diff
    monkeypatch.setattr(sample, "_mutated", mutated)
    sample.audit(1, 0, tmp_path / "log.jsonl", False, [], as_verify=True)
    (rec,) = map(json.loads, (tmp_path / "log.jsonl").open())
    return rec


def test_an_incompetent_mutant_is_logged_without_running_anything(tmp_path, monkeypatch):
    """Nothing to run for a module that does not parse: it is logged as such, in no time."""
    for name in ("_self_test", "_run", "_make_test"):
        monkeypatch.setattr(sample, name, lambda *a, **k: pytest.fail("ran a command"))
    rec = _audit_one(tmp_path, monkeypatch, GOOD.replace("claim, *,", "claim, >>,"), "diff")
    assert rec["incompetent"] == "invalid syntax, line 1" and rec["seconds"] == 0.0
    assert rec["killed_by_verify"] and rec["killed_by_campaign"] is None
    assert sample.report(tmp_path / "log.jsonl", {}).startswith("1 sampled mutants, 1 incompetent")


def test_a_competent_mutants_record_says_so_and_the_report_trusts_it(tmp_path, monkeypatch):
    """A new log records the parse check for every mutant (None: it parses), so ``--report``
    reads it instead of rebuilding the module from git for each record."""
    monkeypatch.setattr(sample, "_self_test", lambda *a, **k: (False, 1.0, ["t"]))
    rec = _audit_one(tmp_path, monkeypatch, GOOD, "index 1234567..89abcde 100644")
    log = tmp_path / "log.jsonl"
    assert "incompetent" in rec and rec["incompetent"] is None
    monkeypatch.setattr(sample, "mutated_source", lambda *a: pytest.fail("re-read from git"))
    assert sample.report(log, {}).startswith("1 sampled mutants, 0 equivalent; of the 1 others:")
