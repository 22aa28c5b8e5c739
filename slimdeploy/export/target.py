"""What every export target provides: a converter, a runner for verification, a tolerance.

A target module (``onnx.py``, ``openvino.py``, ``tensorrt.py``) subclasses ``Target`` and is
listed in ``registry.py``. Heavy libraries are imported inside methods, so importing a
target module is cheap and a missing optional library is reported, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Declared tolerances, by the lowest precision involved (weights or arithmetic). Measured on
# the article MLP: fp16 weights computed in f32 differ from Keras by 6e-4, f16 arithmetic by
# 2.4e-3, OpenVINO's bf16 by 1.8e-2 (max abs over 15,000 softmax outputs).
TOLERANCES = {
    "f32": (1e-4, 0.999),
    "f16": (1e-2, 0.99),
    "bf16": (5e-2, 0.99),
}


@dataclass(frozen=True)
class Tolerance:
    atol: float
    min_top1_agreement: float

    @classmethod
    def for_precisions(cls, weights: str, arithmetic: str) -> "Tolerance":
        """The looser tolerance of the weight precision (fp32/fp16) and arithmetic (f32/f16/bf16)."""
        names = {"fp32": "f32", "fp16": "f16"}
        candidates = [TOLERANCES[names.get(weights, weights)], TOLERANCES[arithmetic]]
        atol = max(c[0] for c in candidates)
        agreement = min(c[1] for c in candidates)
        return cls(atol, agreement)


@dataclass
class Exported:
    """What a converter wrote into the staging directory."""

    files: list[Path]  # primary file first
    converter: str  # e.g. "tf2onnx 1.17.0"
    details: dict = field(default_factory=dict)  # target-specific facts for the manifest


class Runner:
    """An artifact loaded in its own runtime, for verification."""

    runtime: str = ""
    fixed_batch: int | None = None  # static-shape artifacts take exactly this many images per call
    max_batch: int | None = None  # e.g. a TensorRT optimization profile's upper bound
    inference_precision: str = "f32"

    def infer(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def run(self, x: np.ndarray, batch: int) -> np.ndarray:
        """All of ``x`` in chunks the artifact accepts; the last chunk is padded for a static batch."""
        chunk = self.fixed_batch or min(batch, self.max_batch or batch)
        outputs = []
        for start in range(0, len(x), chunk):
            part = x[start:start + chunk]
            real = len(part)
            if self.fixed_batch and real < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - real, *part.shape[1:]), dtype=part.dtype)
                part = np.concatenate([part, pad])
            outputs.append(np.asarray(self.infer(np.ascontiguousarray(part)))[:real])
        return np.concatenate(outputs)


class Target:
    name: str = ""
    suffixes: tuple[str, ...] = ()  # one artifact's files, primary first
    runtime: str = ""  # where it is verified

    def unavailable_reason(self) -> str | None:
        """None when this machine can build and run the target; else what is missing."""
        return None

    def inference_precision(self, settings) -> str:
        return "f32" if settings.precision == "fp32" else "f16"

    def tolerance(self, settings, inference_precision: str) -> Tolerance:
        return Tolerance.for_precisions(settings.precision, inference_precision)

    def files(self, directory: Path, model_name: str) -> list[Path]:
        return [directory / f"{model_name}{suffix}" for suffix in self.suffixes]

    def export(self, onnx_path: Path, staging: Path, model_name: str, settings) -> Exported:  # pragma: no cover
        """Convert the fp32 ONNX at ``onnx_path`` into this target's files in ``staging``."""
        raise NotImplementedError

    def open(self, path: Path, settings) -> Runner:  # pragma: no cover - interface
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        return {}


def package_version(name: str) -> str:
    from importlib import metadata

    for candidate in (name, f"{name}-cpu"):  # tensorflow is installed as tensorflow-cpu here
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"
