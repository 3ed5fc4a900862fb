"""Test configuration: the Hypothesis profile comes from $TVGRAD_PROFILE (``ci`` in make test),
and a guard fails any test that leaves global state changed behind it."""

import os

import pytest
import torch
from hypothesis import settings

from tvgrad.theory.profiles import load_profile

load_profile(os.environ.get("TVGRAD_PROFILE", "ci"))
torch.set_num_threads(1)


def _global_state() -> dict:
    import matplotlib
    profile = getattr(settings, "get_current_profile_name", lambda: settings._current_profile)
    return {"hypothesis profile": profile(),
            "hypothesis max_examples": settings.default.max_examples,
            "hypothesis derandomize": settings.default.derandomize,
            "torch threads": torch.get_num_threads(),
            "torch default dtype": torch.get_default_dtype(),
            "matplotlib backend": matplotlib.get_backend(),
            "matplotlib svg.fonttype": matplotlib.rcParams["svg.fonttype"]}


@pytest.fixture(autouse=True)
def no_leaked_global_state(request):
    """Fail a test that changes the Hypothesis profile, torch's threads or default dtype, or
    matplotlib's backend or rc parameters (CI's determinism must not depend on test order)."""
    before = _global_state()
    yield
    after = _global_state()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"{request.node.nodeid} leaked global state (before, after): {changed}"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
