"""``tvgrad verify --self-test``: the tool runs its reference tests before any claim.

The real self-test runs tests/theory, this file included, so these tests run it on stand-in
checkouts built in tmp_path (a passing, a failing, an empty one), and drive the command line
with the self-test's result stubbed.
"""

import json

import pytest

from tvgrad.cli import main
from tvgrad.errors import InvalidInput
from tvgrad.theory import selftest

PASS = "def test_a():\n    assert 1 + 1 == 2\n\n\ndef test_b():\n    pass\n"
FAIL = "def test_ok():\n    pass\n\n\ndef test_wrong_constant():\n    assert 0.9 * 2 == 2\n"


def _checkout(root, **files):
    tests = root / "tests" / "theory"
    tests.mkdir(parents=True)
    (root / "tests" / "__init__.py").write_text("")
    (tests / "__init__.py").write_text("")
    for name, text in files.items():
        (tests / f"{name}.py").write_text(text)
    return root


def test_a_passing_checkout_is_passed_with_its_counts(tmp_path):
    r = selftest.run_self_test(1, root=_checkout(tmp_path, test_pass=PASS))
    assert (r["status"], r["tests"], r["passed"], r["failed"], r["failures"]) == \
        ("passed", 2, 2, 0, [])
    assert r["command"].startswith("TVGRAD_PROFILE=ci pytest")
    assert "passed: 2 passed, 0 failed" in selftest.describe(r)
    assert "output" not in r  # pytest's output is kept only for a failure with none named


def test_the_self_tests_duration_is_its_wall_time_to_a_tenth_of_a_second(tmp_path, monkeypatch):
    from types import SimpleNamespace
    clock = iter([50.0, 62.3456])
    monkeypatch.setattr(selftest, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    r = selftest.run_self_test(1, root=_checkout(tmp_path, test_pass=PASS))
    assert (r["status"], r["duration_s"]) == ("passed", 12.3)


SKIP_AND_DESELECTED = (
    "import pytest\n\n\n@pytest.mark.skip(reason='stand-in')\ndef test_skipped():\n    pass\n\n\n"
    "@pytest.mark.system\ndef test_machine_dependent():\n    assert False\n\n\n"
    "@pytest.mark.slow\ndef test_slow():\n    assert False\n")


def test_skipped_tests_are_counted_apart_and_system_or_slow_ones_not_run(tmp_path):
    """passed = run − failed, where run = collected − skipped; the machine-dependent (system)
    and slow tests are deselected, as MARKERS says, and their failures do not count."""
    r = selftest.run_self_test(1, root=_checkout(tmp_path, test_pass=PASS,
                                                 test_other=SKIP_AND_DESELECTED,
                                                 test_one="def test_c():\n    pass\n"))
    assert (r["status"], r["tests"], r["passed"], r["failed"], r["skipped"]) == \
        ("passed", 4, 3, 0, 1)
    assert "passed: 3 passed, 0 failed, 1 skipped" in selftest.describe(r)


def test_a_failing_test_fails_the_self_test_and_is_named(tmp_path):
    r = selftest.run_self_test(2, root=_checkout(tmp_path, test_pass=PASS, test_fail=FAIL))
    assert (r["status"], r["passed"], r["failed"]) == ("failed", 3, 1)
    assert r["failures"] == ["tests.theory.test_fail::test_wrong_constant"]
    assert "FAILED tests.theory.test_fail::test_wrong_constant" in selftest.describe(r)
    assert "output" not in r  # the named failure says it; the log is not repeated


def test_a_collection_error_or_no_test_is_not_a_pass_but_a_single_test_is(tmp_path):
    broken = selftest.run_self_test(1, root=_checkout(tmp_path / "a", test_x="import nowhere\n"))
    assert broken["status"] == "failed" and broken["failed"] == 1
    empty = selftest.run_self_test(1, root=_checkout(tmp_path / "b"))
    assert empty["status"] == "failed" and empty["passed"] == 0
    assert "no tests ran" in empty["output"]
    one = selftest.run_self_test(1, root=_checkout(tmp_path / "c", test_one="def test_c():\n    pass\n"))
    assert (one["status"], one["passed"]) == ("passed", 1)  # the edge: one test ran and passed


def test_a_self_test_whose_every_test_is_skipped_is_not_a_pass(tmp_path):
    """pytest exits 0 when every collected test is skipped: nothing was checked, so the
    self-test has not passed (its status by the count of tests that ran, not by pytest's code)."""
    skipped = "import pytest\n\n\n@pytest.mark.skip(reason='stand-in')\ndef test_s():\n    pass\n"
    r = selftest.run_self_test(1, root=_checkout(tmp_path, test_skipped=skipped))
    assert (r["status"], r["tests"], r["skipped"], r["passed"]) == ("failed", 1, 1, 0)
    assert not selftest.trusted(r)


@pytest.mark.parametrize("jobs, parallel", [(1, False), (2, True), (3, True)])
def test_the_self_test_runs_in_parallel_from_two_jobs(tmp_path, monkeypatch, jobs, parallel):
    """``--jobs N`` with N ≥ 2 runs the self-test on N pytest-xdist workers (when xdist is
    installed), one job runs it in-process: the command recorded says which."""
    import importlib.util
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "xdist" else found(name, *a))
    ran = []
    real = selftest.subprocess.run

    def spy(cmd, **kw):  # records the command, runs it in-process (no workers to start)
        ran.append(cmd)
        return real([c for c in cmd if c not in ("-n", str(jobs))], **kw)
    monkeypatch.setattr(selftest.subprocess, "run", spy)
    r = selftest.run_self_test(jobs, root=_checkout(tmp_path, test_pass=PASS))
    assert r["status"] == "passed"
    assert (f"-n {jobs} " in r["command"]) is parallel, r["command"]
    workers = ran[0][ran[0].index("-n") + 1] if "-n" in ran[0] else None
    assert workers == (str(jobs) if parallel else None), ran[0]


def test_a_self_test_that_stops_early_shows_the_last_15_lines_of_its_output(tmp_path):
    """A broken conftest stops pytest before any test (no failure to name): the summary keeps
    the last 15 lines of its output, where the error is, not the whole log."""
    root = _checkout(tmp_path, test_pass=PASS)
    (root / "tests" / "theory" / "conftest.py").write_text(
        "for i in range(40):\n    print(f'noise {i}')\nraise RuntimeError('broken conftest')\n")
    r = selftest.run_self_test(1, root=root)
    assert r["status"] == "failed" and r["failures"] == []
    lines = r["output"].splitlines()
    assert len(lines) == 15 and "broken conftest" in r["output"] and "noise 0" not in r["output"]


def test_an_interrupted_self_test_is_not_a_pass_even_if_what_ran_passed(tmp_path):
    """pytest stopped midway (exit code 2, as on Ctrl-C): every test that ran passed, none
    failed, and still the self-test did not pass — the rest never ran."""
    stop = "import pytest\n\n\ndef test_z_stop():\n    pytest.exit('interrupted', returncode=2)\n"
    r = selftest.run_self_test(1, root=_checkout(tmp_path, test_pass=PASS, test_stop=stop))
    assert r["failed"] == 0 and r["passed"] >= 1
    assert r["status"] == "failed" and not selftest.trusted(r)


def test_without_a_checkout_the_error_says_how_to_get_one(tmp_path):
    with pytest.raises(InvalidInput, match=r"tests/theory does not exist.*make install"):
        selftest.source_tests(tmp_path)


def test_the_real_checkout_has_its_tests():
    assert selftest.source_tests().name == "theory"


def _stub(monkeypatch, status, **counts):
    result = {"status": status, "tests": 3, "passed": 2 if status == "failed" else 3,
              "failed": 1 if status == "failed" else 0, "skipped": 0,
              "failures": ["tests.theory.test_bound::test_c2"] if status == "failed" else [],
              "duration_s": 0.1, "command": "TVGRAD_PROFILE=ci pytest -q tests/theory"}
    result.update(counts)
    monkeypatch.setattr(selftest, "run_self_test", lambda jobs: result)


@pytest.mark.parametrize("status, counts", [
    ("failed", {}),
    ("passed", dict(passed=2, failed=1, failures=["tests.theory.test_bound::test_c2"])),
    ("passed", dict(passed=0, tests=0)),
])
def test_verify_runs_no_claim_when_the_self_test_fails(tmp_path, monkeypatch, capsys, status,
                                                       counts):
    """Failed by its status, or by its counts even where the status says passed (a bug in how
    the status is decided must not let a failing self-test through)."""
    _stub(monkeypatch, status, **counts)
    rc = main(["verify", "--self-test", "--claim", "one_epoch_exact", "--max-examples", "1",
               "--no-audit", "--jobs", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1 and "no claim was run" in out
    if counts.get("failures") or status == "failed":
        assert "FAILED tests.theory.test_bound::test_c2" in out
    assert not (tmp_path / "theory.json").exists()


def test_trusted_needs_the_status_and_the_counts_to_agree():
    ok = {"status": "passed", "passed": 3, "failed": 0}
    assert selftest.trusted(ok) and selftest.trusted({**ok, "passed": 1})  # the edge: one test
    for bad in (dict(status="failed"), dict(failed=1), dict(passed=0)):
        assert not selftest.trusted({**ok, **bad}), bad


def test_a_passed_self_test_is_recorded_in_the_json_and_the_html(tmp_path, monkeypatch, capsys):
    _stub(monkeypatch, "passed")
    rc = main(["verify", "--self-test", "--claim", "one_epoch_exact", "--max-examples", "1",
               "--no-audit", "--jobs", "1", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "theory.json").read_text())
    assert doc["self_test"]["status"] == "passed" and doc["self_test"]["passed"] == 3
    html = (tmp_path / "theory.html").read_text()
    assert "Tool self-test before the claims: <b>3 reference tests passed</b>" in html
    assert "self-test passed: 3 passed" in capsys.readouterr().out


def test_make_verify_self_tests_first():
    from pathlib import Path
    make = (Path(selftest.__file__).resolve().parents[1] / "Makefile").read_text()
    verify = make.split("\nverify:")[1].split("\n\n")[0]
    assert "tvgrad verify --self-test" in verify


def test_the_result_lists_the_first_20_failures_and_counts_them_all(tmp_path):
    """run_self_test keeps the first 20 failing ids (its docstring's promise, and what describe
    prints) however many fail, and counts every one; 20 failures are all listed."""
    many = ("import pytest\n\n\n@pytest.mark.parametrize('i', range({}))\n"
            "def test_wrong(i):\n    assert i < 0\n")
    r = selftest.run_self_test(1, root=_checkout(tmp_path / "a", test_many=many.format(22)))
    assert r["failed"] == 22 and len(r["failures"]) == 20, (r["failed"], r["failures"])
    assert len(set(r["failures"])) == 20 and all("test_wrong" in f for f in r["failures"])
    r = selftest.run_self_test(1, root=_checkout(tmp_path / "b", test_many=many.format(20)))
    assert r["failed"] == 20 and len(r["failures"]) == 20, (r["failed"], r["failures"])


def test_describe_lists_the_first_failures_and_counts_the_rest():
    r = {"status": "failed", "passed": 3, "failed": 22, "skipped": 0, "duration_s": 1.0,
         "failures": [f"t::test_{i}" for i in range(20)]}
    text = selftest.describe(r)
    assert text.count("  FAILED t::test_") == 20 and "  … and 2 more" in text
    r["failed"] = 20
    assert "more" not in selftest.describe(r)
    r.update(failed=0, failures=[], output="ERROR: usage: pytest …")
    assert selftest.describe(r).endswith("ERROR: usage: pytest …")
