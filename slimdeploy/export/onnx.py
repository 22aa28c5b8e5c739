"""ONNX through tf2onnx (a ``tf.function`` with an explicit input signature: ``from_keras`` fails on
Keras 3 models), verified in ONNX Runtime. Weights are copied as they are: a ticket's zeros stay zeros."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from slimdeploy.errors import WorkError
from slimdeploy.export.onnx_rewrite import checker_failure, conversion_failure, rewrite_untranslated_ops
from slimdeploy.export.quantize import quantize_onnx
from slimdeploy.export.target import INPUT_NAME, OUTPUT_NAME, Exported, Target, package_version
from slimdeploy.models import model_input_dtype
from slimdeploy.quiet import silenced

BATCH_DIM = "batch"


def keras_to_onnx(model, path: Path, *, opset: int, static_batch: int | None, rewrite: bool = True) -> None:
    """Write ``model`` as a checked fp32 ONNX file at ``path``. ``rewrite``: replace the TensorFlow ops
    tf2onnx leaves untranslated (``onnx_rewrite``). A node that still fails is a ``WorkError`` naming
    its Keras layer."""
    import onnx  # lazy: heavy
    import tensorflow as tf
    import tf2onnx

    input_shape = tuple(model.input_shape[1:])
    # The model's own input dtype: integer token ids stay integer in the graph.
    signature = (tf.TensorSpec((static_batch, *input_shape), tf.as_dtype(model_input_dtype(model)), name=INPUT_NAME),)
    function = tf.function(lambda x: model(x, training=False))
    with silenced("tf2onnx", records=[]) as records:  # tf2onnx's error records name the nodes it could not convert
        try:
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset)
        except Exception as exc:  # tf2onnx raises many types; all mean the conversion failed
            raise WorkError(conversion_failure(model, records, exc)) from exc
    if rewrite:
        rewrite_untranslated_ops(proto)
    _readable_names(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise WorkError(checker_failure(model, exc)) from exc
    onnx.save(proto, str(path))


def _readable_names(proto) -> None:
    """Name the output ``output`` and the free batch dimension ``batch`` (tf2onnx writes
    ``Identity:0`` and ``unk__21``)."""
    graph = proto.graph
    if len(graph.output) == 1 and graph.output[0].name != OUTPUT_NAME:
        old = graph.output[0].name
        for names in (names for node in graph.node for names in (node.output, node.input)):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = OUTPUT_NAME
        graph.output[0].name = OUTPUT_NAME
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def to_fp16_weights(source: Path, target: Path) -> None:
    """Float initializers stored as float16, each cast back to float32 by a Cast node: inputs, outputs
    and arithmetic stay fp32 (ONNX Runtime's CPU kernels are)."""
    import onnx  # lazy: heavy
    from onnx import helper, numpy_helper

    proto = onnx.load(str(source))
    graph = proto.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}_to_fp32"))
    for index, node in enumerate(casts):
        graph.node.insert(index, node)  # before their users: nodes must be in topological order
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(target))


def matmul_weight_shapes(path: Path) -> list[list[int]]:
    """Shapes of the constant weights that MatMul/Gemm nodes multiply by, in graph order."""
    import onnx  # lazy: heavy
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    initializers = {init.name: list(numpy_helper.to_array(init).shape) for init in proto.graph.initializer}
    # fp16 weights reach the MatMul through a Cast, INT8 ones through a DequantizeLinear.
    cast_source = {node.output[0]: node.input[0] for node in proto.graph.node if node.op_type in ("Cast", "DequantizeLinear")}
    shapes = []
    for node in proto.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            for name in node.input[:2]:
                name = cast_source.get(name, name)
                if name in initializers:
                    shapes.append(initializers[name])
    return shapes


class OnnxTarget(Target):
    name = "onnx"
    display_name = "ONNX"
    suffixes = (".onnx",)
    runtime = "onnxruntime"
    includes_onnx_conversion = True
    int8_unavailable = None
    packages = ("tf2onnx", "onnx", "onnxruntime", "tensorflow", "keras")

    def inference_precision(self, settings) -> str:
        return "f32"  # fp16 weights are cast up: ONNX Runtime computes in fp32 on CPU

    def export(self, onnx_path: Path, staging: Path, model_name: str, settings) -> Exported:
        target = self.files(staging, model_name)[0]
        if settings.float_precision == "fp16":
            to_fp16_weights(onnx_path, target)
        else:
            shutil.copyfile(onnx_path, target)
        return Exported([target], f"tf2onnx {package_version('tf2onnx')}",
                        {"opset": settings.opset, "matmul_weight_shapes": matmul_weight_shapes(target)})

    def quantize(self, onnx_path: Path, staging: Path, model_name: str, settings, calibration) -> Exported:
        target = self.files(staging, model_name)[0]
        facts = quantize_onnx(onnx_path, target, calibration, settings.static_batch)
        return Exported([target], f"tf2onnx {package_version('tf2onnx')} + onnxruntime.quantization "
                        f"{package_version('onnxruntime')}",
                        {"opset": settings.opset, "calibration": facts, "matmul_weight_shapes": matmul_weight_shapes(target)})


TARGET = OnnxTarget()
