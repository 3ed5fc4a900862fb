"""``make mutate-sample``: a seeded random sample of cosmic-ray mutants over all of ``theory/``,
each checked by the two stages of ``make verify`` — its self-test (the fast tests of
``tests/theory``, a subset of ``make test``) and the campaign (``tvgrad verify``) — to estimate
the kill rates the falsifiability issue targets (≥ 95 % by tests + verify, ≥ 90 % by
``make verify`` alone), and the campaign's own share.

Run it in a checkout of its own (each mutant is applied to the files on disk with
``cosmic-ray apply`` and undone with ``git checkout``); the virtual environment must import
*that* checkout (``pip install -e .`` there). Results are appended, one JSON line per mutant, to
``--log`` as they finish, so an interrupted audit keeps what it ran and ``--resume`` skips those;
``--report`` summarises the log as a Markdown table for ``docs/mutation.md`` (every survivor is
then classified there: equivalent, with the reason, or a blind spot).

Why a sample: all of ``theory/`` is ≈ 12 000 mutants, each ≈ 1–2 minutes with ``verify``; a
uniform sample of n gives the kill rate with a 95 % Wilson score interval (:func:`wilson`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
SKIP = ("theory/bench.py", "theory/adversary.py", "theory/sharp.py", "theory/cli.py",
        "theory/report.py")
"""Not part of the checks: benchmarks, the adversary and sharp-case search commands, the CLI
(its verdict-to-exit-code logic is in campaign.py, which is sampled) and the HTML report (a
rendering of the JSON, tested by tests/theory/test_report.py and tests/test_browser.py)."""


def tests_for(module: str) -> list[str]:
    """The test files that mirror ``module`` (``theory/a/b.py`` → ``tests/theory/a/test_b.py``),
    plus the claims' tests for anything a claim uses."""
    p = Path(module)
    mirror = Path("tests") / p.parent / f"test_{p.stem}.py"
    out = [str(mirror)] if (ROOT / mirror).exists() else []
    if p.parent.name == "claims" or p.stem in ("bound", "cases", "training", "derivatives",
                                               "spectrum", "rounding", "activations", "losses",
                                               "module_problem", "strategies", "nets"):
        out += ["tests/theory/claims", "tests/theory/test_bound_soundness.py",
                "tests/theory/test_third_order.py"]
    if p.stem in ("campaign", "profiles", "limits", "report"):
        out += ["tests/theory/test_verdicts.py", "tests/theory/test_campaign_misuse.py",
                "tests/theory/test_campaign.py"]
    return sorted(set(out)) or ["tests/theory"]


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The (start, end) positions, as (line, column), of every type annotation in ``source``:
    arguments', returns' and annotated assignments' (``x: int | None = ...``)."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        found = []
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in found]
    return spans


@functools.lru_cache(maxsize=None)
def _deferred_spans(source: str) -> tuple:
    """:func:`annotation_spans` of a module that defers its annotations, else none (cached:
    every mutant of a module asks)."""
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                 and any(a.name == "annotations" for a in n.names)
                 for n in ast.parse(source).body)
    return tuple(annotation_spans(source)) if future else ()


def in_annotation(source: str, start: tuple[int, int]) -> bool:
    """Whether a mutation at ``start`` (line, column) lies inside a type annotation of a module
    with ``from __future__ import annotations``, where annotations are never evaluated, so that a
    mutant there (``int | None`` → ``int & None``) is equivalent: such mutants are left out of the
    sample unless ``--keep-annotations``. (In a module without that import, module-level
    annotations are evaluated: not excluded.)"""
    return any(a <= tuple(start) < b for a, b in _deferred_spans(source))


def _mutants(work: Path, keep_annotations: bool = False) -> list[dict]:
    cfg, db = work / "cr.toml", work / "session.sqlite"
    cfg.write_text('[cosmic-ray]\nmodule-path = "theory"\ntimeout = 600.0\nexcluded-modules = '
                   + json.dumps(list(SKIP)) + '\ntest-command = "true"\n\n'
                   '[cosmic-ray.distributor]\nname = "local"\n')
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "cosmic-ray"), "init", str(cfg), str(db)], check=True, cwd=ROOT,
                   capture_output=True)
    dump = subprocess.run([str(bin_dir / "cosmic-ray"), "dump", str(db)], check=True, cwd=ROOT,
                          capture_output=True, text=True).stdout
    out, sources = [], {}
    for line in dump.splitlines():
        item = json.loads(line)[0]
        for m in item["mutations"]:
            path = Path(m["module_path"])
            if not keep_annotations:
                if path not in sources:
                    sources[path] = (ROOT / path).read_text(encoding="utf-8")
                if in_annotation(sources[path], tuple(m["start_pos"])):
                    continue
            out.append({"module": str(Path(m["module_path"]).as_posix()), "operator": m["operator_name"],
                        "occurrence": m["occurrence"], "line": m["start_pos"][0]})
    # cosmic-ray's dump order differs from run to run (two runs on one checkout listed the
    # same 12842 mutants in different orders), so a seed draws one sample only once sorted
    return sorted(out, key=_key)


def _run_capturing(cmd: list[str], timeout: float, env: dict | None = None
                   ) -> tuple[subprocess.CompletedProcess | None, float]:
    """Run ``cmd`` in the checkout: (the finished process, or None if it timed out; seconds)."""
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        proc = None  # a mutant that hangs the command is caught by it
    return proc, time.time() - t0


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[bool, float]:
    proc, secs = _run_capturing(cmd, timeout, env)
    return proc is not None and proc.returncode == 0, secs


SELF_TEST = ("import json, sys; from tvgrad.theory.selftest import run_self_test, trusted; "
             "r = run_self_test(jobs=2); print(json.dumps(r)); sys.exit(not trusted(r))")
"""``make verify``'s first stage exactly (:func:`tvgrad.theory.selftest.run_self_test`, its
markers and profile), in a fresh interpreter that imports the mutated checkout."""


def _self_test(timeout: float = 900) -> tuple[bool, float, list[str]]:
    """Run the self-test on the checkout as it is: (passed, seconds, failing test ids)."""
    proc, secs = _run_capturing([sys.executable, "-c", SELF_TEST], timeout)
    if proc is None:
        return False, secs, ["(timed out)"]
    try:
        failures = json.loads(proc.stdout.strip().splitlines()[-1])["failures"]
    except (ValueError, IndexError, KeyError):
        failures = [f"(no result: rc {proc.returncode}) {proc.stderr.strip()[-300:]}"]
    return proc.returncode == 0, secs, failures


MAKE_TEST = ("-m", "pytest", "-q", "-n", "auto", "-p", "no:cacheprovider", "tests/",
             "-m", "not slow and not gpu")
"""``make test``'s command (its markers; Hypothesis profile ``ci`` unless TVGRAD_PROFILE says
otherwise), run with this interpreter."""


def _make_test(timeout: float = 1800) -> tuple[bool, float, list[str]]:
    """Run ``make test``'s suite on the checkout as it is: (passed, seconds, failing test ids)."""
    env = {**os.environ, "TVGRAD_PROFILE": os.environ.get("TVGRAD_PROFILE", "ci")}
    proc, secs = _run_capturing([sys.executable, *MAKE_TEST], timeout, env)
    if proc is None:
        return False, secs, ["(timed out)"]
    failures = [x.split()[1] for x in proc.stdout.splitlines()
                if x.startswith(("FAILED ", "ERROR ")) and len(x.split()) > 1]
    if proc.returncode and not failures:
        failures = [f"(rc {proc.returncode}) {(proc.stdout + proc.stderr).strip()[-300:]}"]
    return proc.returncode == 0, secs, failures


@contextlib.contextmanager
def _mutated(m: dict) -> Iterator[str]:
    """Apply mutant ``m`` to the checkout with cosmic-ray, give its ``git diff -U0``, and undo
    it (``git checkout``) whatever happens."""
    bin_dir = Path(sys.executable).parent
    try:
        subprocess.run([str(bin_dir / "cosmic-ray"), "apply", m["module"], m["operator"],
                        str(m["occurrence"])], check=True, cwd=ROOT, capture_output=True)
        yield subprocess.run(["git", "diff", "-U0", "--", m["module"]], cwd=ROOT,
                             capture_output=True, text=True).stdout
    finally:
        subprocess.run(["git", "checkout", "--", m["module"]], cwd=ROOT, check=True)


def _key(m: dict) -> tuple:
    return m["module"], m["operator"], m["occurrence"]


def _logged(log: Path) -> set[tuple]:
    """The mutants already in ``log`` (to resume an interrupted run)."""
    return {_key(d) for d in map(json.loads, log.open())} if log.exists() else set()


def mutated_source(diff: str, root: Path | None = None) -> str | None:
    """The mutated module as a mutant's logged ``git diff -U0`` made it: the pre-image blob that
    the diff's ``index`` line names (``git cat-file``, in ``root``, default this checkout) with
    the hunks applied; None where the diff names no blob that repository holds, or a blob that
    is not its pre-image."""
    head = re.search(r"^index ([0-9a-f]+)\.\.", diff, re.M)
    if head is None:
        return None
    blob = subprocess.run(["git", "cat-file", "-p", head.group(1)], cwd=root or ROOT,
                          capture_output=True, text=True)
    if blob.returncode:
        return None
    lines = blob.stdout.splitlines(keepends=True)
    hunks = re.findall(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@.*\n((?:[-+].*(?:\n|$))*)",
                       diff, re.M)
    for start, count, body in reversed(hunks):  # bottom-up: earlier line numbers stay valid
        count = 1 if count == "" else int(count)
        at = int(start) - 1 if count else int(start)  # "-n,0" inserts after line n
        body = body.splitlines()
        minus = [x[1:] for x in body if x.startswith("-")]
        if [x.rstrip("\r\n") for x in lines[at:at + count]] != minus:
            return None  # the blob is not the diff's pre-image
        lines[at:at + count] = [x[1:] + "\n" for x in body if x.startswith("+")]
    return "".join(lines)


def incompetent(source: str | None) -> str | None:
    """Why a mutated module is no program at all — its ``SyntaxError`` ("invalid syntax, line
    206") — or None (also where the source is unknown).

    Some of cosmic-ray's operator swaps do not parse: ``Mul`` → ``RShift`` on the ``*`` that
    marks keyword-only parameters (``def f(a, >>, b)``), ``Pow`` → ``BitAnd`` on a dict display's
    ``**``. Such an *incompetent* mutant fails every test at import, so it would count as
    killed while it says nothing of the tests: it is left out of a sample's rates, like an
    equivalent mutant (its draw is kept, so that a seed still draws the same sample)."""
    if source is None:
        return None
    try:
        ast.parse(source)
    except SyntaxError as e:
        return f"{e.msg}, line {e.lineno}"
    return None


def _changed_lines(diff: str) -> list[str]:
    return [x for x in diff.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]


def remeasure_self_test(src: Path, log: Path) -> None:
    """Re-run the self-test on the mutants of ``src`` that the campaign missed (the campaign's
    result is kept): for a sample whose self-test column is void. Each mutant is applied again
    and must change the same lines as recorded (else the code moved on: it is skipped, said)."""
    done = _logged(log)
    recs = [r for r in map(json.loads, src.open()) if not r["killed_by_campaign"]]
    print(f"{len(recs)} mutants of {src} survived the campaign; re-running the self-test", flush=True)
    for i, r in enumerate(recs):
        if _key(r) in done:
            continue
        with _mutated(r) as diff:
            if _changed_lines(diff) != _changed_lines(r["diff"]):
                print(f"[{i + 1}/{len(recs)}] {r['module']}:{r['line']}: the mutant no longer "
                      f"applies as recorded; skipped\n{diff}", flush=True)
                continue
            ok, secs, failures = _self_test()
        rec = {**r, "killed_by_tests": not ok, "killed_by_verify": not ok,
               "self_test_failures": failures, "seconds_self_test": round(secs, 1)}
        with log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"[{i + 1}/{len(recs)}] {r['module']}:{r['line']} {r['operator']} "
              f"self-test={'killed' if not ok else 'survived'} ({secs:.0f} s) {failures[:3]}",
              flush=True)


def audit(n: int, seed: int, log: Path, resume: bool, verify_args: list[str],
          as_verify: bool = False, keep_annotations: bool = False,
          with_tests: bool = False) -> None:
    """Apply, check and undo ``n`` sampled mutants; append one JSON line each to ``log``.

    With ``as_verify``, each mutant runs as ``make verify`` runs: the campaign only when the
    self-test passes (about half the time of both; the campaign's own share is then measured
    on the self-test's survivors only, ``killed_by_campaign`` None on the others).

    With ``with_tests``, each survivor of ``make verify`` also runs ``make test``'s suite
    (``killed_by_make_test``; None where ``make verify`` already killed it), so that the rate
    "killed by make test + make verify" is measured rather than bounded below. The suite must
    pass on the unmutated checkout first (else every survivor would read killed)."""
    work = Path(tempfile.mkdtemp(prefix="tvgrad-sample-"))
    mutants = _mutants(work, keep_annotations)
    rng = random.Random(seed)
    sample = rng.sample(mutants, min(n, len(mutants)))
    done = _logged(log) if resume else set()
    bin_dir = Path(sys.executable).parent
    if with_tests:
        ok, secs, failures = _make_test()
        if not ok:
            raise SystemExit(f"make test fails on the unmutated checkout ({secs:.0f} s): "
                             f"{failures[:5]}; fix that before --with-tests")
        print(f"make test passes on the unmutated checkout ({secs:.0f} s)", flush=True)
    print(f"{len(mutants)} mutants in theory/"
          f"{'' if keep_annotations else ' outside type annotations'}; sampling {len(sample)} (seed {seed})", flush=True)
    for i, m in enumerate(sample):
        if _key(m) in done:
            continue
        with _mutated(m) as diff:
            why = incompetent((ROOT / m["module"]).read_text(encoding="utf-8"))
            if why:  # no program: nothing to run (it would fail at import, "killed")
                tests_ok, t_tests, failures = False, 0.0, [f"(incompetent: {why})"]
            else:
                tests_ok, t_tests, failures = _self_test()
            campaign_ok, t_verify = None, 0.0
            if not why and (tests_ok or not as_verify):
                out = Path(tempfile.mkdtemp(prefix="tvgrad-sample-verify-"))
                campaign_ok, t_verify = _run([str(bin_dir / "tvgrad"), "verify", "--out",
                                              str(out), "--no-html", *verify_args], 900)
            make_test_ok, t_make_test, make_test_failures = None, 0.0, []
            if with_tests and tests_ok and campaign_ok:
                make_test_ok, t_make_test, make_test_failures = _make_test()
        rec = {**m, "diff": diff, "tests": ["tests/theory"], "self_test_failures": failures,
               "killed_by_tests": not tests_ok,
               "killed_by_campaign": None if campaign_ok is None else not campaign_ok,
               "killed_by_verify": not (tests_ok and campaign_ok),
               "seconds": round(t_tests + t_verify, 1), "incompetent": why}
        if with_tests:
            rec.update(killed_by_make_test=None if make_test_ok is None else not make_test_ok,
                       make_test_failures=make_test_failures,
                       seconds_make_test=round(t_make_test, 1))
        with log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"[{i + 1}/{len(sample)}] {m['module']}:{m['line']} {m['operator']} "
              + (f"incompetent ({why}) " if why else "")
              + f"self-test={'killed' if not tests_ok else 'survived'} "
              f"campaign={'not run' if campaign_ok is None else 'killed' if not campaign_ok else 'survived'} "
              + (f"make-test={'killed' if make_test_ok is False else 'survived'} "
                 if make_test_ok is not None else "")
              + f"({rec['seconds'] + rec.get('seconds_make_test', 0.0):.1f} s)", flush=True)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a rate k/n (unlike the normal interval, not of width 0 at
    k = n: 30/30 gives 88.6–100 %)."""
    p = k / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)


def report(log: Path, equivalent: dict[str, str]) -> str:
    """Markdown summary of ``log``; ``equivalent`` maps "module:line:operator:occurrence" to the
    reason a survivor is equivalent (excluded from the rates)."""
    recs = [json.loads(x) for x in log.open()]
    key = lambda r: f"{r['module']}:{r['line']}:{r['operator']}:{r['occurrence']}"  # noqa: E731
    # recorded since the tool checks it; in older logs re-read from the diff and git's blob
    why = {key(r): r["incompetent"] if "incompetent" in r
           else incompetent(mutated_source(r.get("diff", ""))) for r in recs}
    bad = {k: f"incompetent: {v}" for k, v in why.items() if v}
    real = [r for r in recs if key(r) not in equivalent and key(r) not in bad]
    n = len(real)
    both = sum(bool(r["killed_by_tests"] or r["killed_by_verify"] or r.get("killed_by_make_test"))
               for r in real)
    ver = sum(r["killed_by_verify"] for r in real)
    with_campaign = all("killed_by_campaign" in r for r in recs)
    with_make_test = all("killed_by_make_test" in r for r in recs)

    def ci(k):
        if not n:
            return "—"
        lo, hi = wilson(k, n)
        return f"{k}/{n} = {100 * k / n:.0f} % (95 % interval {100 * lo:.0f}–{100 * hi:.0f} %)"
    both_label = ("killed by make test + make verify" if with_make_test else
                  "killed by the self-test + verify (make test not run on the survivors: a "
                  "lower bound for make test + make verify)")
    n_eq = len(recs) - n - len(bad)
    lines = [f"{len(recs)} sampled mutants, "
             + (f"{len(bad)} incompetent (the mutated module does not parse), " if bad else "")
             + f"{n_eq} equivalent; of the {n} others:",
             f"- {both_label}: {ci(both)}", f"- killed by verify alone: {ci(ver)}"]
    if with_campaign:
        ran = [r for r in real if r["killed_by_campaign"] is not None]
        camp = sum(r["killed_by_campaign"] for r in ran)
        if len(ran) == n:
            lines.append(f"- killed by the campaign alone (tvgrad verify without --self-test): "
                         f"{ci(camp)}")
        else:  # --as-verify: the campaign ran only where the self-test passed
            lines.append(f"- the campaign (run only where the self-test passed, as in make "
                         f"verify) killed {camp} of those {len(ran)}")
    kill = lambda b: "not run" if b is None else "killed" if b else "survived"  # noqa: E731
    cols = ("killed_by_tests", "killed_by_campaign", "killed_by_verify") if with_campaign \
        else ("killed_by_tests", "killed_by_verify")
    head = "| mutant | self-test | campaign | make verify | note |" if with_campaign \
        else "| mutant | tests | verify | note |"
    if with_make_test:
        cols += ("killed_by_make_test",)
        head = head.replace(" note |", " make test (verify's survivors) | note |")
    lines += ["", head, "|" + " --- |" * (len(cols) + 2)]
    for r in recs:
        lines.append(f"| `{key(r)}` | " + " | ".join(kill(r[c]) for c in cols)
                     + f" | {equivalent.get(key(r)) or bad.get(key(r), '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run (or summarise) the sampled audit."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=40, help="mutants to sample (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", type=Path, default=ROOT / "build" / "mutation-sample.jsonl")
    ap.add_argument("--resume", action="store_true", help="skip the mutants already in --log")
    ap.add_argument("--report", action="store_true", help="print the Markdown summary of --log")
    ap.add_argument("--equivalent", type=Path, default=None,
                    help="JSON {mutant key: reason} of survivors classified as equivalent")
    ap.add_argument("--remeasure-self-test", type=Path, default=None, metavar="SAMPLE_LOG",
                    help="re-run only the self-test on SAMPLE_LOG's mutants that the campaign "
                         "missed, logging to --log")
    ap.add_argument("--as-verify", action="store_true",
                    help="run the campaign only where the self-test passes, as make verify does "
                         "(about half the time; the campaign's own share is then not measured)")
    ap.add_argument("--keep-annotations", action="store_true",
                    help="also sample mutants inside type annotations (equivalent: never "
                         "evaluated); the samples of seeds 0-11 were drawn with them")
    ap.add_argument("--with-tests", action="store_true",
                    help="also run make test's suite on each survivor of make verify, to measure "
                         "the make test + make verify rate (checks first that it passes unmutated)")
    ap.add_argument("--verify-args", default="--profile verify --seed 20260824 --jobs 2")
    args = ap.parse_args(argv)
    if args.report:
        eq = json.loads(args.equivalent.read_text()) if args.equivalent else {}
        print(report(args.log, eq))
        return 0
    args.log.parent.mkdir(parents=True, exist_ok=True)
    if args.remeasure_self_test:
        remeasure_self_test(args.remeasure_self_test, args.log)
        return 0
    audit(args.n, args.seed, args.log, args.resume, args.verify_args.split(),
          args.as_verify, args.keep_annotations, args.with_tests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
