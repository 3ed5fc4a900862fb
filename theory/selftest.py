"""``tvgrad verify --self-test`` (what ``make verify`` runs first): the tool checks itself.

A campaign can only refute a claim that the code states correctly. Much of what could make the
tool wrong — a constant of the bound lowered where no random example is sharp, a tolerance
inflated, a helper's default, a verdict mapped wrong — is invisible to the examples of a *true*
claim. The reference tests of ``theory/`` (``tests/theory``: dense torch.func references,
sympy closed forms, the pinned sharp cases, the verdict logic through the command line; not the ``system`` tests of
signals and wall-clock limits, which depend on the machine) see
them, so ``make verify`` runs those first, under Hypothesis profile ``ci`` (derandomized), and
refuses to run the claims on a tool that fails them.

The tests live in the source checkout, not in the wheel, so the self-test needs a checkout
installed with ``pip install -e '.[test]'`` (what ``make install`` does).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import InvalidInput

__all__ = ["source_tests", "run_self_test", "describe"]

TESTS = Path("tests") / "theory"
MARKERS = "not slow and not gpu and not system"
"""``system`` tests depend on the machine (signals to processes, wall-clock limits: a loaded or
backgrounded shell fails them without any bug); ``make test`` runs them, the self-test does not."""
MAX_LISTED = 20


def source_tests(root: Path | None = None) -> Path:
    """The checkout's ``tests/theory`` folder (raises a clear error if this is not a checkout)."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    tests = root / TESTS
    if not (tests / "__init__.py").exists():
        raise InvalidInput(f"--self-test runs the reference tests of theory/ from the source "
                           f"checkout, and {tests} does not exist (tvgrad is installed without its "
                           f"tests). Install from a checkout — `git clone … && make install`, or "
                           f"`pip install -e '.[test]'` there — or drop --self-test.")
    if importlib.util.find_spec("pytest") is None:
        raise InvalidInput("--self-test needs pytest: `pip install -e '.[test]'` in the checkout "
                           "(or `make install`), or drop --self-test")
    return tests


def _counts(junit: Path) -> tuple[dict, list[str]]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors",
                                                           "skipped")}
    failed = [f"{case.get('classname', '')}::{case.get('name', '')}"
              for case in root.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return n, failed


def run_self_test(jobs: int, root: Path | None = None) -> dict:
    """Run the fast tests of ``tests/theory`` in a subprocess; summarise them.

    Args:
        jobs: pytest-xdist workers (1: none).
        root: the checkout (default: the one this module is imported from).

    Returns:
        ``{"status": "passed" | "failed", "tests", "passed", "failed", "skipped", "failures"
        (the first 20 failing test ids), "duration_s", "command"}``; ``failed`` counts failures
        and errors (collection errors included). A pytest that ran no test, or stopped for any
        other reason (usage error, interruption), also has status ``failed``, with the last
        lines of its output in ``"output"``.
    """
    tests = source_tests(root)
    cwd = tests.parents[1]
    with tempfile.TemporaryDirectory(prefix="tvgrad-selftest-") as tmp:
        junit = Path(tmp) / "junit.xml"
        args = ["-q", "-p", "no:cacheprovider", "-m", MARKERS, str(TESTS)]
        if jobs > 1 and importlib.util.find_spec("xdist") is not None:
            args[:0] = ["-n", str(jobs)]
        cmd = [sys.executable, "-m", "pytest", f"--junitxml={junit}", *args]
        env = {**os.environ, "TVGRAD_PROFILE": "ci"}
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        duration = round(time.monotonic() - t0, 1)
        counts, failures = _counts(junit) if junit.exists() else (
            {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}, [])
    bad = counts["failures"] + counts["errors"]
    ran = counts["tests"] - counts["skipped"]
    # rc 0: all passed; 1: some failed; anything else (no tests, usage, interrupted, internal
    # error) is a self-test that did not run, hence not passed
    ok = proc.returncode == 0 and bad == 0 and ran > 0
    out = {"status": "passed" if ok else "failed", "tests": counts["tests"],
           "passed": ran - bad, "failed": bad, "skipped": counts["skipped"],
           "failures": failures[:MAX_LISTED], "duration_s": duration,
           "command": "TVGRAD_PROFILE=ci pytest " + " ".join(
               f'"{a}"' if " " in a else a for a in args)}
    if not ok and not failures:
        out["output"] = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return out


def trusted(result: dict) -> bool:
    """Whether ``make verify`` may go on to the claims after the self-test ``result``: passed
    by its status *and* by its counts (some test passed, none failed or errored). Two readings
    of one run, so that a bug in how the status is decided cannot pass a failing self-test.
    """
    return result["status"] == "passed" and result["failed"] == 0 and result["passed"] > 0


def describe(result: dict) -> str:
    """One line for the console (and the report): what ran and how it ended."""
    head = (f"self-test {result['status']}: {result['passed']} passed, {result['failed']} failed, "
            f"{result['skipped']} skipped in {result['duration_s']} s ({TESTS.as_posix()}, "
            f"Hypothesis profile ci)")
    if trusted(result):
        return head
    lines = [head, *(f"  FAILED {f}" for f in result["failures"])]
    if result["failed"] > len(result["failures"]):
        lines.append(f"  … and {result['failed'] - len(result['failures'])} more")
    if result.get("output"):
        lines.append(result["output"])
    return "\n".join(lines)
