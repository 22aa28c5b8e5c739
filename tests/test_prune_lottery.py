"""prune_run end to end on tiny runs: functional BN+Dropout models, the CNN head, seeds, rewinding."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from slimdeploy.errors import UserError
from slimdeploy.prune import PruneSettings, prune_run
from test_prune_surgery import bn_dropout_model as surgery_bn_dropout_model

keras = pytest.importorskip("keras")
layers = keras.layers


def run_with_model(tmp_path, tiny_run, model):
    """A copy of tiny_run whose dense model (and θ0) is ``model``; training settings stay the tiny run's."""
    from slimdeploy.models import save_model, save_weights

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run / "dense", run_dir / "dense")
    save_weights(model, run_dir / "dense" / "init.weights.h5")
    save_model(model, run_dir / "dense" / "model.keras")
    return run_dir


def bn_dropout_model():
    return surgery_bn_dropout_model(seed=0, widths=(48, 24), first_dropout=0.2)


def test_functional_model_with_batchnorm_and_dropout_prunes_in_both_modes(tmp_path, tiny_run, small_data):
    from slimdeploy.models import load_model

    run_dir = run_with_model(tmp_path, tiny_run, bn_dropout_model())
    structured = prune_run(run_dir, PruneSettings(mode="structured", rounds=1, rate=0.5, epochs=1, controls=False), data=small_data)
    assert structured["rounds"][1]["widths"] == [24, 12, 10]
    ticket = load_model(run_dir / "structured" / "ticket.keras")
    assert [w.shape for w in ticket.get_layer("bn").get_weights()] == [(24,)] * 4
    assert ticket.get_layer("hidden_b").kernel.shape == (24, 12)
    unstructured = prune_run(run_dir, PruneSettings(mode="unstructured", rounds=1, rate=0.5, epochs=1, controls=False), data=small_data)
    final = unstructured["rounds"][1]
    assert final["widths"] == [48, 24, 10] and final["weights_remaining"] == pytest.approx(0.5, abs=0.01)
    assert unstructured["unprunable"] == []


def test_cnn_recipe_only_its_dense_head_shrinks(tmp_path, tiny_run, small_data):
    from slimdeploy.recipes import load_recipe
    from slimdeploy.models import build_model, load_model

    keras.utils.set_random_seed(0)
    dense = build_model(load_recipe("fashion_cnn"))
    run_dir = run_with_model(tmp_path, tiny_run, dense)
    record = prune_run(run_dir, PruneSettings(mode="structured", rounds=1, rate=0.5, epochs=1, controls=False), data=small_data)
    assert record["rounds"][1]["widths"] == [64, 32, 10]
    assert [item["reason"].split(" ")[0] for item in record["unprunable"]] == ["output"]
    ticket = load_model(run_dir / "structured" / "ticket.keras")
    convs = [layer for layer in ticket.layers if isinstance(layer, layers.Conv2D)]
    assert [c.kernel.shape for c in convs] == [layer.kernel.shape for layer in dense.layers if isinstance(layer, layers.Conv2D)]
    assert record["rounds"][1]["params"] < record["rounds"][0]["params"]


def test_model_without_removable_units_is_a_user_error(tmp_path, tiny_run, small_data):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28), name="input")
    flat = layers.Flatten()(inputs)
    outputs = layers.Add()([layers.Dense(10, name="a")(flat), layers.Dense(10, name="b")(flat)])
    run_dir = run_with_model(tmp_path, tiny_run, keras.Model(inputs, layers.Activation("softmax")(outputs)))
    with pytest.raises(UserError, match="no Dense layer whose units can be removed.*Add"):
        prune_run(run_dir, PruneSettings(mode="structured", rounds=1, epochs=1), data=small_data)


def test_several_seeds_report_mean_and_spread_and_target_is_met(tmp_path, tiny_run, small_data):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    settings = PruneSettings(mode="structured", rounds=2, target=0.1, seeds=(0, 1), epochs=1, controls=False)
    record = prune_run(run_dir, settings, data=small_data)
    final = record["rounds"][-1]
    assert final["weights_remaining"] <= 0.1 and final["params_fraction"] <= 0.1
    assert set(record["per_seed"]) == {"0", "1"} and final["seeds"] == 2
    tests = [rounds[-1]["test_accuracy"] for rounds in record["per_seed"].values()]
    assert final["test_accuracy"] == pytest.approx(np.mean(tests))
    assert final["test_accuracy_std"] == pytest.approx(np.std(tests, ddof=1))
    assert (run_dir / "structured" / "seed_1" / "dense" / "model.keras").is_file()
    assert (run_dir / "structured" / "seed_1" / "round_2" / "model.keras").is_file()
    assert json.loads((run_dir / "structured" / "lottery.json").read_text())["complete"] is True


def test_rewind_reproduces_the_dense_weights_after_k_steps(tmp_path, tiny_run, small_data):
    from slimdeploy.models import load_model
    from slimdeploy.saved_run import run_recipe
    from slimdeploy.train import fit

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    training = run_recipe(run_dir).training
    steps = math.ceil(len(small_data.x_train) / training.batch_size)  # one epoch
    record = prune_run(run_dir, PruneSettings(mode="unstructured", rounds=1, reset=f"rewind:{steps}", epochs=1, controls=False),
                       data=small_data)
    assert record["settings"]["reset"] == f"rewind:{steps}"
    cached = load_model(run_dir / "dense" / "model.keras")
    cached.load_weights(run_dir / "unstructured" / f"rewind_{steps}.weights.h5")
    replay = keras.models.clone_model(cached)
    replay.load_weights(run_dir / "dense" / "init.weights.h5")
    fit(replay, small_data, training, seed=0, epochs=1)  # the dense training's first epoch, 64 steps per call
    for a, b in zip(cached.get_weights(), replay.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match="fewer steps"):
        prune_run(run_dir, PruneSettings(mode="structured", rounds=1, reset="rewind:100000"), data=small_data)
