"""Fixtures of the theory tests."""

import time as real_time
from types import SimpleNamespace

import pytest

from tvgrad.theory import campaign


class VirtualClock:
    """The campaign's clock (``time.time``, ``time.perf_counter``), moved on by ``step``
    seconds each time an example is recorded and by nothing else: every budget decision is
    then the same on any machine, loaded or idle (an example's real time is 0.001-2 s)."""

    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def virtual_clock(monkeypatch):
    """Give the campaign a :class:`VirtualClock` of one second per example (set ``.step``)."""
    clock = VirtualClock(1.0)
    monkeypatch.setattr(campaign, "time", SimpleNamespace(
        perf_counter=clock, time=clock, strftime=real_time.strftime))
    record = campaign.ExampleRecord

    def recorded(*args, **kw):
        clock.now += clock.step
        return record(*args, **kw)
    monkeypatch.setattr(campaign, "ExampleRecord", recorded)
    return clock


def _assert_draws_within(strategy, beyond, edges, *, beyond_examples: int = 300,
                         edge_examples: int = 3000):
    """Assert that ``strategy`` never draws a value with ``beyond(value)`` true (Hypothesis
    searches ``beyond_examples`` draws for one and must find none) and does reach each of
    ``edges`` (a predicate each; a search of ``edge_examples`` draws must find one).

    Sizes are checked by behaviour, not by repr (Hypothesis reprs differ between versions)."""
    from hypothesis import find, settings
    from hypothesis.errors import NoSuchExample
    with pytest.raises(NoSuchExample):
        find(strategy, beyond, settings=settings(max_examples=beyond_examples, database=None))
    for edge in edges:
        find(strategy, edge, settings=settings(max_examples=edge_examples, database=None))


@pytest.fixture
def assert_draws_within():
    """:func:`_assert_draws_within`: a strategy's sizes stay within a range and reach its edges."""
    return _assert_draws_within
