"""The ``tvgrad`` command: theory (``verify``, ``report``, ``reproduce``, ``list``) and
empirical (``finetune``, ``merge``, ``empirical-report``, ``empirical-all``) subcommands.

Every user error prints one line naming the bad value and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .errors import InvalidInput


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``tvgrad`` with every subcommand."""
    from .empirical.cli import add_commands as empirical_commands
    from .theory.cli import add_commands as theory_commands
    p = argparse.ArgumentParser(
        prog="tvgrad", description="Verify the claims of 'On Task Vectors and Gradients' "
                                   "(arXiv 2508.16082) on random networks and on CLIP.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    theory_commands(sub)
    empirical_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``tvgrad`` with ``argv`` (default: the process arguments); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    from .empirical.cli import ERRORS
    try:
        return args.handler(args)
    except (InvalidInput, *ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: results already finished are in the output folder (written "
              "atomically)", file=sys.stderr)
        return 130
