"""TensorRT 10 on an NVIDIA GPU: a serialized engine run with device buffers, timed with
CUDA events.

Written against the TensorRT 10 Python API (name-based tensors: ``num_io_tensors``,
``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``)
and cuda-python's runtime bindings. The input is copied to the GPU once (``set_input``);
a timed call is the engine execution plus the copy of the output back to pinned host
memory and a stream synchronisation. The engine's own time (CUDA events around
``execute_async_v3``) is reported as the engine latency.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from slimdeploy.runtimes.session import Availability, Session, package_availability

INSTALL_HINT = "pip install 'slimdeploy[tensorrt]'"


def gpu_present() -> bool:
    # The driver's device node or proc entry; cheap, and needs no CUDA library.
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()


def availability() -> Availability:
    package = package_availability("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu11"), INSTALL_HINT)
    has_gpu = gpu_present()
    if not package.available and not has_gpu:
        return Availability(False, reason=f"tensorrt is not installed ({INSTALL_HINT}) and no NVIDIA GPU was found")
    if not package.available:
        return package
    if not has_gpu:
        return Availability(False, version=package.version, reason="no NVIDIA GPU was found")
    if _cudart_module() is None:
        return Availability(False, version=package.version, reason=f"cuda-python is not installed ({INSTALL_HINT})")
    return package


def _cudart_module():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            return None
    return cudart


class _Cuda:
    """cuda-python calls return (error, values...): raise on error, return the values."""

    def __init__(self, cudart):
        self.rt = cudart

    def __call__(self, name, *args):
        result = getattr(self.rt, name)(*args)
        err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if int(err) != 0:
            raise RuntimeError(f"CUDA {name} failed: {err}")
        return values[0] if len(values) == 1 else values


class TensorRtSession(Session):
    runtime = "tensorrt"

    def __init__(self, artifact, batch, threads, options=None, mode="latency"):
        super().__init__(artifact, batch, threads, options, mode)
        import tensorrt as trt

        cudart = _cudart_module()
        if cudart is None:
            raise RuntimeError(f"cuda-python is not installed ({INSTALL_HINT})")
        self._trt = trt
        self.cuda = cuda = _Cuda(cudart)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.artifact.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{self.artifact} is not a TensorRT engine for this TensorRT version and GPU")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise ValueError(f"{self.artifact} has {len(inputs)} inputs; slimdeploy benchmarks single-input models")
        self._input = inputs[0]
        self._output = outputs[0]
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
        self.context = None
        self.engine = None


SESSION = TensorRtSession
