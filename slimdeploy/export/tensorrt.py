"""TensorRT engine built from the ONNX file with the TensorRT 10 Python API, verified on the GPU
(``tensorrt``, ``cuda-python`` and an NVIDIA GPU: ``unavailable_reason`` says which is missing)."""

from __future__ import annotations

from pathlib import Path

from slimdeploy.errors import WorkError
from slimdeploy.export.target import Exported, Target, package_version
from slimdeploy.runtimes.tensorrt import gpu_name, missing_requirements

ELIGIBLE_MARK = "(Sparsity) Layers eligible for sparse math:"
PICKED_MARK = "(Sparsity) TRT inference plan picked sparse implementation for layers:"


def _capturing_logger(trt):
    """A TensorRT logger that keeps messages: the sparsity report is only written to the log."""

    class CapturingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple[object, str]] = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

        def errors(self) -> list[str]:
            bad = (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR)
            return [msg for severity, msg in self.messages if severity in bad]

    return CapturingLogger()


def sparsity_report(messages: list[str], requested: bool) -> dict:
    """Which layers TensorRT found eligible for 2:4 sparse math and which it ran sparse (``used``:
    None when TensorRT did not report on sparsity; it does only when asked)."""
    eligible = picked = None
    for msg in messages:
        if ELIGIBLE_MARK in msg:
            eligible = _layer_list(msg.split(ELIGIBLE_MARK, 1)[1])
        elif PICKED_MARK in msg:
            picked = _layer_list(msg.split(PICKED_MARK, 1)[1])
    return {"requested": requested, "eligible_layers": eligible, "sparse_layers": picked,
            "used": None if picked is None else bool(picked)}


def _layer_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_engine(onnx_path: Path, engine_path: Path, settings) -> dict:
    import tensorrt as trt  # lazy: heavy

    logger = _capturing_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise WorkError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.trt_workspace_mb << 20)
    if settings.float_precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        # TF32 (on by default on Ampere and later) rounds fp32 matmul inputs to 10-bit mantissas.
        config.clear_flag(trt.BuilderFlag.TF32)
    if settings.sparse_weights:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    tensor = network.get_input(0)
    dims = tuple(tensor.shape)
    profile_facts = None
    if dims[0] == -1:
        # One profile spanning every batch size the benchmark runs, tuned for the opt batch.
        top = max(settings.profile_batches)
        opt = settings.trt_opt_batch or top
        rest = dims[1:]
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, (1, *rest), (opt, *rest), (top, *rest))
        config.add_optimization_profile(profile)
        profile_facts = {"input": tensor.name, "min": 1, "opt": opt, "max": top}
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise WorkError(f"TensorRT could not build an engine from {onnx_path.name}: "
                        f"{'; '.join(logger.errors())[:300] or 'no error logged'}")
    with open(engine_path, "wb") as handle:
        handle.write(serialized)  # IHostMemory supports the buffer protocol
    return {
        "profile": profile_facts,
        "fp16": settings.float_precision == "fp16",
        "tf32": False if settings.float_precision == "fp32" else None,
        "workspace_mb": settings.trt_workspace_mb,
        "sparsity": sparsity_report([msg for _, msg in logger.messages], settings.sparse_weights),
        "gpu": gpu_name(),
    }


class TensorRtTarget(Target):
    name = "tensorrt"
    display_name = "TensorRT engine"
    suffixes = (".engine",)
    runtime = "tensorrt"
    packages = ("tf2onnx", "onnx", "tensorrt", "cuda-python")
    int8_unavailable = "slimdeploy makes no TensorRT INT8 engine yet (the ONNX and OpenVINO INT8 variants are made)"

    def unavailable_reason(self) -> str | None:
        missing = missing_requirements()
        return " and ".join(missing) if missing else None

    def export(self, onnx_path: Path, staging: Path, model_name: str, settings) -> Exported:
        engine = self.files(staging, model_name)[0]
        facts = build_engine(onnx_path, engine, settings)
        return Exported([engine], f"tensorrt {package_version('tensorrt')} (from ONNX)", facts)


TARGET = TensorRtTarget()
