"""Recipes: the three shipped TOML files build the intended models; bad recipes are refused."""

from __future__ import annotations

import pytest

from slimdeploy.config import load_recipe, recipe_from_dict
from slimdeploy.errors import UserError
from slimdeploy.models import build_model, count_flops, count_params, dense_widths


def test_article_recipe_is_the_article_model():
    recipe = load_recipe("fashion_mlp")
    model = build_model(recipe)
    assert dense_widths(model) == [300, 150, 10]
    assert [layer.activation.__name__ for layer in model.layers[1:]] == ["relu", "relu", "softmax"]
    assert recipe.training.optimizer == "sgd" and recipe.training.batch_size == 32
    assert recipe.training.loss == "sparse_categorical_crossentropy"
    # 784*300+300 + 300*150+150 + 150*10+10
    assert count_params(model) == 282160
    assert count_flops(model) == 2 * (784 * 300 + 300 * 150 + 150 * 10)


def test_lenet_recipe_matches_the_paper():
    recipe = load_recipe("lenet_300_100")
    assert dense_widths(build_model(recipe)) == [300, 100, 10]
    assert recipe.training.optimizer == "adam" and recipe.training.learning_rate == pytest.approx(1.2e-3)
    assert recipe.training.batch_size == 60


def test_cnn_recipe_has_two_hidden_dense_layers_after_convolutions():
    import keras

    model = build_model(load_recipe("fashion_cnn"))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2 and dense_widths(model) == [128, 64, 10]
    # conv FLOPs count per output position: 26*26*3*3*1*16 MACs for the first conv
    assert count_flops(model) > 2 * 26 * 26 * 9 * 16


@pytest.mark.parametrize("raw, message", [
    ({}, "missing \\[model\\]"),
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "flatten"}]}}, "at least one dense"),
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "dense"}]}}, "needs 'units'"),
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "lstm"}]}}, "type must be one of"),
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "dense", "units": 3}]}, "training": {"optimizer": "rmsprop"}}, "optimizer"),
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "dense", "units": 3}]}, "training": {"epochs": 0}}, "epochs"),
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "dense", "units": 3}]}, "training": {"colour": 1}}, "unknown key"),
])
def test_bad_recipes_are_refused(raw, message):
    with pytest.raises(UserError, match=message):
        recipe_from_dict(raw, "bad.toml")


def test_recipe_not_found_and_bad_toml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_recipe("no_such_recipe")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_recipe(str(bad))
