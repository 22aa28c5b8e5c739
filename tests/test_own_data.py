"""Users' own data, end to end on real TensorFlow, ONNX Runtime and OpenVINO: values are
never rescaled behind their back, a run keeps the data it was trained on, and integer inputs
(token ids) stay integer from the .npz through export to the benchmark."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli_here
from errors_doc import check

TOKENS, STEPS = 300, 12  # vocabulary size and sequence length of the Embedding model

TABULAR_RECIPE = """
name = "tabular"

[dataset]
validation_size = 240

[model]
input_shape = [20]
layers = [
  { type = "dense", units = 32, activation = "relu" },
  { type = "dense", units = 3, activation = "softmax" },
]

[training]
optimizer = "sgd"
learning_rate = 0.01
batch_size = 32
epochs = 6
seed = 0
loss = "sparse_categorical_crossentropy"
"""


def tabular_npz(path: Path, seed: int = 0) -> Path:
    """20 standardized features (mean 0, std 1), 3 classes: 2400 training and 600 test rows."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 20)) * 0.8
    y = rng.integers(0, 3, 3000)
    x = centers[y] + rng.standard_normal((3000, 20))
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    np.savez(path, x_train=x[:2400], y_train=y[:2400], x_test=x[2400:], y_test=y[2400:])
    return path


def token_npz(path: Path, seed: int = 0) -> Path:
    """int32 token ids; class 1 draws a third of its tokens from the upper half of the vocabulary."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, TOKENS, (n, STEPS)).astype(np.int32)
        marked = rng.random((n, STEPS)) < 0.35
        upper, lower = marked & (y[:, None] == 1), marked & (y[:, None] == 0)
        x[upper] = rng.integers(TOKENS // 2, TOKENS, upper.sum())
        x[lower] = rng.integers(0, TOKENS // 2, lower.sum())
        return x, y

    (x_train, y_train), (x_test, y_test) = draw(2000), draw(600)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    """A run trained through a recipe on the tabular .npz (read-only: copy before writing)."""
    base = tmp_path_factory.mktemp("tabular")
    npz = tabular_npz(base / "tab.npz")
    recipe = base / "tab.toml"
    recipe.write_text(TABULAR_RECIPE)
    result = run_cli_here("train", "--recipe", str(recipe), "--data", str(npz), "--out", str(base / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    return base / "run", npz, recipe


def test_standardized_features_train_as_well_as_plain_keras(tabular_run):
    import keras

    from slimdeploy.data import load_dataset
    from slimdeploy.train import accuracy

    run_dir, npz, _ = tabular_run
    metrics = json.loads((run_dir / "dense" / "metrics.json").read_text())
    assert metrics["data"]["scale"] is None and metrics["data"]["dtype"] == "float32"
    # The same model fitted in plain Keras on the same rows, as a user would.
    data = load_dataset(npz, validation_size=240, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=6, verbose=0)
    plain = accuracy(model, data.x_test, data.y_test)
    # (With plain SGD, features divided by 255 as slimdeploy once did silently reach only 0.57 here.)
    assert plain > 0.85  # the task is learnable: the comparison below means something
    assert abs(metrics["test_accuracy"] - plain) <= 0.01, (metrics["test_accuracy"], plain)


def test_a_run_prunes_and_exports_on_its_own_recorded_data(tabular_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tabular_run[0], run_dir)
    npz = tabular_run[1]
    result = run_cli_here("prune", str(run_dir), "--mode", "structured", "--rounds", "1", "--epochs", "1",
                     "--no-controls", "--quiet")
    assert result.returncode == 0, result.stderr
    lottery = json.loads((run_dir / "structured" / "lottery.json").read_text())
    recorded = json.loads((run_dir / "dense" / "metrics.json").read_text())["data"]
    # The very split train used: same file, same held-out rows.
    assert lottery["data"]["source"] == str(npz) and lottery["data"]["validation"] == recorded["validation"] == 240
    assert lottery["data"]["sha256"] == recorded["sha256"]
    dense_round = lottery["rounds"][0]
    assert dense_round["test_accuracy"] == pytest.approx(json.loads((run_dir / "dense" / "metrics.json").read_text())["test_accuracy"])

    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    assert manifest["data"]["source"] == str(npz) and manifest["data"]["validation"] == 240
    assert manifest["data"]["override"] is False and "no scaling" in manifest["data"]["input_contract"]
    dense = next(a for a in manifest["artifacts"] if a["model"] == "dense")
    assert dense["valid"] and dense["input_dtype"] == "float32"
    assert dense["test_accuracy"] == pytest.approx(recorded and json.loads(
        (run_dir / "dense" / "metrics.json").read_text())["test_accuracy"], abs=1e-9)


def test_other_changed_or_vanished_data_is_refused(tabular_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tabular_run[0], run_dir)
    other = tabular_npz(tmp_path / "other.npz", seed=5)
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--data", str(other), "--quiet")
    check("export-data-not-the-runs", result.returncode, result.stderr, other, run_dir)
    assert not (run_dir / "exports").exists()
    result = run_cli_here("prune", str(run_dir), "--rounds", "1", "--data", str(other), "--quiet")
    check("prune-data-not-the-runs", result.returncode, result.stderr, other, run_dir)
    assert not (run_dir / "structured").exists()

    # The recorded file itself, moved and then changed.
    moved = tmp_path / "data" / "tab.npz"
    moved.parent.mkdir()
    metrics_path = run_dir / "dense" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["data"]["source"] = str(moved)
    metrics_path.write_text(json.dumps(metrics))
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--quiet")
    check("export-data-vanished", result.returncode, result.stderr, moved, run_dir)
    tabular_npz(moved, seed=6)
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--quiet")
    check("export-data-changed", result.returncode, result.stderr, moved, run_dir)
    assert not (run_dir / "exports").exists()

    # The same file given again is accepted; other data only as an override, recorded.
    shutil.copyfile(tabular_run[1], moved)
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--data", str(moved), "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--data", str(other), "--data-override",
                     "--force", "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    assert manifest["data"]["override"] is True and manifest["data"]["source"] == str(other)


@pytest.fixture(scope="module")
def token_model(tmp_path_factory):
    """A trained Embedding classifier on int32 token ids, saved as .keras, and its data."""
    import keras

    base = tmp_path_factory.mktemp("tokens")
    npz = token_npz(base / "tokens.npz")
    with np.load(npz) as arrays:
        x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((STEPS,), dtype="int32", name="input"), keras.layers.Embedding(TOKENS, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    path = base / "emb.keras"
    model.save(path)
    keras_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test))
    return path, npz, keras_accuracy


def test_token_ids_stay_integer_through_export_and_verification(token_model, tmp_path):
    import onnx
    import openvino as ov

    from slimdeploy.bench.artifacts import inspect_artifact
    from slimdeploy.export.api import export_source
    from slimdeploy.export.settings import ExportSettings

    path, npz, keras_accuracy = token_model
    assert keras_accuracy > 0.7  # ids decide the class: rescaled ids would not get here
    manifest = export_source(path, ExportSettings(targets=["onnx", "openvino"]), tmp_path / "exports", data=npz)
    assert manifest["data"]["dtype"] == "int32" and manifest["data"]["scale"] is None
    for artifact in manifest["artifacts"]:
        assert artifact["valid"] and artifact["input_dtype"] == "int32" and artifact["input_range"] == [0, TOKENS]
        # Verified on the real integer test set: the artifact's accuracy is Keras's own.
        assert artifact["test_accuracy"] == pytest.approx(keras_accuracy, abs=1e-9)
        assert artifact["keras_test_accuracy"] == pytest.approx(keras_accuracy, abs=1e-9)
    onnx_input = onnx.load(str(tmp_path / "exports" / "emb.onnx")).graph.input[0]
    assert onnx_input.type.tensor_type.elem_type == onnx.TensorProto.INT32
    ir_input = ov.Core().read_model(str(tmp_path / "exports" / "emb.xml")).inputs[0]
    assert ir_input.get_element_type() == ov.Type.i32
    # Given alone, each file tells bench the ids it takes (tf2onnx routes them through
    # Add/Less/Where for negative ids before the Gather).
    for name in ("emb.onnx", "emb.xml"):
        assert inspect_artifact(tmp_path / "exports" / name).input_range == [0, TOKENS], name


def _bench_quick(**changes):
    from slimdeploy.bench.settings import BenchSettings

    settings = BenchSettings(min_iters=20, min_time=0.05, warmup_iters=3, warmup_time=0.02, block_calls=3,
                             instances=1, block_time=0.005, bootstrap_resamples=200, batches=(1, 16), processes=1)
    return dataclasses.replace(settings, **changes)


def test_bench_feeds_token_ids_in_the_embedding_range(token_model, tmp_path):
    from slimdeploy.bench.api import run_bench
    from slimdeploy.export.api import export_source
    from slimdeploy.export.settings import ExportSettings

    path, npz, _ = token_model
    export_source(path, ExportSettings(targets=["onnx", "openvino"]), tmp_path / "exports", data=npz)
    sources = [tmp_path / "exports" / "emb.onnx", tmp_path / "exports" / "emb.xml", path]
    results = run_bench(sources, _bench_quick(runtimes=("onnxruntime", "openvino", "tensorflow")),
                        tmp_path / "bench.json").to_json()
    cells = results["cells"]
    assert {c["runtime"] for c in cells} == {"onnxruntime", "openvino", "tensorflow"} and len(cells) == 6
    for cell in cells:
        assert cell["status"] == "ok", cell["error"]
        assert cell["input"] == {"dtype": "int32", "low": 0, "high": TOKENS, "range_from": "model"}
        assert cell["stats"]["p50_ms"] > 0


def integer_onnx(path: Path, rows: int = 50) -> Path:
    """An int64-input ONNX graph built by hand: Gather from a [rows, 16] table, mean over
    the sequence, MatMul to 4 outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((rows, 16)).astype(np.float32), "table")
    weight = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "weight")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["embedded"]),
             helper.make_node("ReduceMean", ["embedded", "axes"], ["pooled"], keepdims=0),
             helper.make_node("MatMul", ["pooled", "weight"], ["output"])]
    graph = helper.make_graph(nodes, "ids", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 10])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
                              initializer=[table, weight, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_bench_of_a_hand_built_integer_onnx_measures_every_cell(tmp_path):
    from slimdeploy.bench.api import run_bench

    artifact = integer_onnx(tmp_path / "ids.onnx")
    results = run_bench([artifact], _bench_quick(runtimes=("onnxruntime", "openvino")), tmp_path / "bench.json").to_json()
    assert len(results["cells"]) == 4
    for cell in results["cells"]:
        assert cell["status"] == "ok", cell["error"]
        assert cell["input"]["dtype"] == "int64" and (cell["input"]["low"], cell["input"]["high"]) == (0, 50)
    # --input-range narrows the ids (and says so).
    results = run_bench([artifact], _bench_quick(runtimes=("onnxruntime",), batches=(4,), input_range=(0, 7)),
                        tmp_path / "narrow.json").to_json()
    assert results["cells"][0]["input"] == {"dtype": "int64", "low": 0, "high": 7, "range_from": "--input-range"}


def test_data_a_model_cannot_take_and_misplaced_scaling_are_refused(token_model, tabular_run, tmp_path):
    # Float features fed to a model of integer token ids: the ids would be truncated floats.
    floats = tmp_path / "floats.npz"
    rng = np.random.default_rng(0)
    np.savez(floats, x_train=rng.random((100, STEPS)), y_train=rng.integers(0, 2, 100),
             x_test=rng.random((20, STEPS)), y_test=rng.integers(0, 2, 20))
    result = run_cli_here("export", str(token_model[0]), "--data", str(floats), "--out", str(tmp_path / "e1"), "--quiet")
    check("export-data-dtype", result.returncode, result.stderr, token_model[0], floats)
    assert not (tmp_path / "e1").exists()
    # A run is verified with the scaling it was trained with; --scale is for lone files.
    result = run_cli_here("export", str(tabular_run[0]), "--scale", "255", "--out", str(tmp_path / "e2"), "--quiet")
    check("export-scale-run-dir", result.returncode, result.stderr, tabular_run[0])
    assert not (tmp_path / "e2").exists()


def test_a_run_that_predates_data_records_is_refused_for_an_npz(tabular_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tabular_run[0], run_dir)
    metrics_path = run_dir / "dense" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    # What such a run recorded: where the data came from and the sizes, nothing about scaling.
    metrics["data"] = {key: metrics["data"][key] for key in ("source", "train", "validation", "test")}
    metrics_path.write_text(json.dumps(metrics))
    result = run_cli_here("prune", str(run_dir), "--rounds", "1", "--data", str(tabular_run[1]), "--quiet")
    check("prune-legacy-npz-run", result.returncode, result.stderr, tabular_run[1])
    assert not (run_dir / "structured").exists()


def test_recipe_and_criterion_mismatches_are_refused(tmp_path):
    # A recipe for one's own .npz never falls back to Fashion-MNIST.
    recipe = tmp_path / "npz.toml"
    recipe.write_text(TABULAR_RECIPE.replace("[dataset]\n", '[dataset]\nname = "npz"\n'))
    result = run_cli_here("train", "--recipe", str(recipe), "--out", str(tmp_path / "r1"), "--quiet")
    check("train-recipe-npz-no-data", result.returncode, result.stderr, recipe)
    assert not (tmp_path / "r1").exists()
    # The article's bias-threshold criterion on layers trained without a bias.
    recipe = tmp_path / "nobias.toml"
    recipe.write_text(TABULAR_RECIPE.replace('units = 32, activation = "relu"', 'units = 32, activation = "relu", use_bias = false')
                      .replace("epochs = 6", "epochs = 1"))
    npz = tabular_npz(tmp_path / "tab.npz")
    result = run_cli_here("train", "--recipe", str(recipe), "--data", str(npz), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli_here("prune", str(tmp_path / "run"), "--mode", "structured", "--criterion", "bias-threshold", "--quiet")
    check("prune-bias-threshold-no-bias", result.returncode, result.stderr, tmp_path / "run")
    assert not (tmp_path / "run" / "structured").exists()
