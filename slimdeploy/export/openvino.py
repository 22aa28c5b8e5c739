"""OpenVINO IR (.xml + .bin) from the ONNX file, verified with the OpenVINO CPU plugin in an inference
precision set explicitly and recorded (CPUs with bf16 would otherwise compute in bf16)."""

from __future__ import annotations

from pathlib import Path

from slimdeploy import interrupts
from slimdeploy.errors import WorkError
from slimdeploy.export.quantize import quantize_openvino
from slimdeploy.export.target import Exported, Target, package_version
from slimdeploy.quiet import openvino_telemetry_off
from slimdeploy.runtimes.openvino import within_isa_limit

DEVICE = "CPU"


def device_capabilities() -> list[str]:
    import openvino as ov  # lazy: heavy

    return within_isa_limit(ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))


def matmul_weight_shapes(xml: Path) -> list[list[int]]:
    """Shapes of the constant weights MatMul nodes multiply by (fp16 weights sit behind a Convert)."""
    import openvino as ov  # lazy: heavy

    model = ov.Core().read_model(str(xml))
    shapes = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        for port in op.inputs():
            source = port.get_source_output().get_node()
            if source.get_type_name() == "Convert":
                source = source.input(0).get_source_output().get_node()
            if source.get_type_name() == "Constant":
                shapes.append([int(d) for d in port.get_shape()])
    return shapes


class OpenVinoTarget(Target):
    name = "openvino"
    display_name = "OpenVINO IR"
    suffixes = (".xml", ".bin")
    runtime = "openvino"
    int8_unavailable = None
    packages = ("tf2onnx", "onnx", "openvino", "nncf")

    def inference_precision(self, settings) -> str:
        if settings.openvino_inference_precision:
            return settings.openvino_inference_precision
        if settings.float_precision == "fp32":
            return "f32"
        return "f16" if "FP16" in device_capabilities() else "f32"

    def export(self, onnx_path: Path, staging: Path, model_name: str, settings) -> Exported:
        import openvino as ov  # lazy: heavy

        xml, binary = self.files(staging, model_name)
        try:
            with interrupts.deferred(), openvino_telemetry_off():  # see interrupts: an interrupted convert_model can hang
                model = ov.convert_model(str(onnx_path))
                # save_model compresses to fp16 by default: only do it when fp16 was asked for.
                ov.save_model(model, str(xml), compress_to_fp16=settings.float_precision == "fp16")
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of many kinds
            raise WorkError(f"OpenVINO could not convert {onnx_path.name}: {str(exc).splitlines()[0][:200]}") from exc
        if not binary.is_file():
            raise WorkError(f"OpenVINO wrote {xml.name} without {binary.name}")
        return Exported([xml, binary], f"openvino.convert_model {package_version('openvino')} (from ONNX)",
                        {"device": DEVICE, "compress_to_fp16": settings.float_precision == "fp16",
                         "matmul_weight_shapes": matmul_weight_shapes(xml)})

    def quantize(self, onnx_path: Path, staging: Path, model_name: str, settings, calibration) -> Exported:
        import openvino as ov  # lazy: heavy

        xml, binary = self.files(staging, model_name)
        try:
            with interrupts.deferred():  # as in export: an interrupted OpenVINO call can hang
                model, facts = quantize_openvino(onnx_path, calibration, settings.static_batch)
                ov.save_model(model, str(xml), compress_to_fp16=False)
        except Exception as exc:  # NNCF and OpenVINO raise many kinds
            raise WorkError(f"NNCF could not quantize {onnx_path.name}: {str(exc).splitlines()[0][:200]}") from exc
        return Exported([xml, binary],
                        f"openvino.convert_model {package_version('openvino')} (from ONNX) + nncf {package_version('nncf')}",
                        {"device": DEVICE, "compress_to_fp16": False, "calibration": facts,
                         "matmul_weight_shapes": matmul_weight_shapes(xml)})

    def session_options(self, settings) -> dict:
        # Verified in the precision export asks for; Runner records what the plugin chose.
        return {"precision": self.inference_precision(settings)}


TARGET = OpenVinoTarget()
