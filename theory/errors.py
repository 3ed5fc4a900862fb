"""Errors raised for bad input; each message names the offending value."""


class InvalidInput(ValueError):
    """A user-supplied value is out of its domain (the message says which and why)."""


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
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name} must be an integer >= 1, got {value!r}")
    return value
