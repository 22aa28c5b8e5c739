"""Adopting a user's trained model (issue 13): `prune MODEL --data DATA`, `run --model --data`,
legacy `.h5` files, training settings from the saved compile config, resets without θ0, and the
bad inputs (docs/errors.md rows citing this file). Real TensorFlow; a 20-feature 3-class `.npz`
and a Dense 32-16-3 model trained outside slimdeploy with plain Keras."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli_here
from errors_doc import check

FEATURES, CLASSES, TRAIN, TEST = 20, 3, 480, 120
QUICK_PRUNE = ("--rounds", "1", "--no-controls", "--epochs", "1", "--quiet")
MARKER_SOURCE = "lambda x: (__import__('pathlib').Path({marker!r}).write_text('code in the model file ran'), x)[1]"


def _write_npz(path: Path, features: int = FEATURES) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLASSES, features)) * 2
    y = rng.integers(0, CLASSES, TRAIN + TEST).astype(np.int64)
    x = (centres[y] + rng.standard_normal((len(y), features))).astype(np.float32)
    np.savez(path, x_train=x[:TRAIN], y_train=y[:TRAIN], x_test=x[TRAIN:], y_test=y[TRAIN:])


def _mlp(last_activation: str = "softmax", hidden: tuple[int, ...] = (32, 16)):
    import keras

    inputs = keras.Input((FEATURES,), name="input")
    x = inputs
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation=last_activation)(x))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """d.npz; m.keras and m.h5 (the same model: Adam 3e-4, 2 epochs); plain.keras (never
    compiled, logits out); lambda.h5 (code that writes ``marker`` when run)."""
    import keras

    base = tmp_path_factory.mktemp("adopt")
    data = base / "d.npz"
    _write_npz(data)
    with np.load(data) as arrays:
        x_train, y_train = arrays["x_train"], arrays["y_train"]
    keras.utils.set_random_seed(1)
    model = _mlp()
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=2, verbose=0)
    model.save(base / "m.keras")
    model.save(base / "m.h5")
    _mlp(last_activation="linear").save(base / "plain.keras")
    marker = base / "marker.txt"
    payload = eval(MARKER_SOURCE.format(marker=str(marker)))  # noqa: S307 - the test's own payload
    lam = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Lambda(payload), keras.layers.Dense(CLASSES)])
    lam.save(base / "lambda.h5")
    marker.unlink()  # building the model ran the layer once
    return base


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _accuracy(model_path: Path, data: Path) -> float:
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    with np.load(data) as arrays:
        predicted = np.argmax(model.predict(arrays["x_test"], verbose=0), axis=1)
        return float(np.mean(predicted == arrays["y_test"]))


def _weights(path: Path) -> list[np.ndarray]:
    from slimdeploy.models import load_model

    return [w.numpy() for w in load_model(path).weights]


def test_prune_adopts_a_model_file_and_fine_tunes_it(inputs, tmp_path):
    model, data, run = inputs / "m.keras", inputs / "d.npz", tmp_path / "R"
    before = _sha256(model)
    result = run_cli_here("prune", str(model), "--data", str(data), "--out", str(run), "--mode", "structured", *QUICK_PRUNE)
    assert result.returncode == 0, result.stderr
    assert (run / "dense" / "model.keras").is_file() and (run / "dense" / "init.weights.h5").is_file()
    assert _sha256(model) == before  # the user's file is never written
    metrics = _json(run / "dense" / "metrics.json")
    assert "recipe" not in metrics
    assert metrics["adopted"]["sha256"] == before and metrics["adopted"]["format"] == "keras"
    assert metrics["adopted"]["source"] == str(model.resolve()) and metrics["adopted"]["theta0"] is False
    assert metrics["test_accuracy"] == _accuracy(model, data)
    assert metrics["data"]["train"] + metrics["data"]["validation"] == TRAIN and metrics["data"]["test"] == TEST
    # d.npz has no x_val: the validation rows come from x_train, which the model trained on; said so.
    assert metrics["adopted"]["validation"].startswith(f"{metrics['data']['validation']} rows drawn (seed 0) from x_train")
    lottery = _json(run / "structured" / "lottery.json")
    assert lottery["adopted"]["theta0"] is False and lottery["adopted"]["sha256"] == before
    assert lottery["settings"]["reset"] == "trained" and lottery["adopted"]["reset"] == "finetune"
    assert "finetune" in lottery["resets"] and lottery["dense"]["test_accuracy"] == metrics["test_accuracy"]

    # The same model and data again: the adopted dense/ is reused as it is.
    dense_before = (run / "dense" / "metrics.json").read_bytes()
    again = run_cli_here("prune", str(model), "--data", str(data), "--out", str(run), "--mode", "unstructured", *QUICK_PRUNE)
    assert again.returncode == 0, again.stderr
    assert (run / "dense" / "metrics.json").read_bytes() == dense_before
    assert _json(run / "unstructured" / "lottery.json")["adopted"]["sha256"] == before

    # Another model with --force replaces dense/ and what was made from the old one.
    other = run_cli_here("prune", str(inputs / "plain.keras"), "--data", str(data), "--out", str(run),
                         "--mode", "structured", "--force", *QUICK_PRUNE)
    assert other.returncode == 0, other.stderr
    assert _json(run / "dense" / "metrics.json")["adopted"]["sha256"] == _sha256(inputs / "plain.keras")
    assert not (run / "unstructured").exists()


def test_training_settings_come_from_the_compile_config_then_flags_then_defaults(inputs, tmp_path):
    from slimdeploy.adopt import adopt_model

    data = inputs / "d.npz"
    saved = adopt_model(inputs / "m.keras", data, tmp_path / "a")["adopted"]
    assert saved["training"]["optimizer"] == "adam" and saved["training"]["learning_rate"] == 3e-4
    assert saved["training"]["loss"] == "sparse_categorical_crossentropy" and saved["training"]["from_logits"] is False
    assert saved["training_from"]["optimizer"] == saved["training_from"]["learning_rate"] == "compile_config"
    assert saved["training_from"]["batch_size"] == "defaults"

    flagged = adopt_model(inputs / "m.keras", data, tmp_path / "b",
                          training={"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 16})["adopted"]
    assert (flagged["training"]["optimizer"], flagged["training"]["learning_rate"], flagged["training"]["batch_size"]) == ("sgd", 0.05, 16)
    assert flagged["training_from"]["optimizer"] == "flags" and flagged["training_from"]["loss"] == "compile_config"

    h5 = adopt_model(inputs / "m.h5", data, tmp_path / "c")["adopted"]
    assert h5["format"] == "h5" and (h5["training"]["optimizer"], h5["training"]["learning_rate"]) == ("adam", 3e-4)

    plain = adopt_model(inputs / "plain.keras", data, tmp_path / "d")["adopted"]
    assert plain["training"]["optimizer"] == "sgd" and plain["training_from"]["optimizer"] == "defaults"
    assert plain["training"]["from_logits"] is True and plain["training_from"]["from_logits"] == "last_layer"


def test_reset_init_reinitialises_with_the_models_initializers_seeded(inputs, tmp_path):
    model, data = inputs / "m.keras", inputs / "d.npz"
    runs = [tmp_path / "R1", tmp_path / "R2"]
    for run in runs:
        result = run_cli_here("prune", str(model), "--data", str(data), "--out", str(run), "--mode", "unstructured",
                              "--reset", "init", *QUICK_PRUNE)
        assert result.returncode == 0, result.stderr
    user = _weights(model)
    init = [_weights_h5(run / "dense" / "init.weights.h5", model) for run in runs]
    assert all(np.array_equal(a, b) for a, b in zip(*init))  # seeded
    assert not any(np.array_equal(a, b) for a, b in zip(init[0], user) if a.ndim == 2)  # kernels re-drawn
    rounds = [_weights(run / "unstructured" / "round_1" / "model.keras") for run in runs]
    assert all(np.array_equal(a, b) for a, b in zip(*rounds))
    first_kernel, trained_kernel = rounds[0][0], user[0]
    survivors = first_kernel != 0
    assert not np.allclose(first_kernel[survivors], trained_kernel[survivors])
    lottery = _json(runs[0] / "unstructured" / "lottery.json")
    assert lottery["settings"]["reset"] == "init" and "not the true θ0" in lottery["adopted"]["reset_meaning"]

    from slimdeploy.adopt import adopt_model

    adopt_model(model, data, tmp_path / "seed1", seed=1)
    other_seed = _weights_h5(tmp_path / "seed1" / "dense" / "init.weights.h5", model)
    assert not np.array_equal(other_seed[0], init[0][0])


def _weights_h5(path: Path, architecture: Path) -> list[np.ndarray]:
    import keras

    from slimdeploy.models import load_model

    model = keras.models.clone_model(load_model(architecture))
    model.load_weights(path)
    return [w.numpy() for w in model.weights]


def test_a_legacy_h5_adopts_and_prunes(inputs, tmp_path):
    run = tmp_path / "H"
    result = run_cli_here("prune", str(inputs / "m.h5"), "--data", str(inputs / "d.npz"), "--out", str(run),
                          "--mode", "structured", *QUICK_PRUNE)
    assert result.returncode == 0, result.stderr
    metrics = _json(run / "dense" / "metrics.json")
    assert metrics["adopted"]["format"] == "h5"
    assert metrics["test_accuracy"] == _accuracy(inputs / "m.keras", inputs / "d.npz")
    assert (run / "structured" / "ticket.keras").is_file()


def test_an_h5_with_code_is_refused_before_keras_reads_it(inputs, tmp_path):
    import keras

    marker, run = inputs / "marker.txt", tmp_path / "L"
    result = run_cli_here("prune", str(inputs / "lambda.h5"), "--data", str(inputs / "d.npz"), "--out", str(run), "--quiet")
    check("adopt-h5-lambda", result.returncode, result.stderr, inputs / "lambda.h5")
    assert not marker.exists() and not run.exists()
    # The control: Keras's own loader, without safe mode, runs the code in the file (the line
    # above names the Lambda layer, so slimdeploy's check refused it, not Keras).
    keras.saving.load_model(inputs / "lambda.h5", compile=False, safe_mode=False)
    assert marker.read_text() == "code in the model file ran"
    marker.unlink()


def test_run_adopts_and_resumes_without_redoing_anything(inputs, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('modes = ["structured"]\n[prune]\nrounds = 1\ncontrols = false\nepochs = 1\n'
                      '[export]\ntargets = ["onnx"]\nprofile_batches = [1]\n'
                      '[bench]\nruntimes = ["onnxruntime"]\nbatches = [1]\nmin_iters = 10\nmin_time = 0.02\n'
                      'warmup_iters = 2\nwarmup_time = 0.01\ninstances = 1\nprocesses = 1\n'
                      '[report]\nformats = ["md", "json"]\nstep_summary = false\n')
    argv = ("run", "--model", str(inputs / "m.keras"), "--data", str(inputs / "d.npz"), "--config", str(config), "--quiet")
    result = run_cli_here(*argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "m"
    record = _json(run / "run.json")
    assert list(record["stages"]) == ["adopt", "prune:structured", "export", "bench", "report"]
    assert record["config"]["train"]["model"] == str(inputs / "m.keras") and record["config"]["train"]["recipe"] is None
    assert record["config"]["prune"]["reset"] == "trained"
    assert (run / "report" / "report.md").is_file()
    assert _json(run / "dense" / "metrics.json")["adopted"]["sha256"] == _sha256(inputs / "m.keras")
    report = (run / "report" / "report.md").read_text()
    assert f"**Your model:** the dense model is m.keras (sha256 {_sha256(inputs / 'm.keras')[:12]}…)" in report
    assert "It has no θ0, so the pruned models' survivors were fine-tuned from its trained weights (reset finetune)." in report
    written = {path: path.stat().st_mtime_ns for path in run.rglob("*") if path.is_file() and path.name != "run.json"}
    resumed = run_cli_here(*argv, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert {path: path.stat().st_mtime_ns for path in written} == written  # no stage ran again
    assert _json(run / "run.json")["stages"] == record["stages"]


# ---------------------------------------------------------------- bad input (docs/errors.md)


def _bad_inputs(inputs: Path, base: Path) -> dict:
    """case id -> (argv, what the line names, paths that must not exist afterwards)."""
    model, data = inputs / "m.keras", inputs / "d.npz"
    (base / "fake.keras").write_text("not a model")
    (base / "fake.h5").write_text("not a model")
    _mlp().save_weights(base / "weights_only.weights.h5")
    narrow = base / "narrow.npz"
    _write_npz(narrow, features=10)
    unknown = base / "custom.h5"
    _with_renamed_layer(inputs / "m.h5", unknown, "MyDense")
    taken = base / "taken"
    shutil.copytree(inputs / "taken", taken)
    out = lambda name: base / "out" / name  # noqa: E731 - a fresh output path per case
    prune = ("prune",)
    return {
        "adopt-no-data": ([*prune, str(model), "--out", str(out("a"))], [model], [out("a")]),
        "adopt-keras-not-a-model": ([*prune, str(base / "fake.keras"), "--data", str(data), "--out", str(out("b"))],
                                    [base / "fake.keras"], [out("b")]),
        "adopt-h5-not-a-model": ([*prune, str(base / "fake.h5"), "--data", str(data), "--out", str(out("c"))],
                                 [base / "fake.h5"], [out("c")]),
        "adopt-h5-weights-only": ([*prune, str(base / "weights_only.weights.h5"), "--data", str(data), "--out", str(out("d"))],
                                  [base / "weights_only.weights.h5"], [out("d")]),
        "adopt-h5-unknown-class": ([*prune, str(unknown), "--data", str(data), "--out", str(out("e"))], [unknown], [out("e")]),
        "adopt-input-shape": ([*prune, str(model), "--data", str(narrow), "--out", str(out("f"))], [model], [out("f")]),
        "adopt-other-model-in-out": ([*prune, str(inputs / "plain.keras"), "--data", str(data), "--out", str(taken),
                                      "--mode", "structured"], [taken / "dense", inputs / "plain.keras"], [taken / "structured"]),
        "adopt-rewind": ([*prune, str(model), "--data", str(data), "--out", str(out("g")), "--reset", "rewind:5"],
                         [model], [out("g")]),
        "prune-adopted-rewind": ([*prune, str(taken), "--reset", "rewind:5", "--mode", "structured"],
                                 [model.resolve()], [taken / "structured"]),
        "prune-adoption-option-on-run": ([*prune, str(taken), "--out", str(out("h"))], ["--out"], [out("h")]),
        "run-model-without-data": (["run", "--model", str(model), "--name", "x"], [model], [base / "cwd" / "runs"]),
        "run-model-and-recipe": (["run", "--model", str(model), "--data", str(data), "--config", str(_recipe_config(base))],
                                 ["fashion_mlp", model], [base / "cwd" / "runs"]),
    }


def _with_renamed_layer(source: Path, target: Path, class_name: str) -> None:
    """A copy of an .h5 model whose first Dense layer names a class Keras does not have."""
    import h5py

    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = class_name
        h5.attrs["model_config"] = json.dumps(config)


def _recipe_config(base: Path) -> Path:
    path = base / "recipe.toml"
    path.write_text('[train]\nrecipe = "fashion_mlp"\n')
    return path


@pytest.fixture(scope="module")
def adopted_run(inputs):
    """``inputs/taken``: m.keras adopted (no prune), for the cases that need an adopted run."""
    from slimdeploy.adopt import adopt_model

    adopt_model(inputs / "m.keras", inputs / "d.npz", inputs / "taken")
    return inputs / "taken"


def test_bad_inputs_are_one_line_and_leave_nothing(inputs, adopted_run, tmp_path):
    cases = _bad_inputs(inputs, tmp_path)
    (tmp_path / "cwd").mkdir()
    dense_before = (tmp_path / "taken" / "dense" / "metrics.json").read_bytes()
    for case_id, (argv, named, absent) in cases.items():
        result = run_cli_here(*argv, cwd=tmp_path / "cwd")
        check(case_id, result.returncode, result.stderr, *named)
        for path in absent:
            assert not Path(path).exists(), f"{case_id} left {path}"
    assert not any((tmp_path / "cwd").iterdir())
    assert not list(tmp_path.rglob(".*.tmp-*")), "a temporary was left behind"
    assert (tmp_path / "taken" / "dense" / "metrics.json").read_bytes() == dense_before  # not replaced
