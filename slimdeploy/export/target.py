"""What every export target provides: a converter, a tolerance, and (``open``) its artifact in the
runtime's own benchmark ``Session`` for verification.

A target module subclasses ``Target``, defines ``TARGET`` and is listed in ``registry.py``. Most
targets are made from the model's fp32 ONNX file (``export``); one whose converter reads the Keras
model sets ``from_onnx = False`` and implements ``export_keras``. Heavy libraries are imported
inside methods, so a missing optional library is reported, never a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from slimdeploy.runtimes.registry import plugin
from slimdeploy.runtimes.session import INPUT_DIMS
from slimdeploy.tasks import DEFAULT_TASK, Task

# The input and output names of the ONNX file every target is built from, so of every artifact.
INPUT_NAME = "input"
OUTPUT_NAME = "output"

# (atol, min agreement) by the lowest precision involved (weights or arithmetic).
TOLERANCES = {"f32": (1e-4, 0.999), "f16": (1e-2, 0.99), "bf16": (5e-2, 0.99)}


@dataclass(frozen=True)
class Tolerance:
    """What an artifact must keep of the Keras model's outputs. The field names are export.json's;
    their meaning is the task's (``tasks``: agreement and score)."""

    atol: float | None  # None: outputs may differ by any amount (INT8)
    min_top1_agreement: float
    max_accuracy_drop: float | None = None  # the test score at most this far below Keras's (metric units)

    @classmethod
    def int8(cls, task: Task = DEFAULT_TASK) -> "Tolerance":
        """INT8 is judged on what it is for, not on output parity: the task's INT8 tolerance."""
        return cls(None, task.int8_min_agreement, task.int8_max_drop)

    @classmethod
    def for_precisions(cls, weights: str, arithmetic: str) -> "Tolerance":
        """The looser tolerance of the weight precision (fp32/fp16) and arithmetic (f32/f16/bf16)."""
        names = {"fp32": "f32", "fp16": "f16", None: "f32"}
        candidates = [TOLERANCES[names.get(weights, weights)], TOLERANCES[arithmetic]]
        return cls(max(c[0] for c in candidates), min(c[1] for c in candidates))


@dataclass
class Exported:
    """What a converter wrote into the staging directory."""

    files: list[Path]  # primary file first
    converter: str  # e.g. "tf2onnx 1.17.0"
    details: dict = field(default_factory=dict)  # target-specific facts for the manifest


class Runner:
    """An artifact opened in its runtime's ``Session`` (the one the bench measures), run over many
    images in chunks it accepts: a static-shape artifact's own batch (the last chunk padded), else
    ``batch`` bounded by the largest batch it accepts (a TensorRT profile's max). ``input_dims``: the
    images' dimensions after the batch, for an artifact with dynamic ones."""

    def __init__(self, runtime: str, path: Path, batch: int = 256, options: dict | None = None,
                 inference_precision: str = "f32", input_dims: tuple | None = None):
        self.runtime = runtime
        self.path = Path(path)
        self._plugin = plugin(runtime)
        self._options = dict(options or {})
        if input_dims is not None:
            self._options[INPUT_DIMS] = [int(d) for d in input_dims]
        self.fixed_batch, self.max_batch = self._plugin.session.batch_bounds(self.path)
        self._session = None
        session = self._open(self.chunk(batch))
        # What the runtime reports it computes in (OpenVINO), else what export asked for.
        self.inference_precision = session.applied_settings().get("inference_precision") or inference_precision

    def chunk(self, batch: int) -> int:
        return self.fixed_batch or min(batch, self.max_batch or batch)

    def _open(self, chunk: int):
        if self._session is None or self._session.batch != chunk:
            self.close()
            self._session = self._plugin.open(self.path, chunk, os.cpu_count() or 1, self._options)
        return self._session

    def run(self, x: np.ndarray, batch: int) -> np.ndarray:
        session = self._open(self.chunk(batch))
        outputs = []
        for start in range(0, len(x), session.batch):
            part = x[start:start + session.batch]
            real = len(part)
            if real < session.batch:
                part = np.concatenate([part, np.zeros((session.batch - real, *part.shape[1:]), dtype=part.dtype)])
            # A copy: sessions return the same output buffer on every call.
            outputs.append(np.array(session.infer(part)[:real]))
        return np.concatenate(outputs)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class Target:
    name: str = ""
    display_name: str = ""  # for people: report tables ("OpenVINO IR"); "" shows the name
    suffixes: tuple[str, ...] = ()  # one artifact's files, primary first
    runtime: str = ""  # where it is verified
    # Made from the model's fp32 ONNX file (``export``), or from the Keras model (``export_keras``).
    from_onnx: bool = True
    # The artifact is that ONNX file itself: its ``seconds`` include making it.
    includes_onnx_conversion: bool = False
    # Why this target makes no INT8 variant (None: it makes one with ``quantize``).
    int8_unavailable: str | None = "this target has no INT8 quantizer"
    packages: tuple[str, ...] = ()  # the packages whose versions an artifact records

    def unavailable_reason(self) -> str | None:
        """None when this machine can build and run the target; else what is missing."""
        return None

    def inference_precision(self, settings) -> str:
        return "f32" if settings.float_precision == "fp32" else "f16"

    def tolerance(self, settings, inference_precision: str) -> Tolerance:
        return Tolerance.for_precisions(settings.float_precision, inference_precision)

    def quantize(self, onnx_path: Path, staging: Path, model_name: str, settings, calibration) -> Exported:  # pragma: no cover
        raise NotImplementedError

    def files(self, directory: Path, model_name: str) -> list[Path]:
        return [directory / f"{model_name}{suffix}" for suffix in self.suffixes]

    def export(self, onnx_path: Path, staging: Path, model_name: str, settings) -> Exported:  # pragma: no cover
        raise NotImplementedError

    def export_keras(self, model, staging: Path, model_name: str, settings) -> Exported:  # pragma: no cover
        raise NotImplementedError

    def session_options(self, settings) -> dict:
        return {}

    def open(self, path: Path, settings, input_dims: tuple | None = None) -> Runner:
        return Runner(self.runtime, path, settings.verify_batch, self.session_options(settings),
                      self.inference_precision(settings), input_dims)

    def versions(self) -> dict[str, str]:
        return {name: package_version(name) for name in self.packages}


def package_version(name: str) -> str:
    for candidate in (name, f"{name}-cpu"):  # tensorflow is installed as tensorflow-cpu here
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"
