"""The seven loaders on stand-ins written in the real on-disk formats, the reference splits,
and the zero-shot prompts against clip-benchmark's copy of CLIP's."""

import gzip
import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from tvgrad.empirical.data import (
    DATASETS,
    PROMPTS,
    DataCorrupt,
    DatasetMissing,
    Transformed,
    load_splits,
    provenance,
    reference_val_split,
)
from tvgrad.empirical.synthetic import WRITERS, write_mnist, write_resisc45


def test_reference_validation_slice_is_the_reference_one():
    """random_split seed 0, k = min(⌊0.1 n⌋, 5000): the reference asserts that MNISTVal's first
    training index is 36044."""
    tr, va = reference_val_split(60000)
    assert tr[0] == 36044 and len(va) == 5000 and len(tr) == 55000
    tr, va = reference_val_split(3760)  # DTD train1 + val1
    assert len(va) == 376 and not set(tr) & set(va)
    assert len(reference_val_split(5)[1]) == 1  # tiny sets: at least one validation sample


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_loader_reads_its_real_format(tmp_path, name):
    WRITERS[name](tmp_path)
    s = load_splits(name, tmp_path)
    assert min(s.sizes.values()) >= 1 and len(s.train) == s.sizes["train"]
    for ds in (s.train, s.val, s.test):
        img, y = ds[0]
        assert img.mode == "RGB" and 0 <= y < len(s.classnames)
    assert s.classnames == PROMPTS[name]["classnames"] and s.templates == PROMPTS[name]["templates"]
    assert s.split  # the split is described (results.json records it)


def test_labels_follow_the_class_folders_and_files(tmp_path):
    WRITERS["GTSRB"](tmp_path)  # classes 0, 1, 14 in folders 00000, 00001, 00014
    s = load_splits("GTSRB", tmp_path)
    assert {y for _, y in (s.train.ds[i] for i in range(len(s.train)))} <= {0, 1, 14}
    assert {y for _, y in (s.test[i] for i in range(len(s.test)))} <= {0, 1, 14}
    WRITERS["EuroSAT"](tmp_path)  # AnnualCrop, Forest, River = labels 0, 1, 8
    s = load_splits("EuroSAT", tmp_path)
    assert {s.test[i][1] for i in range(len(s.test))} == {0, 1, 8}
    WRITERS["SVHN"](tmp_path)  # label 10 on disk is the digit 0
    s = load_splits("SVHN", tmp_path)
    assert {s.test[i][1] for i in range(len(s.test))} <= set(range(10))


def test_resisc45_official_basename_split_files(tmp_path):
    """The official files list basenames (airplane_001.jpg); the class is the name up to the last
    underscore (so baseball_diamond_001.jpg is class baseball_diamond)."""
    write_resisc45(tmp_path, classes=("baseball_diamond", "beach"), per_class=5)
    base = tmp_path / "resisc45"
    assert (base / "resisc45-train.txt").read_text().splitlines()[0] == "baseball_diamond_001.jpg"
    s = load_splits("RESISC45", tmp_path)
    assert s.sizes["train"] + s.sizes["val"] == 6 and s.sizes["test"] == 2  # the train file only
    assert {s.test[i][1] for i in range(2)} == {2, 4}  # baseball_diamond, beach
    (base / "resisc45-test.txt").write_text("beach/beach_005.jpg\n")  # relative paths work too
    assert load_splits("RESISC45", tmp_path).sizes["test"] == 1
    (base / "resisc45-test.txt").write_text("beach_999.jpg\n")
    with pytest.raises(DatasetMissing, match=r"lists beach_999.jpg, but .*beach/beach_999.jpg"):
        load_splits("RESISC45", tmp_path)
    (base / "resisc45-val.txt").unlink()
    with pytest.raises(DatasetMissing, match=r"split files missing.*resisc45-val.txt"):
        load_splits("RESISC45", tmp_path)


def test_eurosat_reference_split_folders_win(tmp_path):
    WRITERS["EuroSAT"](tmp_path)
    src = tmp_path / "eurosat" / "2750"
    for split, idx in (("train", range(1, 15)), ("val", range(15, 18)), ("test", range(18, 21))):
        for c in ("AnnualCrop", "River"):
            (tmp_path / "EuroSAT_splits" / split / c).mkdir(parents=True)
            for i in idx:
                (tmp_path / "EuroSAT_splits" / split / c / f"{c}_{i}.jpg").write_bytes(
                    (src / c / f"{c}_{i}.jpg").read_bytes())
    s = load_splits("EuroSAT", tmp_path)
    assert s.sizes == {"train": 28, "val": 6, "test": 6} and "reference" in s.split


def test_mnist_gz_is_read(tmp_path):
    write_mnist(tmp_path, gz=True)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert load_splits("MNIST", tmp_path).sizes["test"] == 20


def test_truncated_files_are_named(tmp_path):
    write_mnist(tmp_path)
    f = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataCorrupt, match=r"t10k-images-idx3-ubyte is truncated: its header says"):
        load_splits("MNIST", tmp_path)
    WRITERS["CIFAR100"](tmp_path)
    f = tmp_path / "cifar-100-python" / "test"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(DataCorrupt, match=r"cifar-100-python/test is truncated"):
        load_splits("CIFAR100", tmp_path)
    write_resisc45(tmp_path)
    img = tmp_path / "resisc45" / "NWPU-RESISC45" / "airport" / "airport_005.jpg"  # a test image
    img.write_bytes(img.read_bytes()[:100])
    s = load_splits("RESISC45", tmp_path)
    with pytest.raises(DataCorrupt, match=r"airport_005.jpg is truncated or unreadable"):
        [s.test[i] for i in range(len(s.test))]


def test_gz_that_is_not_gzip_is_named(tmp_path):
    write_mnist(tmp_path, gz=True)
    f = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(b"x" * 100)[:20])
    with pytest.raises(DataCorrupt, match="train-labels-idx1-ubyte.gz is truncated or not gzip"):
        load_splits("MNIST", tmp_path)


def test_max_samples_must_be_positive(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match="max_samples must be >= 1, got 0"):
        load_splits("MNIST", tmp_path, max_samples=0)
    assert load_splits("MNIST", tmp_path, max_samples=7).sizes == {"train": 7, "val": 6, "test": 7}


def test_provenance_flags_files_that_are_not_the_published_ones(tmp_path):
    WRITERS["SVHN"](tmp_path)
    p = provenance("SVHN", tmp_path)
    assert set(p) == {"train_32x32.mat", "test_32x32.mat"}
    assert not any(v["published"] for v in p.values())
    assert provenance("DTD", tmp_path) == {}


def test_seeded_augmentation_depends_on_seed_epoch_sample_only():
    base = [(torch.zeros(3), 0)] * 4
    tf = lambda x: x + torch.rand(3)  # noqa: E731
    a, b = Transformed(base, tf, seed=1), Transformed(base, tf, seed=1)
    torch.manual_seed(123)
    x1 = a[2][0]
    torch.manual_seed(456)  # the global RNG does not matter, and is left untouched
    state = torch.get_rng_state()
    assert torch.equal(x1, b[2][0]) and torch.equal(state, torch.get_rng_state())
    assert not torch.equal(a[1][0], a[2][0])
    b.epoch = 1
    assert not torch.equal(x1, b[2][0])


# -- the zero-shot prompts -------------------------------------------------------------------
CB_KEYS = {"MNIST": "mnist", "EuroSAT": "eurosat", "GTSRB": "gtsrb", "CIFAR100": "cifar100",
           "DTD": "dtd", "SVHN": "svhn", "RESISC45": "resisc45"}
# where clip-benchmark ships CLIP's published prompts (the rest: see prompts.json's sources)
FROM_CB = {"classnames": {"MNIST", "EuroSAT", "GTSRB"},
           "templates": {"MNIST", "EuroSAT", "GTSRB", "CIFAR100", "DTD"}}


def _clip_benchmark() -> tuple[dict, dict]:
    try:
        dist = metadata.distribution("clip-benchmark")
    except metadata.PackageNotFoundError:
        pytest.skip("clip-benchmark is not installed (make install adds it, data only)")
    root = Path(dist.locate_file("clip_benchmark/datasets"))
    return (json.loads((root / "en_classnames.json").read_text()),
            json.loads((root / "en_zeroshot_classification_templates.json").read_text()))


def test_prompts_equal_clip_benchmarks_copy_of_clips():
    names, templates = _clip_benchmark()
    for d in FROM_CB["classnames"]:
        assert PROMPTS[d]["classnames"] == names[CB_KEYS[d]], d
        assert "clip-benchmark" in PROMPTS[d]["source"]["classnames"]
    for d in FROM_CB["templates"]:
        ours = [t.replace("{}", "{c}") for t in PROMPTS[d]["templates"]]
        assert ours == templates[CB_KEYS[d]], d
        assert "clip-benchmark" in PROMPTS[d]["source"]["templates"]
    # clip-benchmark's RESISC45 and SVHN prompts are VTAB's, not CLIP's / the reference's
    assert len(PROMPTS["RESISC45"]["templates"]) == 18 != len(templates["resisc45"])
    assert PROMPTS["SVHN"]["templates"] == PROMPTS["MNIST"]["templates"]


def test_every_dataset_has_prompts_with_sources():
    for d, info in DATASETS.items():
        p = PROMPTS[d]
        assert p["classnames"] and all("{}" in t for t in p["templates"])
        assert set(p["source"]) == {"classnames", "templates"}
        assert list(info.classnames) == p["classnames"]
        if "folders" in p:
            assert len(p["folders"]) == len(p["classnames"])
    assert [len(PROMPTS[d]["classnames"]) for d in DATASETS] == [100, 10, 45, 10, 10, 43, 47]
