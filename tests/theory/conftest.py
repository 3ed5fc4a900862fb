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
