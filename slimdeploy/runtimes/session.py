"""The Session interface every runtime implements, how a runtime says it is unavailable, and the
plug-in record (``RuntimePlugin``) each runtime module publishes as ``PLUGIN``.

A session is opened for one artifact at one static batch size and thread count; ``set_input``
once, then ``run()`` per timed call (the input stays where the runtime wants it, so a call
measures the runtime, not a copy into it). An artifact whose input has dynamic dimensions besides
the batch runs at the dimensions of the ``INPUT_DIMS`` option.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from slimdeploy.records.bench import Profile, ProfileLayer

INPUT_DIMS = "input_dims"  # the option giving the non-batch input dimensions a dynamic-shape artifact is run at


@dataclass(frozen=True)
class Availability:
    available: bool
    version: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"available": self.available, **({"version": self.version} if self.version else {}),
                **({"reason": self.reason} if self.reason else {})}


def package_availability(module: str, distributions: tuple[str, ...], install_hint: str) -> Availability:
    """Whether a Python package can be imported, without importing it."""
    if importlib.util.find_spec(module) is None:
        return Availability(False, reason=f"{module} is not installed ({install_hint})")
    for dist in distributions:
        try:
            return Availability(True, version=metadata.version(dist))
        except metadata.PackageNotFoundError:
            continue
    return Availability(True)


class Session:
    """One loaded artifact, ready to run a fixed input shape."""

    runtime = "?"
    parallelism = 1  # calls one timed step makes in throughput mode (async runtimes run several at once)
    # The full static input shape (batch included) and element type; set when the artifact is opened.
    _shape: tuple[int, ...] = ()
    _dtype: np.dtype = np.dtype(np.float32)

    def __init__(self, artifact: str | Path, batch: int, threads: int, options: dict | None = None,
                 mode: str = "latency"):
        self.artifact = Path(artifact)
        self.batch = int(batch)
        self.threads = int(threads)
        self.options = dict(options or {})
        self.mode = mode

    @classmethod
    def open(cls, artifact, batch: int, threads: int, options: dict | None = None, mode: str = "latency") -> "Session":
        return cls(artifact, batch, threads, options, mode)

    @classmethod
    def batch_bounds(cls, artifact) -> tuple[int | None, int | None]:
        """(fixed, largest): the only batch a static-shape artifact takes (None: any), and the largest
        batch a dynamic one accepts (None: no bound)."""
        return None, None

    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    def input_dtype(self) -> np.dtype:
        return self._dtype

    def _single_input(self, count: int) -> None:
        if count != 1:
            raise ValueError(f"{self.artifact} has {count} inputs; slimdeploy benchmarks single-input models")

    def _static_dims(self, dims: list, shown) -> list[int]:
        """The artifact's non-batch input ``dims`` (None where dynamic) made static: the ``input_dims``
        option when it fits them, else the dims themselves. ``shown``: the shape as the runtime prints it."""
        given = self.options.get(INPUT_DIMS)
        if given is not None and len(given) == len(dims) and all(d is None or d == g for d, g in zip(dims, given)):
            return [int(g) for g in given]
        if any(d is None for d in dims):
            raise ValueError(f"{self.artifact} has a dynamic non-batch input shape {shown}; give the dimensions "
                             "to run it at (bench: --input-shape)")
        return [int(d) for d in dims]

    def _fitting_input(self, array: np.ndarray, dtype=None) -> np.ndarray:
        """The input as the contiguous array the runtime reads, or ValueError if it does not fit."""
        array = np.ascontiguousarray(array, dtype=self._dtype if dtype is None else dtype)
        if array.shape != self._shape:
            raise ValueError(f"input shape {array.shape} does not fit {self._shape}")
        return array

    def set_input(self, array: np.ndarray) -> None:
        raise NotImplementedError

    def run(self):
        """One inference on the input given to ``set_input``; returns the output."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def run_parallel(self) -> None:
        """Throughput mode: ``parallelism`` inferences at once (sync runtimes: one)."""
        self.run()

    def engine_latency_ms(self) -> float | None:
        """The runtime's own latency for the last call, where it measures one."""
        return None

    def applied_settings(self) -> dict:
        """Settings as the runtime reports them after loading (threads, precision, ...)."""
        return {}

    def describe_model(self) -> dict | None:
        """Counts the runtime reads from the loaded model (params, flops, widths), where it reads them."""
        return None

    def infer(self, array: np.ndarray) -> np.ndarray:
        self.set_input(array)
        return np.asarray(self.run())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Profiled calls per cell (after a few untimed ones).
PROFILE_RUNS = 20
PROFILE_WARMUP = 5
PROFILE_UNSUPPORTED = "no per-layer profiler wired for this runtime"


@dataclass(frozen=True)
class RuntimePlugin:
    """Everything the rest of slimdeploy knows about one runtime; its module defines ``PLUGIN``."""

    name: str  # the CLI and file-format name, e.g. "onnxruntime"
    display_name: str  # for people: tables, the report ("ONNX Runtime")
    short_name: str  # for narrow table columns ("ORT")
    suffixes: tuple[str, ...]  # artifact files it runs, in order of preference
    targets: tuple[str, ...]  # export.json targets whose files it runs
    session: type[Session]
    availability: Callable[[], Availability]
    # (cell option, BenchSettings attribute): the settings that distinguish its cells.
    option_fields: tuple[tuple[str, str], ...] = ()
    accepts_reshape: bool = False  # whether a benchmark may reshape the artifact to another static batch
    can_crosscheck: bool = False  # whether an external tool can re-measure its cells (OpenVINO's benchmark_app)
    module: str = ""  # the defining module
    # The Python module a session imports (benchmarks/machine_setup.py checks it loads); "": the name.
    library: str = ""
    # What a profiled cell records when ``profile`` gives nothing: why there is no time split.
    profile_unsupported: str = PROFILE_UNSUPPORTED
    # The runtime's own facts about the device it runs on (``environment.devices``; None: none).
    device: Callable[[], dict | None] | None = None
    # The device's name for people, read from those facts (None: they do not name it).
    device_name: Callable[[dict], str | None] | None = None

    @property
    def import_name(self) -> str:
        return self.library or self.name

    def options(self, settings) -> dict:
        """This runtime's cell options, read from a BenchSettings."""
        return {option: getattr(settings, attribute) for option, attribute in self.option_fields}

    def open(self, artifact, batch: int, threads: int, options: dict | None = None, mode: str = "latency") -> Session:
        return self.session.open(artifact, batch, threads, options, mode)

    def profile(self, session: Session, **request) -> dict | None:
        """A per-layer profile of an open session, from a separately profiled copy: ``layers=True`` asks
        for the time split (``{"profile": ...}``, see ``layer_profile``), ``runs`` for how many profiled
        calls after ``warmup``. None where the runtime has no per-layer profiler."""
        return None


# Op types of the Dense layers' matrix products, as runtimes name them (fused and quantized forms
# included: ORT's FusedGemm, MatMulInteger, QLinearMatMul, QGemm; OpenVINO's FullyConnected...).
_MATMUL_WORDS = ("matmul", "gemm", "fullyconnected")


def is_matmul(op_type: str) -> bool:
    return any(word in str(op_type).lower() for word in _MATMUL_WORDS)


def layer_profile(layers: list[dict], runs: int, tool: str) -> dict:
    """The cell's ``profile`` from per-layer times over ``runs`` calls (``layers``: name, op_type,
    kernel and us per executed node and call). A node's time is its median over the calls, so the
    medians add up to a typical call; ``matmul_share`` is the matmuls' share of the layers' sum."""
    calls: dict[str, list[ProfileLayer]] = {}
    for layer in map(ProfileLayer.from_json, layers):
        calls.setdefault(layer.name, []).append(layer)
    per_call = [node[0].replace(us=round(float(np.median([float(c.us) for c in node])), 3)) for node in calls.values()]
    by_op: dict[str, float] = {}
    kernels: dict[str, set] = {}
    for layer in per_call:
        by_op[layer.op_type] = round(by_op.get(layer.op_type, 0.0) + layer.us, 3)
        kernels.setdefault(layer.op_type, set()).add(layer.kernel)
    total = sum(by_op.values())
    matmul = sum(us for op, us in by_op.items() if is_matmul(op))
    return Profile(tool=tool, runs=runs, total_us=round(total, 3), matmul_us=round(matmul, 3),
                   matmul_share=matmul / total if total > 0 else None, by_op_type=by_op,
                   kernels={op: sorted(names) for op, names in kernels.items()}, layers=per_call).to_json()
