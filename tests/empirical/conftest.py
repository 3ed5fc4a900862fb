"""Tiny offline stand-ins: an open_clip model config with random weights, and synthetic
datasets written in the real on-disk formats (MNIST idx files, RESISC45 image folders)."""

import pytest
import torch

from tvgrad.empirical.model import TINY
from tvgrad.empirical.synthetic import write_mnist, write_resisc45

__all__ = ["write_mnist", "write_resisc45"]


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random-weight open_clip config built into the package."""
    return TINY


@pytest.fixture
def data_root(tmp_path):
    write_mnist(tmp_path)
    write_resisc45(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _cpu_threads():
    torch.set_num_threads(1)
