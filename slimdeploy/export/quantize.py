"""Post-training static INT8: the calibration images, and the two quantizers.

- ONNX: ``onnxruntime.quantization.quantize_static`` (QDQ format, per-channel int8 weights,
  uint8 activations), from the fp32 ONNX file every target starts from.
- OpenVINO: ``nncf.quantize`` on the model OpenVINO reads from that same ONNX file.

Both calibrate on the same images: the first N of the validation split, in the model's
input dtype, exactly as verification feeds them (never the test split, which judges them).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimdeploy.data import as_model_input
from slimdeploy.environment import cpu_info
from slimdeploy.export.target import INPUT_NAME, package_version
from slimdeploy.models import model_input_dtype
from slimdeploy.quiet import openvino_telemetry_off

# Calibration methods: (ONNX Runtime CalibrationMethod, NNCF RangeEstimatorParametersSet).
CALIBRATION_METHODS = {"minmax": ("MinMax", "MINMAX"), "percentile": ("Percentile", "MEAN_QUANTILE"),
                       "entropy": ("Entropy", "HISTOGRAM")}
CHUNK = 64  # images per calibration call at most
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def reduce_range_reason() -> str | None:
    """Why ONNX Runtime's INT8 weights should use 7 bits here (None: they need not).

    Without VNNI, ONNX Runtime multiplies u8 activations by s8 weights with ``vpmaddubsw``, whose
    16-bit sums saturate; its documentation advises ``reduce_range`` on such CPUs. Measured on
    an avx2-only EPYC: a 3-epoch structured ticket's top-1 agreement rose from 96.4% to 97.7%."""
    flags = cpu_info().get("flags") or []
    if any(flag in flags for flag in VNNI_FLAGS) or not flags:
        return None
    return "this CPU has no VNNI (avx512_vnni, avx_vnni or amx_int8), where 8-bit u8*s8 products can saturate"


@dataclass(frozen=True)
class Calibration:
    """The images every INT8 variant of one export is calibrated on."""

    x: np.ndarray
    requested: int
    method: str

    def facts(self, tool: str) -> dict:
        return {"samples": int(len(self.x)), "requested": self.requested, "from": "validation",
                "method": self.method, "tool": tool}


def calibration_images(dataset, model, settings) -> tuple[Calibration, str | None]:
    """The first ``settings.calibration_size`` validation images in the model's input dtype, and
    a notice when the split holds fewer (then all of them are used)."""
    available = len(dataset.x_val)
    wanted = settings.calibration_size
    notice = None
    if wanted > available:
        notice = (f"--calibration-size {wanted}: the validation split has {available} images; "
                  f"calibrating INT8 on all {available}")
    x = as_model_input(dataset.x_val[:wanted], model_input_dtype(model), dataset.source)
    return Calibration(np.ascontiguousarray(x), wanted, settings.calibration_method), notice


def equal_chunks(x: np.ndarray, static_batch: int | None) -> list[np.ndarray]:
    """``x`` in chunks of one size: ONNX Runtime's histogram calibrators cannot stack chunks of
    different sizes, and a static-batch model takes only its own batch (the remainder that does
    not fill one is left out, and the recorded sample count says so)."""
    n = len(x)
    size = static_batch or max(d for d in range(1, min(CHUNK, n) + 1) if n % d == 0)
    return [x[i:i + size] for i in range(0, n - n % size if static_batch else n, size)]


def quantize_onnx(source: Path, target: Path, calibration: Calibration, static_batch: int | None) -> dict:
    """Static QDQ INT8 of the fp32 ONNX ``source``; the calibration facts."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
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
    with _quiet():
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), reduce_range=reduce_range is not None)
    used = sum(len(c) for c in chunks)
    tool = (f"onnxruntime.quantization.quantize_static (QDQ, per-channel int8 weights, uint8 activations, "
            f"CalibrationMethod.{method}{', reduce_range' if reduce_range else ''})")
    return {**calibration.facts(tool), "samples": used, "reduce_range": reduce_range is not None,
            "reduce_range_reason": reduce_range}


def load_nncf():
    """NNCF with its telemetry off. On import NNCF's telemetry (openvino_telemetry) sends usage
    events from a forked process; offline, that child can hang in getaddrinfo with a lock it
    inherited, and the parent then waits for it at exit forever (seen: `slimdeploy run` never
    returning after its report was written). Users of slimdeploy have not opted in to it either.
    ``NNCF_CI`` is the switch NNCF reads, once, when it is first imported."""
    os.environ.setdefault("NNCF_CI", "1")
    return importlib.import_module("nncf")


def quantize_openvino(source: Path, calibration: Calibration, static_batch: int | None):
    """NNCF's INT8 of the model OpenVINO reads from the fp32 ONNX ``source``: (model, facts)."""
    import openvino as ov

    nncf = load_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    estimator = CALIBRATION_METHODS[calibration.method][1]
    # One image per item (NNCF's own convention) unless the model's batch is fixed.
    items = equal_chunks(calibration.x, static_batch) if static_batch else [calibration.x[i:i + 1] for i in range(len(calibration.x))]
    with _quiet(), openvino_telemetry_off():
        model = ov.convert_model(str(source))
        quantized = nncf.quantize(
            model, nncf.Dataset(items), subset_size=len(items),
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=getattr(RangeEstimatorParametersSet, estimator)))
    tool = f"nncf.quantize {_version('nncf')} (OpenVINO model, RangeEstimatorParametersSet.{estimator}, default preset)"
    return quantized, {**calibration.facts(tool), "samples": sum(len(i) for i in items)}


def _version(name: str) -> str:
    return package_version(name)


@contextlib.contextmanager
def _quiet():
    """NNCF and ONNX Runtime's quantizer log and draw progress bars on their own: keep them out
    of slimdeploy's output (their warnings about tiny calibration sets included)."""
    loggers = [logging.getLogger(name) for name in ("nncf", "root")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
