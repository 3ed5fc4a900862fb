"""The empirical report draws the published shares only beside comparable runs."""

from dataclasses import asdict

from tvgrad.empirical.finetune import RECIPES
from tvgrad.empirical.report import comparable, reference_shares


def _run(model="ViT-B-16-quickgelu", recipe="paper-code", epochs=None, dataset="MNIST", **over):
    n = len(reference_shares()[dataset]) if epochs is None else epochs
    return {"dataset": dataset, "model": model, "epochs": [{}] * n,
            "recipe": {"name": recipe, **asdict(RECIPES[recipe]), **over}}


def test_published_shares_only_beside_the_same_model_recipe_and_epochs():
    assert comparable(_run()) == (True, "")
    assert comparable(_run(model="ViT-B-16"))[0]
    ok, why = comparable(_run(model="ViT-B-32-quickgelu"))
    assert not ok and "model ViT-B-32-quickgelu (published: ViT-B-16)" in why
    ok, why = comparable(_run(recipe="ilharco"))
    assert not ok and "recipe ilharco (published: paper-code)" in why
    ok, why = comparable(_run(lr=2e-5))
    assert not ok and "recipe paper-code with overrides" in why
    ok, why = comparable(_run(epochs=3))
    assert not ok and "3 epochs (published: 5)" in why
    assert comparable(_run(dataset="DTD"))[0]  # 76 epochs
