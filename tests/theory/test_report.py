"""The HTML report: self-contained, escapes untrusted strings, renders in headless Chromium."""

import csv
import json
import re
from dataclasses import replace

import pytest

from tvgrad.theory.campaign import verify
from tvgrad.theory.report import render, write_report


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    verify(claims=["one_epoch_exact", "multi_epoch_second_order", "symbolic_expansion"],
           profile="ci", seed=3, out=out, max_examples=6)
    write_report(out)
    return out


def test_report_is_self_contained_with_all_sections(report_dir):
    html = (report_dir / "theory.html").read_text()
    for section in ("verdicts", "expansions", "tolerance", "statistics", "breakdown",
                    "counterexamples", "audit", "notes"):
        assert f'id="{section}"' in html
    assert html.count("<svg") >= 3
    assert not re.search(r'(src|href)="(https?:)?//', html), "no network resources"
    assert "<script" not in html
    assert "multi_epoch_second_order" in html and "sign_flipped" in html
    assert "exercised (holding examples)" in html and "claim: " in html


def test_untrusted_strings_are_escaped(report_dir):
    doc = json.loads((report_dir / "theory.json").read_text())
    doc["claims"][0]["title"] = "<script>alert(1)</script>"
    doc["claims"][0]["falsifiability"][0]["description"] = "<img src=x onerror=alert(1)>"
    rows = list(csv.DictReader((report_dir / "theory_examples.csv").open()))
    rows[0]["activation"] = "<script>evil()</script>"
    html = render(doc, rows)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;evil()&lt;/script&gt;" in html


def test_write_report_from_files(report_dir):
    path = write_report(report_dir)
    assert path.name == "theory.html" and path.stat().st_size > 10_000
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


def test_report_renders_from_the_files_alone(report_dir, tmp_path, monkeypatch):
    """No claim is re-run: with every check patched to raise, the report still renders, with
    the error-vs-η curves stored in theory.json."""
    import shutil as sh

    from tvgrad.theory.claims import CLAIMS

    def boom(*a, **k):
        raise AssertionError("the report must not run a claim")
    for cid, claim in list(CLAIMS.items()):
        monkeypatch.setitem(CLAIMS, cid, replace(claim, check=boom, on_problem=boom))
    for name in ("theory.json", "theory_examples.csv"):
        sh.copy(report_dir / name, tmp_path / name)
    html = write_report(tmp_path).read_text()
    assert html == (report_dir / "theory.html").read_text()
    doc = json.loads((tmp_path / "theory.json").read_text())
    curves = {c["id"]: c["curves"] for c in doc["claims"]}
    assert curves["multi_epoch_second_order"], "the curves the report plots are in the JSON"
    assert html.count("<svg") >= 3


def test_report_needs_theory_json(tmp_path):
    from tvgrad.errors import InvalidInput
    with pytest.raises(InvalidInput, match="run `tvgrad verify"):
        write_report(tmp_path)


def test_schema_versions_agree():
    from tvgrad.theory import campaign, report
    assert report.SCHEMA_VERSION == campaign.SCHEMA_VERSION


def test_the_bound_figures_are_drawn_from_rows_read_back_from_the_csv(tmp_path):
    """The report reads theory_examples.csv back: its claim ids and verdicts are strings built
    at run time, equal to the literals the figures select on but not the same objects. From
    such rows (two holding error-bound examples, one outside both regimes, one diverged, one
    holding Hessian-bound example, one exact-claim example) every bound figure and the
    tolerance histogram are drawn and the regime counts them; a selection by identity
    (``is "holds"``) would silently drop every figure."""
    from tvgrad.theory.report import (
        bound_scatter,
        hessian_hist,
        ratio_groups,
        ratio_plots,
        read_rows,
        regime,
        tolerance_usage,
    )
    base = {"claim": "ffn_second_order_error_bound", "verdict": "holds", "depth": "1",
            "widths": "3", "activation": "tanh", "loss": "mse", "m.actual": "1e-6",
            "m.apriori": "1e-5", "m.actual_over_apriori": "0.1", "m.trajectory": "2e-6",
            "m.actual_over_trajectory": "0.5", "m.best_over_first_order": "0.01",
            "m.actual_over_best": "0.5", "m.exact_over_bound": "", "m.max_ratio_float64": ""}
    written = [base, {**base, "widths": "2x70", "m.actual_over_apriori": "0.2"},
               {**base, "verdict": "inconclusive", "m.apriori": ""},
               {**base, "verdict": "diverged"},
               {**base, "claim": "ffn_hessian_bound", "m.exact_over_bound": "0.7"},
               {**base, "claim": "one_epoch_exact", "m.max_ratio_float64": "0.3"}]
    with (tmp_path / "theory_examples.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(base))
        w.writeheader()
        w.writerows(written)
    rows = read_rows(tmp_path / "theory_examples.csv")
    assert rows == written
    assert bound_scatter(rows) is not None and ratio_plots(rows) is not None
    assert hessian_hist(rows) is not None and tolerance_usage(rows) is not None
    assert ratio_groups(rows, "".join(["wid", "ths"])) == {"1–4": [0.1], ">64": [0.2]}
    assert ratio_groups(rows, "activation") == {"tanh": [0.1, 0.2]}
    got = regime(rows)
    assert (got["examples"], got["outside"], got["share_useful"]) == (3, 1, 1.0)
    assert got["median_apriori"] == pytest.approx(0.15) and got["median_best"] == 0.5
