"""make bench's CLIP part runs and writes its rows (the timings themselves are not tested)."""

import json

from tvgrad.empirical.bench_clip import COST_MODEL, main, minutes_per_example


def test_bench_clip_tiny_writes_rows(tmp_path, capsys):
    assert main(["--models", "tvgrad-tiny-ViT", "--repeat", "1", "--json",
                 str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())
    assert [r["dtype"] for r in rows] == ["float32", "float64"]
    assert all(r["grad_s"] > 0 and r["hvp_s"] > 0 and r["peak_rss_gb"] > 0 for r in rows)
    assert set(rows[0]["minutes_per_example_n1024"]) == set(COST_MODEL)
    assert "expected minutes per example" in capsys.readouterr().out


def test_cost_model_scales_linearly_in_n():
    row = {"batch": 4, "grad_s": 1.0, "hvp_s": 2.0}
    a, b = minutes_per_example(row, 1024), minutes_per_example(row, 2048)
    assert all(abs(b[k] - 2 * a[k]) < 1e-9 for k in a)
    g, h = COST_MODEL["multi_epoch_second_order"]
    assert a["multi_epoch_second_order"] == (g + 2 * h) * 256 / 60
