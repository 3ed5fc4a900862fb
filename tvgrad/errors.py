"""Errors raised for bad input; each message names the offending value."""

from __future__ import annotations

import math

__all__ = ["InvalidInput", "UnknownKey", "check_lr", "check_positive_int", "check_finite"]


class InvalidInput(ValueError):
    """A user-supplied value is out of its domain (the message says which and why)."""


class UnknownKey(InvalidInput):
    """A name that no registry holds (a loss, an activation, a claim, a dataset …)."""


def check_lr(eta: float, name: str = "learning rate") -> float:
    """Return ``eta`` as a float if it is finite and positive, else raise :class:`InvalidInput`."""
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {eta!r}") from None
    if not value > 0 or value == float("inf"):
        raise InvalidInput(f"{name} must be finite and > 0, got {eta!r}")
    return value


def check_positive_int(value: int, name: str) -> int:
    """Return ``value`` if it is an int ≥ 1 (bools refused), else raise :class:`InvalidInput`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_finite(value: float, name: str, *, positive: bool = False) -> float:
    """Return ``value`` as a float if it is finite (and > 0 with ``positive``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (positive and not v > 0):
        raise InvalidInput(f"{name} must be finite{' and > 0' if positive else ''}, got {value!r}")
    return v
