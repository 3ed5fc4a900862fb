"""The README's "your own model" examples are tests: every python block of that section runs."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## The claims on your own model", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_has_the_three_examples():
    blocks = _blocks()
    assert len(blocks) == 3
    assert "nn.Conv2d" in blocks[0] and "MultiheadAttention" in blocks[1]
    assert "torchvision.models" in blocks[2]


def test_readme_examples_run(capsys):
    pytest.importorskip("torchvision")
    namespace: dict = {}
    for block in _blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "verdict='holds'" in out and out.strip().splitlines()[-1].startswith("holds")
