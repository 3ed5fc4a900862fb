"""The empirical pipeline end to end on tiny offline stand-ins (CPU)."""

import json
import math
import re

import pytest
import torch

from tvgrad.cli import main
from tvgrad.empirical import finetune as ft
from tvgrad.empirical.data import DatasetMissing, load_splits
from tvgrad.empirical.finetune import FinetuneConfig, finetune
from tvgrad.empirical.io import load_tensors
from tvgrad.empirical.merge import METHODS, TaskArithmetic, merge
from tvgrad.empirical.model import WeightsMissing, load_clip
from tvgrad.empirical.report import build
from tvgrad.empirical.task_vector import TaskVector
from tvgrad.theory.rounding import compare, sgd_step_tolerance


def cfg(tiny, root, out, dataset="MNIST", **kw):
    base = dict(dataset=dataset, model=tiny, pretrained="none", data_root=str(root), out=str(out),
                recipe="paper-code", batch_size=16, epochs=2, device="cpu", num_workers=0,
                amp=False)
    return FinetuneConfig(**{**base, **kw})


def test_missing_dataset_message(tmp_path):
    with pytest.raises(DatasetMissing, match=r"dataset MNIST not found under .*MNIST/raw.*--download"):
        load_splits("MNIST", tmp_path)
    with pytest.raises(DatasetMissing, match=r"RESISC45 not found .*NWPU-RESISC45/<class>.*split files"):
        load_splits("RESISC45", tmp_path)


def test_missing_weights_message(tiny_model, tmp_path, monkeypatch):
    with pytest.raises(WeightsMissing, match=r"does not exist; pass an existing checkpoint path"):
        load_clip(tiny_model, str(tmp_path / "nope.safetensors"))
    # the hub is unreachable (as offline here): make that deterministic and instant, whatever
    # the network of the machine running the test
    import open_clip.factory
    import open_clip.pretrained

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")
    for mod in (open_clip.factory, open_clip.pretrained):
        for name in ("download_pretrained", "download_pretrained_from_hf",
                     "download_pretrained_from_url"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, offline)
    with pytest.raises(WeightsMissing, match=r"could not load pretrained weights 'laion400m_e32'.*--pretrained /path/to"):
        load_clip("ViT-B-32-quickgelu", "laion400m_e32", cache_dir=str(tmp_path))


def test_openai_weights_need_the_quickgelu_model():
    """open_clip only warns when GELU wraps QuickGELU-trained weights; we refuse, naming the fix
    (before any download)."""
    with pytest.raises(ValueError, match="trained with QuickGELU.*use 'ViT-B-32-quickgelu'"):
        load_clip("ViT-B-32", "openai")


def test_bad_config_values(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="lr must be finite and > 0, got -1"):
        cfg(tiny_model, tmp_path, tmp_path, lr=-1.0)
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        cfg(tiny_model, tmp_path, tmp_path, recipe="fast")


def test_task_vector_algebra():
    a = TaskVector({"w": torch.tensor([1.0, 2.0])})
    b = TaskVector({"w": torch.tensor([3.0, -1.0])})
    assert torch.equal(sum([a, b]).tensors["w"], torch.tensor([4.0, 1.0]))
    assert torch.equal((a - b).tensors["w"], torch.tensor([-2.0, 3.0]))
    assert (2 * a).norm() == pytest.approx(2 * math.sqrt(5))
    assert a.cos(a) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="parameter names differ"):
        a + TaskVector({"v": torch.zeros(2)})


def test_end_to_end_finetune_merge_report(tiny_model, data_root, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    cfgs = [cfg(tiny_model, data_root, runs, d) for d in ("MNIST", "RESISC45")]
    for c in cfgs:
        res = finetune(c, progress=False)
        assert res["complete"] and len(res["epochs"]) == 2
        assert sum(e["update_norm_share"] for e in res["epochs"]) == pytest.approx(1.0)
        assert sum(e["grad_norm_share"] for e in res["epochs"]) == pytest.approx(1.0)
        assert -1 <= res["cosines"]["tau_delta1"] <= 1 and res["recipe"]["name"] == "paper-code"
        tau = TaskVector.load(c.run_dir / "tau.safetensors")
        d = [TaskVector.load(c.run_dir / f"delta_epoch_00{e}.safetensors") for e in (1, 2)]
        assert torch.allclose(sum(d).tensors["conv1.weight"], tau.tensors["conv1.weight"], atol=1e-6)
    # a method carries its hyperparameters (the α grid); its name is in the output file name
    monkeypatch.setitem(METHODS, "ta_coarse", TaskArithmetic("ta_coarse", (0.5, 1.0)))
    m = merge(cfgs, method="ta_coarse")
    assert re.search(r"merge-ta_coarse-paper-code-seed0-[0-9a-f]{10}\.json$", m["path"])
    assert m["method"] == "ta_coarse"
    # paper-code has a constant schedule: the one-epoch arm is delta_1 of each run
    assert {s["file"] for s in m["kinds"]["one_epoch"]["sources"].values()} == {"delta_epoch_001.safetensors"}
    for kind in ("one_epoch", "converged"):
        k = m["kinds"][kind]
        assert k["best_alpha"] in (0.5, 1.0)
        assert set(k["test_accuracy_absolute"]) == {"MNIST", "RESISC45"}
    html = build(runs, tmp_path / "empirical.html").read_text()
    assert "one_epoch" in html and "converged" in html and "<svg" in html
    assert "published converged finetuned accuracy" not in html  # tiny model: no reference row


def test_resume_after_a_crash_equals_uninterrupted(tiny_model, data_root, tmp_path, monkeypatch):
    ref = finetune(cfg(tiny_model, data_root, tmp_path / "a"), progress=False)
    calls = {"n": 0}
    real = ft.accuracy

    def crash_on_second_epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # zero-shot val, epoch-1 val, then epoch-2 val: killed here
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(ft, "accuracy", crash_on_second_epoch)
    c = cfg(tiny_model, data_root, tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        finetune(c, progress=False)
    assert json.loads((c.run_dir / "results.json").read_text())["complete"] is False
    monkeypatch.setattr(ft, "accuracy", real)
    res = finetune(c, progress=False)
    assert res["complete"]
    ta = load_tensors(cfg(tiny_model, data_root, tmp_path / "a").run_dir / "tau.safetensors")
    tb = load_tensors(c.run_dir / "tau.safetensors")
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert [e["update_norm"] for e in res["epochs"]] == [e["update_norm"] for e in ref["epochs"]]


def _theory_run(tiny, root, out, lr, batch_size):
    c = cfg(tiny, root, out / f"lr{lr}-bs{batch_size}", recipe="theory", lr=lr,
            batch_size=batch_size, epochs=1, dtype="float64", shuffle=False, max_samples=24)
    finetune(c, progress=False)
    g0 = load_tensors(c.run_dir / "g0.safetensors")
    d1 = load_tensors(c.run_dir / "delta_epoch_001.safetensors")
    th0 = load_tensors(c.run_dir / "theta0.safetensors")
    return g0, d1, th0


def test_pipeline_one_full_batch_epoch_is_exactly_minus_eta_g0(tiny_model, data_root, tmp_path):
    """Claim one_epoch_exact through the real pipeline: float64, plain SGD, one batch = the
    whole training set: Δ₁ = −η g₀ within the theory core's derived rounding tolerance."""
    lr = 0.05
    g0, d1, th0 = _theory_run(tiny_model, data_root, tmp_path, lr, batch_size=1000)
    for k in g0:
        cmp = compare(d1[k], -lr * g0[k], sgd_step_tolerance(th0[k], g0[k], lr), k)
        assert cmp.ok, cmp.report
    assert any(float(g0[k].abs().max()) > 0 for k in g0)


def test_pipeline_two_batches_gap_is_second_order(tiny_model, data_root, tmp_path):
    """Two equal batches (B = 2): Δ₁ = −η Σ_b g_b + O(η²) = −ηB g₀ + O(η²), so halving η
    divides ‖Δ₁ + ηB g₀‖ by ≈ 4 (claim sgd_epoch_second_order through the pipeline)."""
    gaps = []
    for lr in (2e-3, 1e-3):
        g0, d1, _ = _theory_run(tiny_model, data_root, tmp_path, lr, batch_size=12)
        gaps.append(math.sqrt(sum(float(((d1[k] + 2 * lr * g0[k]) ** 2).sum()) for k in g0)))
    assert abs(math.log2(gaps[0] / gaps[1]) - 2) < 0.1, gaps


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    out = capsys.readouterr().out
    for opt in ("--dataset", "--model", "--pretrained", "--data-root", "--download", "--recipe",
                "--lr", "--batch-size", "--optimizer", "--clip", "--epochs", "--seed", "--device",
                "--dtype", "--no-amp", "--max-samples", "--no-record", "--no-shuffle", "--cache-dir"):
        assert opt in out


def test_cli_missing_data_is_a_clear_error(tiny_model, tmp_path, capsys):
    rc = main(["finetune", "--dataset", "MNIST", "--model", tiny_model, "--pretrained", "none",
               "--data-root", str(tmp_path), "--device", "cpu", "--num-workers", "0"])
    assert rc == 2 and "dataset MNIST not found" in capsys.readouterr().err
