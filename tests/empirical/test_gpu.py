"""The pipeline on a CUDA device: bf16 autocast with fp32 parameters, fused AdamW, resume.
Skipped without a GPU (CI never has one); run with `pytest -m gpu tests/empirical`."""

from dataclasses import replace

import pytest
import torch

from tvgrad.empirical.finetune import FinetuneConfig, finetune
from tvgrad.empirical.io import load_tensors
from tvgrad.empirical.merge import merge

pytestmark = pytest.mark.gpu


def test_finetune_and_merge_on_cuda(tiny_model, data_root, tmp_path):
    cfgs = [FinetuneConfig(dataset=d, model=tiny_model, pretrained="none", data_root=str(data_root),
                           out=str(tmp_path), recipe="ilharco", batch_size=16, epochs=2,
                           device="cuda", num_workers=2, amp=True) for d in ("MNIST", "RESISC45")]
    for c in cfgs:
        res = finetune(c, progress=False)
        assert res["complete"] and all(e["mean_grad_norm"] > 0 for e in res["epochs"])
        tau = load_tensors(c.run_dir / "tau.safetensors")
        assert all(v.dtype == torch.float32 for v in tau.values())  # fp32 parameters under bf16 autocast
        assert sum(float(v.norm()) for v in tau.values()) > 0
    for c in cfgs:  # ilharco's cosine schedule: the one-epoch arm needs --epochs 1 runs
        finetune(replace(c, epochs=1), progress=False)
    m = merge(cfgs)
    assert set(m["kinds"]) == {"one_epoch", "converged"}
