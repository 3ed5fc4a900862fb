"""Test configuration: the Hypothesis profile comes from $TVGRAD_PROFILE (``ci`` in make test)."""

import os

import pytest
import torch

from tvgrad.theory.profiles import load_profile

load_profile(os.environ.get("TVGRAD_PROFILE", "ci"))
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
