"""Structured pruning through dependency groups: residual adds, concatenations, normalizations,
per-time-step Dense, nested models and text models, on small real Keras models (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from slimdeploy.errors import UserError, WorkError
from slimdeploy.prune import masks as masking
from slimdeploy.prune import neurons
from slimdeploy.prune.equivalence import check_shrunk, masked_model, probe_inputs
from slimdeploy.prune.graph import Segment, analyze, find_layer
from slimdeploy.prune.methods import Structured, Unstructured, dense_params

keras = pytest.importorskip("keras")
layers = keras.layers


def residual_mlp(seed=0):
    """Dense -> two residual blocks (Dense -> Dense -> Add skip) -> head: the skips make one group."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((20,), name="input")
    x = layers.Dense(16, activation="relu", name="stem")(inputs)
    for block in (1, 2):
        inner = layers.Dense(24, activation="relu", name=f"block{block}_a")(x)
        inner = layers.Dense(16, name=f"block{block}_b")(inner)
        x = layers.Add(name=f"add{block}")([x, inner])
        x = layers.Activation("relu", name=f"relu{block}")(x)
    x = layers.Dense(12, activation="relu", name="head")(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax", name="out")(x))


def concat_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,), name="input")
    left = layers.Dense(10, activation="relu", name="left")(inputs)
    right = layers.Dense(6, activation="tanh", name="right")(inputs)
    joined = layers.Concatenate(name="concat")([left, inputs, right])
    x = layers.Dense(8, activation="relu", name="mix")(joined)
    return keras.Model(inputs, layers.Dense(3, name="out")(x))


def normalized_mlp(kind, seed=0, **options):
    """Dense -> Batch/LayerNormalization (``options``: its settings) -> Dense -> head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,), name="input")
    x = layers.Dense(16, name="hidden_a")(inputs)
    norm_type = layers.LayerNormalization if kind == "layer" else layers.BatchNormalization
    x = norm_type(name="norm", **options)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dense(8, activation="relu", name="hidden_b")(x)
    model = keras.Model(inputs, layers.Dense(3, name="out")(x))
    _spread_weights(model.get_layer("norm"), seed)
    return model


def _spread_weights(layer, seed):
    """Moving statistics and scales away from 0/1, so a misplaced entry shows."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in layer.get_weights()])


def nested_normalized_model(seed=0):
    """A nested block Dense -> LayerNormalization -> Dense (the block's own Dense units are sliced)."""
    keras.utils.set_random_seed(seed)
    block = keras.Sequential([keras.Input((8,)), layers.Dense(16, name="inner_a"),
                              layers.LayerNormalization(name="inner_norm"),
                              layers.Dense(8, activation="relu", name="inner_b")], name="block")
    inputs = keras.Input((8,), name="input")
    model = keras.Model(inputs, layers.Dense(3, name="out")(block(inputs)))
    _spread_weights(find_layer(model, "inner_norm"), seed)
    return model


def time_step_model(seed=0, flatten=False):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 5), name="input")
    x = layers.Dense(12, activation="relu", name="step_a")(inputs)
    x = layers.Dense(8, activation="relu", name="step_b")(x)
    x = layers.Flatten(name="flat")(x) if flatten else layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dense(10, activation="relu", name="head")(x)
    return keras.Model(inputs, layers.Dense(3, name="out")(x))


def nested_model(seed=0, residual=False):
    keras.utils.set_random_seed(seed)
    block = keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu", name="inner_a"),
                              layers.Dense(8, activation="relu", name="inner_b")], name="block")
    inputs = keras.Input((8,), name="input")
    if residual:
        x = layers.Dense(8, activation="relu", name="outer")(inputs)
        x = layers.Add(name="skip")([x, block(x)])
    else:
        x = block(inputs)
    return keras.Model(inputs, layers.Dense(3, name="out")(x))


def text_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10,), dtype="int32", name="tokens")
    x = layers.Embedding(50, 8, name="embed")(inputs)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dense(16, activation="relu", name="hidden")(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax", name="out")(x))


def half_widths(model, graph):
    return {name: max(1, int(find_layer(model, name).units) // 2) for name in graph.prunable}


def shrink_half(model, criterion="l1"):
    """Analyse, keep half of every prunable group, shrink and check exactly; also the parameter count is right."""
    graph = analyze(model)
    widths = half_widths(model, graph)
    keep = neurons.choose_units(model, graph, criterion, widths=widths)
    narrow = neurons.shrink(model, keep, graph)
    check_shrunk(model, narrow, keep, graph)
    assert neurons.dense_param_count(model, graph, widths) == dense_params(narrow, graph.dense)
    return graph, keep, narrow


def kernel(model, name):
    return tuple(find_layer(model, name).kernel.shape)


# ---------------------------------------------------------------- groups


def test_residual_skips_make_one_group_that_shrinks_together():
    model = residual_mlp()
    graph, keep, narrow = shrink_half(model)
    assert ["stem", "block1_b", "block2_b"] in graph.groups
    assert graph.unprunable == {"out": graph.unprunable["out"]} and "output layer" in graph.unprunable["out"]
    np.testing.assert_array_equal(keep["stem"], keep["block1_b"])
    np.testing.assert_array_equal(keep["stem"], keep["block2_b"])
    assert kernel(narrow, "stem") == (20, 8) and kernel(narrow, "block1_b") == (12, 8)
    assert kernel(narrow, "block2_b") == (12, 8) and kernel(narrow, "block2_a") == (8, 12)
    assert kernel(narrow, "head") == (8, 6) and kernel(narrow, "out") == (6, 3)
    assert sorted(graph.consumers["stem"]) == ["block1_a", "block2_a", "head"]


def test_group_scores_are_normalised_per_member():
    model = residual_mlp()
    graph = analyze(model)
    members = ["stem", "block1_b", "block2_b"]
    stem = find_layer(model, "stem")
    weights = stem.get_weights()
    stem.set_weights([weights[0] * 1000.0, weights[1]])  # one member's scale must not decide alone
    scores = neurons.group_scores(model, members, "l1")
    per_member = [neurons.unit_scores(find_layer(model, name), "l1") for name in members]
    np.testing.assert_allclose(scores, sum(score / score.mean() for score in per_member), rtol=1e-6)
    assert graph.groups[graph.group_of["stem"]] == members
    # bias-threshold: a shared unit goes only when every member's |bias| is below the threshold
    for name in members:
        layer = find_layer(model, name)
        bias = np.full(layer.units, 0.5, dtype="float32")
        bias[[1, 2]] = 0.0
        bias[3] = 0.0 if name != "block2_b" else 0.5
        layer.set_weights([layer.get_weights()[0], bias])
    keep = neurons.choose_units(model, graph, "bias-threshold", threshold=0.1)
    assert sorted(set(range(16)) - set(keep["stem"].tolist())) == [1, 2]
    assert all(np.array_equal(keep[name], keep["stem"]) for name in members)


def test_residual_skip_from_the_input_keeps_the_units_with_a_reason():
    inputs = keras.Input((8,), name="input")
    added = layers.Add(name="skip")([inputs, layers.Dense(8, name="branch")(inputs)])
    hidden = layers.Dense(6, activation="relu", name="hidden")(added)
    graph = analyze(keras.Model(inputs, layers.Dense(3, name="out")(hidden)))
    assert graph.prunable == ["hidden"]
    assert "meets 'input' in Add 'skip'" in graph.unprunable["branch"]


def test_concatenate_slices_each_branch_and_keeps_the_input_rows():
    model = concat_mlp()
    graph, keep, narrow = shrink_half(model)
    assert graph.prunable == ["left", "right", "mix"]
    assert kernel(narrow, "left") == (12, 5) and kernel(narrow, "right") == (12, 3)
    assert kernel(narrow, "mix") == (5 + 12 + 3, 4)
    rows = neurons.kept_rows(model, graph.rows["mix"], keep, graph)
    np.testing.assert_array_equal(rows, np.concatenate([keep["left"], 10 + np.arange(12), 22 + keep["right"]]))


def test_batch_normalization_is_sliced_with_its_units_and_checked_exactly():
    model = normalized_mlp("batch")
    graph, keep, narrow = shrink_half(model)
    assert graph.batchnorms == {"norm": "hidden_a"}
    for old, new in zip(model.get_layer("norm").get_weights(), narrow.get_layer("norm").get_weights()):
        np.testing.assert_array_equal(new, old[keep["hidden_a"]])


LAYER_NORM_SETTINGS = [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False},
                       {"epsilon": 0.5}, {"rms_scaling": True}]


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("options", LAYER_NORM_SETTINGS, ids=str)
def test_layer_normalization_is_sliced_and_checked_exactly(options):
    model = normalized_mlp("layer", **options)
    graph, keep, narrow = shrink_half(model)
    assert graph.channels["norm"] and "hidden_a" in graph.prunable
    for old, new in zip(model.get_layer("norm").get_weights(), narrow.get_layer("norm").get_weights()):
        np.testing.assert_array_equal(new, old[keep["hidden_a"]])


def test_masked_layer_norm_keeps_its_statistics_to_the_kept_channels():
    model = normalized_mlp("layer", epsilon=0.25)
    graph = analyze(model)
    keep = {"hidden_a": np.array([1, 4, 5, 9, 14])}
    masked = masked_model(model, keep, graph)
    probe = probe_inputs(model)
    hidden = keras.ops.convert_to_numpy(find_layer(model, "hidden_a")(probe))[:, keep["hidden_a"]]
    gamma, beta = model.get_layer("norm").get_weights()
    centred = hidden - hidden.mean(axis=-1, keepdims=True)
    expected = centred / np.sqrt(centred.var(axis=-1, keepdims=True) + 0.25) * gamma[keep["hidden_a"]] + beta[keep["hidden_a"]]
    got = keras.ops.convert_to_numpy(keras.Model(masked.input, masked.get_layer("norm").output)(probe))
    np.testing.assert_allclose(got[:, keep["hidden_a"]], expected, rtol=1e-5, atol=1e-5)
    assert not got[:, np.setdiff1d(np.arange(16), keep["hidden_a"])].any()


def test_layer_normalization_in_a_nested_model_is_checked_exactly():
    model = nested_normalized_model()
    graph, keep, narrow = shrink_half(model)
    assert "inner_a" in graph.prunable and "inner_norm" in graph.channels
    assert [w.shape for w in find_layer(narrow, "inner_norm").get_weights()] == [(8,), (8,)]


@pytest.mark.parametrize("build", [lambda: normalized_mlp("layer"), nested_normalized_model], ids=["top", "nested"])
def test_a_wrongly_sliced_layer_norm_scale_is_caught(build):
    model = build()
    graph = analyze(model)
    norm_name = next(iter(graph.channels))
    keep = neurons.choose_units(model, graph, "l1", widths=half_widths(model, graph))
    narrow = neurons.shrink(model, keep, graph)
    check_shrunk(model, narrow, keep, graph)
    norm = find_layer(narrow, norm_name)
    gamma, beta = norm.get_weights()
    norm.set_weights([gamma[::-1].copy(), beta])  # the scale sliced in the wrong order
    with pytest.raises(WorkError, match="changed the outputs"):
        check_shrunk(model, narrow, keep, graph)


def test_a_layer_norm_over_another_axis_is_refused_by_the_check():
    inputs = keras.Input((4, 6), name="input")
    normed = layers.LayerNormalization(axis=1, name="norm")(layers.Dense(6, name="hidden")(inputs))
    model = keras.Model(inputs, layers.Dense(3, name="out")(layers.Flatten()(normed)))
    graph = analyze(model)
    assert "norm" not in graph.channels  # the analysis never slices it; the check refuses it too if asked
    graph.channels["norm"] = (Segment(None, 6),)
    with pytest.raises(WorkError, match="only the last axis"):
        masked_model(model, {}, graph)


def test_per_time_step_dense_and_pooling_keep_the_channel_mapping():
    model = time_step_model()
    graph, keep, narrow = shrink_half(model)
    assert graph.prunable == ["step_a", "step_b", "head"]
    assert kernel(narrow, "step_a") == (5, 6) and kernel(narrow, "step_b") == (6, 4) and kernel(narrow, "head") == (4, 5)


def test_flatten_after_a_per_time_step_dense_maps_rows_per_step():
    model = time_step_model(flatten=True)
    graph, keep, narrow = shrink_half(model)
    assert kernel(narrow, "head") == (6 * 4, 5)
    rows = neurons.kept_rows(model, graph.rows["head"], keep, graph)
    np.testing.assert_array_equal(rows, np.concatenate([8 * step + keep["step_b"] for step in range(6)]))


def test_nested_sequential_is_walked_and_shrinks():
    model = nested_model()
    graph, keep, narrow = shrink_half(model)
    assert graph.dense == ["inner_a", "inner_b", "out"] and graph.prunable == ["inner_a", "inner_b"]
    assert kernel(narrow, "inner_a") == (8, 8) and kernel(narrow, "inner_b") == (8, 4) and kernel(narrow, "out") == (4, 3)


def test_a_nested_models_input_keeps_its_width_with_a_reason():
    graph = analyze(nested_model(residual=True))
    assert graph.prunable == ["inner_a"]
    assert "nested model 'block'" in graph.unprunable["outer"]
    assert "outer" in graph.unprunable["inner_b"]  # shares its units with the layer that cannot shrink


def test_unstructured_masks_reach_nested_dense_layers():
    model = nested_model()
    graph = analyze(model)
    method = Unstructured()
    state = method.next_state(model, method.initial_state(model, graph.dense), 1, settings=_Settings(), graph=graph,
                              rate=0.5, original_units={})
    masked = method.reset("trained", model, None, state, None, graph)
    zeros, total = masking.kernel_zeros(masked, graph.dense)
    assert zeros == total - sum(int(mask.sum()) for mask in state.values()) and zeros > 0
    assert masking.masked_nonzeros(masked, state) == 0


def test_text_model_head_shrinks_and_its_rows_from_the_embedding_stay():
    model = text_model()
    graph, keep, narrow = shrink_half(model)
    assert graph.prunable == ["hidden"] and kernel(narrow, "hidden") == (8, 8) and kernel(narrow, "out") == (8, 3)
    probe = probe_inputs(model)
    assert probe.dtype == np.int32 and probe.min() >= 0 and probe.max() < 50


def test_channel_mixing_layers_and_activations_keep_their_units():
    inputs = keras.Input((12,), name="input")
    soft = layers.Dense(8, activation="softmax", name="soft")(inputs)
    reshaped = layers.Reshape((2, 4), name="reshape")(layers.Dense(8, name="before_reshape")(inputs))
    joined = layers.Concatenate(name="concat")([soft, layers.Flatten()(reshaped)])
    graph = analyze(keras.Model(inputs, layers.Dense(3, name="out")(joined)))
    assert "softmax mixes its units" in graph.unprunable["soft"]
    assert "Reshape 'reshape'" in graph.unprunable["before_reshape"]


@pytest.mark.parametrize("activation", ["sparsemax", "log_softmax"])
def test_other_normalising_activations_keep_their_units(activation):
    inputs = keras.Input((12,), name="input")
    hidden = layers.Dense(8, activation=activation, name="hidden")(inputs)
    graph = analyze(keras.Model(inputs, layers.Dense(3, name="out")(hidden)))
    assert graph.prunable == [] and f"{activation} mixes its units" in graph.unprunable["hidden"]


def test_ambiguous_layer_names_are_refused():
    model = nested_model()
    block = model.get_layer("block")
    block.layers[0].name = "out"
    with pytest.raises(UserError, match="named 'out'"):
        find_layer(model, "out")
    with pytest.raises(UserError, match="unique layer names"):
        analyze(model)


# ---------------------------------------------------------------- never a silent wrong output


@pytest.mark.parametrize("build", [residual_mlp, concat_mlp, time_step_model, lambda: normalized_mlp("layer"),
                                   nested_normalized_model])
def test_a_wrong_slicing_is_caught_before_retraining(build, monkeypatch):
    model = build()
    graph = analyze(model)
    method = Structured()
    state = method.initial_state(model, graph.prunable)
    settings = _Settings()
    new_state = method.next_state(model, state, 1, settings=settings, graph=graph, rate=0.5,
                                  original_units={name: int(find_layer(model, name).units) for name in graph.prunable})
    right = method.reset("trained", model, state, new_state, None, graph)
    assert right.count_params() < model.count_params()
    kept_rows = neurons.kept_rows
    monkeypatch.setattr(neurons, "kept_rows", lambda *args: kept_rows(*args)[::-1].copy())  # rows in the wrong order
    with pytest.raises(WorkError, match="changed the outputs"):
        method.reset("trained", model, state, new_state, None, graph)


def test_a_wrong_offset_in_a_concatenation_is_caught(monkeypatch):
    model = concat_mlp()
    graph = analyze(model)
    keep = neurons.choose_units(model, graph, "l1", widths={"left": 5, "right": 3, "mix": 4})
    kept_rows = neurons.kept_rows

    def shifted(source, layout, kept, graph):
        rows = kept_rows(source, layout, kept, graph)
        return np.where(rows >= 22, rows - 1, rows) if len(layout) > 1 else rows  # right branch one row early

    with monkeypatch.context() as patch:
        patch.setattr(neurons, "kept_rows", shifted)
        narrow_wrong = neurons.shrink(model, keep, graph)
    with pytest.raises(WorkError, match="left, right, mix"):
        check_shrunk(model, narrow_wrong, keep, graph)


def test_two_structured_rounds_keep_groups_aligned():
    model = residual_mlp()
    graph = analyze(model)
    method = Structured()
    original = {name: int(find_layer(model, name).units) for name in graph.prunable}
    state, current = method.initial_state(model, graph.prunable), model
    for round_index in (1, 2):
        new_state = method.next_state(current, state, round_index, settings=_Settings(), graph=graph, rate=0.3,
                                      original_units=original)
        current, state = method.reset("trained", current, state, new_state, None, graph), new_state
    np.testing.assert_array_equal(state["stem"], state["block2_b"])
    assert kernel(current, "block1_b")[1] == len(state["stem"]) == 8


def _Settings():
    """Real prune settings, with the threshold these hand-checked cases were written for."""
    from slimdeploy.prune.settings import PruneSettings

    return PruneSettings(threshold=0.0)

