"""The verification campaign: run every claim (and every planted wrong variant) under
Hypothesis, record every example, and write ``theory.json`` / ``theory_examples.csv``
atomically after each claim, so an interrupted run leaves valid partial results.

The campaign leaves no global state behind: Hypothesis settings are passed to each test
explicitly (no profile is loaded), and the torch thread count is restored after a serial run.
It never imports the report: ``theory.json`` holds everything the report plots (the residual
curves of representative examples included), so the HTML is rendered from the files alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shlex
import signal
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import hypothesis
from hypothesis import Phase, given, settings

from ..errors import InvalidInput, check_positive_int
from ..io import csv_text
from ..publish import locked, publish
from . import DEFAULT_SEED, SCHEMA_VERSION, strategies
from .claims import CLAIMS, DIVERGED, HOLDS, INCONCLUSIVE, VIOLATED, Claim
from .profiles import EXAMPLES, profile_name

CURVES_PER_CLAIM = 3  # residual curves stored per expansion claim (the report plots them)
STATUS_VERIFIED, STATUS_VIOLATED, STATUS_DIVERGED, STATUS_ERROR = (
    "verified", "violated", "diverged", "error")
# an estimate (Claim.estimate) is never "verified": its statuses read as these
ESTIMATE_STATUS = {STATUS_VERIFIED: "consistent", STATUS_VIOLATED: "inconsistent"}


class _Violation(AssertionError):
    """Raised inside the Hypothesis test body so that it shrinks the failing case."""


class _BudgetStop(BaseException):
    """Raised in the test body when the time budget is spent: Hypothesis lets a
    BaseException through at once (no further draws, no shrinking).
    """


@dataclass
class ExampleRecord:
    """One example of a run: the case, its verdict, and what the check measured."""

    index: int
    case: str
    summary: dict
    verdict: str
    seconds: float
    measurements: dict
    detail: str = ""
    curve: dict | None = None  # the residual curve of an expansion check (kept for the report)


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
    asked: int = 0  # examples the profile asks for (pinned + random)

    def count(self, verdict: str) -> int:
        """Number of recorded examples with ``verdict``."""
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


def reproduce_command(claim_id: str, case_json: str, variant: str | None = None,
                      command: str = "tvgrad reproduce") -> str:
    """The shell command that re-runs one claim (or variant) on one case."""
    cmd = f"{command} --claim {claim_id} --case {shlex.quote(case_json)}"
    return cmd + (f" --variant {variant}" if variant else "")


class _Body:
    """The Hypothesis test body of one run: checks a case, records it, raises on failure."""

    def __init__(self, claim: Claim, variant: str | None, res: RunResult,
                 deadline: float | None, progress: Callable[[ExampleRecord], None] | None):
        self.claim, self.variant, self.res = claim, variant, res
        self.deadline, self.progress = deadline, progress
        self.failed = False
        self.last_fail: tuple | None = None

    def _record(self, case: Any, verdict: str, t0: float, meas: dict, detail: str,
                curve: dict | None = None) -> ExampleRecord:
        rec = ExampleRecord(len(self.res.records), case.to_json(), case.summary(), verdict,
                            time.perf_counter() - t0, meas, detail, curve)
        self.res.records.append(rec)
        return rec

    def __call__(self, case: Any) -> None:
        t0 = time.perf_counter()
        if self.deadline is not None and t0 > self.deadline and not self.failed:
            self.res.budget_exhausted = True
            raise _BudgetStop
        _note(f"case = {case.to_json()}")
        try:
            out = self.claim.run(case, self.variant)
        except Exception as exc:  # noqa: BLE001 - every error is recorded, then re-raised
            self.last_fail = (case, "error", {}, traceback.format_exc())
            if not self.failed:
                self.failed = True
                self._record(case, "error", t0, {}, repr(exc))
                self.res.first_failure_index = len(self.res.records)
            raise
        if not self.failed:  # while shrinking, calls are not examples: not recorded
            rec = self._record(case, out.verdict, t0, out.clean_measurements(), out.detail,
                               out.measurements.get("_curve"))
            if self.progress:
                self.progress(rec)
        if out.verdict == VIOLATED:
            if not self.failed:
                self.failed = True
                self.res.first_failure_index = len(self.res.records)
            self.last_fail = (case, VIOLATED, out.clean_measurements(), out.detail)
            _note(out.detail)
            # One raise site: Hypothesis only shrinks towards failures of the same origin.
            raise _Violation(out.detail)


def _hypothesis_test(claim: Claim, body: _Body, *, max_examples: int, seed: int,
                     derandomize: bool, shrink: bool, sizes: str | None = None) -> Callable[[], None]:
    """The Hypothesis test of a run, with every setting passed explicitly (no profile); the
    claim's strategy is built with the network sizes ``sizes`` (:func:`strategies.sizes`).
    """
    phases = [Phase.generate] + ([Phase.shrink] if shrink else [])

    def check_case(case: Any) -> None:
        body(case)

    with strategies.sizes(sizes):  # a strategy reads its network sizes when it is built
        strategy = claim.strategy()
    test = given(strategy)(check_case)
    test = settings(max_examples=max_examples, derandomize=derandomize, deadline=None,
                    database=None, phases=phases, print_blob=True,
                    suppress_health_check=list(hypothesis.HealthCheck))(test)
    return test if derandomize else hypothesis.seed(seed)(test)


_FROZEN = False


def freeze_local_constants() -> None:
    """Make Hypothesis draw the same examples for a seed whatever modules are loaded.

    Hypothesis (≥ 6.131) mixes literal constants of the *local* modules loaded so far
    (anything outside site-packages and the stdlib) into about 5 % of its draws
    (``hypothesis.internal.conjecture.providers._get_local_constants``). tvgrad imports
    lazily and runs claims in worker processes, so the examples of a claim depended on which
    claims had run before in the same process and on how the command was started (a claim drew
    16 inconclusive examples in one campaign and 28 in another, same seed). This pins the local
    constants to none — the draws then depend on the seed and the strategies only (Hypothesis's
    global constants still apply) — and clears Hypothesis's cache of them. It touches a private
    module of Hypothesis; if that module changes, it does nothing (and a test says so).
    """
    global _FROZEN
    if _FROZEN:
        return
    try:
        from hypothesis.internal.conjecture import providers as P
        empty = P.Constants(integers=P.SortedSet(), floats=P.SortedSet(key=P.float_to_int),
                            bytes=P.SortedSet(), strings=P.SortedSet())
        P._get_local_constants = lambda: empty
        P.CONSTANTS_CACHE.cache.clear()
    except (ImportError, AttributeError):  # pragma: no cover - another Hypothesis
        return
    _FROZEN = True


def run_claim(claim: Claim, *, variant: str | None = None, max_examples: int, seed: int,
              derandomize: bool = False, shrink: bool = True, budget_s: float | None = None,
              deadline: float | None = None,
              progress: Callable[[ExampleRecord], None] | None = None,
              sizes: str | None = None) -> RunResult:
    """Run ``claim`` (or its ``variant``) on its pinned examples, then random examples.

    Stops at the first violation or error, which is then shrunk (when ``shrink``): by
    Hypothesis for a random example, by :func:`shrink_case` for a pinned one; the last failing
    call is the minimal counterexample. With ``budget_s`` (seconds from now) or ``deadline``
    (a ``time.time()``), no example starts after the time is up — pinned ones included — and
    the result says ``budget_exhausted``.

    Args:
        claim: the claim.
        variant: a planted variant's id, or None for the true claim.
        max_examples: random examples after the pinned ones.
        seed: the Hypothesis seed (ignored with ``derandomize``).
        derandomize: derive the examples from the test itself (the ``ci`` profile).
        shrink: shrink a failure to a minimal counterexample.
        budget_s: wall-time budget in seconds.
        deadline: wall-clock time (``time.time()``) after which no example starts.
        progress: called with each recorded example.
        sizes: ``"deep"``: draw networks of the deep profile's sizes
            (:data:`tvgrad.theory.strategies.DEEP_SIZES`); None: each claim's own.

    Returns:
        The :class:`RunResult` with every example, the counterexample, any error.
    """
    freeze_local_constants()  # the same examples for a seed, whatever ran before
    res = RunResult(claim.id, variant, asked=max_examples + len(claim.examples))
    t0 = time.perf_counter()
    ends = [t0 + budget_s] if budget_s is not None else []
    if deadline is not None:
        ends.append(t0 + (deadline - time.time()))
    body = _Body(claim, variant, res, min(ends) if ends else None, progress)
    # Pinned edge cases first, outside Hypothesis (which does not shrink explicit examples):
    # a failure there is shrunk by shrink_case instead.
    for ex in claim.examples:
        try:
            body(ex)
        except (KeyboardInterrupt, _BudgetStop) as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            res.seconds = time.perf_counter() - t0
            return res
        except BaseException as exc:  # noqa: BLE001
            last = body.last_fail
            if shrink and last is not None:
                last = shrink_case(claim, variant, last, body.deadline)
            _record_failure(res, claim, variant, last, exc)
            res.seconds = time.perf_counter() - t0
            return res
    test = _hypothesis_test(claim, body, max_examples=max_examples, seed=seed,
                            derandomize=derandomize, shrink=shrink, sizes=sizes)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Hypothesis's own reports: not stdout
            test()
    except KeyboardInterrupt:
        raise
    except _BudgetStop:
        pass
    except hypothesis.errors.Unsatisfiable:
        if not res.budget_exhausted:
            raise
    except BaseException as exc:  # noqa: BLE001
        _record_failure(res, claim, variant, body.last_fail, exc)
    res.seconds = time.perf_counter() - t0
    return res


def _simpler(value: Any) -> Iterator[Any]:
    """Simpler versions of a JSON value, most simplifying first."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        for v in (0, 1, value // 2, value - 1):
            if 0 <= v < value:
                yield v
    elif isinstance(value, float):  # simpler = fewer significant digits, not smaller
        v = float(f"{value:.1g}")
        if math.isfinite(v) and v != value:
            yield v
    elif isinstance(value, list):
        for i in range(len(value)):  # drop one element
            yield value[:i] + value[i + 1:]
        for i, item in enumerate(value):
            for v in _simpler(item):
                yield value[:i] + [v] + value[i + 1:]
    elif isinstance(value, dict):
        for k in sorted(value):
            for v in _simpler(value[k]):
                yield {**value, k: v}


def shrink_case(claim: Claim, variant: str | None, last_fail: tuple,
                deadline: float | None = None, max_tries: int = 300) -> tuple:
    """A smaller case failing the same way: greedy descent over the case's JSON.

    Each candidate simplifies one field (an integer towards 0 or 1, a float to one
    significant digit, a list by one element); it is kept when it is a valid case and fails
    with the same verdict (for errors, the same exception type). Used for failures of pinned
    examples, which Hypothesis does not shrink.

    Returns:
        The ``last_fail`` tuple (case, verdict, measurements, detail) of the smallest failure.
    """
    case, verdict, _, detail = last_fail
    want_error = detail.strip().splitlines()[-1].split(":")[0] if verdict == "error" else None
    cur, tries = json.loads(case.to_json()), 0
    best = last_fail
    improved = True
    while improved:
        improved = False
        for cand in _simpler(cur):
            tries += 1
            if tries > max_tries or (deadline is not None and time.perf_counter() > deadline):
                return best
            try:
                c = claim.case_type.from_json(json.dumps(cand))
            except Exception:  # noqa: BLE001 - not a valid case
                continue
            try:
                out = claim.run(c, variant)
                got = (c, out.verdict, out.clean_measurements(), out.detail)
            except Exception:  # noqa: BLE001
                tb = traceback.format_exc()
                got = (c, "error", {}, tb)
                if tb.strip().splitlines()[-1].split(":")[0] != want_error:
                    continue
            if got[1] == verdict:
                cur, best, improved = cand, got, True
                break
    return best


def _record_failure(res: RunResult, claim: Claim, variant: str | None,
                    last_fail: tuple | None, exc: BaseException) -> None:
    if last_fail is None:
        res.error = "".join(traceback.format_exception(exc))
        return
    case, verdict, meas, detail = last_fail
    cj = case.to_json()
    res.counterexample = {
        "verdict": verdict, "case": cj, "summary": case.summary(),
        "measurements": meas, "detail": detail,
        "reproduce": reproduce_command(claim.id, cj, variant, claim.reproduce),
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


STATUS_INCONCLUSIVE, STATUS_INCOMPLETE = "inconclusive", "incomplete"
MIN_EXERCISED = 3
"""A claim (and each of its sub-checks) is ``verified`` only when at least this many examples
exercised it and held; fewer is ``incomplete``."""
MIN_HOLDS_SHARE = 0.5
"""…and only when at least this share of its non-diverged examples held; fewer (the others
inconclusive, i.e. outside the regime where the check decides) is ``inconclusive``."""


def exercised(claim: Claim, run: RunResult) -> dict[str, int]:
    """How many holding examples exercised the claim and each of its sub-checks."""
    held = [r for r in run.records if r.verdict == HOLDS]
    out = {"claim": len(held)}
    for name, key in claim.subchecks.items():
        out[name] = sum(key in r.measurements for r in held)
    return out


def claim_status(run: RunResult, claim: Claim | None = None) -> str:
    """The claim's status from its examples.

    ``error`` (a check raised), ``violated`` (an example refuted it), ``diverged`` (nothing
    held, something diverged), ``inconclusive`` (fewer than half of the non-diverged examples
    held), ``incomplete`` (the time budget cut the run short, or fewer than
    :data:`MIN_EXERCISED` holding examples exercised the claim or one of its sub-checks),
    else ``verified``. Only ``verified`` is success.
    """
    holds, diverged = run.count(HOLDS), run.count(DIVERGED)
    if run.error:
        return STATUS_ERROR
    if run.count(VIOLATED) or (run.counterexample and run.counterexample["verdict"] == VIOLATED):
        return STATUS_VIOLATED
    if holds == 0 and diverged > 0:
        return STATUS_DIVERGED
    if not run.records:
        return STATUS_ERROR
    if holds < MIN_HOLDS_SHARE * (len(run.records) - diverged):
        return STATUS_INCONCLUSIVE
    counts = exercised(claim, run) if claim is not None else {"claim": holds}
    if run.budget_exhausted or min(counts.values()) < MIN_EXERCISED:
        return STATUS_INCOMPLETE
    return STATUS_VERIFIED


CURVE_KEYS = ("slope_r1", "slope_r2", "band_r1", "band_r2", "window_r1", "window_r2",
              "points_r1", "points_r2")


def representative_curves(run: RunResult, limit: int = CURVES_PER_CLAIM) -> list[dict]:
    """The residual curves of the ``limit`` holding examples with the longest r₂ windows,
    with their case, slopes and windows: what the report's error-vs-η panels plot.
    """
    picks = [r for r in run.records if r.verdict == HOLDS and r.curve
             and r.measurements.get("slope_r2") is not None]
    picks = sorted(picks, key=lambda r: -int(r.measurements.get("points_r2") or 0))[:limit]
    return [{"index": r.index, "case": r.case, "summary": r.summary,
             "measurements": {k: r.measurements[k] for k in CURVE_KEYS if k in r.measurements},
             "curve": {k: [_finite_or_none(v) for v in vals] for k, vals in r.curve.items()}}
            for r in picks]


def _finite_or_none(v: Any) -> Any:
    """JSON has no NaN/inf: non-finite floats (diverged grid points) become null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _audit_entry(claim: Claim, a: RunResult) -> dict:
    v = claim.variant(a.variant)
    return {"variant": a.variant, "description": v.description,
            "rejected": a.first_failure_index is not None and not a.error,
            "must_reject": v.must_reject, "after_examples": a.first_failure_index,
            "examples_run": len(a.records),
            "rejecting_case": (a.counterexample or {}).get("case"), "error": a.error}


def _example(claim: Claim, run: RunResult) -> dict | None:
    """One case of the run to paste into the reproduce command (a holding one if any)."""
    recs = [r for r in run.records if r.verdict == HOLDS] or run.records
    if not recs:
        return None
    r = recs[0]
    return {"verdict": r.verdict, "case": r.case,
            "reproduce": reproduce_command(claim.id, r.case, run.variant, claim.reproduce)}


def summarise(claim: Claim, run: RunResult, audit: list[RunResult]) -> dict:
    """The JSON entry of one claim: status, counts, statistics, curves and its audit."""
    keys = sorted({k for r in run.records if r.verdict == HOLDS for k, v in r.measurements.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    stats = {k: _quantiles([r.measurements.get(k) for r in run.records if r.verdict == HOLDS])
             for k in keys}
    status = claim_status(run, claim)
    return {
        "id": claim.id, "title": claim.title, "statement": claim.statement,
        "notes": claim.notes, "estimate": claim.estimate,
        "status": ESTIMATE_STATUS.get(status, status) if claim.estimate else status,
        "examples": len(run.records), "holds": run.count(HOLDS),
        "violations": run.count(VIOLATED), "diverged": run.count(DIVERGED),
        "inconclusive": run.count(INCONCLUSIVE), "errors": run.count("error") or int(bool(run.error)),
        "seconds": round(run.seconds, 3), "counterexample": run.counterexample,
        "exercised": exercised(claim, run),
        "budget_exhausted": run.budget_exhausted, "asked": run.asked,
        "example": _example(claim, run),
        "error": run.error, "statistics": {k: s for k, s in stats.items() if s},
        "curves": representative_curves(run),
        "falsifiability": [_audit_entry(claim, a) for a in audit],
    }


def _environment(profile: str, seed: int) -> dict:
    import sympy
    import torch
    return {"python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "hypothesis": hypothesis.__version__,
            "sympy": sympy.__version__, "device": "cpu", "profile": profile,
            # the ci profile derives its examples from the tests themselves: no seed is used
            "seed": None if profile == "ci" else seed, "derandomized": profile == "ci",
            "argv": sys.argv}


def example_rows(runs: list[RunResult]) -> list[dict]:
    """One CSV row per example: claim, verdict, the case summary and every measurement."""
    rows = []
    for run in runs:
        for r in run.records:
            row = {"claim": run.claim_id, "index": r.index, "verdict": r.verdict,
                   "seconds": round(r.seconds, 4), **r.summary, "case": r.case}
            for k, v in r.measurements.items():
                row[f"m.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
            rows.append(row)
    return rows


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, restoring the previous count afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _job(args: tuple, progress: Callable[[ExampleRecord], None] | None = None,
         registry: Mapping[str, Claim] | None = None) -> RunResult:
    claim_id, variant, max_examples, seed, derandomize, budget, factory, sizes = args
    if registry is None and factory is not None:  # a worker process rebuilds the registry
        registry = factory[0](factory[1])
    deadline = None
    if budget is not None:  # (global deadline, jobs, runs left when this one starts)
        end, jobs, left = budget
        # this run's fair share of the time left, never past the campaign's deadline
        deadline = min(end, time.time() + max(0.0, end - time.time()) * jobs / max(left, 1))
    with torch_threads(1):
        return run_claim((registry or CLAIMS)[claim_id], variant=variant, max_examples=max_examples,
                         seed=seed, derandomize=derandomize, shrink=variant is None,
                         deadline=deadline, progress=progress, sizes=sizes)


def check_out_dir(out: Path) -> Path:
    """Create ``out`` if needed and make sure it is writable (clear error otherwise)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".tvgrad-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InvalidInput(f"output directory {str(out)!r} is not writable: {exc}") from None
    return out


class _Outputs:
    """The campaign's JSON and CSV, published together after every finished run (and the HTML
    with them at the end): one consistent snapshot at any time (:mod:`tvgrad.publish`).
    """

    def __init__(self, out: Path, ids: list[str], doc: dict, registry: Mapping[str, Claim],
                 stem: str):
        self.out, self.ids, self.doc = out, ids, doc
        self.registry, self.stem = registry, stem
        self.results: dict[tuple, RunResult] = {}
        self.started = time.time()

    def add(self, key: tuple, res: RunResult) -> None:
        self.results[key] = res
        self.flush()

    def flush(self, finalize: Callable[[Path], None] | None = None) -> None:
        res, ids, reg = self.results, self.ids, self.registry
        self.doc["claims"] = [
            summarise(reg[cid], res[(cid, None)],
                      [res[(cid, v.id)] for v in reg[cid].variants if (cid, v.id) in res])
            for cid in ids if (cid, None) in res]
        self.doc["duration_s"] = round(time.time() - self.started, 2)
        publish(self.out, self.stem, {
            f"{self.stem}.json": json.dumps(self.doc, indent=2, allow_nan=False),
            f"{self.stem}_examples.csv": csv_text(
                example_rows([res[(c, None)] for c in ids if (c, None) in res]))}, finalize)


def _worker_init() -> None:
    """In each worker: die with the parent whatever kills it (Linux ``PR_SET_PDEATHSIG``),
    and leave Ctrl-C to the parent (which stops the workers itself).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _run_parallel(tasks: list[tuple], args: list[tuple], jobs: int, outputs: _Outputs, bar) -> None:
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
    try:
        futures = [pool.submit(_job, a) for a in args]
        for (cid, v), fut in zip(tasks, futures):
            res = fut.result()
            bar.set_postfix_str(f"{cid}{'/' + v if v else ''}")
            bar.update()
            outputs.add((cid, v), res)
    except BaseException:
        # Ctrl-C, SIGTERM or an error: stop the workers now (the finished runs are published)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _run_serial(tasks: list[tuple], args: list[tuple], n: int, outputs: _Outputs, bar) -> None:
    from tqdm import tqdm
    reg = outputs.registry
    for (cid, v), a in zip(tasks, args):
        bar.set_postfix_str(f"{cid}{'/' + v if v else ''}")
        if v is None:  # a per-claim bar over its examples (serial runs only)
            inner = tqdm(total=n + len(reg[cid].examples), desc=cid, unit="ex",
                         leave=False, file=sys.stderr, dynamic_ncols=True)
            res = _job(a, progress=lambda rec: inner.update(), registry=reg)
            inner.close()
        else:
            res = _job(a, registry=reg)
        bar.update()
        outputs.add((cid, v), res)


def verify(*, claims: list[str] | None = None, profile: str = "verify",
           seed: int = DEFAULT_SEED,
           out: Path = Path("reports"), jobs: int = 1, max_examples: int | None = None,
           audit: bool = True, time_budget: float | None = None,
           registry: Mapping[str, Claim] | None = None, stem: str = "theory",
           extra: dict | None = None,
           factory: tuple[Callable[[Any], Mapping[str, Claim]], Any] | None = None,
           finalize: Callable[[Path], None] | None = None) -> dict:
    """Run the campaign; write ``theory.json`` and ``theory_examples.csv`` into ``out``.

    Both files are rewritten atomically after every finished run (claim or variant), so an
    interrupted campaign leaves valid partial results (``"complete": false``).

    Args:
        claims: claim ids to run (default: all).
        profile: ``ci`` (derandomized), ``dev`` or ``verify`` — sets the number of random
            examples per claim (and derandomization for ``ci``); no Hypothesis profile is
            loaded, every setting is passed to each test.
        seed: the Hypothesis seed (default the one of ``make verify`` and ``tvgrad verify``,
            :data:`~tvgrad.theory.DEFAULT_SEED`).
        out: output folder.
        jobs: worker processes (1: in this process, with per-claim progress bars).
        max_examples: override the profile's number of random examples.
        audit: also run every planted wrong variant.
        time_budget: total seconds, shared equally by the runs: each stops drawing new random
            examples when its share is spent.
        registry: the claims (default: the theory's :data:`CLAIMS`); another registry runs in
            this process, unless ``factory`` says how worker processes rebuild it.
        stem: output file names, ``<stem>.json`` and ``<stem>_examples.csv``.
        extra: more entries for the JSON document (e.g. the CLIP model and data).
        factory: ``(function, argument)``: ``function(argument)`` returns ``registry``; a
            module-level function, so that ``jobs > 1`` worker processes can rebuild it.
        finalize: called with the final snapshot folder before it is published (the CLI
            renders the HTML there, so JSON, CSV and HTML appear together).

    Raises:
        InvalidInput: bad arguments, or another run holds ``out`` (:func:`tvgrad.publish.locked`).

    Returns:
        The document written to ``theory.json``.
    """
    profile = profile_name(profile)
    check_positive_int(jobs, "jobs")
    if factory is not None and registry is None:
        registry = factory[0](factory[1])
    registry = CLAIMS if registry is None else registry
    if registry is not CLAIMS and factory is None:
        jobs = 1
    ids = list(claims or registry)
    for cid in ids:
        registry[cid]
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise InvalidInput(f"time budget must be finite and > 0 seconds, got {time_budget!r}")
    out = check_out_dir(out)
    n = max_examples or EXAMPLES[profile]
    # The deep profile buys thoroughness for the claims; its audit runs each planted variant on
    # as many examples as verify does (a must-reject variant stops at its first rejection
    # anyway; the sharpness probes would otherwise repeat a whole claim, 10 minutes of budget).
    n_variant = min(n, EXAMPLES["verify"]) if profile == "deep" and not max_examples else n
    tasks = [(cid, None) for cid in ids]
    if audit:
        tasks += [(cid, v.id) for cid in ids for v in registry[cid].variants]
    doc = {"schema_version": SCHEMA_VERSION, "environment": _environment(profile, seed),
           "max_examples": n, "variant_max_examples": n_variant,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "complete": False, "claims": [], "time_budget_s": time_budget, **(extra or {})}
    with locked(out, f"tvgrad verify ({stem})"), _sigterm_as_interrupt():
        outputs = _Outputs(out, ids, doc, registry, stem)
        outputs.flush()  # valid (empty, incomplete) results from the start
        end = None if time_budget is None else time.time() + time_budget
        jobs_ = max(jobs, 1)
        sizes = "deep" if profile == "deep" else None
        args = [(cid, v, n if v is None else n_variant, seed, profile == "ci",
                 None if end is None else (end, jobs_, len(tasks) - i), factory, sizes)
                for i, (cid, v) in enumerate(tasks)]
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), desc="claims and variants", unit="run", file=sys.stderr,
                   dynamic_ncols=True)
        try:
            (_run_parallel(tasks, args, jobs, outputs, bar) if jobs > 1
             else _run_serial(tasks, args, n, outputs, bar))
        finally:
            bar.close()
        doc["complete"] = True
        outputs.flush(finalize)
    return doc


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the campaign like Ctrl-C (workers stopped, finished runs published)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def status_text(c: dict) -> str:
    """A claim's status as printed: ``incomplete (N of M)`` says how many examples ran."""
    if c["status"] == STATUS_INCOMPLETE and c.get("asked"):
        return f"incomplete ({c['examples']} of {c['asked']})"
    return c["status"]


def summary_table(doc: dict) -> str:
    """The verdict table printed at the end of ``tvgrad verify``."""
    lines = [f"{'claim':28} {'status':12} {'examples':>8} {'holds':>6} {'viol':>5} {'div':>4} "
             f"{'inconcl':>7} {'variants rejected':>18} {'s':>7}"]
    for c in doc["claims"]:
        fal = c["falsifiability"]
        rej = f"{sum(f['rejected'] for f in fal)}/{len(fal)}"
        lines.append(f"{c['id']:28} {status_text(c):12} {c['examples']:>8} {c['holds']:>6} "
                     f"{c['violations']:>5} {c['diverged']:>4} {c['inconclusive']:>7} "
                     f"{rej:>18} {c['seconds']:>7.1f}")
        if c["counterexample"]:
            lines.append(f"    counterexample: {c['counterexample']['reproduce']}")
        tight = {k[len("actual_over_"):]: s["median"] for k, s in c.get("statistics", {}).items()
                 if k.startswith("actual_over_")}
        if tight:
            lines.append("    median actual / bound: " + ", ".join(
                f"{k} {v:.3g}" for k, v in sorted(tight.items(), key=lambda kv: -kv[1])))
        if c["status"] == STATUS_INCOMPLETE:
            lines.append(f"    incomplete: exercised {c['exercised']} (at least {MIN_EXERCISED} "
                         f"holding examples each){'; the time budget ran out' if c['budget_exhausted'] else ''}")
        for f in fal:
            if not f["rejected"]:
                what = "NOT REJECTED" if f["must_reject"] else "not rejected (tightness probe)"
                lines.append(f"    {what}: variant {f['variant']} ({f['description']})")
    return "\n".join(lines)


def exit_code(doc: dict) -> int:
    """0 only when every claim is ``verified`` and every must-reject variant was rejected.

    Any other status — violated, error, diverged, inconclusive, incomplete — gives 1. Estimates
    (``consistent`` / ``inconsistent``) are reported, not counted: their right-hand side is not
    a bound.
    """
    ok = (STATUS_VERIFIED,) + tuple(ESTIMATE_STATUS.values())
    bad = [c for c in doc["claims"] if c["status"] not in ok
           or not all(f["rejected"] or not f["must_reject"] for f in c["falsifiability"])]
    return 1 if bad else 0
