"""Structured surgery, masks, schedules and settings: fast tests on real Keras models."""

from __future__ import annotations

import numpy as np
import pytest

from slimdeploy.errors import UserError
from slimdeploy.prune import masks as masking
from slimdeploy.prune import neurons
from slimdeploy.prune.graph import analyze
from slimdeploy.prune.schedule import keep_count, solve_rate
from slimdeploy.prune.settings import PruneSettings, parse_reset

keras = pytest.importorskip("keras")
layers = keras.layers


def mlp(units=(40, 20), seed=0):
    keras.utils.set_random_seed(seed)
    stack = [keras.Input((28, 28), name="input"), layers.Flatten()]
    stack += [layers.Dense(width, activation="relu") for width in units]
    stack.append(layers.Dense(10, activation="softmax"))
    return keras.Sequential(stack)


def bn_dropout_model(seed=0, widths=(32, 16), first_dropout=0.3):
    """Functional: Dense -> BatchNormalization -> Dropout -> Dense -> Activation -> Dropout -> Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28), name="input")
    x = layers.Flatten()(inputs)
    x = layers.Dense(widths[0], name="hidden_a")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(first_dropout)(x)
    x = layers.Dense(widths[1], activation="relu", name="hidden_b")(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs)


def images(count=64, seed=1):
    return np.random.default_rng(seed).random((count, 28, 28), dtype=np.float32)


# ---------------------------------------------------------------- graph


def test_mlp_hidden_layers_are_prunable_and_the_output_layer_is_not():
    model = mlp()
    graph = analyze(model)
    hidden_a, hidden_b, out = graph.dense
    assert graph.prunable == [hidden_a, hidden_b]
    assert graph.outputs == {out}
    assert "output layer" in graph.unprunable[out]
    assert graph.consumers[hidden_a] == [hidden_b] and graph.producer[out] == hidden_b


def test_layers_feeding_add_concatenate_or_a_shared_layer_are_left_alone_with_a_reason():
    inputs = keras.Input((12,), name="input")
    trunk = layers.Dense(8, activation="relu", name="trunk")(inputs)
    left = layers.Dense(6, name="left")(trunk)
    right = layers.Dense(6, name="right")(trunk)
    added = layers.Add(name="add")([left, right])
    side = layers.Dense(4, name="side")(inputs)
    joined = layers.Concatenate(name="concat")([added, side])
    shared = layers.Dense(5, name="shared")
    twice = layers.Add(name="add2")([shared(joined), shared(joined)])
    outputs = layers.Dense(3, activation="softmax", name="out")(twice)
    graph = analyze(keras.Model(inputs, outputs))
    assert graph.prunable == ["trunk"]
    assert sorted(graph.consumers["trunk"]) == ["left", "right"]
    assert "Add" in graph.unprunable["left"] and "Add" in graph.unprunable["right"]
    assert "Concatenate" in graph.unprunable["side"]
    assert "shared" in graph.unprunable["shared"]
    assert "output" in graph.unprunable["out"]


# ---------------------------------------------------------------- structured surgery


def test_removing_dead_units_leaves_the_outputs_unchanged():
    model = mlp()
    graph = analyze(model)
    first, second, _ = graph.dense
    dead = {first: [3, 7, 8, 30], second: [0, 19]}
    for name, units in dead.items():
        kernel, bias = model.get_layer(name).get_weights()
        kernel[:, units] = 0.0
        bias[units] = -1.0  # ReLU output is exactly 0 whatever the input: the unit is dead
        model.get_layer(name).set_weights([kernel, bias])
    keep = {name: np.setdiff1d(np.arange(model.get_layer(name).units), units) for name, units in dead.items()}
    narrow = neurons.shrink(model, keep, graph)
    assert [layer.units for layer in narrow.layers if isinstance(layer, layers.Dense)] == [36, 18, 10]
    x = images()
    np.testing.assert_allclose(narrow.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_l1_criterion_removes_the_units_with_the_weakest_incoming_weights():
    model = mlp()
    graph = analyze(model)
    first = graph.dense[0]
    kernel, bias = model.get_layer(first).get_weights()
    kernel[:, [5, 11]] *= 1e-3
    model.get_layer(first).set_weights([kernel, bias])
    keep = neurons.choose_units(model, graph, "l1", widths={first: 38, graph.dense[1]: 20})
    assert 5 not in keep[first] and 11 not in keep[first] and len(keep[first]) == 38
    assert list(keep[first]) == sorted(keep[first])


def test_bias_threshold_criterion_keeps_units_whose_bias_reaches_the_threshold():
    model = mlp()
    graph = analyze(model)
    first, second, _ = graph.dense
    for name in (first, second):
        kernel, bias = model.get_layer(name).get_weights()
        bias[:] = 0.5
        bias[:3] = 0.0005
        model.get_layer(name).set_weights([kernel, bias])
    keep = neurons.choose_units(model, graph, "bias-threshold", threshold=0.001)
    assert keep[first][0] == 3 and len(keep[first]) == 37 and len(keep[second]) == 17


def test_bn_and_dropout_between_dense_layers_are_sliced_and_outputs_kept_for_silent_units():
    model = bn_dropout_model()
    x = images()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(len(x)) % 10, epochs=1, verbose=0)  # moves BN statistics away from 0/1
    graph = analyze(model)
    assert graph.prunable == ["hidden_a", "hidden_b"] and graph.batchnorms == {"bn": "hidden_a"}
    keep = {"hidden_a": np.array([0, 2, 5, 9, 10, 31]), "hidden_b": np.arange(0, 16, 2)}
    # Units whose outgoing weights are zero contribute nothing; removing them must change nothing.
    for consumer, producer in (("hidden_b", "hidden_a"), ("out", "hidden_b")):
        kernel, bias = model.get_layer(consumer).get_weights()
        kernel[np.setdiff1d(np.arange(kernel.shape[0]), keep[producer]), :] = 0.0
        model.get_layer(consumer).set_weights([kernel, bias])
    narrow = neurons.shrink(model, keep, graph)
    bn_old, bn_new = model.get_layer("bn"), narrow.get_layer("bn")
    assert [w.shape for w in bn_new.get_weights()] == [(6,)] * 4
    np.testing.assert_array_equal(bn_new.get_weights()[2], bn_old.get_weights()[2][keep["hidden_a"]])
    assert narrow.get_layer("hidden_b").kernel.shape == (6, 8) and narrow.get_layer("out").kernel.shape == (8, 10)
    np.testing.assert_allclose(narrow.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_cnn_head_shrinks_and_convolutions_are_untouched():
    from slimdeploy.recipes import load_recipe
    from slimdeploy.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(load_recipe("fashion_cnn"))
    graph = analyze(model)
    head = graph.prunable
    assert len(head) == 2 and graph.dense[-1] not in head
    keep = {head[0]: np.arange(0, 128, 4), head[1]: np.arange(0, 64, 4)}
    narrow = neurons.shrink(model, keep, graph)
    assert [layer.units for layer in narrow.layers if isinstance(layer, layers.Dense)] == [32, 16, 10]
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            for old, new in zip(layer.get_weights(), narrow.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(old, new)
    assert narrow.get_layer(head[0]).kernel.shape[0] == model.get_layer(head[0]).kernel.shape[0]  # flattened features stay


# ---------------------------------------------------------------- masks


def test_layer_masks_keep_exact_counts_and_the_output_layer_at_half_rate():
    model = mlp()
    graph = analyze(model)
    sizes = masking.kernel_sizes(model, graph.dense)
    counts = masking.keep_counts(sizes, graph.outputs, 0.5, 1, "layer")
    result = masking.magnitude_masks(model, masking.full_masks(model, graph.dense), counts)
    for name, mask in result.items():
        assert mask.sum() == counts[name]
        kernel = np.abs(model.get_layer(name).kernel.numpy())
        assert kernel[mask].min() >= kernel[~mask].max()  # the largest magnitudes survive
    assert counts[graph.dense[-1]] == round(sizes[graph.dense[-1]] * 0.75)
    total = masking.keep_counts(sizes, graph.outputs, 0.5, 2, "global")
    assert sum(mask.sum() for mask in masking.magnitude_masks(model, result, total).values()) == total


def test_masked_weights_stay_exactly_zero_through_training_and_in_the_saved_model(tmp_path):
    from slimdeploy.models import load_model, save_model

    model = bn_dropout_model()
    graph = analyze(model)
    sizes = masking.kernel_sizes(model, graph.dense)
    mask = masking.magnitude_masks(model, masking.full_masks(model, graph.dense),
                                   masking.keep_counts(sizes, graph.outputs, 0.8, 1, "layer"))
    masking.attach_masks(model, mask)
    # Adam and momentum would move zeroed weights straight back without the constraint.
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", steps_per_execution=4)
    x = images(256)
    model.fit(x, np.arange(len(x)) % 10, epochs=2, batch_size=16, verbose=0)
    masking.detach_masks(model, mask)
    assert masking.masked_nonzeros(model, mask) == 0
    kept = sum(int(m.sum()) for m in mask.values())
    zeros, total = masking.kernel_zeros(model, graph.dense)
    assert zeros == total - kept
    save_model(model, tmp_path / "masked.keras")
    loaded = load_model(tmp_path / "masked.keras")
    assert masking.kernel_zeros(loaded, graph.dense) == (zeros, total)


# ---------------------------------------------------------------- schedule and settings


def test_target_gives_a_rate_whose_final_round_keeps_at_most_the_target():
    model = mlp(units=(300, 150))
    graph = analyze(model)
    sizes = masking.kernel_sizes(model, graph.dense)
    for scope in ("layer", "global"):
        def kept(rate, scope=scope):
            return masking.kept_fraction(sizes, graph.outputs, rate, 5, scope)
        rate = solve_rate(kept, 0.1, 5)
        assert kept(rate) <= 0.1 < kept(rate - 1e-4)
    structured = solve_rate(lambda rate: neurons.kept_fraction(model, graph, rate, 5), 0.1, 5)
    assert neurons.kept_fraction(model, graph, structured, 5) <= 0.1 < neurons.kept_fraction(model, graph, structured - 1e-3, 5)


def test_unreachable_target_is_a_user_error():
    with pytest.raises(UserError, match="unreachable"):
        solve_rate(lambda rate: 0.2, 0.1, 3)


def test_keep_count_compounds_from_the_original_size():
    assert [keep_count(300, 0.2, k) for k in range(4)] == [300, 240, 192, 154]
    assert keep_count(10, 0.99, 5) == 1


@pytest.mark.parametrize("changes, message", [
    ({"rate": 1.0}, "--rate"), ({"rate": 0.0}, "--rate"), ({"target": 0.0}, "--target"), ({"target": 1.0}, "--target"),
    ({"rounds": 0}, "--rounds"), ({"reset": "rewind:0"}, "--reset"), ({"reset": "θ0"}, "--reset"),
    ({"scope": "global"}, "unstructured only"), ({"seeds": (1, 1)}, "twice"),
    ({"criterion": "bias-threshold", "target": 0.1}, "--target needs"),
])
def test_settings_reject_impossible_values(changes, message):
    with pytest.raises(UserError, match=message):
        PruneSettings(**changes).validated()


def test_settings_from_toml_table():
    settings = PruneSettings.from_dict({"mode": "unstructured", "seeds": [0, 1], "reset": "rewind:100"})
    assert settings.seeds == (0, 1) and settings.rewind_steps == 100 and parse_reset("trained") == ("trained", None)
    with pytest.raises(UserError, match="unknown key"):
        PruneSettings.from_dict({"rouds": 3})
