"""Post-training static INT8 from the fp32 ONNX file: ONNX Runtime's ``quantize_static`` (QDQ) and NNCF
for OpenVINO, both calibrated on the first N validation images as verification feeds them."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimdeploy.data import as_model_input
from slimdeploy.environment import cpu_info
from slimdeploy.export.target import INPUT_NAME, package_version
from slimdeploy.models import model_input_dtype
from slimdeploy.quiet import openvino_telemetry_off, silenced

# Calibration methods: (ONNX Runtime CalibrationMethod, NNCF RangeEstimatorParametersSet).
CALIBRATION_METHODS = {"minmax": ("MinMax", "MINMAX"), "percentile": ("Percentile", "MEAN_QUANTILE"),
                       "entropy": ("Entropy", "HISTOGRAM")}
CHUNK = 64  # images per calibration call at most
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def reduce_range_reason() -> str | None:
    """Why ONNX Runtime's INT8 weights should use 7 bits here (None: they need not): without VNNI its u8*s8
    products (``vpmaddubsw``) saturate, and its documentation advises ``reduce_range``."""
    flags = cpu_info()["flags"]
    if any(flag in flags for flag in VNNI_FLAGS) or not flags:
        return None
    return "this CPU has no VNNI (avx512_vnni, avx_vnni or amx_int8), where 8-bit u8*s8 products can saturate"


@dataclass(frozen=True)
class Calibration:

    x: np.ndarray
    requested: int
    method: str

    def facts(self, tool: str) -> dict:
        return {"samples": int(len(self.x)), "requested": self.requested, "from": "validation",
                "method": self.method, "tool": tool}


def calibration_images(dataset, model, settings) -> tuple[Calibration, str | None]:
    """The first ``settings.calibration_size`` validation images in the model's input dtype, and a notice
    when the split holds fewer."""
    available, wanted = len(dataset.x_val), settings.calibration_size
    notice = (f"--calibration-size {wanted}: the validation split has {available} images; "
              f"calibrating INT8 on all {available}") if wanted > available else None
    x = as_model_input(dataset.x_val[:wanted], model_input_dtype(model), dataset.source)
    return Calibration(np.ascontiguousarray(x), wanted, settings.calibration_method), notice


def equal_chunks(x: np.ndarray, static_batch: int | None) -> list[np.ndarray]:
    """``x`` in chunks of one size (ONNX Runtime's histogram calibrators cannot stack others); a static
    batch's remainder is left out (the recorded sample count says so)."""
    n = len(x)
    size = static_batch or max(d for d in range(1, min(CHUNK, n) + 1) if n % d == 0)
    return [x[i:i + size] for i in range(0, n - n % size if static_batch else n, size)]


def quantize_onnx(source: Path, target: Path, calibration: Calibration, static_batch: int | None) -> dict:
    """Static QDQ INT8 of the fp32 ONNX ``source``; the calibration facts."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,  # lazy: heavy
                                          quantize_static)

    chunks = equal_chunks(calibration.x, static_batch)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._chunks = iter(chunks)

        def get_next(self):
            chunk = next(self._chunks, None)
            return None if chunk is None else {INPUT_NAME: chunk}

    method = CALIBRATION_METHODS[calibration.method][0]
    reduce_range = reduce_range_reason()
    with silenced("nncf", "root"):  # their logs and progress bars
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), reduce_range=reduce_range is not None)
    used = sum(len(c) for c in chunks)
    tool = (f"onnxruntime.quantization.quantize_static (QDQ, per-channel int8 weights, uint8 activations, "
            f"CalibrationMethod.{method}{', reduce_range' if reduce_range else ''})")
    return {**calibration.facts(tool), "samples": used, "reduce_range": reduce_range is not None,
            "reduce_range_reason": reduce_range}


def load_nncf():
    """NNCF with its telemetry off (``NNCF_CI``, read on first import): offline, its forked sender can hang
    and the parent then waits for it at exit for ever."""
    os.environ.setdefault("NNCF_CI", "1")
    return importlib.import_module("nncf")


def quantize_openvino(source: Path, calibration: Calibration, static_batch: int | None):
    """NNCF's INT8 of the model OpenVINO reads from the fp32 ONNX ``source``: (model, facts)."""
    import openvino as ov  # lazy: heavy

    nncf = load_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters  # lazy: heavy
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    estimator = CALIBRATION_METHODS[calibration.method][1]
    # One image per item (NNCF's own convention) unless the model's batch is fixed.
    items = equal_chunks(calibration.x, static_batch) if static_batch else [calibration.x[i:i + 1] for i in range(len(calibration.x))]
    with silenced("nncf", "root"), openvino_telemetry_off():
        model = ov.convert_model(str(source))
        quantized = nncf.quantize(
            model, nncf.Dataset(items), subset_size=len(items),
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=getattr(RangeEstimatorParametersSet, estimator)))
    tool = f"nncf.quantize {package_version('nncf')} (OpenVINO model, RangeEstimatorParametersSet.{estimator}, default preset)"
    return quantized, {**calibration.facts(tool), "samples": sum(len(i) for i in items)}
