"""Export stage: Keras models to ONNX, OpenVINO IR, TensorRT engines and LiteRT (.tflite), each
verified against Keras before it is called done.

Entry point: ``slimdeploy.export.api.export_source``. Targets are listed in ``registry.py``, one
module each; ``verify.py`` compares an artifact's outputs with Keras's.
"""
