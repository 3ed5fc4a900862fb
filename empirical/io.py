"""Persistence of the empirical side: the shared atomic writers of :mod:`tvgrad.io`, plus
strict loading of named parameters into a module (no pickled modules, no partial loads).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import load_tensors, read_json, save_tensors
from ..io import write_json as _write_json

__all__ = ["save_tensors", "load_tensors", "read_json", "write_json", "load_strict", "fingerprint"]


def write_json(path: str | Path, obj) -> None:
    """Write results JSON atomically (NaN allowed: an undefined share or cosine is NaN)."""
    _write_json(path, obj, allow_nan=True)


def load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy named parameters into ``module`` with strict key checks (no silent partial loads)."""
    params = dict(module.named_parameters())
    if params.keys() != tensors.keys():
        raise KeyError(f"state mismatch: missing {sorted(params.keys() - tensors.keys())[:5]}, "
                       f"unexpected {sorted(tensors.keys() - params.keys())[:5]}")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(tensors[k].to(p))


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes, in name order): equal
    fingerprints mean bitwise equal parameters.
    """
    import hashlib
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
