"""Atomic writes shared by the theory and empirical sides (JSON, CSV, text, safetensors).

Every writer goes through a temporary file in the destination folder and ``os.replace``, so a
reader (or a crash) never sees half a file. Importing this module imports nothing heavier than
the standard library; safetensors and torch are imported only by the tensor helpers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["atomic_write", "write_json", "read_json", "write_csv", "csv_text", "save_tensors",
           "load_tensors"]


def _publish(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        write(fd, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs are for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and ``os.replace``.

    Args:
        path: destination; its folder is created if missing.
        text: the whole content.
    """
    def write(fd: int, _tmp: str) -> None:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    _publish(Path(path), write)


def write_json(path: str | Path, obj: Any, *, allow_nan: bool = False) -> None:
    """Write ``obj`` as indented JSON atomically (NaN/inf refused unless ``allow_nan``)."""
    atomic_write(path, json.dumps(obj, indent=2, allow_nan=allow_nan))


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or broken file raises an error naming the path."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete it or re-run what writes "
                         f"it") from None


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write dict rows as CSV atomically; the columns are the union of keys, first seen first."""
    atomic_write(path, csv_text(rows))


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """Dict rows as CSV text; the columns are the union of keys, first seen first."""
    rows = list(rows)
    cols: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for c in row:
            if c not in seen:
                seen.add(c)
                cols.append(c)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def save_tensors(tensors: Mapping[str, Any], path: str | Path) -> None:
    """Write a dict of tensors as a safetensors file atomically (contiguous CPU copies)."""
    from safetensors.torch import save_file

    def write(fd: int, tmp: str) -> None:
        os.close(fd)
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)

    _publish(Path(path), write)


def load_tensors(path: str | Path, device: str = "cpu") -> dict:
    """Read a safetensors file; a truncated or foreign file raises an error naming the path."""
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own SafetensorError
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable safetensors file ({exc}); delete it and "
                         f"re-run what writes it") from None
