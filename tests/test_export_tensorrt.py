"""TensorRT export. The engine tests need the tensorrt package, cuda-python and an NVIDIA GPU;
elsewhere they are skipped with the reason, and only the parts that need no GPU run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slimdeploy.export.settings import ExportSettings
from slimdeploy.export.tensorrt import ELIGIBLE_MARK, PICKED_MARK, TensorRtTarget, missing_requirements, sparsity_report

MISSING = missing_requirements()
_skip_here = pytest.mark.skipif(bool(MISSING), reason=f"TensorRT cannot run here: {' and '.join(MISSING)}")


def needs_tensorrt(test):
    return pytest.mark.gpu(_skip_here(test))


def test_unavailability_names_each_missing_piece():
    import importlib.util

    reason = TensorRtTarget().unavailable_reason()
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt is not installed (pip install 'slimdeploy[tensorrt]')" in reason
    if shutil.which("nvidia-smi") is None:
        assert "no NVIDIA GPU was found (nvidia-smi absent)" in reason
    if reason is None:
        assert MISSING == []


def test_sparsity_report_reads_tensorrt_log_lines():
    messages = [
        "[MemUsageChange] Init CUDA: CPU +0",
        f"{ELIGIBLE_MARK} /dense_1/MatMul, /dense_2/MatMul",
        f"{PICKED_MARK} /dense_1/MatMul",
    ]
    report = sparsity_report(messages, requested=True)
    assert report == {"requested": True, "eligible_layers": ["/dense_1/MatMul", "/dense_2/MatMul"],
                      "sparse_layers": ["/dense_1/MatMul"], "used": True}
    none_picked = sparsity_report([f"{ELIGIBLE_MARK} a", f"{PICKED_MARK}"], requested=True)
    assert none_picked["used"] is False and none_picked["sparse_layers"] == []
    assert sparsity_report(["nothing about sparsity"], requested=False)["used"] is None


@pytest.fixture(scope="module")
def model_file(tiny_run, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("trt")
    shutil.copy(tiny_run / "dense" / "model.keras", directory / "mlp.keras")
    return directory / "mlp.keras"


@needs_tensorrt
def test_fp32_engine_matches_keras_and_covers_the_profile(model_file, small_data, tmp_path):
    from slimdeploy.export.api import export_source

    settings = ExportSettings(targets=["tensorrt"], profile_batches=[1, 64, 256])
    manifest = export_source(model_file, settings, tmp_path, data=small_data)
    (a,) = manifest["artifacts"]
    assert a["valid"], a
    assert a["path"] == "mlp.engine" and (tmp_path / "mlp.engine").stat().st_size == a["bytes"]
    assert a["inference_precision"] == "f32" and a["tf32"] is False
    assert a["max_abs_diff"] <= 1e-4 and a["top1_agreement"] >= 0.999
    assert a["profile"] == {"input": "input", "min": 1, "opt": 256, "max": 256}
    assert a["gpu"]


@needs_tensorrt
def test_fp16_engine_with_sparse_weights_reports_what_tensorrt_did(model_file, small_data, tmp_path):
    from slimdeploy.export.api import export_source

    settings = ExportSettings(targets=["tensorrt"], precisions=["fp16"], sparse_weights=True, trt_opt_batch=64)
    manifest = export_source(model_file, settings, tmp_path, data=small_data)
    (a,) = manifest["artifacts"]
    assert a["valid"], a
    assert a["inference_precision"] == "f16" and a["tolerance"] == 1e-2
    assert a["profile"]["opt"] == 64
    assert a["sparsity"]["requested"] is True
    assert set(a["sparsity"]) == {"requested", "eligible_layers", "sparse_layers", "used"}


@needs_tensorrt
def test_static_batch_engine(model_file, small_data, tmp_path):
    from slimdeploy.export.api import export_source

    manifest = export_source(model_file, ExportSettings(targets=["tensorrt"], batch=8, verify_limit=100), tmp_path, data=small_data)
    (a,) = manifest["artifacts"]
    assert a["valid"] and a["profile"] is None and a["input_shape"] == [8, 28, 28]
