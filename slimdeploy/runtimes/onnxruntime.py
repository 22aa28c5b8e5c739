"""ONNX Runtime on the CPU, with a selectable graph optimization level (``--ort-opt``).

Input and output are bound once to preallocated arrays (I/O binding; each call is
``run_with_iobinding``): against ``session.run`` this saves 3-4 µs of Python per call, overhead that
would shrink measured speedups. Models whose output shape is not known ahead fall back to ``run``.
``PLUGIN.profile`` times each node with the profiler in a separate session.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from slimdeploy.onnxsafety import CHECKED_OPTION, check_onnx_file
from slimdeploy.runtimes.session import (PROFILE_RUNS, PROFILE_WARMUP, Availability, RuntimePlugin, Session, layer_profile,
                                         package_availability)

OPT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
CPU = ["CPUExecutionProvider"]


def availability() -> Availability:
    return package_availability("onnxruntime", ("onnxruntime", "onnxruntime-gpu"), "pip install onnxruntime")


def onnx_type_dtype(type_name: str) -> np.dtype:
    """ONNX Runtime's ``tensor(int32)`` -> ``numpy.int32`` (``tensor(float)`` -> float32)."""
    name = type_name.removeprefix("tensor(").removesuffix(")")
    return np.dtype({"float": "float32", "double": "float64", "float16": "float16"}.get(name, name))


class OnnxRuntimeSession(Session):
    runtime = "onnxruntime"

    @classmethod
    def batch_bounds(cls, artifact):
        dim = check_onnx_file(artifact).graph.input[0].type.tensor_type.shape.dim[0]
        return (int(dim.dim_value) if dim.HasField("dim_value") else None), None

    def __init__(self, artifact, batch, threads, options=None, mode="latency"):
        super().__init__(artifact, batch, threads, options, mode)
        import onnxruntime as ort  # lazy: heavy

        check_onnx_file(self.artifact, full=not self.options.get(CHECKED_OPTION))
        self._level = self.options.get("graph_optimization", "all")
        self.session = ort.InferenceSession(str(self.artifact), self._session_options(ort), providers=CPU)
        inputs = self.session.get_inputs()
        self._single_input(len(inputs))
        self._input_name = inputs[0].name
        dims = [d if isinstance(d, int) else None for d in inputs[0].shape[1:]]
        self._shape = (self.batch, *self._static_dims(dims, inputs[0].shape))
        self._dtype = onnx_type_dtype(inputs[0].type)
        self._out_dtype = onnx_type_dtype(self.session.get_outputs()[0].type)
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._feed = self._binding = self._out_shape = None
        out_dims = self.session.get_outputs()[0].shape
        if len(self._outputs) == 1 and out_dims and all(isinstance(d, int) for d in out_dims[1:]):
            self._out_shape = (self.batch, *out_dims[1:])

    def _session_options(self, ort):
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1  # one operator at a time: an MLP is a chain, a second pool would only compete
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[self._level])
        so.log_severity_level = 3
        return so

    def set_input(self, array):
        array = self._fitting_input(array)
        self._feed = {self._input_name: array}
        if self._out_shape is not None:
            self._out = np.empty(self._out_shape, dtype=self._out_dtype)
            binding = self.session.io_binding()
            binding.bind_input(self._input_name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
            binding.bind_output(self._outputs[0], "cpu", 0, self._out_dtype, list(self._out_shape), self._out.ctypes.data)
            self._binding = binding

    def run(self):
        if self._binding is not None:
            self.session.run_with_iobinding(self._binding)
            return self._out
        return self.session.run(self._outputs, self._feed)[0]

    def applied_settings(self):
        return {"graph_optimization": self._level, "intra_op_num_threads": self.threads, "inter_op_num_threads": 1,
                "execution_mode": "sequential", "io_binding": self._binding is not None,
                "providers": self.session.get_providers()}

    def profiled_layers(self, runs: int, warmup: int) -> list[dict]:
        """Per-node times of ``runs`` calls after ``warmup``, from a copy opened with the profiler."""
        import onnxruntime as ort  # lazy: heavy

        with tempfile.TemporaryDirectory(prefix="slimdeploy-ort-profile-") as tmp:
            so = self._session_options(ort)
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "profile")
            session = ort.InferenceSession(str(self.artifact), so, providers=CPU)
            for _ in range(warmup + runs):
                session.run(self._outputs, self._feed)
            with open(session.end_profiling(), encoding="utf-8") as trace:
                events = json.load(trace)
        return trace_layers(events, runs)

    def close(self):
        self.session = None


def trace_layers(events: list[dict], runs: int) -> list[dict]:
    """Node kernel times of the last ``runs`` calls in a profiler trace, for ``layer_profile``."""
    calls = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                   key=lambda e: e["ts"])[-runs:]
    start = calls[0]["ts"] if calls else 0
    layers = []
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time") or event["ts"] < start:
            continue
        op_type = args.get("op_name", "?")
        provider = str(args.get("provider", "?")).removesuffix("ExecutionProvider")
        layers.append({"name": event["name"].removesuffix("_kernel_time"), "op_type": op_type,
                       "kernel": f"{provider}:{op_type}", "us": float(event.get("dur", 0))})
    return layers


class OnnxRuntimePlugin(RuntimePlugin):
    def profile(self, session: Session, layers: bool = False, runs: int = PROFILE_RUNS,
                warmup: int = PROFILE_WARMUP, **request) -> dict | None:
        """The time split per node (``profile``); the profiler names no kernel below the op (no ``kernels``)."""
        return {"profile": layer_profile(session.profiled_layers(runs, warmup), runs, "ONNX Runtime profiler")} \
            if layers else None


SESSION = OnnxRuntimeSession

PLUGIN = OnnxRuntimePlugin(
    name="onnxruntime", display_name="ONNX Runtime", short_name="ORT",
    suffixes=(".onnx",), targets=("onnx",), session=SESSION, availability=availability,
    option_fields=(("graph_optimization", "ort_graph_optimization"),),
    module=__name__,
)
