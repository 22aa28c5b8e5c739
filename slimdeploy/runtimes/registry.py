"""Runtimes by name. Adding a runtime is one new module here and one line in RUNTIMES.

Runtime modules import their library only when a session is opened, so listing
runtimes (and ``--help``) never loads TensorFlow, and a missing library is reported as
unavailable with its reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from slimdeploy.runtimes.session import Availability, Session


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    module: str
    # Artifact files it runs, in order of preference.
    suffixes: tuple[str, ...]
    # export.json targets whose files it runs.
    targets: tuple[str, ...]


RUNTIMES: dict[str, RuntimeSpec] = {
    "tensorflow": RuntimeSpec("tensorflow", "slimdeploy.runtimes.tensorflow", (".keras",), ()),
    "onnxruntime": RuntimeSpec("onnxruntime", "slimdeploy.runtimes.onnxruntime", (".onnx",), ("onnx",)),
    # OpenVINO reads ONNX too; an IR is preferred when both exist.
    "openvino": RuntimeSpec("openvino", "slimdeploy.runtimes.openvino", (".xml", ".onnx"), ("openvino", "onnx")),
    "tensorrt": RuntimeSpec("tensorrt", "slimdeploy.runtimes.tensorrt", (".engine", ".plan"), ("tensorrt",)),
}


def runtime_module(name: str):
    return importlib.import_module(RUNTIMES[name].module)


def availability(name: str) -> Availability:
    return runtime_module(name).availability()


def all_availability(names=None) -> dict[str, dict]:
    return {name: availability(name).to_dict() for name in (names or RUNTIMES)}


def session_class(name: str) -> type[Session]:
    return runtime_module(name).SESSION


def open_session(name: str, artifact: str | Path, batch: int, threads: int, options: dict | None = None,
                 mode: str = "latency") -> Session:
    return session_class(name).open(artifact, batch, threads, options, mode)


def pick_artifact(name: str, paths) -> Path | None:
    """The artifact this runtime prefers among a model's files (None: it runs none of them)."""
    by_suffix = {Path(p).suffix: Path(p) for p in paths}
    for suffix in RUNTIMES[name].suffixes:
        if suffix in by_suffix:
            return by_suffix[suffix]
    return None
