"""`slimdeploy export` through the real CLI: success paths, the summary, and every bad input
giving one line, the right exit status and nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli


# TensorFlow 2.21 writes these at import whatever TF_CPP_MIN_LOG_LEVEL says; they are not ours.
TF_STARTUP_NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on")


def our_stderr(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip() and not any(n in line for n in TF_STARTUP_NOISE)]


def one_line_error(result) -> str:
    lines = our_stderr(result)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tiny_run, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    shutil.copy(tiny_run / "dense" / "model.keras", directory / "mlp.keras")
    return directory / "mlp.keras"


def test_openvino_from_a_keras_file_with_json_and_summary(model_file):
    result = run_cli("export", str(model_file), "--target", "openvino", "--verify-limit", "500", "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    (a,) = manifest["artifacts"]
    assert (a["model"], a["target"], a["path"], a["valid"]) == ("mlp", "openvino", "mlp.xml", True)
    assert a["inference_precision"] == "f32" and a["max_abs_diff"] <= 1e-4
    out = model_file.parent / "exports" / "mlp"  # each lone file its own directory
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "mlp.bin", "mlp.xml"]
    assert json.loads((out / "export.json").read_text()) == manifest
    assert "mlp" in result.stderr and "openvino" in result.stderr and "yes" in result.stderr  # the summary table

    again = run_cli("export", str(model_file), "--target", "openvino", "--quiet")
    assert again.returncode == 2
    assert one_line_error(again) == f"slimdeploy export: error: {out / 'export.json'} already exists; pass --force to overwrite it"
    forced = run_cli("export", str(model_file), "--target", "openvino", "--target", "onnx", "--verify-limit", "200",
                     "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout == "" and our_stderr(forced) == []
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "mlp.bin", "mlp.onnx", "mlp.xml"]


def test_the_cnn_recipe_trains_and_exports_to_openvino(tmp_path):
    run_dir = tmp_path / "cnn"
    trained = run_cli("train", "--recipe", "fashion_cnn", "--epochs", "1", "--limit", "2000", "--out", str(run_dir), "--quiet")
    assert trained.returncode == 0, trained.stderr
    result = run_cli("export", str(run_dir), "--target", "openvino", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    (a,) = json.loads(result.stdout)["artifacts"]
    assert a["model"] == "dense" and a["valid"] and a["max_abs_diff"] <= 1e-4
    assert abs(a["test_accuracy"] - a["keras_test_accuracy"]) <= 0.001
    assert (run_dir / "exports" / "dense.xml").is_file() and (run_dir / "exports" / "dense.bin").is_file()


def test_tensorrt_says_exactly_what_is_missing(model_file, tmp_path):
    from slimdeploy.export.tensorrt import missing_requirements

    missing = missing_requirements()
    if not missing:
        pytest.skip("TensorRT and a GPU are present: --target tensorrt works here (see test_export_tensorrt.py)")
    out = tmp_path / "trt"
    result = run_cli("export", str(model_file), "--target", "tensorrt", "--out", str(out))
    assert result.returncode == 2
    line = one_line_error(result)
    assert line == f"slimdeploy export: error: --target tensorrt cannot be built here: {' and '.join(missing)}"
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing", "corrupt", "unknown target", "out is a file", "out not writable", "bad batch"])
def test_bad_input_is_one_line_nonzero_and_leaves_nothing(case, model_file, tmp_path):
    source, extra, expected = str(model_file), [], None
    out = tmp_path / "out"
    if case == "missing":
        source, expected = str(tmp_path / "nope.keras"), "does not exist"
    elif case == "corrupt":
        corrupt = tmp_path / "corrupt.keras"
        corrupt.write_bytes(os.urandom(64))
        source, expected = str(corrupt), "corrupt or truncated"
    elif case == "unknown target":
        extra, expected = ["--target", "tflite"], "invalid choice: 'tflite'"
    elif case == "out is a file":
        out.write_text("I am a file")
        expected = "exists and is not a directory"
    elif case == "out not writable":
        # Root ignores permission bits, so use a place nobody can create directories in.
        out = Path("/proc/slimdeploy-export-test") if os.geteuid() == 0 else out
        if os.geteuid() != 0:
            tmp_path.chmod(0o500)
        expected = "cannot create the directory"
    elif case == "bad batch":
        extra, expected = ["--batch", "0"], "expected 'dynamic' or a positive integer"
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        result = run_cli("export", source, "--out", str(out), "--quiet", *extra)
    finally:
        tmp_path.chmod(0o700)
    assert result.returncode == 2, result.stderr
    assert expected in one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failed_verification_exits_1_with_the_table_and_one_error_line(model_file, tmp_path):
    from slimdeploy.export.openvino import device_capabilities
    from slimdeploy.models import load_model, save_model

    model = load_model(model_file)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 100.0, bias])  # sharp softmax: bf16 moves it beyond 5e-2
    save_model(model, tmp_path / "sharp.keras")
    result = run_cli("export", str(tmp_path / "sharp.keras"), "--target", "openvino", "--openvino-precision", "bf16",
                     "--verify-limit", "1000")
    if "BF16" not in device_capabilities():
        # A CPU without bf16 (or ONEDNN_MAX_CPU_ISA below it) computes in f32: the model passes.
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in (tmp_path / "exports" / "sharp").iterdir()) == ["export.json", "sharp.bin", "sharp.xml"]
        return
    assert result.returncode == 1, result.stderr
    errors = [line for line in our_stderr(result) if line.startswith("slimdeploy export:")]
    assert len(errors) == 1 and "1 of 1 artifacts failed verification: sharp/openvino" in errors[0]
    assert "NO" in result.stderr and "failed sharp → openvino" in result.stderr
    assert sorted(p.name for p in (tmp_path / "exports" / "sharp").iterdir()) == ["export.json", "sharp.bin.failed", "sharp.xml.failed"]
