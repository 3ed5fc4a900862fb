"""Hypothesis profiles, selected by the environment variable ``TVGRAD_PROFILE``.

* ``ci``: derandomized, no deadline, 12 examples per property — what ``make test``, CI and
  the self-test of ``make verify`` run.
* ``dev``: a quick local run with random seeds.
* ``verify``: the campaign behind ``make verify`` — at least 200 examples per claim.
* ``deep``: ``make deep`` — 2 000 random examples per claim, networks up to depth 6 and width
  128 for every claim (:data:`tvgrad.theory.strategies.DEEP_SIZES`), in about 10 minutes on
  2 cores.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from ..errors import InvalidInput

ENV = "TVGRAD_PROFILE"
_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
EXAMPLES = {"ci": 12, "dev": 40, "verify": 200, "deep": 2000}

settings.register_profile("ci", max_examples=EXAMPLES["ci"], derandomize=True, **_COMMON)
settings.register_profile("dev", max_examples=EXAMPLES["dev"], **_COMMON)
settings.register_profile("verify", max_examples=EXAMPLES["verify"], **_COMMON)
settings.register_profile("deep", max_examples=EXAMPLES["deep"], **_COMMON)


def profile_name(name: str | None = None) -> str:
    """Validate a profile name (default: ``$TVGRAD_PROFILE`` or ``dev``)."""
    name = name or os.environ.get(ENV, "dev")
    if name not in EXAMPLES:
        raise InvalidInput(f"unknown Hypothesis profile {name!r} (from {ENV} or --profile); "
                           f"choose one of {list(EXAMPLES)}")
    return name


def load_profile(name: str | None = None) -> str:
    """Load the named (or ``$TVGRAD_PROFILE``, default ``dev``) profile; return its name."""
    name = profile_name(name)
    settings.load_profile(name)
    return name
