"""Training through the real CLI on a real slice: outputs, reproducibility, bad input."""

from __future__ import annotations

import json

import numpy as np

from conftest import run_cli


def test_train_writes_the_dense_run(tiny_run):
    dense = tiny_run / "dense"
    assert {p.name for p in dense.iterdir()} == {"model.keras", "init.weights.h5", "history.json", "metrics.json"}
    metrics = json.loads((dense / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "params", "flops", "epochs", "seed", "recipe", "train_seconds", "versions"):
        assert key in metrics
    assert metrics["params"] == 282160 and metrics["epochs"] == 2
    assert 0.5 < metrics["test_accuracy"] <= 1.0  # 2 epochs on 2700 images learns something
    assert {"tensorflow", "keras", "numpy"} <= set(metrics["versions"]) or "tensorflow-cpu" in metrics["versions"]
    history = json.loads((dense / "history.json").read_text())
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]


def test_init_weights_are_theta_zero(tiny_run):
    """θ0 differs from the trained weights and matches a fresh build with the same seed."""
    from slimdeploy.recipes import load_recipe
    from slimdeploy.models import build_model, load_model
    from slimdeploy.train import seed_everything

    trained = load_model(tiny_run / "dense" / "model.keras")
    recipe = load_recipe("fashion_mlp")
    seed_everything(0)
    fresh = build_model(recipe)
    theta0 = build_model(recipe)
    theta0.load_weights(tiny_run / "dense" / "init.weights.h5")
    assert np.array_equal(fresh.weights[0].numpy(), theta0.weights[0].numpy())
    assert not np.allclose(trained.weights[0].numpy(), theta0.weights[0].numpy())


def test_same_seed_same_weights(tiny_run, tmp_path):
    from slimdeploy.models import load_model

    again = tmp_path / "again"
    result = run_cli("train", "--epochs", "2", "--limit", "3000", "--out", str(again), "--quiet")
    assert result.returncode == 0, result.stderr
    first = json.loads((tiny_run / "dense" / "metrics.json").read_text())
    second = json.loads((again / "dense" / "metrics.json").read_text())
    assert first["test_accuracy"] == second["test_accuracy"] and first["val_accuracy"] == second["val_accuracy"]
    for a, b in zip(load_model(tiny_run / "dense" / "model.keras").weights, load_model(again / "dense" / "model.keras").weights):
        assert np.array_equal(a.numpy(), b.numpy())


def test_existing_run_needs_force(tiny_run):
    result = run_cli("train", "--epochs", "1", "--limit", "500", "--out", str(tiny_run), "--quiet")
    assert result.returncode == 2
    assert "already exists" in result.stderr and "--force" in result.stderr


def test_missing_data_dir_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "runs" / "none"
    result = run_cli("train", "--data", "/nonexistent", "--out", str(out))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "/nonexistent" in result.stderr and "dataset-fashion-mnist" in result.stderr
    assert not out.exists()


def test_truncated_idx_is_one_line_and_leaves_nothing(tmp_path):
    import shutil

    from slimdeploy.data import DEBIAN_DIR

    data = tmp_path / "data"
    shutil.copytree(DEBIAN_DIR, data)
    labels = data / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:100])
    out = tmp_path / "runs" / "truncated"
    result = run_cli("train", "--data", str(data), "--out", str(out))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "t10k-labels-idx1-ubyte.gz" in result.stderr and "truncated" in result.stderr
    assert not out.exists()


def test_bad_options_are_one_line_errors(tmp_path):
    for args in (["--epochs", "0"], ["--seed", "-1"], ["--recipe", "nope"]):
        result = run_cli("train", *args, "--out", str(tmp_path / "x"))
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_cnn_recipe_trains_on_a_slice(tmp_path):
    out = tmp_path / "cnn"
    result = run_cli("train", "--recipe", "fashion_cnn", "--epochs", "1", "--limit", "1000", "--out", str(out), "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["recipe"]["name"] == "fashion_cnn" and metrics["test_accuracy"] > 0.3
