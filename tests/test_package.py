"""The wheel: one `tvgrad` namespace, nothing generic at the top level, package data shipped."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                        str(ROOT)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here (needs setuptools from the index): {r.stderr[-300:]}")
    return zipfile.ZipFile(next(out.glob("tvgrad-*.whl")))


def test_only_tvgrad_at_the_top_of_the_wheel(wheel):
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"tvgrad"}


def test_package_data_ships(wheel):
    names = set(wheel.namelist())
    for f in ("tvgrad/theory/bound.md", "tvgrad/reports/templates/theory.html.j2",
              "tvgrad/reports/templates/empirical.html.j2",
              "tvgrad/empirical/reference/epoch_gradient_norms.csv",
              "tvgrad/theory/claims/second_order.py", "tvgrad/cli.py"):
        assert f in names, f
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tvgrad = tvgrad.cli:main" in entry
