"""What an artifact file takes and holds, read without loading a runtime: the input shape (to refuse
an artifact that cannot run before any worker starts), parameter and FLOP counts (the ideal speedup).
FLOPs: multiply-adds x2 of MatMul/Gemm/Conv with constant weights per sample (as ``models.count_flops``),
counted on the graph as OpenVINO reads it at batch 1, whose propagated shapes say how many rows a MatMul
takes (tf2onnx runs a per-time-step Dense on [N*T, F]) and how many positions a convolution computes.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimdeploy.errors import ModelFileError
from slimdeploy.irsafety import check_openvino_ir
from slimdeploy.models import check_h5_model, check_keras_archive, find_in_config
from slimdeploy.onnxsafety import check_onnx_file
from slimdeploy.runtimes.registry import RUNTIMES, names


@dataclass
class ArtifactInfo:
    path: Path
    input_name: str | None = None
    # Dimensions with None where dynamic; None when the file does not say (TensorRT).
    input_shape: list | None = None
    params: int | None = None
    nonzero_params: int | None = None
    flops: int | None = None
    nonzero_flops: int | None = None
    widths: list = field(default_factory=list)
    input_dtype: str | None = None  # numpy's name: float32, int32, ...
    # Integer inputs that index an embedding table: [0, rows of the smallest such table).
    input_range: list | None = None

    def model_info(self) -> dict:
        """The facts bench.json's models entry takes from the file."""
        keys = ("params", "nonzero_params", "flops", "nonzero_flops", "input_dtype", "input_range")
        info = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {**info, "widths": list(self.widths)} if self.widths else info


def inspect_artifact(path: str | Path) -> ArtifactInfo:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"artifact {path} does not exist")
    if path.stat().st_size == 0:
        raise ModelFileError(f"artifact {path} is empty")
    reader = READERS.get(path.suffix)
    if reader is not None:
        return reader(path)
    if path.suffix in known_suffixes():
        return ArtifactInfo(path)  # only its runtime can read it
    raise ModelFileError(f"artifact {path}: unsupported file type (expected one of {', '.join(known_suffixes())})")


# --- ONNX -------------------------------------------------------------------------------

def _inspect_onnx(path: Path) -> ArtifactInfo:
    import onnx
    from onnx import numpy_helper

    # Refuses external data outside the model's directory before anything follows it.
    model = check_onnx_file(path, "artifact")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several types for a corrupt file
        raise ModelFileError(f"artifact {path} is not a readable ONNX model ({type(exc).__name__})") from exc
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelFileError(f"artifact {path} has {len(inputs)} inputs; slimdeploy benchmarks single-input models")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    info = ArtifactInfo(path, input_name=inputs[0].name, input_shape=dims,
                        input_dtype=_onnx_dtype_name(inputs[0].type.tensor_type.elem_type))
    if _is_integer(info.input_dtype):
        tables = {name: list(init.dims) for name, init in initializers.items()}
        gathers = [(node.input[0], node.input[1], node.output) for node in graph.node if node.op_type == "Gather"]
        flows = [(source, node.output) for node in graph.node for source in node.input]
        info.input_range = _indexed_range(inputs[0].name, gathers, flows, tables)

    arrays = {}
    params = nonzero = 0
    for name, init in initializers.items():
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                              onnx.TensorProto.BFLOAT16):
            array = numpy_helper.to_array(init)
            _refuse_non_finite(path, name, array)
            arrays[name] = array
            params += array.size
            nonzero += int(np.count_nonzero(array))
    info.params, info.nonzero_params = int(params), int(nonzero)

    # fp16 weights reach their MatMul through a Cast (export.onnx.to_fp16_weights).
    cast_from = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Cast"}
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1:
            weight = arrays.get(cast_from.get(node.input[1], node.input[1]))
            if weight is None or weight.ndim != 2:
                continue
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            info.widths.append(int(weight.shape[0] if trans_b else weight.shape[1]))
    info.flops, info.nonzero_flops = weight_flops(path)
    return info


def weight_flops(path: Path) -> tuple[int | None, int | None]:
    """(FLOPs, FLOPs of the nonzero weights) of one sample through the MatMul and Convolution
    nodes with constant weights of an ONNX file or IR; (None, None) when the shapes are not
    all known (a dynamic non-batch dimension) or OpenVINO cannot read the file."""
    import openvino as ov

    try:
        model = ov.Core().read_model(str(path))
        batch = _static_batch(model)
        ops = model.get_ordered_ops()
    except Exception:  # the counts are facts for the report; the runtime itself says why it cannot run
        return None, None
    if batch is None:
        return None, None
    flops = nonzero = 0
    for op in ops:
        kind = op.get_type_name()
        weight = _ov_constant(op.input_value(1).get_node()) if kind in ("MatMul", "Convolution") else None
        if weight is None or (kind == "MatMul" and weight.ndim != 2):
            continue
        # Each weight is used once per row of a MatMul's input (all dims but the last: K),
        # once per output position (N x H x W) of a convolution.
        port = op.input(0) if kind == "MatMul" else op.output(0)
        shape = port.get_partial_shape()
        if shape.is_dynamic:
            return None, None
        dims = [int(d) for d in shape.to_shape()]
        if kind == "MatMul" and op.get_attributes().get("transpose_a"):
            dims = [*dims[:-2], dims[-1], dims[-2]]
        uses = int(np.prod(dims[:-1] if kind == "MatMul" else [dims[0], *dims[2:]]))
        flops += 2 * weight.size * uses
        nonzero += 2 * int(np.count_nonzero(weight)) * uses
    if not flops:
        return None, None
    return int(flops // batch), int(nonzero // batch)


def _static_batch(model) -> int | None:
    """The batch size the model's shapes are now computed for: a dynamic batch is set to 1;
    None when another input dimension is dynamic."""
    import openvino as ov

    shape = model.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or any(d.is_dynamic for d in list(shape)[1:]):
        return None
    if shape[0].is_dynamic:
        model.reshape({model.inputs[0]: ov.PartialShape([1, *[d.get_length() for d in list(shape)[1:]]])})
        return 1
    return shape[0].get_length()


def _ov_constant(node) -> np.ndarray | None:
    """The constant behind ``node``, through the Converts of an f16-compressed weight."""
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def _is_integer(dtype: str | None) -> bool:
    return dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)


def _indexed_range(start, gathers, flows, tables) -> list | None:
    """[0, rows) of the smallest embedding table (a constant of rank >= 2, not a 1-D shape vector) that
    ids derived from ``start`` (an integer input) index, through any ops (tf2onnx maps negative ids with
    Add/Less/Where). ``gathers``: (table, indices, outputs) per Gather; ``flows``: (input, outputs) per
    op input; ``tables``: constant name -> dims."""
    reached, frontier = {start}, [start]
    while frontier:
        name = frontier.pop()
        for source, outputs in flows:
            if source == name:
                new = [o for o in outputs if o not in reached]
                reached.update(new)
                frontier.extend(new)
    rows = [tables[table][0] for table, indices, _ in gathers
            if indices in reached and len(tables.get(table) or ()) >= 2]
    return [0, int(min(rows))] if rows else None


def _onnx_dtype_name(elem_type: int) -> str | None:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return None


# --- OpenVINO IR --------------------------------------------------------------------------

_IR_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64}


def _inspect_openvino(path: Path) -> ArtifactInfo:
    root = check_openvino_ir(path)
    layers = {layer.get("id"): layer for layer in root.iter("layer")}
    parameters = [layer for layer in layers.values() if layer.get("type") == "Parameter"]
    if root.tag != "net" or not parameters:
        raise ModelFileError(f"artifact {path} is not an OpenVINO IR (no <net> with a Parameter layer)")
    if len(parameters) != 1:
        raise ModelFileError(f"artifact {path} has {len(parameters)} inputs; slimdeploy benchmarks single-input models")
    data = parameters[0].find("data")
    shape_text = data.get("shape", "") if data is not None else ""
    element = data.get("element_type", "") if data is not None else ""
    info = ArtifactInfo(path, input_name=parameters[0].get("name"), input_shape=_ir_dims(shape_text),
                        input_dtype=_IR_INPUT_DTYPES.get(element))

    # check_openvino_ir: every Const's bytes lie within the file.
    blob = np.fromfile(path.with_suffix(".bin"), dtype=np.uint8)

    def constant(layer) -> np.ndarray | None:
        d = layer.find("data")
        dtype = _IR_DTYPES.get(d.get("element_type", "")) if d is not None else None
        if dtype is None:
            return None
        offset, size = int(d.get("offset", 0)), int(d.get("size", 0))
        if size % np.dtype(dtype).itemsize:
            raise ModelFileError(f"artifact {path} is malformed: Const layer {layer.get('name')!r} has size={size}, "
                                 f"not a whole number of {d.get('element_type')} values")
        return blob[offset:offset + size].view(dtype)

    params = nonzero = 0
    values = {}
    for layer_id, layer in layers.items():
        if layer.get("type") == "Const":
            array = constant(layer)
            if array is not None:
                _refuse_non_finite(path, layer.get("name"), array)
                values[layer_id] = array
                params += array.size
                nonzero += int(np.count_nonzero(array))
    if values:
        info.params, info.nonzero_params = int(params), int(nonzero)

    into = {}  # layer id -> {port: the layer that feeds it}: to find the constant behind a MatMul's weights
    for edge in root.iter("edge"):
        into.setdefault(edge.get("to-layer"), {})[edge.get("to-port")] = edge.get("from-layer")
    for layer_id, layer in layers.items():
        if layer.get("type") != "MatMul":
            continue
        ports = layer.find("input").findall("port") if layer.find("input") is not None else []
        if len(ports) < 2:
            continue
        weight_dims = [int(d.text) for d in ports[1].findall("dim")]
        if len(weight_dims) != 2 or min(weight_dims) <= 0:
            continue
        source = into.get(layer_id, {}).get(ports[1].get("id"))
        # Weights may pass through a Convert (f16-compressed IR) on their way.
        while source in layers and layers[source].get("type") == "Convert":
            source = into.get(source, {}).get(layers[source].find("input").find("port").get("id"))
        if source not in values:
            continue  # activations times activations: not a weight layer
        d = layer.find("data")
        trans_b = d is not None and d.get("transpose_b") == "true"
        info.widths.append(weight_dims[0] if trans_b else weight_dims[1])
    info.flops, info.nonzero_flops = weight_flops(path)
    if _is_integer(info.input_dtype):
        info.input_range = _ir_indexed_range(into, layers, parameters[0].get("id"))
    return info


_IR_INPUT_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "i32": "int32", "i64": "int64",
                    "u8": "uint8", "i8": "int8"}


def _ir_indexed_range(into: dict, layers: dict, parameter: str) -> list | None:
    """``_indexed_range`` on an IR graph: a Gather's port 0 is the table, port 1 the indices."""
    tables, gathers, flows = {}, [], []
    for layer_id, layer in layers.items():
        kind = layer.get("type")
        ports = [p.get("id") for p in layer.find("input").findall("port")] if layer.find("input") is not None else []
        feeds = into.get(layer_id, {})
        flows += [(source, [layer_id]) for source in feeds.values()]
        if kind == "Const":
            out = layer.find("output")
            port = out.find("port") if out is not None else None
            if port is not None:
                tables[layer_id] = [int(d.text) for d in port.findall("dim")]
        elif kind == "Gather" and len(ports) >= 2:
            gathers.append((feeds.get(ports[0]), feeds.get(ports[1]), [layer_id]))
    # A table stored in f16 reaches its Gather through a Convert: name it by the Const.
    for layer_id, layer in layers.items():
        source = next(iter(into.get(layer_id, {}).values()), None)
        if layer.get("type") == "Convert" and source in tables:
            tables[layer_id] = tables[source]
    return _indexed_range(parameter, gathers, flows, tables)


def _ir_dims(text: str) -> list:
    return [_ir_dim(part) for part in text.replace(" ", "").split(",") if part]


def _ir_dim(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:  # "?" or a range "1..10"
        return None
    return value if value >= 0 else None


# --- Keras ------------------------------------------------------------------------------------

def _inspect_keras(path: Path) -> ArtifactInfo:
    """The input shape from the archive's config.json (counts come from the TensorFlow worker), after
    the checks ``load_model`` makes without Keras, so an unsafe or broken file is refused (exit status 2)
    before a worker starts."""
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"artifact {path} is not a readable .keras archive (corrupt or truncated)")
    # check_keras_archive checks the zip directory (archives.check_zip_members) before any member is read.
    config = check_keras_archive(path, "artifact")
    _check_keras_weights(path)
    return _keras_model_info(path, config)


def _inspect_h5(path: Path) -> ArtifactInfo:
    """A legacy ``.h5`` model: its config checked as ``load_model`` checks it (no code, only
    Keras's own classes), read with h5py; nothing is built from it here."""
    return _keras_model_info(path, check_h5_model(path, "artifact"))


def _keras_model_info(path: Path, config: dict) -> ArtifactInfo:
    """Input shape, dtype and token-id range from a Keras model config."""
    input_layer = _find_layer_config(config, "InputLayer") or {}
    shape = input_layer.get("batch_shape") or input_layer.get("batch_input_shape")
    info = ArtifactInfo(path, input_name="input", input_shape=list(shape) if shape is not None else None)
    dtype = input_layer.get("dtype")
    dtype = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype  # Keras 3 dtype policies
    info.input_dtype = dtype if isinstance(dtype, str) else None
    embedding = _find_layer_config(config, "Embedding")
    if embedding and _is_integer(info.input_dtype):
        info.input_range = [0, int(embedding["input_dim"])]
    return info


def _find_layer_config(config, class_name: str) -> dict | None:
    """The ``config`` of the first layer of ``class_name`` in a Keras config."""
    def layer_config(obj: dict) -> dict | None:
        inner = obj.get("config")
        return inner if obj.get("class_name") == class_name and isinstance(inner, dict) else None

    return find_in_config(config, layer_config)


def _check_keras_weights(path: Path) -> None:
    """NaN or Inf in the weights file inside the archive (read with h5py, nothing executed)."""
    import h5py  # lazy: heavy

    try:
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                return
            blob = archive.read("model.weights.h5")
        with h5py.File(io.BytesIO(blob), "r") as weights:
            found = []

            def visit(name, item):
                if isinstance(item, h5py.Dataset) and item.dtype.kind == "f" and not found:
                    if not np.all(np.isfinite(item[()])):
                        found.append(name)

            weights.visititems(visit)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"artifact {path} is corrupt or truncated (its weights: {type(exc).__name__})") from exc
    if found:
        raise ModelFileError(f"artifact {path} has NaN or Inf values in weight {found[0]}")


def _refuse_non_finite(path: Path, name, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ModelFileError(f"artifact {path} has NaN or Inf values in weight {name}")


# --- The reader of each file type ----------------------------------------------------

# The files slimdeploy can read itself, before any runtime opens them. Any other file type a
# registered runtime runs (RuntimePlugin.suffixes: a TensorRT engine, a plug-in's own format)
# is only read by that runtime, which checks its shape when it opens it.
READERS = {".onnx": _inspect_onnx, ".xml": _inspect_openvino, ".keras": _inspect_keras, ".h5": _inspect_h5,
           ".hdf5": _inspect_h5}


def known_suffixes() -> tuple[str, ...]:
    """Every artifact suffix that can be benchmarked: those read here, then the runtimes' own."""
    runtime_suffixes = [suffix for name in names() for suffix in RUNTIMES[name].suffixes]
    return tuple(dict.fromkeys([*READERS, *runtime_suffixes]))
