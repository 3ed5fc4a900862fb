"""Command line: ``python -m theory {verify,reproduce,list}``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import InvalidInput


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m theory",
                                description="Verify the claims of 'On Task Vectors and Gradients'.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="run the campaign and write reports/theory.json")
    v.add_argument("--profile", default=None,
                   help="Hypothesis profile: ci, dev or verify (default: $TVGRAD_PROFILE or verify)")
    v.add_argument("--seed", type=int, default=20260824, help="Hypothesis seed (default 20260824)")
    v.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default reports/)")
    v.add_argument("--claim", action="append", default=None, metavar="ID",
                   help="run only this claim (repeatable)")
    v.add_argument("--max-examples", type=int, default=None, help="override the profile's count")
    v.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: min(2, cores))")
    v.add_argument("--no-audit", action="store_true", help="skip the planted wrong variants")
    v.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="total wall time shared by all runs; each stops drawing new examples "
                        "when its share is spent (reported as budget_exhausted)")
    r = sub.add_parser("reproduce", help="re-run one claim on one case (from a counterexample)")
    r.add_argument("--claim", required=True)
    r.add_argument("--case", required=True, help="the case JSON printed with the counterexample")
    r.add_argument("--variant", default=None)
    sub.add_parser("list", help="list the claims and their planted wrong variants")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "list":
            from .claims import CLAIMS
            for c in CLAIMS.values():
                print(f"{c.id}: {c.title}\n    {c.statement}")
                for v in c.variants:
                    print(f"    variant {v.id}: {v.description}")
            return 0
        if args.cmd == "reproduce":
            from .claims import get_claim
            claim = get_claim(args.claim)
            try:
                case = claim.case_type.from_json(args.case)
            except (ValueError, TypeError, KeyError) as exc:
                raise InvalidInput(f"--case is not a valid {claim.case_type.__name__}: {exc}") from None
            out = claim.run(case, args.variant)
            print(json.dumps({"verdict": out.verdict, "measurements": out.clean_measurements()},
                             indent=2))
            if out.detail:
                print(out.detail)
            return 1 if out.verdict == "violated" else 0
        from .campaign import exit_code, summary_table, verify
        profile = args.profile or os.environ.get("TVGRAD_PROFILE") or "verify"
        if args.max_examples is not None and args.max_examples < 1:
            raise InvalidInput(f"--max-examples must be >= 1, got {args.max_examples}")
        if args.jobs < 1:
            raise InvalidInput(f"--jobs must be >= 1, got {args.jobs}")
        doc = verify(claims=args.claim, profile=profile, seed=args.seed, out=args.out,
                     jobs=args.jobs, max_examples=args.max_examples, audit=not args.no_audit,
                     time_budget=args.time_budget)
        print(summary_table(doc))
        print(f"\nwrote {args.out / 'theory.json'}, {args.out / 'theory_examples.csv'} and "
              f"{args.out / 'theory.html'} "
              f"in {doc['duration_s']:.1f} s (profile {profile}, seed {args.seed})")
        return exit_code(doc)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: results of the claims already finished are in the output "
              "folder (written atomically)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
