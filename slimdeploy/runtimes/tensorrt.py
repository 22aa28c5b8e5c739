"""TensorRT 10 on an NVIDIA GPU: a serialized engine run with device buffers (named tensors,
``execute_async_v3``) and cuda-python's runtime bindings. The input is copied to the GPU once; a timed
call is the engine execution, the copy of the output back to pinned host memory and a stream
synchronisation. CUDA events around ``execute_async_v3`` give the engine latency.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimdeploy.runtimes.session import Availability, RuntimePlugin, Session, package_availability

INSTALL_HINT = "pip install 'slimdeploy[tensorrt]'"


def _nvidia_smi(*args: str) -> tuple[str | None, str | None]:
    """(stdout, None) when ``nvidia-smi ARGS`` succeeded, else (None, why not)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None, "nvidia-smi absent"
    try:
        out = subprocess.run([smi, *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"nvidia-smi {' '.join(args)} failed: {exc}"
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().splitlines()
        return None, f"nvidia-smi {' '.join(args)}: {detail[0][:120] if detail else f'exit status {out.returncode}'}"
    return out.stdout, None


@functools.lru_cache(maxsize=1)
def gpu_problem() -> str | None:
    """None when the NVIDIA driver lists a GPU (``nvidia-smi -L`` asks the driver itself); otherwise why not."""
    stdout, why = _nvidia_smi("-L")
    if why is None and "GPU" not in stdout:
        why = f"nvidia-smi -L: {stdout.strip()[:120] or 'no GPU listed'}"
    return None if why is None else f"no NVIDIA GPU was found ({why})"


def gpu_name() -> str | None:
    stdout, _ = _nvidia_smi("--query-gpu=name", "--format=csv,noheader")
    return stdout.strip().splitlines()[0] if stdout and stdout.strip() else None


def cudart_module():
    """cuda-python's runtime bindings (``cuda.bindings.runtime`` from 12.6, ``cuda.cudart`` before), or None."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def missing_requirements() -> list[str]:
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append(f"tensorrt is not installed ({INSTALL_HINT})")
    problem = gpu_problem()
    if problem:
        missing.append(problem)
    if not missing and cudart_module() is None:
        missing.append(f"cuda-python is not installed ({INSTALL_HINT}); it moves data to and from the GPU")
    return missing


def availability() -> Availability:
    package = package_availability("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu11"), INSTALL_HINT)
    missing = missing_requirements()
    if missing:
        return Availability(False, version=package.version, reason=" and ".join(missing))
    return package


class Cuda:
    """``cuda("cudaMalloc", n)``: the call's values, or RuntimeError on a CUDA error."""

    def __init__(self, cudart=None):
        self.rt = cudart or cudart_module()
        if self.rt is None:
            raise RuntimeError(f"cuda-python is not installed ({INSTALL_HINT})")

    def __call__(self, name, *args):
        result = getattr(self.rt, name)(*args)
        err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if int(err) != 0:
            raise RuntimeError(f"CUDA {name} failed: {self._error_name(err)}")
        return values[0] if len(values) == 1 else values

    def _error_name(self, err) -> str:
        try:
            return self.rt.cudaGetErrorName(err)[1].decode()
        except Exception:  # an old binding without it: the enum's own text
            return str(err)


@dataclass
class LoadedEngine:
    """A deserialized engine with its execution context and named I/O tensors (TensorRT 10)."""

    runtime: object  # the trt.Runtime must outlive the engine it deserialized
    engine: object
    context: object
    inputs: list[str]
    outputs: list[str]

    def batch_bounds(self) -> tuple[int | None, int | None]:
        """(fixed, largest) batch of the first input: a static engine's batch, or profile 0's max."""
        batch = int(self.engine.get_tensor_shape(self.inputs[0])[0])
        if batch != -1:
            return batch, None
        return None, int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])


def load_engine(path: Path) -> LoadedEngine:
    import tensorrt as trt  # lazy: heavy

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise RuntimeError(f"{path} is not a TensorRT engine for this TensorRT version and GPU")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or not outputs:
        raise ValueError(f"{path} has {len(inputs)} inputs; slimdeploy benchmarks single-input models")
    return LoadedEngine(runtime, engine, engine.create_execution_context(), inputs, outputs)


class TensorRtSession(Session):
    runtime = "tensorrt"

    @classmethod
    def batch_bounds(cls, artifact):
        return load_engine(artifact).batch_bounds()

    def __init__(self, artifact, batch, threads, options=None, mode="latency"):
        super().__init__(artifact, batch, threads, options, mode)
        import tensorrt as trt  # lazy: heavy

        self._trt = trt
        self.cuda = cuda = Cuda()
        loaded = load_engine(self.artifact)
        self._runtime, self.engine, self.context = loaded.runtime, loaded.engine, loaded.context
        names = [*loaded.inputs, *loaded.outputs]
        self._input, self._output = loaded.inputs[0], loaded.outputs[0]
        dims = list(self.engine.get_tensor_shape(self._input))
        self._shape = (self.batch, *[int(d) for d in dims[1:]])
        if dims[0] == -1:
            self.context.set_input_shape(self._input, self._shape)
        elif dims[0] != self.batch:
            raise ValueError(f"{self.artifact} was built for batch {dims[0]}, not {self.batch}")
        self.stream = cuda("cudaStreamCreate")
        self._device = {}
        for name in names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            pointer = cuda("cudaMalloc", nbytes)
            self._device[name] = (pointer, shape, dtype, nbytes)
            if name == self._input:
                self._dtype = dtype
            self.context.set_tensor_address(name, int(pointer))
        pointer, shape, dtype, nbytes = self._device[self._output]
        # Pinned host memory: the device-to-host copy is a real DMA, as in an application.
        self._host_pointer = cuda("cudaMallocHost", nbytes)
        buffer = (ctypes.c_byte * nbytes).from_address(int(self._host_pointer))
        self._host_out = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        self._start = cuda("cudaEventCreate")
        self._end = cuda("cudaEventCreate")
        self._last_ms = None

    def set_input(self, array):
        pointer, shape, dtype, nbytes = self._device[self._input]
        array = self._fitting_input(array, dtype)
        self.cuda("cudaMemcpy", pointer, array.ctypes.data, nbytes, self.cuda.rt.cudaMemcpyKind.cudaMemcpyHostToDevice)
        self._held = array

    def run(self):
        cuda = self.cuda
        pointer, _, _, nbytes = self._device[self._output]
        cuda("cudaEventRecord", self._start, self.stream)
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        cuda("cudaEventRecord", self._end, self.stream)
        cuda("cudaMemcpyAsync", int(self._host_pointer), pointer, nbytes,
             cuda.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream)
        cuda("cudaStreamSynchronize", self.stream)
        self._last_ms = float(cuda("cudaEventElapsedTime", self._start, self._end))
        return self._host_out

    def engine_latency_ms(self):
        return self._last_ms

    def applied_settings(self):
        return {"tensorrt": self._trt.__version__, "timing": "cuda events around execute_async_v3"}

    def close(self):
        cuda = getattr(self, "cuda", None)
        if cuda is None:
            return
        for pointer, *_ in getattr(self, "_device", {}).values():
            cuda.rt.cudaFree(pointer)
        if getattr(self, "_host_pointer", None) is not None:
            cuda.rt.cudaFreeHost(self._host_pointer)
            self._host_pointer = None
        for event in (getattr(self, "_start", None), getattr(self, "_end", None)):
            if event is not None:
                cuda.rt.cudaEventDestroy(event)
        if getattr(self, "stream", None) is not None:
            cuda.rt.cudaStreamDestroy(self.stream)
            self.stream = None
        self._device = {}
        self.context = self.engine = None


SESSION = TensorRtSession

PLUGIN = RuntimePlugin(
    name="tensorrt", display_name="TensorRT", short_name="TRT",
    suffixes=(".engine", ".plan"), targets=("tensorrt",), session=SESSION, availability=availability,
    module=__name__,
)
