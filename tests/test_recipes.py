"""Recipes: the shipped TOML files build the intended models; the layers users write build and
train; every unknown key or wrong value is refused in one line, by the library and the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from conftest import run_cli_here
from errors_doc import check
from slimdeploy.recipes import Recipe, check_recipe_data, load_recipe, recipe_from_dict, recipe_from_record
from slimdeploy.errors import UserError
from slimdeploy.models import build_model, count_flops, count_params, dense_widths, model_input_dtype
from slimdeploy.saved_run import run_recipe


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
    ({"model": {"input_shape": [28, 28], "layers": [{"type": "dense", "units": 3}]}, "training": {"optimizer": "nadam"}}, "optimizer"),
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


# --- Strict recipes and the layers users write (issue 11, item 5) -----------------------------

MLP_LAYERS = '{ type = "flatten" }, { type = "dense", units = 10, activation = "softmax" }'


def recipe_toml(layers: str = MLP_LAYERS, *, top: str = "", model: str = "", training: str = "", dataset: str = "") -> str:
    """A small recipe; each argument adds lines to its table."""
    return (f'name = "t"\n{top}\n[model]\ninput_shape = [28, 28]\n{model}\nlayers = [{layers}]\n\n'
            f"[training]\nepochs = 1\n{training}\n\n[dataset]\nvalidation_size = 100\n{dataset}\n")


def recipe(layers: list[dict], input_shape=(28, 28), **model) -> Recipe:
    return recipe_from_dict({"model": {"input_shape": list(input_shape), "layers": layers, **model}}, "r.toml")


def train_one_step(model, x, y, from_logits: bool = False) -> float:
    """One real optimizer step; returns how far the weights moved."""
    from slimdeploy.recipes import TrainingSettings
    from slimdeploy.train import compile_model

    before = [w.numpy().copy() for w in model.trainable_weights]
    compile_model(model, TrainingSettings(optimizer="adam", learning_rate=0.01, from_logits=from_logits),
                  steps_per_execution=1)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(np.asarray(loss)).all()
    return max(float(np.abs(w.numpy() - b).max()) for w, b in zip(model.trainable_weights, before))


def test_embedding_layer_normalization_and_pooling1d_build_and_train():
    import keras

    tokens = recipe([{"type": "embedding", "input_dim": 50, "output_dim": 8},
                     {"type": "layer_normalization"}, {"type": "global_average_pooling1d"},
                     {"type": "dense", "units": 2}], input_shape=[12], input_dtype="int32")
    model = build_model(tokens)
    assert model_input_dtype(model) == "int32" and tokens.input_dtype == "int32"
    assert [type(layer) for layer in model.layers] == [keras.layers.Embedding, keras.layers.LayerNormalization,
                                                        keras.layers.GlobalAveragePooling1D, keras.layers.Dense]
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50, (16, 12)).astype(np.int32), rng.integers(0, 2, 16)
    assert train_one_step(model, x, y, from_logits=True) > 0


def test_conv_options_and_pooling2d_build_and_train():
    import keras

    conv = recipe([{"type": "reshape", "target_shape": [8, 8, 1]},
                   {"type": "conv2d", "filters": 4, "kernel_size": [3, 3], "padding": "same", "activation": "relu",
                    "kernel_initializer": "he_normal", "kernel_regularizer": {"l2": 0.01}},
                   {"type": "global_average_pooling2d"},
                   {"type": "dense", "units": 3, "activation": "softmax", "use_bias": False}], input_shape=[8, 8])
    model = build_model(conv)
    assert isinstance(model.layers[2], keras.layers.GlobalAveragePooling2D)
    conv_layer, head = model.layers[1], model.layers[3]
    assert isinstance(conv_layer.kernel_initializer, keras.initializers.HeNormal)
    assert model.layers[1].output.shape == (None, 8, 8, 4)  # padding "same"
    assert head.bias is None and count_params(model) == (9 * 4 + 4) + 4 * 3
    rng = np.random.default_rng(0)
    assert train_one_step(model, rng.random((16, 8, 8), dtype=np.float32), rng.integers(0, 3, 16)) > 0


@pytest.mark.parametrize("regularizer, l1, l2", [
    ({"l2": 0.001}, 0.0, 0.001), ({"l1": 0.002}, 0.002, 0.0), ({"l1": 0.001, "l2": 0.003}, 0.001, 0.003),
    ("l2", 0.0, 0.01), ("l1_l2", 0.01, 0.01),  # Keras's default factors
])
def test_kernel_regularizer_adds_its_loss(regularizer, l1, l2):
    model = build_model(recipe([{"type": "flatten"},
                                {"type": "dense", "units": 10, "kernel_regularizer": regularizer}], input_shape=[4]))
    kernel = model.layers[1].kernel.numpy()
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(l1 * np.abs(kernel).sum() + l2 * np.square(kernel).sum(), rel=1e-5)


def test_use_bias_false_removes_the_bias_and_initializer_is_used():
    with_bias = build_model(recipe([{"type": "flatten"}, {"type": "dense", "units": 10}]))
    without = build_model(recipe([{"type": "flatten"},
                                  {"type": "dense", "units": 10, "use_bias": False, "kernel_initializer": "zeros"}]))
    assert count_params(with_bias) == 784 * 10 + 10 and with_bias.losses == []
    assert without.layers[1].bias is None and count_params(without) == 784 * 10
    assert not without.layers[1].kernel.numpy().any()


DENSE = {"type": "dense", "units": 3}


@pytest.mark.parametrize("layers, model, tables, message", [
    ([{**DENSE, "use_bias": "no"}], {}, {}, r"model.layers\[0\] \(dense\): use_bias must be true or false, got 'no'"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": [3]}, DENSE], {}, {}, "kernel_size must be a positive integer or"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"}, DENSE], {}, {}, 'padding must be "valid"'),
    ([{"type": "dropout", "rate": 1.0}, DENSE], {}, {}, r"rate must be a number in \[0, 1\)"),
    ([{"type": "embedding", "input_dim": 0, "output_dim": 4}, DENSE], {"input_dtype": "int32"}, {}, "input_dim must be"),
    ([{**DENSE, "kernel_regularizer": {"l2": -1}}], {}, {}, "kernel_regularizer must be a Keras regularizer name"),
    ([{**DENSE, "kernel_regularizer": "regularizer"}], {}, {}, "kernel_regularizer must be"),  # the abstract base
    # A Keras config naming a module would import it: a recipe's table never reaches the deserializer.
    ([{**DENSE, "kernel_regularizer": {"class_name": "system", "module": "os"}}], {}, {}, "kernel_regularizer must be"),
    ([{**DENSE, "activation": {"class_name": "system", "module": "os"}}], {}, {}, "activation must be a Keras activation"),
    ([{**DENSE, "kernel_initializer": "Initializer"}], {}, {}, "kernel_initializer must be"),
    ([{**DENSE, "kernel_initializer": "Constant"}], {}, {}, "kernel_initializer must be"),  # needs a value
    ([{**DENSE, "name": "a"}, {**DENSE, "name": "a"}], {}, {}, r"name 'a' is already used by model.layers\[0\]"),
    ([{"type": ["dense"]}], {}, {}, r"model.layers\[0\]: type must be one of"),
    ([DENSE], {"input_shape": [0]}, {}, "model.input_shape must be a list of positive integers"),
    ([DENSE], {}, {"training": {"from_logits": True, "loss": "mean_squared_error"}}, "needs a cross-entropy loss"),
    ([DENSE], {}, {"training": {"momentum": 1.5}}, r"training.momentum must be a number in \[0, 1\)"),
    ([DENSE], {}, {"training": {"loss": "hinge_loss"}}, "training.loss must be a Keras loss name"),
    ([DENSE], {}, {"dataset": {"scale": True}}, "dataset.scale must be a positive number"),
    ([DENSE], {}, {"dataset": {"scale": float("inf")}}, "dataset.scale must be a positive number"),
    ([DENSE], {}, {"name": 3}, "name must be a string"),
])
def test_wrong_values_of_known_keys_are_refused(layers, model, tables, message):
    raw = {"model": {"input_shape": [4], "layers": layers, **model}, **tables}
    with pytest.raises(UserError, match=message):
        recipe_from_dict(raw, "bad.toml")


def test_npz_recipe_refuses_to_fall_back_to_fashion_mnist(tmp_path):
    npz = recipe_from_dict({"model": {"input_shape": [4], "layers": [DENSE]}, "dataset": {"name": "npz"}}, "own.toml")
    check_recipe_data(npz, tmp_path / "own.npz")
    for data in (None, tmp_path / "idx_dir"):
        with pytest.raises(UserError, match='recipe own.toml: dataset.name = "npz" trains on the arrays of an .npz file'):
            check_recipe_data(npz, data)
    check_recipe_data(load_recipe("fashion_mlp"), None)  # fashion_mnist: the usual search


def test_every_new_field_survives_the_metrics_json_round_trip():
    full = recipe_from_dict({
        "name": "tokens", "description": "ids",
        "model": {"input_shape": [12], "input_dtype": "int64", "layers": [
            {"type": "embedding", "input_dim": 50, "output_dim": 8, "name": "emb"},
            {"type": "layer_normalization"}, {"type": "global_average_pooling1d"},
            {"type": "dense", "units": 4, "activation": "gelu", "use_bias": False, "kernel_initializer": "he_normal",
             "kernel_regularizer": {"l1": 0.001, "l2": 0.01}},
            {"type": "dense", "units": 2, "kernel_regularizer": "l1_l2"}]},
        "training": {"from_logits": True, "optimizer": "adam"},
        "dataset": {"name": "npz", "scale": 255}}, "own.toml")
    for scale in (255, None):  # None: what metrics.json says for "no scaling" (TOML has no null)
        written = dataclasses.replace(full, dataset=dataclasses.replace(full.dataset, scale=scale))
        record = json.loads(json.dumps(written.to_dict()))
        assert record["dataset"]["scale"] == scale and record["input_dtype"] == "int64"
        assert recipe_from_record(record, "metrics.json") == dataclasses.replace(written, path="metrics.json")
    # A run recorded before these fields existed reads back with their defaults.
    old = json.loads(json.dumps(load_recipe("fashion_mlp").to_dict()))
    del old["input_dtype"]
    del old["training"]["from_logits"], old["dataset"]["scale"]
    restored = recipe_from_record(old, "old/metrics.json")
    assert restored.input_dtype == "float32" and not restored.training.from_logits and restored.dataset.scale is None


def test_embedding_recipe_trains_on_token_ids_through_the_cli(tmp_path):
    from test_own_data import STEPS, TOKENS, token_npz

    npz = token_npz(tmp_path / "tokens.npz")
    path = tmp_path / "tokens.toml"
    path.write_text(f"""name = "tokens"
[dataset]
name = "npz"
validation_size = 200
[model]
input_shape = [{STEPS}]
input_dtype = "int32"
layers = [
  {{ type = "embedding", input_dim = {TOKENS}, output_dim = 8 }},
  {{ type = "global_average_pooling1d" }},
  {{ type = "dense", units = 16, activation = "relu", kernel_regularizer = {{ l2 = 0.0001 }} }},
  {{ type = "dense", units = 2 }},
]
[training]
optimizer = "adam"
learning_rate = 0.01
epochs = 4
batch_size = 64
from_logits = true
""")
    result = run_cli_here("train", "--recipe", str(path), "--data", str(npz), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "dense" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.7  # ids decide the class; chance is 0.5
    assert metrics["data"]["dtype"] == "int32" and metrics["data"]["scale"] is None
    # What later stages read back (prune: the training settings; bench: the input shape).
    recorded = run_recipe(tmp_path / "run")
    assert recorded == dataclasses.replace(load_recipe(str(path)), path=recorded.path)
    assert recorded.input_dtype == "int32" and recorded.training.from_logits and recorded.dataset.name == "npz"


CONV_MISFIT = '{ type = "flatten" }, { type = "conv2d", filters = 4, kernel_size = 3 }, { type = "dense", units = 10 }'
EMBEDDING_FIRST = ('{ type = "embedding", input_dim = 10, output_dim = 4 }, { type = "flatten" }, '
                   '{ type = "dense", units = 10 }')


@pytest.mark.parametrize("case_id, toml, named", [
    ("train-recipe-key-top", recipe_toml(top='colour = "red"'), ["'colour'", "the top level"]),
    ("train-recipe-key-model", recipe_toml(model='input_dtypes = "int32"'), ["'input_dtypes'", "[model]"]),
    ("train-recipe-key-layer",
     recipe_toml('{ type = "flatten" }, { type = "dense", units = 10, kernel_regularise = "l2" }'),
     ["'kernel_regularise'", "model.layers[1] (dense)"]),
    ("train-recipe-key-training", recipe_toml(training="learning_rat = 0.1"), ["'learning_rat'", "[training]"]),
    ("train-recipe-key-dataset", recipe_toml(dataset="scaling = 255"), ["'scaling'", "[dataset]"]),
    ("train-recipe-layer-type", recipe_toml('{ type = "lstm", units = 4 }, { type = "dense", units = 10 }'),
     ["model.layers[0]", "'lstm'"]),
    ("train-recipe-value", recipe_toml('{ type = "flatten" }, { type = "dense", units = "300" }'),
     ["model.layers[1] (dense)", "units"]),
    ("train-recipe-activation", recipe_toml('{ type = "flatten" }, { type = "dense", units = 10, activation = "rleu" }'),
     ["model.layers[1] (dense)", "'rleu'"]),
    ("train-recipe-initializer",
     recipe_toml('{ type = "flatten" }, { type = "dense", units = 10, kernel_initializer = "glorot" }'),
     ["model.layers[1] (dense)", "kernel_initializer"]),
    ("train-recipe-regularizer",
     recipe_toml('{ type = "flatten" }, { type = "dense", units = 10, kernel_regularizer = { l3 = 0.01 } }'),
     ["model.layers[1] (dense)", "kernel_regularizer"]),
    ("train-recipe-duplicate-name",
     recipe_toml('{ type = "flatten", name = "x" }, { type = "dense", units = 10, name = "x" }'), ["model.layers[1]"]),
    ("train-recipe-input-dtype", recipe_toml(model='input_dtype = "uint8"'), ["model.input_dtype", "'uint8'"]),
    ("train-recipe-embedding-float", recipe_toml(EMBEDDING_FIRST), ["model.layers[0] (embedding)", "input_dtype"]),
    ("train-recipe-from-logits", recipe_toml(training='from_logits = "yes"'), ["training.from_logits"]),
    ("train-recipe-logits-softmax", recipe_toml(training="from_logits = true"),
     ["model.layers[1] (dense)", "softmax"]),
    ("train-recipe-loss", recipe_toml(training='loss = "hinge_loss"'), ["training.loss"]),
    ("train-recipe-scale", recipe_toml(dataset="scale = 0"), ["dataset.scale"]),
    ("train-recipe-dataset-name", recipe_toml(dataset='name = "mnist"'), ["dataset.name", "'mnist'"]),
    ("train-recipe-layer-misfit", recipe_toml(CONV_MISFIT), ["model.layers[1] (conv2d)", "(None, 784)"]),
])
def test_bad_recipes_are_refused_by_the_cli(tmp_path, case_id, toml, named):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    result = run_cli_here("train", "--recipe", str(path), "--limit", "200", "--out", str(tmp_path / "run"), "--quiet")
    check(case_id, result.returncode, result.stderr, path, *named)
    assert not (tmp_path / "run").exists()
