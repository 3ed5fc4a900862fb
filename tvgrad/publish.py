"""One run, one consistent output folder.

* :func:`locked` — a lock on the output folder (``filelock``, released by the OS however the
  holder dies): a second campaign into the same folder refuses, naming the holder.
* :func:`publish` — the files of one campaign (JSON, CSV and, at the end, HTML) are written
  together into a fresh snapshot folder ``<out>/.tvgrad/<stem>-…/`` that is then made current
  by one atomic symlink swap (``<out>/.<stem>.current``); ``<out>/<name>`` are stable symlinks
  into the current snapshot. A reader that resolves :func:`snapshot` once reads one run's
  files, never a mix, and a failed write (a full disk) leaves the previous snapshot current.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .errors import InvalidInput
from .io import atomic_write

__all__ = ["OutputLocked", "locked", "publish", "snapshot", "KEEP_SNAPSHOTS"]

KEEP_SNAPSHOTS = 2  # the current one and the one before (a reader may still hold it)
LOCK, HOLDER = ".tvgrad.lock", ".tvgrad.holder.json"


class OutputLocked(InvalidInput):
    """Another run holds the output folder."""


@contextlib.contextmanager
def locked(out: Path, what: str) -> Iterator[None]:
    """Hold the lock on ``out`` for the duration; refuse at once if another run holds it."""
    from filelock import FileLock, Timeout
    out = Path(out)
    lock = FileLock(str(out / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            h = json.loads((out / HOLDER).read_text())
            who = f"{h['what']} (pid {h['pid']} on {h['host']}, since {h['started']})"
        except (OSError, ValueError, KeyError):
            who = "another process"
        raise OutputLocked(f"output folder {out} is in use by {who}; wait for it to finish or "
                           f"pass another --out") from None
    try:
        atomic_write(out / HOLDER, json.dumps({
            "what": what, "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}))
        yield
    finally:
        (out / HOLDER).unlink(missing_ok=True)
        lock.release()


def _link(target: str, path: Path) -> None:
    """Point the symlink ``path`` at ``target`` atomically (replacing any file there)."""
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def publish(out: Path, stem: str, files: Mapping[str, str | bytes],
            finalize: Callable[[Path], None] | None = None) -> Path:
    """Write ``files`` (name → content) as a new snapshot of ``stem`` and make it current.

    Args:
        out: the output folder.
        stem: which campaign (``theory``, ``clip_claims``): each has its own snapshots.
        files: the snapshot's files.
        finalize: called with the snapshot folder after the files are written and before it
            becomes current (e.g. to render the HTML from them).

    Returns:
        The snapshot folder.
    """
    out = Path(out)
    root = out / ".tvgrad"
    root.mkdir(parents=True, exist_ok=True)
    snap = Path(tempfile.mkdtemp(prefix=f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}-", dir=root))
    try:
        for name, data in files.items():
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(snap / name, mode, **({} if mode == "wb" else {"encoding": "utf-8",
                                                                     "newline": ""})) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if finalize is not None:
            finalize(snap)
        os.chmod(snap, 0o755)
    except BaseException:
        shutil.rmtree(snap, ignore_errors=True)
        raise
    current = f".{stem}.current"
    _link(os.path.relpath(snap, out), out / current)
    for name in sorted(os.listdir(snap)):
        _link(f"{current}/{name}", out / name)
    mine = sorted((p for p in root.glob(f"{stem}-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in mine[:-KEEP_SNAPSHOTS]:
        if old != snap:
            shutil.rmtree(old, ignore_errors=True)
    return snap


def snapshot(out: Path, stem: str) -> Path:
    """The folder holding ``stem``'s current files: its snapshot, or ``out`` itself for
    folders written before snapshots (plain files).
    """
    link = Path(out) / f".{stem}.current"
    return link.resolve() if link.exists() else Path(out)
