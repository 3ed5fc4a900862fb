"""What a case may cost: refuse, before anything is allocated, a case whose estimated memory
exceeds a fraction of the memory available or whose estimated time exceeds a limit.

The estimates are upper-bound style order-of-magnitude models of what the checks do, written
beside each case type (:meth:`Case.cost`, :meth:`SymCase.cost`), and compared here with:

* memory: :data:`MEMORY_FRACTION` of the memory available now (``MemAvailable`` of
  ``/proc/meminfo``; the physical memory where that is unknown);
* time: :func:`seconds_limit` (default :data:`DEFAULT_SECONDS`, override with the environment
  variable ``TVGRAD_CASE_SECONDS``), the flop count divided by :data:`FLOPS_PER_SECOND`, a
  deliberately low float64 rate for the small matrix products of these checks.

A refused case raises :class:`~tvgrad.errors.InvalidInput` naming the value, the estimate and
the limit (one line, exit status 2 on the command line).
"""

from __future__ import annotations

import os

from ..errors import InvalidInput

MEMORY_FRACTION = 0.5
DEFAULT_SECONDS = 300.0
FLOPS_PER_SECOND = 1e9


def available_bytes() -> int:
    """The memory available to a new allocation now, in bytes."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def seconds_limit() -> float:
    """The time one case may take (``TVGRAD_CASE_SECONDS`` or :data:`DEFAULT_SECONDS`)."""
    raw = os.environ.get("TVGRAD_CASE_SECONDS")
    if raw is None:
        return DEFAULT_SECONDS
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (v > 0 and v != float("inf")):
        raise InvalidInput(f"TVGRAD_CASE_SECONDS must be a finite number > 0, got {raw!r}")
    return v


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if b < 1024:
            return f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} PB"


def check_cost(what: str, nbytes: float, flops: float) -> None:
    """Refuse ``what`` if it needs more memory or time than allowed (see the module doc)."""
    avail = available_bytes()
    if nbytes > MEMORY_FRACTION * avail:
        raise InvalidInput(f"{what} needs about {_fmt_bytes(nbytes)} of memory, more than "
                           f"{MEMORY_FRACTION:.0%} of the {_fmt_bytes(avail)} available: "
                           f"make it smaller")
    seconds = flops / FLOPS_PER_SECOND
    limit = seconds_limit()
    if seconds > limit:
        raise InvalidInput(f"{what} needs about {seconds:.3g} s (estimated), more than the "
                           f"limit of {limit:g} s per case: make it smaller or raise "
                           f"TVGRAD_CASE_SECONDS")
