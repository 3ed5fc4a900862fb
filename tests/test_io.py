"""tvgrad.io: atomic writers that leave the old file on failure and never a half file."""

import json

import pytest
import torch

from tvgrad import io


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "theory.json"
    io.atomic_write(target, '{"ok": 1}')

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError):
        io.atomic_write(target, '{"ok": 2}')
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["theory.json"]


def test_json_csv_and_tensors_round_trip(tmp_path):
    io.write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert io.read_json(tmp_path / "a.json") == {"x": [1, 2]}
    with pytest.raises(ValueError):
        io.write_json(tmp_path / "b.json", {"x": float("nan")})
    io.write_csv(tmp_path / "c.csv", [{"a": 1}, {"b": 2, "a": 3}])
    assert (tmp_path / "c.csv").read_text().splitlines() == ["a,b", "1,", "3,2"]
    t = {"w": torch.arange(6.0).reshape(2, 3)}
    io.save_tensors(t, tmp_path / "t.safetensors")
    assert torch.equal(io.load_tensors(tmp_path / "t.safetensors")["w"], t["w"])


def test_broken_files_name_their_path(tmp_path):
    (tmp_path / "r.json").write_text("{broken")
    with pytest.raises(ValueError, match="r.json is not valid JSON"):
        io.read_json(tmp_path / "r.json")
    (tmp_path / "t.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="t.safetensors is not a readable safetensors"):
        io.load_tensors(tmp_path / "t.safetensors")


def test_importing_io_and_the_package_stays_light():
    """``import tvgrad`` / ``tvgrad.io`` load neither torch-heavy claim code nor sympy."""
    import subprocess
    import sys
    code = ("import sys, tvgrad, tvgrad.io, tvgrad.errors, tvgrad.registry; "
            "print(sorted(m for m in ('sympy', 'hypothesis', 'torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
