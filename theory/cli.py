"""The theory commands of ``tvgrad``: ``verify``, ``report``, ``reproduce``, ``list``.

Heavy modules (torch, sympy, Hypothesis) are imported inside the handlers, so building the
parser — and the empirical commands beside these — stays light.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InvalidInput
from . import DEFAULT_SEED


def add_commands(sub) -> None:
    """Add the theory subcommands to an ``argparse`` subparsers object."""
    v = sub.add_parser("verify", help="run the campaign; write theory.json, theory_examples.csv "
                                      "and theory.html")
    v.add_argument("--profile", default=None,
                   help="ci, dev, verify or deep (default: $TVGRAD_PROFILE or verify)")
    v.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"Hypothesis seed (default {DEFAULT_SEED})")
    v.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default reports/)")
    v.add_argument("--claim", action="append", default=None, metavar="ID",
                   help="run only this claim (repeatable)")
    v.add_argument("--max-examples", type=int, default=None, help="override the profile's count")
    v.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: min(2, cores))")
    v.add_argument("--no-audit", action="store_true", help="skip the planted wrong variants")
    v.add_argument("--no-html", action="store_true", help="write the JSON and CSV only")
    v.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="total wall time shared by all runs; each stops drawing new examples "
                        "when its share is spent (reported as budget_exhausted)")
    v.add_argument("--self-test", action="store_true",
                   help="first run the reference tests of theory/ (tests/theory of the source "
                        "checkout, ~1 min; what make verify does) and run no claim if any fails")
    v.set_defaults(handler=_verify)
    h = sub.add_parser("report", help="re-render theory.html from theory.json and the CSV "
                                      "(no claim is re-run)")
    h.add_argument("--out", type=Path, default=Path("reports"), help="folder of theory.json")
    h.set_defaults(handler=_report)
    reproduce_parser(sub, "reproduce", "re-run one claim on one case (from a counterexample)",
                     _reproduce)
    n = sub.add_parser("list", help="list the claims, their parameters and planted variants")
    n.set_defaults(handler=_list)


def reproduce_parser(sub, name: str, help: str, handler) -> None:
    """A ``reproduce``-style subcommand: ``--claim ID --case JSON [--variant V]``."""
    r = sub.add_parser(name, help=help)
    r.add_argument("--claim", required=True)
    r.add_argument("--case", required=True, help="the case JSON printed with the counterexample")
    r.add_argument("--variant", default=None)
    r.set_defaults(handler=handler)


def print_outcome(out) -> int:
    """Print an outcome as JSON (+ its detail); exit code 1 if it is ``violated``."""
    print(json.dumps({"verdict": out.verdict, "measurements": out.clean_measurements()},
                     indent=2))
    if out.detail:
        print(out.detail)
    return 1 if out.verdict == "violated" else 0


def _list(args) -> int:
    from .api import list_claims
    for c in list_claims():
        where = f"any model, params {c['params']}" if c["runs_on_any_model"] else "own cases only"
        print(f"{c['id']}: {c['title']} ({where})\n    {c['statement']}")
        for v in c["variants"]:
            probe = "" if v["must_reject"] else " [tightness probe]"
            print(f"    variant {v['id']}: {v['description']}{probe}")
    return 0


def _reproduce(args) -> int:
    from .claims import get_claim
    claim = get_claim(args.claim)
    try:
        case = claim.case_type.from_json(args.case)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"--case is not a valid {claim.case_type.__name__}: {exc}") from None
    return print_outcome(claim.run(case, args.variant))


def _report(args) -> int:
    from .report import write_report
    print(f"wrote {write_report(args.out)}")
    return 0


WORKER_BYTES = 600 << 20
"""Resident memory of one campaign worker (measured: about 530 MB with torch and sympy)."""


def check_jobs(jobs: int) -> None:
    """Refuse a worker count the memory available cannot hold (one line, naming both)."""
    from .limits import MEMORY_FRACTION, available_bytes
    if jobs < 1:
        raise InvalidInput(f"--jobs must be >= 1, got {jobs}")
    most = max(1, int(MEMORY_FRACTION * available_bytes() // WORKER_BYTES))
    if jobs > most:
        raise InvalidInput(f"--jobs {jobs}: each worker needs about {WORKER_BYTES >> 20} MB; "
                           f"the memory available holds at most {most}")


def _verify(args) -> int:
    from .campaign import exit_code, summary_table, verify
    profile = args.profile or os.environ.get("TVGRAD_PROFILE") or "verify"
    if args.max_examples is not None and args.max_examples < 1:
        raise InvalidInput(f"--max-examples must be >= 1, got {args.max_examples}")
    check_jobs(args.jobs)
    extra = None
    if args.self_test:
        from .selftest import describe, run_self_test, source_tests, trusted
        print(f"self-test: the reference tests of theory/ ({source_tests()}) …", flush=True)
        result = run_self_test(args.jobs)
        print(describe(result), flush=True)
        if not trusted(result):
            print("\nno claim was run: a tool that fails its own reference tests cannot be "
                  "trusted to verify anything. `make test` shows the failures in full; "
                  "drop --self-test to run the claims anyway.")
            return 1
        extra = {"self_test": result}
    finalize = None
    if not args.no_html:
        from .report import render_theory_into
        out = args.out

        def finalize(snap):
            render_theory_into(snap, out)
    doc = verify(claims=args.claim, profile=profile, seed=args.seed, out=args.out,
                 jobs=args.jobs, max_examples=args.max_examples, audit=not args.no_audit,
                 time_budget=args.time_budget, finalize=finalize, extra=extra)
    written = [args.out / "theory.json", args.out / "theory_examples.csv"]
    if not args.no_html:
        written.append(args.out / "theory.html")
    print(summary_table(doc))
    seed = "derandomized: no seed" if doc["environment"]["derandomized"] else f"seed {args.seed}"
    print(f"\nwrote {', '.join(map(str, written))} in {doc['duration_s']:.1f} s "
          f"(profile {profile}, {seed})")
    return exit_code(doc)
