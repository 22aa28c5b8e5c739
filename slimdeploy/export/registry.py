"""Every export target by name. Adding a target is one module here and one line below."""

from __future__ import annotations

from slimdeploy.export.onnx import OnnxTarget
from slimdeploy.export.openvino import OpenVinoTarget
from slimdeploy.export.target import Target
from slimdeploy.export.tensorrt import TensorRtTarget

# Order matters: it is the order artifacts are built and listed in.
TARGETS: dict[str, Target] = {target.name: target for target in (OnnxTarget(), OpenVinoTarget(), TensorRtTarget())}
TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)


def get_target(name: str) -> Target:
    return TARGETS[name]
