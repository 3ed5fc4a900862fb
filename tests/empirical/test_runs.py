"""Runs that survive kills, reruns with other settings, mismatched merges and user mistakes."""

import json

import pytest
import torch

from tvgrad.cli import main
from tvgrad.empirical import finetune as ft
from tvgrad.empirical.finetune import RECIPES, FinetuneConfig, finetune
from tvgrad.empirical.io import load_tensors
from tvgrad.empirical.merge import RunsMismatch, merge
from tvgrad.empirical.synthetic import WRITERS

WRITES = ("save_tensors", "write_json", "_save_torch", "_commit")
"""Every file operation of a run goes through one of these (a kill can fall between any two)."""


def cfg(tiny, root, out, dataset="MNIST", **kw):
    base = dict(dataset=dataset, model=tiny, pretrained="none", data_root=str(root), out=str(out),
                recipe="paper-code", batch_size=8, epochs=2, device="cpu", num_workers=0,
                max_samples=24)
    return FinetuneConfig(**{**base, **kw})


def _files(run_dir):
    """Every result tensor of a run, bitwise."""
    return {p.name: load_tensors(p) for p in sorted(run_dir.glob("*.safetensors"))}


def _numbers(res):
    """The results without timings and paths."""
    drop = {"seconds", "images_per_s"}
    out = {k: v for k, v in res.items() if k != "config"}
    out["epochs"] = [{k: v for k, v in e.items() if k not in drop} for e in res["epochs"]]
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)


def test_a_kill_between_any_two_writes_resumes_bitwise_equal(tiny_model, data_root, tmp_path,
                                                            monkeypatch):
    """Killed after k writes, for every k, then resumed: the same tensors and numbers as an
    uninterrupted run, bit for bit (augmentation on: paper-code)."""
    real = {n: getattr(ft, n) for n in WRITES}
    log = []

    def counting(n):
        def f(*a, **k):
            log.append(n)
            return real[n](*a, **k)
        return f
    for n in WRITES:
        monkeypatch.setattr(ft, n, counting(n))
    ref_cfg = cfg(tiny_model, data_root, tmp_path / "ref")
    ref = finetune(ref_cfg, progress=False)
    assert ref_cfg.effective.augment and len(log) >= 20
    for k in range(len(log)):
        left = {"n": k}

        def killing(n):
            def f(*a, **kw):
                if left["n"] == 0:
                    raise KeyboardInterrupt(f"killed before write {k + 1} ({n})")
                left["n"] -= 1
                return real[n](*a, **kw)
            return f
        for n in WRITES:
            monkeypatch.setattr(ft, n, killing(n))
        c = cfg(tiny_model, data_root, tmp_path / f"kill{k}")
        with pytest.raises(KeyboardInterrupt):
            finetune(c, progress=False)
        for n in WRITES:
            monkeypatch.setattr(ft, n, real[n])
        res = finetune(c, progress=False)
        assert _numbers(res) == _numbers(ref), f"killed after {k} writes ({log[:k][-1:]})"
        _same(_files(c.run_dir), _files(ref_cfg.run_dir))


def test_a_rerun_with_other_settings_is_another_run(tiny_model, data_root, tmp_path):
    a = cfg(tiny_model, data_root, tmp_path, epochs=1)
    res_a = finetune(a, progress=False)
    for change in (dict(lr=2e-5), dict(epochs=2), dict(batch_size=4), dict(optimizer="sgd"),
                   dict(pretrained="none", seed=1), dict(augment=False)):
        b = cfg(tiny_model, data_root, tmp_path, **{"epochs": 1, **change})
        assert b.run_dir != a.run_dir, change
    # same identity: same folder, whatever the data root, workers or output cache
    assert cfg(tiny_model, data_root, tmp_path, epochs=1, num_workers=2).run_dir == a.run_dir
    assert finetune(a, progress=False) == res_a
    b = cfg(tiny_model, data_root, tmp_path, epochs=1, optimizer="sgd")
    res_b = finetune(b, progress=False)
    assert res_b["recipe"]["optimizer"] == "sgd" and res_a["recipe"]["optimizer"] == "adam"
    # a folder whose config.json says otherwise is refused, naming the fields
    ident = json.loads((a.run_dir / "config.json").read_text())
    ident["seed"] = 7
    (a.run_dir / "config.json").write_text(json.dumps(ident))
    with pytest.raises(ValueError, match=r"holds a run with other settings \(\['seed'\]\)"):
        finetune(a, progress=False)


def test_constant_schedule_delta1_is_a_one_epoch_finetune(tiny_model, data_root, tmp_path):
    long = cfg(tiny_model, data_root, tmp_path)
    one = cfg(tiny_model, data_root, tmp_path, epochs=1)
    finetune(long, progress=False)
    finetune(one, progress=False)
    d1 = load_tensors(long.run_dir / "delta_epoch_001.safetensors")
    tau = load_tensors(one.run_dir / "tau.safetensors")
    assert all(torch.equal(d1[k], tau[k]) for k in d1)


def test_scheduled_recipe_needs_one_epoch_runs_to_merge(tiny_model, data_root, tmp_path):
    kw = dict(recipe="ilharco", batch_size=8, amp=False)
    cfgs = [cfg(tiny_model, data_root, tmp_path, d, **kw) for d in ("MNIST", "RESISC45")]
    for c in cfgs:
        finetune(c, progress=False)
    with pytest.raises(RunsMismatch, match=r"one-epoch finetune of MNIST.*cosine schedule.*--epochs 1"):
        merge(cfgs)
    for c in cfgs:
        finetune(cfg(tiny_model, data_root, tmp_path, c.dataset, epochs=1, **kw), progress=False)
    m = merge(cfgs)
    assert {s["what"] for s in m["kinds"]["one_epoch"]["sources"].values()} == {"tau of an --epochs 1 run"}


def test_merge_refuses_runs_with_different_theta0(tiny_model, data_root, tmp_path):
    a = cfg(tiny_model, data_root, tmp_path, "MNIST", seed=0)
    b = cfg(tiny_model, data_root, tmp_path, "RESISC45", seed=1)  # random init: another θ₀
    for c in (a, b):
        finetune(c, progress=False)
    with pytest.raises(RunsMismatch, match="do not share theta0"):
        merge([a, b])


def test_keep_first_n_deltas(tiny_model, data_root, tmp_path):
    c = cfg(tiny_model, data_root, tmp_path, epochs=3, keep_deltas=1)
    res = finetune(c, progress=False)
    assert sorted(p.name for p in c.run_dir.glob("delta_epoch_*")) == ["delta_epoch_001.safetensors"]
    assert all(e["cos_tau_delta"] is not None for e in res["epochs"]) and res["deltas_kept"] == 1
    assert not (c.run_dir / "checkpoint").exists()  # a finished run keeps no checkpoint


def test_recipes_are_the_published_ones():
    pc = RECIPES["paper-code"]
    assert (pc.optimizer, pc.lr, pc.weight_decay, pc.batch_size, pc.schedule, pc.clip, pc.augment,
            pc.amp, pc.model) == ("adam", 1e-5, 0.0, 32, "constant", 10.0, True, False,
                                  "ViT-B-16-quickgelu")
    il = RECIPES["ilharco"]
    assert (il.optimizer, il.weight_decay, il.batch_size, il.warmup_steps, il.clip, il.augment) \
        == ("adamw", 0.1, 128, 500, 1.0, True)
    assert not RECIPES["theory"].augment
    assert FinetuneConfig("MNIST", recipe="paper-code", device="cpu").model == "ViT-B-16-quickgelu"


# -- the smoke command on each dataset, and user errors through the command line -------------
SMOKE = ["--model", "tvgrad-tiny-ViT", "--pretrained", "none", "--max-samples", "64",
         "--device", "cpu", "--epochs", "1", "--num-workers", "0"]


@pytest.mark.parametrize("name", list(WRITERS))
def test_smoke_command_on_each_dataset(tmp_path, name, capsys):
    assert main(["synthetic-data", "--root", str(tmp_path / "data"), "--datasets", name]) == 0
    rc = main(["finetune", "--dataset", name, "--data-root", str(tmp_path / "data"),
               "--out", str(tmp_path / "runs"), *SMOKE])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"{name}: test accuracy" in out.out


def _err(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    return rc, err


def test_user_errors_exit_2_with_one_line(tmp_path, data_root, capsys, monkeypatch):
    base = ["--data-root", str(data_root), "--out", str(tmp_path / "runs"), "--model",
            "tvgrad-tiny-ViT", "--pretrained", "none", "--num-workers", "0"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, err = _err(["finetune", "--dataset", "MNIST", *base, "--device", "cuda"], capsys)
    assert rc == 2 and "CUDA is not available" in err and "--device cpu" in err
    for bad in ("0", "-1"):
        rc, err = _err(["finetune", "--dataset", "MNIST", *base, "--max-samples", bad], capsys)
        assert rc == 2 and f"must be >= 1, got {bad}" in err
    rc, err = _err(["merge", "--datasets", ",", *base, "--device", "cpu"], capsys)
    assert rc == 2 and "names no dataset" in err
    rc, err = _err(["empirical-all", "--devices=x", "--datasets", "MNIST", *base, "--device",
                    "cpu"], capsys)
    assert rc == 2 and "--devices 'x'" in err
    (tmp_path / "empty").mkdir()
    rc, err = _err(["empirical-report", "--out", str(tmp_path / "empty"), "--html",
                    str(tmp_path / "r.html")], capsys)
    assert rc == 2 and "no finished runs" in err and not (tmp_path / "r.html").exists()
    rc, err = _err(["empirical-report", "--out", str(tmp_path / "typo")], capsys)
    assert rc == 2 and "typo not found" in err


def test_broken_files_are_named(tiny_model, data_root, tmp_path, monkeypatch):
    c = cfg(tiny_model, data_root, tmp_path, epochs=1)
    finetune(c, progress=False)
    (c.run_dir / "results.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"results.json is not valid JSON"):
        finetune(c, progress=False)
    c = cfg(tiny_model, data_root, tmp_path, epochs=2)

    def killed(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(ft, "_finish", killed)  # killed after the last epoch: checkpoint kept
    with pytest.raises(KeyboardInterrupt):
        finetune(c, progress=False)
    monkeypatch.undo()
    p = next((c.run_dir / "checkpoint").glob("epoch-*")) / "params.safetensors"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"params.safetensors is not a readable safetensors"):
        finetune(c, progress=False)


def test_a_broken_test_image_fails_before_training(tiny_model, data_root, tmp_path):
    img = data_root / "resisc45" / "NWPU-RESISC45" / "airport" / "airport_005.jpg"  # test split
    img.write_bytes(img.read_bytes()[:100])
    c = cfg(tiny_model, data_root, tmp_path, "RESISC45")
    with pytest.raises(ValueError, match=r"airport_005.jpg is truncated or unreadable"):
        finetune(c, progress=False)
    assert not list(c.run_dir.glob("delta_epoch_*"))  # nothing trained
