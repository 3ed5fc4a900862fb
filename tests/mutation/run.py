"""``make mutate``: mutation testing of one module of theory/ with cosmic-ray (not in CI).

Writes a cosmic-ray configuration for ``--module`` and the test command ``--tests`` (pytest
arguments: the tests that cover that module; default: the tests that mirror it, with the claims'
tests for anything a claim uses — ``sample.tests_for``), runs the session (cosmic-ray mutates the file in
place and restores it), and appends a section to ``--out`` (docs/mutation.md) with the counts of
killed and surviving mutants and every survivor's diff, to be classified there as a blind spot
(a test to write) or an equivalent mutant (with the reason).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    """Run one cosmic-ray session and append its summary to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--module", required=True, help="e.g. theory/rounding.py")
    ap.add_argument("--tests", default=None,
                    help="pytest arguments selecting the tests (default: those mirroring --module)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "mutation.md"))
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    ap.add_argument("--report-only", default=None, metavar="SESSION",
                    help="summarise an existing (possibly interrupted) session database")
    args = ap.parse_args(argv)
    if args.report_only:
        return _report(Path(args.report_only), args, 0.0, partial=True)
    if args.tests is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from sample import tests_for
        args.tests = " ".join(tests_for(args.module))
    work = Path(tempfile.mkdtemp(prefix="tvgrad-mutate-"))
    cfg, db = work / "cr.toml", work / "session.sqlite"
    test_cmd = f"{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly {args.tests}"
    cfg.write_text(f'[cosmic-ray]\nmodule-path = {json.dumps(args.module)}\n'
                   f'timeout = {args.timeout}\nexcluded-modules = []\n'
                   f'test-command = {json.dumps(test_cmd)}\n\n'
                   f'[cosmic-ray.distributor]\nname = "local"\n')
    bin_dir = Path(sys.executable).parent
    t0 = time.time()
    subprocess.run([str(bin_dir / "cosmic-ray"), "init", str(cfg), str(db)], check=True, cwd=ROOT)
    subprocess.run([str(bin_dir / "cosmic-ray"), "exec", str(cfg), str(db)], check=True, cwd=ROOT)
    return _report(db, args, (time.time() - t0) / 60)


def _report(db: Path, args, minutes: float, partial: bool = False) -> int:
    bin_dir = Path(sys.executable).parent
    dump = subprocess.run([str(bin_dir / "cosmic-ray"), "dump", str(db)], check=True, cwd=ROOT,
                          capture_output=True, text=True).stdout
    killed, survived, pending = 0, [], 0
    for line in dump.splitlines():
        work_item, result = json.loads(line)
        if not result:
            pending += 1
            continue
        if result.get("test_outcome") == "survived":
            survived.append(result.get("diff", ""))
        else:
            killed += 1
    total = killed + len(survived)
    text = [f"\n## `{args.module}` — {time.strftime('%Y-%m-%d')}\n",
            f"Tests: `{args.tests}`. {total} mutants run, **{killed} killed**, "
            f"**{len(survived)} survived**"
            + (f", {pending} not run (session interrupted)" if partial and pending else "")
            + (f", {minutes:.1f} min on this machine" if minutes else "") + ".\n"]
    for diff in survived:
        text.append("```diff\n" + diff.strip() + "\n```\n")
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write("\n".join(text))
    print(f"{total} mutants: {killed} killed, {len(survived)} survived, {pending} not run; "
          f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
