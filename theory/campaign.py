"""The verification campaign: run every claim (and every planted wrong variant) under
Hypothesis, record every example, and write ``theory.json`` / ``theory_examples.csv``
atomically after each claim, so an interrupted run leaves valid partial results."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import shlex
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import hypothesis
from hypothesis import Phase, given, settings

from .claims import CLAIMS, DIVERGED, HOLDS, INCONCLUSIVE, VIOLATED, Claim, get_claim
from .errors import InvalidInput
from .profiles import EXAMPLES, load_profile

SCHEMA_VERSION = 1
STATUS_VERIFIED, STATUS_VIOLATED, STATUS_DIVERGED, STATUS_ERROR = (
    "verified", "violated", "diverged", "error")


class _Violation(AssertionError):
    """Raised inside the Hypothesis test body so that it shrinks the failing case."""


@dataclass
class ExampleRecord:
    index: int
    case: str
    summary: dict
    verdict: str
    seconds: float
    measurements: dict
    detail: str = ""


@dataclass
class RunResult:
    """What running one claim (or one of its variants) under Hypothesis found."""

    claim_id: str
    variant: str | None
    records: list[ExampleRecord] = field(default_factory=list)
    first_failure_index: int | None = None
    counterexample: dict | None = None
    error: str | None = None
    seconds: float = 0.0
    budget_exhausted: bool = False

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.records)


def _blob(exc: BaseException) -> str | None:
    for note in getattr(exc, "__notes__", []) or []:
        m = re.search(r"(@reproduce_failure\(.*\))", note)
        if m:
            return m.group(1)
    return None


def _note(text: str) -> None:
    """hypothesis.note inside a Hypothesis test; nothing for the pinned examples run outside."""
    if hypothesis.currently_in_test_context():
        hypothesis.note(text)


def reproduce_command(claim_id: str, case_json: str, variant: str | None = None) -> str:
    cmd = f"python -m theory reproduce --claim {claim_id} --case {shlex.quote(case_json)}"
    return cmd + (f" --variant {variant}" if variant else "")


def run_claim(claim: Claim, *, variant: str | None = None, max_examples: int, seed: int,
              derandomize: bool = False, shrink: bool = True, budget_s: float | None = None,
              progress: Callable[[ExampleRecord], None] | None = None) -> RunResult:
    """Run ``claim`` (or its ``variant``) on its pinned examples, then ``max_examples``
    Hypothesis examples. Stops at the first violation or error, which Hypothesis then shrinks
    (when ``shrink``); the last failing call is the minimal counterexample.

    With ``budget_s``, random examples stop being generated once that many seconds have passed
    (each later draw is rejected with ``assume(False)`` until Hypothesis gives up, a few ms
    each); the result then says ``budget_exhausted``. Pinned examples always run."""
    res = RunResult(claim.id, variant)
    state = {"failed": False, "last_fail": None}

    def body(case: Any) -> None:
        t0 = time.perf_counter()
        if deadline is not None and t0 > deadline and not state["failed"] \
                and hypothesis.currently_in_test_context():
            res.budget_exhausted = True
            hypothesis.assume(False)
        _note(f"case = {case.to_json()}")
        try:
            out = claim.run(case, variant)
        except Exception as exc:  # noqa: BLE001 - every error is recorded, then re-raised
            state["last_fail"] = (case, "error", {}, traceback.format_exc())
            if not state["failed"]:
                state["failed"] = True
                res.records.append(ExampleRecord(len(res.records), case.to_json(),
                                                 case.summary(), "error",
                                                 time.perf_counter() - t0, {}, repr(exc)))
                res.first_failure_index = len(res.records)
            raise
        if not state["failed"]:  # while shrinking, calls are not examples: not recorded
            rec = ExampleRecord(len(res.records), case.to_json(), case.summary(), out.verdict,
                                time.perf_counter() - t0, out.clean_measurements(), out.detail)
            res.records.append(rec)
            if progress:
                progress(rec)
        if out.verdict == VIOLATED:
            if not state["failed"]:
                state["failed"] = True
                res.first_failure_index = len(res.records)
            state["last_fail"] = (case, VIOLATED, out.clean_measurements(), out.detail)
            _note(out.detail)
            # One raise site: Hypothesis only shrinks towards failures of the same origin.
            raise _Violation(out.detail)

    t0 = time.perf_counter()
    deadline = None if budget_s is None else t0 + budget_s
    # Pinned edge cases first, outside Hypothesis: a failure there is already minimal and is
    # reported as is (Hypothesis does not shrink explicit examples).
    for ex in claim.examples:
        try:
            body(ex)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            _record_failure(res, claim, variant, state, exc)
            res.seconds = time.perf_counter() - t0
            return res
    phases = [Phase.generate] + ([Phase.shrink] if shrink else [])
    test = given(claim.strategy())(body)
    test = settings(max_examples=max_examples, derandomize=derandomize, deadline=None,
                    database=None, phases=phases, print_blob=True,
                    suppress_health_check=list(hypothesis.HealthCheck))(test)
    if not derandomize:
        test = hypothesis.seed(seed)(test)
    try:
        test()
    except KeyboardInterrupt:
        raise
    except hypothesis.errors.Unsatisfiable:
        if not res.budget_exhausted:
            raise
    except BaseException as exc:  # noqa: BLE001
        _record_failure(res, claim, variant, state, exc)
    res.seconds = time.perf_counter() - t0
    return res


def _record_failure(res: RunResult, claim: Claim, variant: str | None, state: dict,
                    exc: BaseException) -> None:
    if state["last_fail"] is None:
        res.error = "".join(traceback.format_exception(exc))
        return
    case, verdict, meas, detail = state["last_fail"]
    cj = case.to_json()
    res.counterexample = {
        "verdict": verdict, "case": cj, "summary": case.summary(),
        "measurements": meas, "detail": detail,
        "reproduce": reproduce_command(claim.id, cj, variant),
        "hypothesis_blob": _blob(exc),
    }
    if verdict == "error":
        res.error = detail


def _quantiles(values: list[float]) -> dict:
    v = sorted(x for x in values if isinstance(x, (int, float)) and math.isfinite(x))
    if not v:
        return {}
    q = lambda p: v[min(len(v) - 1, max(0, int(round(p * (len(v) - 1)))))]  # noqa: E731
    return {"n": len(v), "min": v[0], "q05": q(0.05), "median": q(0.5), "q95": q(0.95),
            "max": v[-1]}


def claim_status(run: RunResult) -> str:
    if run.error:
        return STATUS_ERROR
    if run.count(VIOLATED) or (run.counterexample and run.counterexample["verdict"] == VIOLATED):
        return STATUS_VIOLATED
    if run.count(HOLDS) == 0 and run.count(DIVERGED) > 0:
        return STATUS_DIVERGED
    if run.count(HOLDS) == 0:
        return STATUS_ERROR
    return STATUS_VERIFIED


def summarise(claim: Claim, run: RunResult, audit: list[RunResult]) -> dict:
    keys = sorted({k for r in run.records if r.verdict == HOLDS for k, v in r.measurements.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    stats = {k: _quantiles([r.measurements.get(k) for r in run.records if r.verdict == HOLDS])
             for k in keys}
    return {
        "id": claim.id, "title": claim.title, "statement": claim.statement,
        "notes": claim.notes, "status": claim_status(run),
        "examples": len(run.records), "holds": run.count(HOLDS),
        "violations": run.count(VIOLATED), "diverged": run.count(DIVERGED),
        "inconclusive": run.count(INCONCLUSIVE), "errors": run.count("error") or int(bool(run.error)),
        "seconds": round(run.seconds, 3), "counterexample": run.counterexample,
        "budget_exhausted": run.budget_exhausted,
        "error": run.error, "statistics": {k: s for k, s in stats.items() if s},
        "falsifiability": [
            {"variant": a.variant,
             "description": next(v.description for v in claim.variants if v.id == a.variant),
             "rejected": a.first_failure_index is not None and not a.error,
             "must_reject": next(v.must_reject for v in claim.variants if v.id == a.variant),
             "after_examples": a.first_failure_index,
             "examples_run": len(a.records),
             "rejecting_case": (a.counterexample or {}).get("case"),
             "error": a.error}
            for a in audit],
    }


def _environment(profile: str, seed: int) -> dict:
    import sympy
    import torch
    return {"python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "hypothesis": hypothesis.__version__,
            "sympy": sympy.__version__, "device": "cpu", "profile": profile, "seed": seed,
            "argv": sys.argv}


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; reports are for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def examples_csv(runs: list[RunResult]) -> str:
    rows = []
    for run in runs:
        for r in run.records:
            row = {"claim": run.claim_id, "index": r.index, "verdict": r.verdict,
                   "seconds": round(r.seconds, 4), **r.summary, "case": r.case}
            for k, v in r.measurements.items():
                row[f"m.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
            rows.append(row)
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _job(args: tuple, progress: Callable[[ExampleRecord], None] | None = None) -> RunResult:
    claim_id, variant, max_examples, seed, derandomize, budget_s = args
    import torch
    torch.set_num_threads(1)
    claim = get_claim(claim_id)
    return run_claim(claim, variant=variant, max_examples=max_examples, seed=seed,
                     derandomize=derandomize, shrink=variant is None, budget_s=budget_s,
                     progress=progress)


def check_out_dir(out: Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".tvgrad-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InvalidInput(f"output directory {str(out)!r} is not writable: {exc}") from None
    return out


def verify(*, claims: list[str] | None = None, profile: str = "verify", seed: int = 0,
           out: Path = Path("reports"), jobs: int = 1, max_examples: int | None = None,
           audit: bool = True, html: bool = True, time_budget: float | None = None) -> dict:
    """Run the campaign; write ``theory.json``, ``theory_examples.csv`` (atomically, after
    every claim) and, at the end, ``theory.html`` into ``out``. ``time_budget`` (seconds) is
    shared equally by the runs (claims and variants): each stops drawing new random examples
    when its share is spent."""
    profile = load_profile(profile)
    ids = list(claims or CLAIMS)
    for cid in ids:
        get_claim(cid)
    out = check_out_dir(out)
    n = max_examples or EXAMPLES[profile]
    derandomize = profile == "ci"
    tasks = [(cid, None) for cid in ids]
    if audit:
        tasks += [(cid, v.id) for cid in ids for v in get_claim(cid).variants]
    started = time.time()
    doc = {"schema_version": SCHEMA_VERSION, "environment": _environment(profile, seed),
           "max_examples": n, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "complete": False, "claims": []}
    results: dict[tuple, RunResult] = {}

    def flush() -> None:
        doc["claims"] = [
            summarise(get_claim(cid), results[(cid, None)],
                      [results[(cid, v.id)] for v in get_claim(cid).variants
                       if (cid, v.id) in results])
            for cid in ids if (cid, None) in results]
        doc["duration_s"] = round(time.time() - started, 2)
        atomic_write(out / "theory.json", json.dumps(doc, indent=2, allow_nan=False))
        atomic_write(out / "theory_examples.csv",
                     examples_csv([results[(c, None)] for c in ids if (c, None) in results]))

    from tqdm import tqdm
    bar = tqdm(total=len(tasks), desc="claims and variants", unit="run", file=sys.stderr,
               dynamic_ncols=True)
    if time_budget is not None and time_budget <= 0:
        raise InvalidInput(f"time budget must be > 0 seconds, got {time_budget!r}")
    share = None if time_budget is None else time_budget * max(jobs, 1) / len(tasks)
    doc["time_budget_s"] = time_budget
    args = [(cid, v, n, seed, derandomize, share) for cid, v in tasks]
    try:
        if jobs > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for (cid, v), res in zip(tasks, pool.map(_job, args)):
                    results[(cid, v)] = res
                    bar.set_postfix_str(f"{cid}{'/' + v if v else ''}")
                    bar.update()
                    flush()
        else:
            for (cid, v), a in zip(tasks, args):
                bar.set_postfix_str(f"{cid}{'/' + v if v else ''}")
                if v is None:  # a per-claim bar over its examples (serial runs only)
                    inner = tqdm(total=n + len(get_claim(cid).examples), desc=cid, unit="ex",
                                 leave=False, file=sys.stderr, dynamic_ncols=True)
                    results[(cid, v)] = _job(a, progress=lambda rec: inner.update())
                    inner.close()
                else:
                    results[(cid, v)] = _job(a)
                bar.update()
                flush()
    finally:
        bar.close()
    doc["complete"] = True
    flush()
    if html:
        from reports.theory_report import write_report
        write_report(out)
    return doc


def summary_table(doc: dict) -> str:
    lines = [f"{'claim':28} {'status':9} {'examples':>8} {'holds':>6} {'viol':>5} {'div':>4} "
             f"{'inconcl':>7} {'variants rejected':>18} {'s':>7}"]
    for c in doc["claims"]:
        fal = c["falsifiability"]
        rej = f"{sum(f['rejected'] for f in fal)}/{len(fal)}"
        lines.append(f"{c['id']:28} {c['status']:9} {c['examples']:>8} {c['holds']:>6} "
                     f"{c['violations']:>5} {c['diverged']:>4} {c['inconclusive']:>7} "
                     f"{rej:>18} {c['seconds']:>7.1f}")
        if c["counterexample"]:
            lines.append(f"    counterexample: {c['counterexample']['reproduce']}")
        for f in fal:
            if not f["rejected"]:
                what = "NOT REJECTED" if f["must_reject"] else "not rejected (tightness probe)"
                lines.append(f"    {what}: variant {f['variant']} ({f['description']})")
    return "\n".join(lines)


def exit_code(doc: dict) -> int:
    bad = [c for c in doc["claims"] if c["status"] in (STATUS_VIOLATED, STATUS_ERROR)
           or not all(f["rejected"] or not f["must_reject"] for f in c["falsifiability"])]
    return 1 if bad else 0
