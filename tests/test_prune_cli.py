"""`slimdeploy prune` through the real CLI: both modes, tickets, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, run_cli

QUICK = ("--rounds", "2", "--epochs", "1")


def copy_run(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    return run_dir


def one_line_error(result, code=2):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "prune" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_both_modes_write_tickets_with_reduced_shapes_and_exact_zeros(tiny_run, tmp_path):
    from slimdeploy.models import load_model
    from slimdeploy.prune.masks import kernel_zeros

    run_dir = copy_run(tiny_run, tmp_path)
    result = run_cli("prune", str(run_dir), *QUICK, "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)

    structured = records["structured"]
    widths = [entry["widths"] for entry in structured["rounds"]]
    assert widths == [[300, 150, 10], [240, 120, 10], [192, 96, 10]]
    ticket = load_model(run_dir / "structured" / "ticket.keras")
    kernels = [layer.kernel.shape for layer in ticket.layers if hasattr(layer, "kernel")]
    assert kernels == [(784, 192), (192, 96), (96, 10)]
    assert structured["unprunable"] == [{"layer": "dense_2", "reason": "output layer (classes are never removed)"}]
    final = structured["rounds"][-1]
    assert set(final["controls"]) == {"random_init", "finetune"}
    resets = structured["resets"]
    assert {"init", "finetune", "random"} <= set(resets) and resets["winner"] in ("init", "finetune", "random")
    assert all(0 <= resets[name]["test_accuracy"] <= 1 for name in ("init", "finetune", "random"))

    unstructured = records["unstructured"]
    for entry in unstructured["rounds"][1:]:
        model = load_model(run_dir / "unstructured" / entry["path"])
        names = [layer.name for layer in model.layers if hasattr(layer, "kernel")]
        zeros, total = kernel_zeros(model, names)
        assert (zeros, total) == (entry["zero_weights"], entry["prunable_weights"])
        assert entry["weights_remaining"] == pytest.approx(1 - zeros / total)
    # Layer-wise at 20%, output layer at 10%, compounded over 2 rounds.
    expected_zeros = sum(n - round(n * (1 - r) ** 2) for n, r in ((784 * 300, 0.2), (300 * 150, 0.2), (150 * 10, 0.1)))
    assert unstructured["rounds"][-1]["zero_weights"] == expected_zeros
    ticket = load_model(run_dir / "unstructured" / "ticket.keras")
    assert sum(int(np.count_nonzero(layer.kernel.numpy() == 0)) for layer in ticket.layers if hasattr(layer, "kernel")) == expected_zeros

    again = run_cli("prune", str(run_dir), "--mode", "structured", *QUICK)
    assert "already exists" in one_line_error(again) and "--resume" in again.stderr


def test_resume_after_a_killed_run_keeps_finished_rounds(tiny_run, tmp_path):
    run_dir = copy_run(tiny_run, tmp_path)
    mode_dir = run_dir / "unstructured"
    options = ["--mode", "unstructured", "--rounds", "3", "--epochs", "1", "--no-controls"]
    args = [sys.executable, "-m", "slimdeploy", "prune", str(run_dir), *options, "--quiet"]
    process = subprocess.Popen(args, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (mode_dir / "round_1" / "metrics.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, "prune ended before round 1 was written"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # no cleanup at all: the worst case
    finally:
        process.wait(timeout=30)
    assert not (mode_dir / "round_3").exists()
    if (mode_dir / "lottery.json").exists():  # the kill may land between a round's rename and the record's update
        assert json.loads((mode_dir / "lottery.json").read_text())["complete"] is False
    round_1 = json.loads((mode_dir / "round_1" / "metrics.json").read_text())
    first = {name: (mode_dir / "round_1" / name).stat().st_mtime_ns for name in ("model.keras", "metrics.json", "state.npz")}

    different = run_cli("prune", str(run_dir), "--mode", "unstructured", "--rounds", "4", "--epochs", "1", "--no-controls", "--resume")
    assert "different settings (rounds)" in one_line_error(different)

    result = run_cli("prune", str(run_dir), *options, "--resume", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["complete"] is True and [entry["round"] for entry in record["rounds"]] == [0, 1, 2, 3]
    assert {name: (mode_dir / "round_1" / name).stat().st_mtime_ns for name in first} == first  # not recomputed
    assert not [path.name for path in mode_dir.iterdir() if ".tmp-" in path.name]
    assert {key: value for key, value in record["rounds"][1].items() if key != "test_drop_points"} == round_1


@pytest.mark.parametrize("option, message", [
    (("--rate", "1.0"), "--rate"),
    (("--target", "0"), "--target"),
    (("--rounds", "0"), "--rounds"),
    (("--reset", "rewind:x"), "--reset"),
])
def test_bad_options_are_one_line_errors(tiny_run, option, message):
    line = one_line_error(run_cli("prune", str(tiny_run), *option))
    assert message in line


def test_run_dir_without_a_dense_model_is_a_one_line_error(tmp_path):
    line = one_line_error(run_cli("prune", str(tmp_path)))
    assert "no dense model" in line and "slimdeploy train" in line


def test_model_without_dense_layers_is_a_one_line_error(tiny_run, tmp_path):
    import keras

    from slimdeploy.models import save_model

    run_dir = copy_run(tiny_run, tmp_path)
    inputs = keras.Input((28, 28), name="input")
    x = keras.layers.Reshape((28, 28, 1))(inputs)
    x = keras.layers.Conv2D(10, 3)(x)
    outputs = keras.layers.Activation("softmax")(keras.layers.GlobalAveragePooling2D()(x))
    save_model(keras.Model(inputs, outputs), run_dir / "dense" / "model.keras")
    line = one_line_error(run_cli("prune", str(run_dir), "--mode", "unstructured"))
    assert "no Dense layer" in line
    assert not (run_dir / "unstructured").exists()
