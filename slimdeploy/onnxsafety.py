"""ONNX files are untrusted input: check one before any library opens it.

An external-data path such as ``../../etc/shadow`` would make a runtime read (and a benchmark expose)
a file outside the model's directory: refused here with one clear error, whatever each library's
version does. A tensor's data must be as long as its dimensions say (compared from the proto's fields,
never by building the array), so a forged shape is a malformed file, not a failed run. The model is
read without its external data; ``onnx.checker`` then checks the graph.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

from slimdeploy.errors import ModelFileError

# Bits per element of each tensor type, by TensorProto name.
_BITS_BY_NAME = {"FLOAT": 32, "UINT8": 8, "INT8": 8, "UINT16": 16, "INT16": 16, "INT32": 32, "INT64": 64, "BOOL": 8,
                 "FLOAT16": 16, "DOUBLE": 64, "UINT32": 32, "UINT64": 64, "COMPLEX64": 64, "COMPLEX128": 128,
                 "BFLOAT16": 16, "FLOAT8E4M3FN": 8, "FLOAT8E4M3FNUZ": 8, "FLOAT8E5M2": 8, "FLOAT8E5M2FNUZ": 8,
                 "FLOAT8E8M0": 8, "UINT4": 4, "INT4": 4, "FLOAT4E2M1": 4, "UINT2": 2, "INT2": 2}
# A session option: the caller fully checked this very file (the bench parent), so opening it checks only
# where external data lies (``full=False``): the worker's timed load does not pay for onnx.checker.
CHECKED_OPTION = "artifact_checked"
# Where a tensor holds its values when not as raw bytes (one of them, by data type).
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def check_onnx_file(path: str | os.PathLike, what: str = "ONNX model", *, full: bool = True):
    """Raise ``ModelFileError`` for a missing, corrupt, malformed or unsafe ONNX file; return the model proto
    (without external data). ``full=False``: only the external data paths (``CHECKED_OPTION``)."""
    import onnx  # lazy: heavy

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
    external = False
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            problem = _inline_data_problem(tensor) if full else None
        else:
            external = True
            problem = _external_data_problem(tensor, base, path, what)  # refuses unsafe paths itself
        if problem and full:
            raise ModelFileError(f"{what} {path} is malformed: tensor {tensor.name!r} {problem}")
    if not full:
        return model
    # Given the path, the checker finds external files beside the model (their locations are vetted above).
    _run_checker(str(path) if external else model, path, what)
    return model


def _run_checker(model, path: Path, what: str) -> None:
    """``onnx.checker`` on the proto or the file's path (without shape inference, which can be slow)."""
    import onnx  # lazy: heavy

    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__  # its message spans lines
        raise ModelFileError(f"{what} {path} is malformed: onnx.checker: {reason}") from exc


def _elements(tensor) -> int | None:
    """The elements the tensor's dims declare (a Python int: no overflow); None for a negative dimension."""
    return None if any(d < 0 for d in tensor.dims) else math.prod(tensor.dims)


@functools.cache
def _type_name(data_type: int) -> str | None:
    import onnx  # lazy: heavy

    try:
        return onnx.TensorProto.DataType.Name(data_type)
    except ValueError:
        return None


def _bits(data_type: int) -> int | None:
    return _BITS_BY_NAME.get(_type_name(data_type))


def _declared(tensor) -> str:
    shape = "x".join(str(d) for d in tensor.dims) or "scalar"
    return f"declares {shape} {_type_name(tensor.data_type) or f'type {tensor.data_type}'} values"


def _declared_bytes(tensor) -> int | None:
    """Bytes the dims declare (sub-byte types packed), or None (STRING, an unknown type)."""
    bits = _bits(tensor.data_type)
    elements = _elements(tensor)
    return None if bits is None or elements is None else (elements * bits + 7) // 8


def _inline_data_problem(tensor) -> str | None:
    elements = _elements(tensor)
    if elements is None:
        return f"has a negative dimension ({list(tensor.dims)})"
    if tensor.HasField("raw_data"):
        expected = _declared_bytes(tensor)
        if expected is not None and len(tensor.raw_data) != expected:
            return f"{_declared(tensor)} ({expected} bytes) but its data holds {len(tensor.raw_data)} bytes"
        return None
    held = {field: len(getattr(tensor, field)) for field in _TYPED_FIELDS if len(getattr(tensor, field))}
    bits = _bits(tensor.data_type)
    if bits is not None and bits < 8:
        expected = (elements * bits + 7) // 8  # packed two (or four) to an int32_data entry
    else:
        expected = elements * (2 if _type_name(tensor.data_type) in ("COMPLEX64", "COMPLEX128") else 1)
    count = sum(held.values())
    if count != expected:
        where = f"its {', '.join(held)} hold" if held else "it holds"
        return f"{_declared(tensor)} ({expected} entries) but {where} {count}"
    return None


def _external_data_problem(tensor, base: Path, path: Path, what: str) -> str | None:
    """Refuses an unsafe or missing external file; returns why its length does not match the dims, or None.
    Only the file's size is read."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    problem = external_path_problem(location, base)
    if problem:
        raise ModelFileError(f"{what} {path} refused: tensor {tensor.name!r} keeps its data in {location!r}, {problem}")
    target = base / location
    if not target.is_file():
        raise ModelFileError(f"{what} {path}: external data file {location} of tensor {tensor.name!r} is missing")
    if _elements(tensor) is None:
        return f"has a negative dimension ({list(tensor.dims)})"
    numbers = {}
    for key in ("offset", "length"):
        if key in entries:
            try:
                numbers[key] = int(entries[key])
            except ValueError:
                numbers[key] = -1
            if numbers[key] < 0:
                return f"keeps its data in {location!r} at {key} {entries[key]!r}, not a byte count"
    offset = numbers.get("offset", 0)
    available = max(0, target.stat().st_size - offset)
    expected = _declared_bytes(tensor)
    if expected is None:
        return None
    declared = f"{_declared(tensor)} ({expected} bytes)"
    # ONNX reads `length` bytes from `offset`, or to the end of the file without `length`.
    if "length" in numbers and numbers["length"] != expected:
        return f"{declared} but its external data entry gives length {numbers['length']}"
    if available < expected or ("length" not in numbers and available != expected):
        return f"{declared} but {location!r} holds {available} bytes from offset {offset}"
    return None


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
