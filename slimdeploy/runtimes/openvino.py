"""OpenVINO on the CPU, called the fast way (at batch 1 a dynamic shape, a new tensor and a conversion
per call cost more than pruning saves): the input shape made static per batch before compiling, the
input tensor set once (each call is ``request.infer()``), the inference precision set explicitly and
read back. ``latency`` mode: one stream; ``throughput`` mode: an AsyncInferQueue of the plugin's
optimal size. The option ``sparse_weights_decompression_rate`` packs sparse int8 weights (CPUs with
AMX only). ``PLUGIN.profile``: each weight layer's kernel and each node's time (PERF_COUNT).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from slimdeploy.irsafety import check_openvino_ir
from slimdeploy.onnxsafety import CHECKED_OPTION, check_onnx_file
from slimdeploy.runtimes.session import (PROFILE_RUNS, PROFILE_WARMUP, Availability, RuntimePlugin, Session, layer_profile,
                                         package_availability)

PRECISIONS = ("f32", "f16", "bf16")  # the inference precisions it computes in
# A session option (per model, not a cell setting): the CPU plugin's sparse int8 weights rate.
SPARSE_RATE_OPTION = "sparse_weights_decompression_rate"
AMX_FLAGS = ("amx_int8", "amx_tile")
# Profiled node types (and their variants, e.g. FullyConnectedQuantizedLegacy for an NNCF IR)
# that hold the weights a sparse kernel could skip.
WEIGHT_NODE_TYPES = ("FullyConnected", "MatMul")


# ONEDNN_MAX_CPU_ISA caps oneDNN's kernels, not the plugin's choice of bf16/f16 (from cpuid), which then
# fails to build: slimdeploy applies the cap to both, so a capped machine computes in f32.
ISA_LIMIT_ENV = "ONEDNN_MAX_CPU_ISA"
ONEDNN_ISA_BITS = {"SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F, "AVX512_CORE": 0x27,
                   "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7, "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF,
                   "AVX10_1_512_AMX": 0xFEF, "AVX512_CORE_AMX": 0xFEF, "AVX10_1_512_AMX_FP16": 0x1FEF,
                   "AVX512_CORE_AMX_FP16": 0x1FEF}  # oneDNN's dnnl_cpu_isa_t
# The ISAs that compute a precision: AVX2_VNNI_2 (bf16/f16 conversions), AVX-512 BF16, AVX-512 FP16.
PRECISION_ISAS = {"bf16": (0x1F, 0xE7), "f16": (0x1F, 0x1EF)}
CAPABILITY_PRECISIONS = {"BF16": "bf16", "FP16": "f16"}  # OPTIMIZATION_CAPABILITIES names


def isa_limit_excludes(precision: str, limit: str | None = None) -> bool:
    """Whether ONEDNN_MAX_CPU_ISA (or ``limit``) names an ISA that cannot compute ``precision``
    (an unset, ALL/DEFAULT or unknown limit excludes nothing)."""
    limit = os.environ.get(ISA_LIMIT_ENV, "") if limit is None else limit
    bits = ONEDNN_ISA_BITS.get(limit.strip().upper())
    if bits is None or precision not in PRECISION_ISAS:
        return False
    return not any(bits & needed == needed for needed in PRECISION_ISAS[precision])


def within_isa_limit(capabilities) -> list[str]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES less the precisions ONEDNN_MAX_CPU_ISA excludes."""
    return [c for c in capabilities if not isa_limit_excludes(CAPABILITY_PRECISIONS.get(c, ""))]


def cpu_has_amx(cpu: dict) -> bool:
    """Whether ``cpu`` (``environment.cpu_info()``) reports AMX, which sparse int8 weight kernels need."""
    return any(flag in (cpu.get("flags") or []) for flag in AMX_FLAGS)


def availability() -> Availability:
    return package_availability("openvino", ("openvino",), "pip install openvino")


@functools.lru_cache(maxsize=None)
def device_facts(device: str = "CPU") -> dict | None:
    """OpenVINO's own view of ``device`` (None: openvino is not installed); a failure is recorded as
    {"error": ...}, never raised."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        import openvino as ov  # lazy: heavy

        core = ov.Core()
        return {"FULL_DEVICE_NAME": str(core.get_property(device, "FULL_DEVICE_NAME")),
                "OPTIMIZATION_CAPABILITIES": [str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES")]}
    except Exception as exc:  # noqa: BLE001 - a broken install must not cost the measurements
        # One line, bounded: OpenVINO's C++ errors carry a multi-line trace.
        return {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}


def _read_model(core, artifact, checked: bool = False):
    """The model, after the checks the bench makes before any worker starts (``checked``: the caller
    made them, ``onnxsafety.CHECKED_OPTION``; only an ONNX file's external data paths are checked again)."""
    if str(artifact).endswith(".onnx"):
        # External data outside its directory (always), malformed tensors: refused, never read.
        check_onnx_file(artifact, full=not checked)
    elif str(artifact).endswith(".xml") and not checked:
        check_openvino_ir(artifact, "OpenVINO IR")  # a DOCTYPE, a .bin of another length: refused
    return core.read_model(str(artifact))


class OpenVinoSession(Session):
    runtime = "openvino"

    @classmethod
    def batch_bounds(cls, artifact):
        import openvino as ov  # lazy: heavy

        batch = _read_model(ov.Core(), artifact).inputs[0].get_partial_shape()[0]
        return (batch.get_length() if batch.is_static else None), None

    def __init__(self, artifact, batch, threads, options=None, mode="latency"):
        super().__init__(artifact, batch, threads, options, mode)
        import openvino as ov  # lazy: heavy
        import openvino.properties as props
        import openvino.properties.hint as hints

        precision = self.options.get("precision", "f32")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown OpenVINO precision {precision!r}")
        if isa_limit_excludes(precision):
            precision = "f32"  # what the plugin computes in on a CPU without it (read back below)
        core = ov.Core()
        model = _read_model(core, self.artifact, checked=bool(self.options.get(CHECKED_OPTION)))
        self._single_input(len(model.inputs))
        partial = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in partial]
        self._shape = (self.batch, *self._static_dims(dims[1:], partial))
        self._dtype = np.dtype(model.inputs[0].get_element_type().to_dtype())
        if partial.is_dynamic or tuple(dims) != self._shape:
            model.reshape({model.inputs[0]: ov.PartialShape(list(self._shape))})
        config = {props.inference_num_threads: self.threads, hints.inference_precision: getattr(ov.Type, precision)}
        if mode == "throughput":
            config[hints.performance_mode] = hints.PerformanceMode.THROUGHPUT
        else:
            config[hints.performance_mode] = hints.PerformanceMode.LATENCY
            config[props.streams.num] = 1
        self._sparse_rate = self.options.get(SPARSE_RATE_OPTION)
        if self._sparse_rate is not None:
            import openvino.properties.intel_cpu as intel_cpu  # lazy: heavy

            config[intel_cpu.sparse_weights_decompression_rate] = float(self._sparse_rate)
        self._ov = ov
        self._core, self._model, self._config = core, model, config  # kept to compile a profiled copy
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self._queue = None
        if mode == "throughput":
            count = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._queue = ov.AsyncInferQueue(self.compiled, max(1, count))
            self.parallelism = len(self._queue)
        self._tensors = []  # the arrays the tensors share memory with, kept alive

    def set_input(self, array):
        array = self._fitting_input(array)
        self._tensors = [array]
        self.request.set_input_tensor(self._ov.Tensor(array, shared_memory=True))
        if self._queue is not None:
            for index in range(len(self._queue)):
                copy = array.copy()
                self._tensors.append(copy)
                self._queue[index].set_input_tensor(self._ov.Tensor(copy, shared_memory=True))

    def run(self):
        self.request.infer()
        return self.request.get_output_tensor().data

    def run_parallel(self):
        if self._queue is None:
            self.run()
            return
        for _ in range(self.parallelism):
            self._queue.start_async()
        self._queue.wait_all()

    def engine_latency_ms(self):
        if self._queue is not None and self.mode == "throughput":
            return float(np.mean([self._queue[i].latency for i in range(len(self._queue))]))
        return float(self.request.latency)

    def applied_settings(self):
        def read(key):
            try:
                value = self.compiled.get_property(key)
            except RuntimeError:
                return None
            return str(value) if not isinstance(value, (int, float, bool)) else value

        precision = read("INFERENCE_PRECISION_HINT")
        # "<Type: 'float32'>" -> "f32": the name the CLI and benchmark_app use.
        for long, short in {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.items():
            if precision and long in precision:
                precision = short
        return {"inference_precision": precision, "performance_hint": read("PERFORMANCE_HINT"),
                "num_streams": read("NUM_STREAMS"), "inference_num_threads": read("INFERENCE_NUM_THREADS"),
                "enable_cpu_pinning": read("ENABLE_CPU_PINNING"), "infer_requests": self.parallelism,
                "static_input_shape": list(self._shape),
                **({SPARSE_RATE_OPTION: read("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE")} if self._sparse_rate is not None
                   else {})}

    def profiled_calls(self, runs: int = 1, warmup: int = 0) -> list:
        """Per-node counters of ``runs`` calls after ``warmup`` (one list of ProfilingInfo per call), from
        a copy compiled with PERF_COUNT: the measured one stays unprofiled."""
        import openvino.properties as props  # lazy: heavy

        compiled = self._core.compile_model(self._model, "CPU", {**self._config, props.enable_profiling: True})
        request = compiled.create_infer_request()
        request.set_input_tensor(self._ov.Tensor(self._tensors[0], shared_memory=True))
        for _ in range(warmup):
            request.infer()
        calls = []
        for _ in range(max(1, runs)):
            request.infer()
            calls.append(request.get_profiling_info())
        return calls

    def layer_kernels(self, infos=None) -> list[dict]:
        infos = self.profiled_calls()[-1] if infos is None else infos
        return [{"node_name": info.node_name, "node_type": info.node_type, "exec_type": info.exec_type,
                 "sparse": "sparse" in info.exec_type.lower()}
                for info in infos if info.node_type.startswith(WEIGHT_NODE_TYPES)]

    def close(self):
        self._queue = self._core = self._model = self.request = self.compiled = None
        self._tensors = []


SESSION = OpenVinoSession


def executed_layers(calls: list) -> list[dict]:
    """Nodes that ran (not folded into another), over all calls, for ``layer_profile``; ``kernel`` is the
    plugin's exec type (e.g. brgemm_avx2_f32)."""
    return [{"name": info.node_name, "op_type": info.node_type, "kernel": info.exec_type,
             "us": info.real_time.total_seconds() * 1e6}
            for infos in calls for info in infos if str(info.status).endswith("EXECUTED")]


class OpenVinoPlugin(RuntimePlugin):
    def profile(self, session: Session, layers: bool = False, runs: int = PROFILE_RUNS,
                warmup: int = PROFILE_WARMUP, **request) -> dict | None:
        """Which kernel each weight layer runs (``kernels``) and, with ``layers``, the time split per node
        (``profile``); one PERF_COUNT compile serves both."""
        calls = session.profiled_calls(runs if layers else 1, warmup if layers else 0)
        profile = {"profile": layer_profile(executed_layers(calls), len(calls), "OpenVINO PERF_COUNT")} if layers else {}
        return {"kernels": session.layer_kernels(calls[-1]), **profile}


PLUGIN = OpenVinoPlugin(
    name="openvino", display_name="OpenVINO", short_name="OV",
    suffixes=(".xml", ".onnx"), targets=("openvino", "onnx"), session=SESSION, availability=availability,
    option_fields=(("precision", "openvino_precision"),),
    accepts_reshape=True,  # the input shape is made static per batch before compiling
    can_crosscheck=True,  # benchmark_app re-measures its cells
    device=device_facts,
    device_name=lambda facts: facts.get("FULL_DEVICE_NAME"),
    module=__name__,
)
