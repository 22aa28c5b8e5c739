"""TensorRT engine built from the ONNX file with the TensorRT 10 Python API, verified on the GPU.

Needs the ``tensorrt`` package, ``cuda-python`` (to move data to and from the GPU) and an
NVIDIA GPU; ``unavailable_reason`` says exactly which of these is missing. Written against
the documented TensorRT 10 API (Builder -> network -> OnnxParser -> builder config with an
optimization profile -> build_serialized_network; named I/O tensors and execute_async_v3 at
run time). It has not been run on the CPU-only machines this package was developed on.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np

from slimdeploy.errors import WorkError
from slimdeploy.export.target import Exported, Runner, Target, package_version

INSTALL_HINT = "pip install 'slimdeploy[tensorrt]'"
ELIGIBLE_MARK = "(Sparsity) Layers eligible for sparse math:"
PICKED_MARK = "(Sparsity) TRT inference plan picked sparse implementation for layers:"


def gpu_problem() -> str | None:
    """None when nvidia-smi lists a GPU; otherwise why not."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no NVIDIA GPU was found (nvidia-smi absent)"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no NVIDIA GPU was found (nvidia-smi -L failed: {exc})"
    if out.returncode != 0 or "GPU" not in out.stdout:
        detail = (out.stderr or out.stdout).strip().splitlines()
        return f"no NVIDIA GPU was found (nvidia-smi -L: {detail[0][:120] if detail else f'exit status {out.returncode}'})"
    return None


def missing_requirements() -> list[str]:
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append(f"tensorrt is not installed ({INSTALL_HINT})")
    problem = gpu_problem()
    if problem:
        missing.append(problem)
    if not missing and _cudart() is None:
        missing.append(f"cuda-python is not installed ({INSTALL_HINT}); it copies images to the GPU for verification")
    return missing


def _cudart():
    # cuda-python >= 12.6 moved the runtime bindings to cuda.bindings; older releases had cuda.cudart.
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _check(result):
    """cuda-python returns (error, value...) tuples: raise on an error, return the value."""
    cudart = _cudart()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != cudart.cudaError_t.cudaSuccess:
        raise WorkError(f"CUDA call failed: {cudart.cudaGetErrorName(error)[1].decode() if hasattr(cudart, 'cudaGetErrorName') else error}")
    return values[0] if values else None


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
    """Which layers TensorRT found eligible for 2:4 sparse math and which it ran sparse.

    ``used`` is None when TensorRT did not report on sparsity (it does so only when asked).
    """
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
    """Build and serialize an engine; return the build facts for the manifest."""
    import tensorrt as trt

    logger = _capturing_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise WorkError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.trt_workspace_mb << 20)
    if settings.precision == "fp16":
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
        raise WorkError(f"TensorRT could not build an engine from {onnx_path.name}: {'; '.join(logger.errors())[:300] or 'no error logged'}")
    with open(engine_path, "wb") as handle:
        handle.write(serialized)  # IHostMemory supports the buffer protocol
    return {
        "profile": profile_facts,
        "fp16": settings.precision == "fp16",
        "tf32": False if settings.precision == "fp32" else None,
        "workspace_mb": settings.trt_workspace_mb,
        "sparsity": sparsity_report([msg for _, msg in logger.messages], settings.sparse_weights),
        "gpu": _gpu_name(),
    }


def _gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


class TensorRtRunner(Runner):
    runtime = "tensorrt"

    def __init__(self, path: Path, inference_precision: str):
        import tensorrt as trt

        self.trt = trt
        self.cudart = _cudart()
        self.inference_precision = inference_precision
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.trt_runtime = trt.Runtime(self.logger)
        self.engine = self.trt_runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise WorkError(f"TensorRT could not load the engine {path.name}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        shape = tuple(self.engine.get_tensor_shape(self.input))
        if shape[0] == -1:
            self.max_batch = int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
        else:
            self.fixed_batch = int(shape[0])
        self.stream = _check(self.cudart.cudaStreamCreate())

    def infer(self, x: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.context.set_input_shape(self.input, x.shape)
        out = np.empty(tuple(self.context.get_tensor_shape(self.output)),
                       dtype=self.trt.nptype(self.engine.get_tensor_dtype(self.output)))
        device_in = _check(cudart.cudaMalloc(x.nbytes))
        device_out = _check(cudart.cudaMalloc(out.nbytes))
        try:
            _check(cudart.cudaMemcpyAsync(device_in, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            self.context.set_tensor_address(self.input, int(device_in))
            self.context.set_tensor_address(self.output, int(device_out))
            if not self.context.execute_async_v3(int(self.stream)):
                raise WorkError("TensorRT execute_async_v3 failed")
            _check(cudart.cudaMemcpyAsync(out.ctypes.data, device_out, out.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
            _check(cudart.cudaStreamSynchronize(self.stream))
        finally:
            cudart.cudaFree(device_in)
            cudart.cudaFree(device_out)
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        if getattr(self, "stream", None) is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None


class TensorRtTarget(Target):
    name = "tensorrt"
    suffixes = (".engine",)
    runtime = "tensorrt"

    def unavailable_reason(self) -> str | None:
        missing = missing_requirements()
        return " and ".join(missing) if missing else None

    def export(self, onnx_path: Path, staging: Path, model_name: str, settings) -> Exported:
        engine = self.files(staging, model_name)[0]
        facts = build_engine(onnx_path, engine, settings)
        return Exported(files=[engine], converter=f"tensorrt {package_version('tensorrt')} (from ONNX)", details=facts)

    def open(self, path: Path, settings) -> Runner:
        return TensorRtRunner(path, self.inference_precision(settings))

    def versions(self) -> dict[str, str]:
        return {name: package_version(name) for name in ("tf2onnx", "onnx", "tensorrt", "cuda-python")}
