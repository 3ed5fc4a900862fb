"""The claims on CLIP: the tiny random-weight config and generated data, offline, on the CPU."""

import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip("open_clip")

from tvgrad.cli import main  # noqa: E402
from tvgrad.empirical.clip_claims import ClipCase, clip_cases, clip_claims  # noqa: E402
from tvgrad.empirical.clip_problem import ClipSetup, HeadLoss, clip_problem  # noqa: E402
from tvgrad.errors import InvalidInput, UnknownKey  # noqa: E402

SETUP = ClipSetup(max_n=4)


def test_clip_problem_is_the_pipelines_classifier():
    """θ is the image encoder; the loss is the frozen zero-shot head's cross-entropy, as
    ImageClassifier computes it in finetuning."""
    from tvgrad.empirical.clip_problem import _model, _task
    from tvgrad.empirical.model import ClassificationHead, ImageClassifier
    prob = clip_problem(SETUP, ("MNIST",), n=3, seed=0, dtype=torch.float32)
    model = _model(SETUP.model, SETUP.pretrained, None, "cpu")[0]
    weight, _ = _task(SETUP, "MNIST")
    assert prob.num_params == sum(p.numel() for p in model.visual.parameters())
    x, y = prob.data[0].inputs[0], prob.data[0].targets
    clf = ImageClassifier(model.visual, ClassificationHead(weight)).eval()
    ref = torch.nn.functional.cross_entropy(clf(x), y)
    assert torch.allclose(prob.loss_fn(0)(prob.theta0), ref, rtol=1e-5)
    assert isinstance(prob.loss_fns[0], HeadLoss)


def test_multitask_problem_has_one_head_per_dataset():
    prob = clip_problem(SETUP, ("MNIST", "RESISC45"), n=2, seed=1)
    assert prob.num_tasks == 2
    # the heads span every class of the benchmark (CLIP's names), whichever the data holds
    assert prob.loss_fns[0].weight.shape[0] == 10 and prob.loss_fns[1].weight.shape[0] == 45


def test_strategy_draws_valid_cases():
    from hypothesis import given, settings
    seen = set()

    @settings(max_examples=25, database=None, derandomize=True)
    @given(clip_cases(SETUP, min_tasks=2, max_tasks=3, minibatch=True))
    def check(case):
        assert 2 <= len(case.datasets) <= 2 and 2 <= case.k <= 4
        assert case.batch_size < case.n
        seen.add(case.n % case.batch_size != 0)
        assert ClipCase.from_json(case.to_json()) == case
    check()
    assert True in seen  # a smaller last batch is drawn
    with pytest.raises(InvalidInput, match="T = 2 tasks needs 2 datasets"):
        clip_cases(ClipSetup(datasets=("MNIST",)), min_tasks=2).example()


def test_single_dataset_setup_leaves_the_multitask_claims_out():
    reg = clip_claims(ClipSetup(datasets=("MNIST",)))
    assert "ta_vs_mtl_cross_term" not in reg and "multi_epoch_second_order" in reg


def test_verify_clip_offline_end_to_end(tmp_path, capsys):
    rc = main(["verify-clip", "--profile", "ci", "--max-examples", "2", "--jobs", "1",
               "--max-n", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads((tmp_path / "clip_claims.json").read_text())
    assert doc["complete"] and doc["clip"]["model"] == "tvgrad-tiny-ViT"
    status = {c["id"]: c["status"] for c in doc["claims"]}
    assert status.pop("clip_trajectory_bound") == "consistent"
    assert set(status) == {"one_epoch_exact", "ta_equals_mtl_step", "multi_epoch_second_order",
                           "sgd_epoch_second_order", "ta_vs_mtl_cross_term"}
    assert set(status.values()) == {"verified"}
    for c in doc["claims"]:
        assert all(f["rejected"] for f in c["falsifiability"] if f["must_reject"]), c["id"]
    assert doc["claims"][2]["curves"], "the report's error-vs-η curves are in the JSON"
    html = (tmp_path / "clip_claims.html").read_text()
    assert "claims on CLIP" in html and "consistent" in html and html.count("<svg") >= 1


@pytest.mark.parametrize("argv, match", [
    (["--datasets", "MNIST,ImageNet"], "unknown dataset 'ImageNet'"),
    (["--max-n", "1000"], "max_n = 1000 samples per task, but the training split of MNIST has"),
    (["--model", "NoSuchNet"], "unknown open_clip model 'NoSuchNet'"),
    (["--datasets", "CIFAR100"], "the synthetic data root has only"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--jobs", "0"], "cuda|--jobs"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, argv, match, capsys):
    rc = main(["verify-clip", "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    import re
    assert re.search(match, err), err
    assert not (tmp_path / "out").exists()


def test_reproduce_clip_command():
    case = ClipCase(SETUP, ("MNIST",), n=3, seed=2, k=2)
    r = subprocess.run([sys.executable, "-m", "tvgrad", "reproduce-clip", "--claim",
                        "multi_epoch_second_order", "--case", case.to_json(), "--variant",
                        "sign_flipped"], capture_output=True, text=True)
    assert r.returncode == 1 and '"verdict": "violated"' in r.stdout, r.stderr[-1500:]


def test_clip_case_validation():
    with pytest.raises(InvalidInput, match="k .epochs. must be an integer >= 1, got 0"):
        ClipCase(SETUP, ("MNIST",), k=0)
    with pytest.raises(InvalidInput, match="not among the setup's"):
        ClipCase(ClipSetup(datasets=("MNIST",)), ("RESISC45",))
    with pytest.raises(UnknownKey):
        ClipSetup(datasets=("Nope",))
    with pytest.raises(InvalidInput, match="subset of 500 samples asked from MNIST"):
        clip_problem(SETUP, ("MNIST",), n=500, seed=0)
