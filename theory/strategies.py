"""Hypothesis strategies for random feed-forward problems.

Strategies draw :class:`~tvgrad.theory.cases.Case` values (small JSON data), never tensors, so a
failure shrinks to a minimal network (depth 1, width 1, one sample, tanh, MSE) and prints as
one line that ``tvgrad reproduce`` re-runs.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from .activations import ACTIVATIONS
from .cases import Case
from .losses import LOSSES
from .nets import NetSpec

# Shrinking goes towards the first element of a sampled_from: keep the simplest first.
ALL_ACTIVATIONS = ("tanh",) + tuple(a for a in ACTIVATIONS if a != "tanh")


def _check_range(name: str, lo, hi, min_allowed) -> None:
    if lo < min_allowed:
        raise InvalidArgument(f"{name}: min {lo!r} < {min_allowed!r}")
    if hi < lo:
        raise InvalidArgument(f"{name}: max {hi!r} < min {lo!r}")


# -- network sizes per profile -----------------------------------------------------------
DEEP_SIZES = {"max_depth": 6, "max_width": 128, "width_dist": "log"}
"""What the ``deep`` profile draws instead of each claim's own sizes: depth up to 6 and width
up to 128 for every claim, widths log-uniform (so that wide layers are reached while most
networks stay small enough for 2 000 examples per claim in the profile's time)."""

_SIZES: dict | None = None


@contextlib.contextmanager
def sizes(name: str | None) -> Iterator[None]:
    """Inside the block, :func:`sized` gives the sizes of profile ``name`` (``"deep"``, or None
    for each claim's own).
    """
    global _SIZES
    if name not in (None, "deep"):
        raise InvalidArgument(f"unknown sizes {name!r}: None or 'deep'")
    before, _SIZES = _SIZES, (DEEP_SIZES if name == "deep" else None)
    try:
        yield
    finally:
        _SIZES = before


def sized(*, max_depth: int, max_width: int, width_dist: str = "uniform") -> dict:
    """A claim's network sizes (its own, or the ``deep`` profile's inside :func:`sizes`)."""
    if _SIZES is None:
        return {"max_depth": max_depth, "max_width": max_width, "width_dist": width_dist}
    return dict(_SIZES)


@st.composite
def net_specs(draw, *, min_depth: int = 1, max_depth: int = 4, min_width: int = 1,
              max_width: int = 32, activations: tuple[str, ...] = ALL_ACTIVATIONS,
              max_in_dim: int = 8, max_out_dim: int = 6, min_out_dim: int = 1,
              bias: bool | None = None, width_dist: str = "uniform") -> NetSpec:
    """Feed-forward architectures: depth, widths, activation, bias, input/output sizes.

    ``width_dist="log"`` draws each width as ⌊2^U⌋, U uniform on [log₂ min, log₂(max + 1)),
    so that every octave of widths is equally likely (shrinks towards ``min_width``).
    """
    _check_range("depth", min_depth, max_depth, 1)
    _check_range("width", min_width, max_width, 1)
    if width_dist not in ("uniform", "log"):
        raise InvalidArgument(f"width_dist must be 'uniform' or 'log', got {width_dist!r}")
    _check_range("out_dim", min_out_dim, max_out_dim, 1)
    _check_range("in_dim", 1, max_in_dim, 1)
    if not activations:
        raise InvalidArgument("activations is empty")
    unknown = set(activations) - set(ACTIVATIONS)
    if unknown:
        raise InvalidArgument(f"unknown activations {sorted(unknown)}")
    depth = draw(st.integers(min_depth, max_depth))
    width = st.integers(min_width, max_width)
    if width_dist == "log":
        lo, hi = math.log2(min_width), math.log2(max_width + 1)
        width = st.floats(lo, hi, exclude_max=True).map(
            lambda e: min(max_width, max(min_width, int(2.0 ** e))))
    widths = tuple(draw(st.lists(width, min_size=depth, max_size=depth)))
    return NetSpec(
        in_dim=draw(st.integers(1, max_in_dim)),
        widths=widths,
        out_dim=draw(st.integers(min_out_dim, max_out_dim)),
        activation=draw(st.sampled_from(activations)),
        bias=draw(st.booleans()) if bias is None else bias,
    )


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """η log-uniform on [lo, hi] (drawn as a uniform exponent; shrinks towards ``lo``)."""
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise InvalidArgument(f"log_uniform needs 0 < lo <= hi < inf, got {lo!r}, {hi!r}")
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(10.0 ** e))


def nearest_schedule(n: int, k: int, batch_size: int, *, epochs: tuple[int, int],
                     steps: tuple[int, int]) -> tuple[int, int]:
    r"""The (epochs, batch size) nearest to (``k``, ``batch_size``) whose SGD step count lies
    within ``steps``, for ``n`` samples: the batch size kept if some epoch count will do (then the
    fewest epochs changed), else the nearest batch size that has one.

    .. math::
        \text{steps} = k \lceil n / b \rceil \in [s_{\min}, s_{\max}],\quad
        k \in [k_{\min}, k_{\max}],\quad 1 \le b \le n

    A drawn pair within range is returned unchanged; one batch of one epoch with
    ``steps=(2, ·)`` becomes two epochs of that batch. With ``min_steps ≤ max_epochs ≤ max_steps``
    (checked by :func:`cases`) the full batch for ``max(k_min, s_min)`` epochs always qualifies.
    """
    (k0, k1), (s0, s1) = epochs, steps
    valid = [(abs(b - batch_size), abs(kk - k), kk, b) for b in range(1, n + 1)
             for kk in range(k0, k1 + 1) if s0 <= kk * math.ceil(n / b) <= s1]
    if not valid:
        raise InvalidArgument(f"no epochs in [{k0}, {k1}] and batch size in [1, {n}] give "
                              f"{s0}..{s1} steps")
    _, _, k, batch_size = min(valid)
    return k, batch_size


MINIMUM_DRAW = st.integers(0, 9)
"""The draw of :func:`cases` that may start a case at a minimum: ten values, one of which
(:func:`starts_at_minimum`) does — so the zero-gradient edge is reached without crowding out
the general case. (Hypothesis prefers small choices, so in practice about 4 % of MSE draws, not
10 %, start at a minimum: 3.4–5.8 % over seeds at 2 000 examples.)"""


def starts_at_minimum(allow_minimum: bool, loss: str, minimum_draw: int) -> bool:
    """Whether a drawn case puts its MSE targets at the network's outputs (∇L(θ₀) = 0): only
    with ``allow_minimum``, only for MSE (a cross-entropy loss has no minimum at finite
    logits), and only for the top value, 9, of :data:`MINIMUM_DRAW`.
    """
    return bool(allow_minimum and loss == "mse" and minimum_draw == 9)


@st.composite
def cases(draw, *, activations: tuple[str, ...] = ALL_ACTIVATIONS,
          losses: tuple[str, ...] = ("mse", "cross_entropy"), max_depth: int = 4, max_width: int = 32,
          width_dist: str = "uniform", max_n: int = 64, min_tasks: int = 1, max_tasks: int = 1, min_epochs: int = 1,
          max_epochs: int = 1, minibatch: bool = False, min_steps: int = 1, max_steps: int = 24, eta: tuple[float, float] = (1e-4, 1.0),
          allow_minimum: bool = True) -> Case:
    """Random problems for the claims.

    Args:
        draw: Hypothesis' draw function (supplied by ``@st.composite``).
        activations: allowed activations (the first is what a failure shrinks to).
        losses: allowed losses (the first is what a failure shrinks to).
        max_depth: largest number of hidden layers.
        max_width: largest hidden width.
        width_dist: ``"uniform"`` or ``"log"`` (see :func:`net_specs`).
        max_n: samples per task are drawn in 1..max_n.
        min_tasks: fewest tasks T.
        max_tasks: most tasks T.
        min_epochs: smallest k.
        max_epochs: largest k.
        minibatch: draw a batch size (last batch smaller when it does not divide n) and a
            reshuffle flag.
        min_steps: fewest SGD steps in total (with ``minibatch``).
        max_steps: most SGD steps in total (with ``minibatch``).
        eta: range of the log-uniform learning rate.
        allow_minimum: sometimes put MSE targets at the network's outputs (∇L = 0).
    """
    if not losses or set(losses) - set(LOSSES):
        raise InvalidArgument(f"losses must be a non-empty subset of {list(LOSSES)}, got {losses!r}")
    _check_range("tasks", min_tasks, max_tasks, 1)
    _check_range("epochs", min_epochs, max_epochs, 1)
    _check_range("steps", min_steps, max_steps, 1)
    if minibatch and min_steps > max_epochs:
        raise InvalidArgument(f"min_steps={min_steps} > max_epochs={max_epochs}: a one-sample task "
                              f"has one batch per epoch, so it cannot take min_steps steps")
    _check_range("n", 1, max_n, 1)
    if max_steps < max_epochs:
        raise InvalidArgument(f"max_steps={max_steps} < max_epochs={max_epochs}")
    loss = draw(st.sampled_from(losses))
    spec = draw(net_specs(max_depth=max_depth, max_width=max_width, activations=activations,
                          min_out_dim=2 if loss == "cross_entropy" else 1, width_dist=width_dist))
    n = draw(st.integers(1, max_n))
    epochs = draw(st.integers(min_epochs, max_epochs))
    batch_size, reshuffle = None, False
    if minibatch:
        # ceil(n / bs) * epochs <= max_steps  <=>  bs >= n / (max_steps // epochs)
        min_bs = max(1, math.ceil(n / (max_steps // epochs)))
        batch_size = draw(st.integers(min_bs, n))
        epochs, batch_size = nearest_schedule(n, epochs, batch_size, epochs=(min_epochs, max_epochs),
                                              steps=(min_steps, max_steps))
        reshuffle = draw(st.booleans())
    # drawn unconditionally so that every loss has the same choice sequence length (the
    # shrinker prefers shorter sequences, which would otherwise favour cross-entropy)
    at_minimum = starts_at_minimum(allow_minimum, loss, draw(MINIMUM_DRAW))
    return Case(spec=spec, loss=loss, n=n, tasks=draw(st.integers(min_tasks, max_tasks)),
                seed=draw(st.integers(0, 2 ** 16)), eta=draw(log_uniform(*eta)),
                epochs=epochs, batch_size=batch_size, reshuffle=reshuffle,
                at_minimum=at_minimum)


# -- pinned edge cases (used as @example by every numeric claim) -------------------------
def edge_cases(*, tasks: int = 1, epochs: int = 2, minibatch: bool = False,
               activation: str = "tanh") -> tuple[Case, ...]:
    """Width 1, depth 1, k = 1, one sample, zero gradient, tiny and large η, widest/deepest."""
    bs = 3 if minibatch else None
    tiny = NetSpec(in_dim=1, widths=(1,), out_dim=1, activation=activation)
    base = dict(loss="mse", tasks=tasks, seed=1, epochs=epochs, batch_size=bs)
    return (
        Case(spec=tiny, n=5, eta=0.1, **base),                                  # width 1, depth 1
        Case(spec=NetSpec(2, (3,), 2, activation), n=5, eta=0.1,
             **{**base, "epochs": 1}),                                           # k = 1
        Case(spec=NetSpec(3, (4, 4), 3, activation), n=1, eta=0.05,
             **{**base, "batch_size": None}),                                    # single sample
        Case(spec=NetSpec(3, (5,), 2, activation), n=7, eta=0.1, at_minimum=True,
             **base),                                                            # ∇L(θ₀) = 0
        Case(spec=NetSpec(2, (4,), 3, activation), n=6, eta=1e-8,
             **{**base, "loss": "cross_entropy"}),                               # tiny η
        Case(spec=NetSpec(2, (4,), 3, activation), n=6, eta=10.0,
             **{**base, "loss": "cross_entropy"}),                               # large η
        Case(spec=NetSpec(8, (32, 32, 32, 32), 6, activation), n=64, eta=0.01,
             **base),                                                            # deep and wide
    )

