"""Export stage: Keras models to ONNX, OpenVINO IR and TensorRT engines, each verified against
Keras before it is called done.

Entry point: ``slimdeploy.export.api.export_source``. Targets live in ``registry.py``, one
module each; ``verify.py`` compares an artifact's outputs with Keras's.
"""
