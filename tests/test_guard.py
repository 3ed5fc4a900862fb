"""The autouse guard of tests/conftest.py fails a test that leaks global state (test of a test)."""

import shutil
import subprocess
import sys
from pathlib import Path

LEAKS = {
    "threads": "import torch\n\ndef test_leak():\n    torch.set_num_threads(3)\n",
    "dtype": "import torch\n\ndef test_leak():\n    torch.set_default_dtype(torch.float64)\n",
    "profile": ("from hypothesis import settings\n\ndef test_leak():\n"
                "    settings.register_profile('x', max_examples=40)\n"
                "    settings.load_profile('x')\n"),
    "matplotlib": ("import matplotlib\n\ndef test_leak():\n"
                   "    matplotlib.rcParams['svg.fonttype'] = 'none'\n"),
}


def test_guard_fails_each_leaking_test_and_only_it(tmp_path):
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    for what, code in LEAKS.items():
        (tmp_path / f"test_leak_{what}.py").write_text(code)
        (tmp_path / f"test_leak_{what}_zclean.py").write_text("def test_clean():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0, r.stdout[-2000:]
    for what in LEAKS:
        assert f"ERROR test_leak_{what}.py::test_leak - AssertionError" in r.stdout, r.stdout[-3000:]
    assert f"{len(LEAKS)} error" in r.stdout and "zclean.py::test_clean - " not in r.stdout
