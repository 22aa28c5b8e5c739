"""LiteRT (``.tflite``) through TensorFlow's converter, verified in LiteRT (``ai_edge_litert``).

Made from the Keras model: a SavedModel whose one endpoint is the inference call with the input
``input`` and the output ``output``, converted by ``TFLiteConverter.from_saved_model``
(``from_keras_model`` names the input after the Keras tensor; ``from_concrete_functions`` loses a
Keras 3 model's weights). fp16 stores float16 weights; LiteRT computes in fp32 on the CPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from slimdeploy.errors import WorkError
from slimdeploy.export.target import INPUT_NAME, OUTPUT_NAME, Exported, Target, package_version
from slimdeploy.models import model_input_dtype
from slimdeploy.runtimes.litert import availability

# Op names whose second input is a Dense layer's weights in a .tflite.
MATMUL_OPS = ("FULLY_CONNECTED", "BATCH_MATMUL")


def keras_to_tflite(model, path: Path, *, static_batch: int | None, fp16: bool, workdir: Path) -> None:
    import keras  # lazy: heavy
    import tensorflow as tf

    signature = [tf.TensorSpec((static_batch, *model.input_shape[1:]), tf.as_dtype(model_input_dtype(model)), name=INPUT_NAME)]
    with tempfile.TemporaryDirectory(prefix=".litert-savedmodel-", dir=workdir) as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: {OUTPUT_NAME: model(x, training=False)}, signature)
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        path.write_bytes(converter.convert())


def matmul_weight_shapes(path: Path) -> list[list[int]]:
    """Shapes of the weights the matrix products multiply by, as [in, out] like the ONNX target's (a
    FULLY_CONNECTED weight is stored [out, in]); empty where this LiteRT does not list its ops."""
    from ai_edge_litert.interpreter import Interpreter  # lazy: optional

    interpreter = Interpreter(model_path=str(path))
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # absent or changed in another version
        return []
    shapes = {int(t["index"]): [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    found = []
    for op in ops:
        inputs = [int(i) for i in op.get("inputs", [])]
        if op.get("op_name") in MATMUL_OPS and len(inputs) > 1 and inputs[1] in shapes:
            shape = shapes[inputs[1]]
            found.append(shape[::-1] if op["op_name"] == "FULLY_CONNECTED" and len(shape) == 2 else shape)
    return found


class LiteRtTarget(Target):
    name = "litert"
    display_name = "LiteRT"
    suffixes = (".tflite",)
    runtime = "litert"
    from_onnx = False
    packages = ("tensorflow", "keras", "ai-edge-litert")
    int8_unavailable = "slimdeploy makes no LiteRT INT8 model yet (the ONNX and OpenVINO INT8 variants are made)"

    def unavailable_reason(self) -> str | None:
        return availability().reason

    def inference_precision(self, settings) -> str:
        return "f32"  # fp16 weights are dequantized: LiteRT computes in fp32 on the CPU

    def export_keras(self, model, staging: Path, model_name: str, settings) -> Exported:
        target = self.files(staging, model_name)[0]
        fp16 = settings.float_precision == "fp16"
        try:
            keras_to_tflite(model, target, static_batch=settings.static_batch, fp16=fp16, workdir=staging)
        except Exception as exc:  # the converter raises many kinds (ConverterError, ValueError, ...)
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise WorkError(f"TensorFlow's LiteRT converter could not convert {model_name}: {lines[0][:200]}") from exc
        return Exported([target], f"tf.lite.TFLiteConverter {package_version('tensorflow')} (from a Keras SavedModel)",
                        {"fp16_weights": fp16, "matmul_weight_shapes": matmul_weight_shapes(target)})


TARGET = LiteRtTarget()
