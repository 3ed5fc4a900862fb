"""Atomic, safetensors-only persistence (no pickled modules)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from theory.campaign import atomic_write


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write a safetensors file atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return load_file(str(path), device=str(device))


def write_json(path: str | Path, obj) -> None:
    atomic_write(Path(path), json.dumps(obj, indent=2, allow_nan=True))


def read_json(path: str | Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy named parameters into ``module`` with strict key checks (no silent partial loads)."""
    params = dict(module.named_parameters())
    if params.keys() != tensors.keys():
        raise KeyError(f"state mismatch: missing {sorted(params.keys() - tensors.keys())[:5]}, "
                       f"unexpected {sorted(tensors.keys() - params.keys())[:5]}")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(tensors[k].to(p))
