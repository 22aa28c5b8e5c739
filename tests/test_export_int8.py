"""INT8 variants from `slimdeploy export`: ONNX Runtime QDQ and NNCF for OpenVINO, calibrated on
validation images, each verified with its own tolerance; the bad inputs of the new options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, run_cli_here
from test_export_cli import one_line_error, our_stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """The article MLP trained on 6000 images for 8 epochs (about 78% accurate): the 2-epoch tiny run
    is so unsure of itself that INT8 rounding flips more than 3% of its top-1 labels."""
    run_dir = tmp_path_factory.mktemp("int8") / "run"
    result = run_cli("train", "--epochs", "8", "--limit", "6000", "--validation-size", "500", "--out", str(run_dir),
                     "--quiet")
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture(scope="module")
def int8_export(trained_run) -> Path:
    """The run's dense model exported as fp32 and INT8 to ONNX and OpenVINO."""
    run_dir = trained_run
    result = run_cli("export", str(run_dir), "--target", "onnx", "--target", "openvino", "--precision", "all",
                     "--verify-limit", "1000", "--quiet")
    assert result.returncode == 0, result.stderr
    return run_dir / "exports"


def artifacts(export_dir: Path) -> dict:
    manifest = json.loads((export_dir / "export.json").read_text())
    return {(a["model"], a["target"]): a for a in manifest["artifacts"]}


def test_precision_all_makes_a_verified_int8_variant_per_runtime(int8_export):
    made = artifacts(int8_export)
    assert set(made) == {(m, t) for m in ("dense", "dense-int8") for t in ("onnx", "openvino")}
    manifest = json.loads((int8_export / "export.json").read_text())
    assert manifest["settings"]["precisions"] == ["fp32", "int8"]
    for target, files in (("onnx", ["dense-int8.onnx"]), ("openvino", ["dense-int8.xml", "dense-int8.bin"])):
        a = made["dense-int8", target]
        assert a["valid"] is True and a["precision"] == "int8" and a["variant_of"] == "dense"
        assert a["files"] == files and all((int8_export / f).is_file() for f in files)
        # Judged by its own tolerance: accuracy within a point of Keras, >= 97% top-1 agreement.
        assert a["tolerance"] is None and a["max_accuracy_drop"] == 0.01 and a["min_top1_agreement"] == 0.97
        assert a["test_accuracy"] >= a["keras_test_accuracy"] - 0.01 and a["top1_agreement"] >= 0.97
        # Calibrated on the validation split (500 images here, fewer than the default 1000).
        calibration = a["calibration"]
        assert (calibration["samples"], calibration["requested"], calibration["from"], calibration["method"]) == \
            (500, 1000, "validation", "minmax")
        # The float model's counts; smaller files than fp32.
        float_artifact = made["dense", target]
        assert a["params"] == float_artifact["params"] and a["flops"] == float_artifact["flops"]
        assert a["bytes"] < float_artifact["bytes"] / 2
    assert "onnxruntime.quantization" in made["dense-int8", "onnx"]["calibration"]["tool"]
    assert "nncf.quantize" in made["dense-int8", "openvino"]["calibration"]["tool"]
    assert manifest["notes"] == ["--calibration-size 1000: the validation split has 500 images; "
                                 "calibrating INT8 on all 500"]


def test_int8_files_really_hold_int8_weights(int8_export):
    import onnx
    import openvino as ov

    proto = onnx.load(str(int8_export / "dense-int8.onnx"))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul"} <= ops
    int8_weights = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    assert len(int8_weights) == 3  # the three Dense kernels
    model = ov.Core().read_model(str(int8_export / "dense-int8.xml"))
    fake_quantize = [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    int8_constants = [op for op in model.get_ordered_ops()
                      if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8"]
    assert fake_quantize and len(int8_constants) >= 3


def test_int8_only_and_the_summary_names_the_precision(trained_run, tmp_path):
    model = tmp_path / "mlp.keras"
    shutil.copy(trained_run / "dense" / "model.keras", model)
    result = run_cli("export", str(model), "--target", "onnx", "--precision", "int8", "--calibration-size", "64",
                     "--calibration-method", "percentile", "--verify-limit", "500")
    assert result.returncode == 0, result.stderr
    made = artifacts(tmp_path / "exports" / "mlp")
    assert list(made) == [("mlp-int8", "onnx")]
    assert made["mlp-int8", "onnx"]["calibration"]["samples"] == 64
    assert "CalibrationMethod.Percentile" in made["mlp-int8", "onnx"]["calibration"]["tool"]
    assert "mlp-int8" in result.stderr and "int8" in result.stderr  # the summary table


@pytest.mark.parametrize("args, message", [
    (["--calibration-size", "0"], "argument --calibration-size: expected a positive integer, got 0"),
    (["--precision", "int4"], "argument --precision: expected a comma list of fp32, fp16, int8 or 'all', got 'int4'"),
    (["--precision", "fp32,fp16"], "export precision: choose one of fp32 and fp16 (each float export is named after its model)"),
    (["--calibration-method", "kl"], "argument --calibration-method: invalid choice: 'kl'"),
])
def test_bad_int8_options_are_one_line_errors(args, message, tiny_run, tmp_path):
    model = tmp_path / "mlp.keras"
    shutil.copy(tiny_run / "dense" / "model.keras", model)
    result = run_cli_here("export", str(model), "--target", "onnx", *args)
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert not (tmp_path / "exports").exists()


def test_int8_outside_its_tolerance_is_kept_as_failed_with_exit_1(tiny_run, tmp_path):
    """A kernel whose every column has one huge weight on an input that is (almost) always 0:
    fp32 does not notice it, but per-channel INT8 gives each column a scale of 1000/127, which
    rounds every other weight of the layer to zero, so the INT8 model's accuracy collapses."""
    import keras

    from slimdeploy.data import load_dataset

    model = keras.saving.load_model(tiny_run / "dense" / "model.keras", safe_mode=True)
    data = load_dataset(limit=3000, validation_size=300, seed=0, allow_download=False)
    pixels = np.concatenate([data.x_val, data.x_test]).reshape(-1, 784)
    silent = int(np.argmin(np.abs(pixels).max(axis=0)))  # a pixel that is 0 in every image checked
    assert np.abs(pixels[:, silent]).max() == 0
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    kernel, bias = first.get_weights()
    kernel[silent, :] = 1000.0
    first.set_weights([kernel, bias])
    path = tmp_path / "spiky.keras"
    model.save(path)

    result = run_cli("export", str(path), "--target", "onnx", "--precision", "fp32,int8", "--verify-limit", "1000")
    assert result.returncode == 1
    out = tmp_path / "exports" / "spiky"
    made = artifacts(out)
    assert made["spiky", "onnx"]["valid"] is True  # fp32 is unaffected
    failed = made["spiky-int8", "onnx"]
    assert failed["valid"] is False and "points below Keras's" in failed["error"]
    assert failed["files"] == ["spiky-int8.onnx.failed"] and (out / "spiky-int8.onnx.failed").is_file()
    assert not (out / "spiky-int8.onnx").exists()
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "spiky-int8.onnx.failed", "spiky.onnx"]
    errors = [line for line in our_stderr(result) if "error:" in line]
    assert len(errors) == 1 and "spiky-int8/onnx" in errors[0]


def test_old_configs_precision_key_still_reads(tmp_path):
    from slimdeploy.export.settings import ExportSettings

    assert ExportSettings.from_dict({"precision": "fp16"}).precisions == ["fp16"]
    assert ExportSettings.from_dict({"precisions": ["int8", "fp32"]}).precisions == ["fp32", "int8"]
    assert ExportSettings().variants("structured") == [("structured", "fp32")]
    assert ExportSettings(precisions=["int8", "fp32"]).validated().variants("structured") == \
        [("structured", "fp32"), ("structured-int8", "int8")]


def test_nncf_is_loaded_with_its_telemetry_off():
    """NNCF's telemetry sends from a forked process; offline it hung `slimdeploy run` at exit.
    Checked in a fresh interpreter: under pytest NNCF turns its telemetry off by itself."""
    import subprocess
    import sys

    probe = ("import os; os.environ.pop('NNCF_CI', None); os.environ.pop('NNCF_DEV', None)\n"
             "from slimdeploy.export.quantize import load_nncf; load_nncf()\n"
             "import nncf.telemetry.decorator as d, nncf.telemetry.wrapper as w\n"
             "print(type(d.telemetry).__name__, type(w.telemetry).__name__)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MagicMock", "MagicMock"]  # NNCF's NNCFTelemetryStub


def test_the_openvino_converter_sends_no_telemetry():
    """convert_model's telemetry forks a sender that can hang offline holding our output pipes
    (seen: a resumed `slimdeploy run` whose test waited for its stdout for ever)."""
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    from slimdeploy.quiet import openvino_telemetry_off

    # The check the converter's telemetry makes when a process first converts (its Telemetry is a
    # singleton: later calls keep the first answer, so init_ovc_telemetry() would only tell what an
    # earlier conversion in this test process decided).
    with openvino_telemetry_off():
        assert OptInChecker().check(enable_opt_in_dialog=False, disable_in_ci=True) == ConsentCheckResult.DECLINED
