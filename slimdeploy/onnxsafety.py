"""ONNX files are untrusted input: check one before any library opens it.

An ONNX tensor may keep its data in an external file named by a path inside the model.
A path such as ``../../etc/shadow`` or ``/home/x/secret`` would make the runtime read
(and a benchmark expose, through timings or outputs) a file outside the model's own
directory. onnx, ONNX Runtime and OpenVINO refuse these today, each with its own message;
this check gives one clear error and does not depend on every library version doing so.
It reads the model without its external data, so nothing is followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from slimdeploy.errors import ModelFileError


def check_onnx_file(path: str | os.PathLike, what: str = "ONNX model"):
    """Raise ``ModelFileError`` for a missing, corrupt or unsafe ONNX file; return the model
    proto (without external data) for callers that want to read it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{what} {path} is empty")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for a corrupt file
        raise ModelFileError(f"{what} {path} is not a readable ONNX model (corrupt or truncated: {type(exc).__name__})") from exc
    if not model.graph.node:
        raise ModelFileError(f"{what} {path} is not a readable ONNX model (empty graph)")
    base = path.resolve().parent
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        problem = external_path_problem(location, base)
        if problem:
            raise ModelFileError(f"{what} {path} refused: tensor {tensor.name!r} keeps its data in {location!r}, {problem}")
        if not (base / location).is_file():
            raise ModelFileError(f"{what} {path}: external data file {location} of tensor {tensor.name!r} is missing")
    return model


def external_path_problem(location: str, base: Path) -> str | None:
    """Why an external-data ``location`` is unsafe relative to the model's directory, or None."""
    if not location:
        return "an empty path"
    normalized = location.replace("\\", "/")
    if normalized.startswith("/") or os.path.isabs(location) or (len(normalized) > 1 and normalized[1] == ":"):
        return "an absolute path; external data must sit beside the model"
    if ".." in normalized.split("/"):
        return "a path that climbs out of the model's directory"
    resolved = (base / location).resolve()
    if resolved != base and base not in resolved.parents:
        return "which resolves (through a link) outside the model's directory"
    return None


def _tensors(graph):
    """Every tensor a graph holds: initializers and constant attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)
