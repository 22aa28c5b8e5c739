"""Benchmark settings: one dataclass, defaults in one place, echoed into bench.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from slimdeploy.config import settings_from_table
from slimdeploy.errors import UserError

MODES = ("latency", "throughput")
ORT_OPT_LEVELS = ("disabled", "basic", "extended", "all")
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class BenchSettings:
    # Which runtimes to try; unavailable ones are listed with their reason, never a crash.
    runtimes: tuple[str, ...] = ("tensorflow", "onnxruntime", "openvino", "tensorrt")
    batches: tuple[int, ...] = (1, 64, 256)
    threads: tuple[int, ...] = (1,)
    mode: str = "latency"
    # Each model in a cell is called at least min_iters times AND for min_time seconds
    # (optimum-benchmark uses both minimums), unless max_iters calls come first: at
    # sub-0.1 ms calls, 2 s would be 20000+ samples per cell, which only bloats bench.json
    # and the bootstrap. 0 means no cap.
    min_iters: int = 200
    min_time: float = 2.0
    max_iters: int = 20000
    # Warm-up before measuring: at least this many calls and this many seconds.
    warmup_iters: int = 20
    warmup_time: float = 0.2
    # Interleaving: models of one cell group take turns in blocks of at least block_calls
    # calls and block_time seconds, so machine drift hits baseline and pruned alike. Short
    # blocks (2 ms: ~100 calls at batch 1, 3 calls at batch 256) gave steadier ratios under
    # load than 20 ms blocks on the 2-core test machine; the cost is one cache refill per block.
    block_calls: int = 3
    block_time: float = 0.002
    # Untimed calls at the start of every block (cache refill, thread wake-up after a switch).
    block_warmup: int = 2
    # Sessions opened per model and rotated per round: identical sessions differ by up to
    # +-7% at batch 1 (memory layout); 4 rotated instances kept A/A ratios within +-2.5%.
    instances: int = 4
    # Worker processes per runtime, one after another, each measuring its share of
    # min_iters/min_time/max_iters (pyperf's --processes). A process fixes things for all its
    # rounds (where code and weights landed in memory): identical models measured in one
    # process gave ratios from 0.94 to 1.06, each with an interval that excluded the others.
    # The verdict's interval resamples processes, so it carries that spread.
    processes: int = 2
    # The model the others are compared with. None: "dense" where there is one (a run
    # directory), else the first model given (``bench a.onnx b.onnx``: a).
    baseline_model: str | None = None
    # Only these models (None: all found in the sources).
    models: tuple[str, ...] | None = None
    # Non-batch input dimensions every artifact must take (None: from the run's recipe or
    # the artifacts themselves).
    input_shape: tuple[int, ...] | None = None
    # Value range [LOW, HIGH) of the generated inputs (integer ids or floats); None: from
    # the model (an embedding's size for integer ids), else [0, 1) for floats.
    input_range: tuple[float, float] | None = None
    ort_graph_optimization: str = "all"
    openvino_precision: str = "f32"
    # --crosscheck: run OpenVINO's benchmark_app on the same IR, shape and threads,
    # alternating with slimdeploy in runs of this many (whole) seconds.
    crosscheck: bool = False
    crosscheck_time: float = 1.0
    # Verdicts: "faster" when the whole bootstrap interval is above 1 + threshold.
    threshold: float = 0.05
    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    # Seeds the input data and the bootstrap.
    seed: int = 0
    # A worker that reports nothing for this long is killed; its cell becomes an error.
    stall_timeout: float = 300.0

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict, source: str = "bench settings") -> "BenchSettings":
        """Settings from a TOML table (``slimdeploy run``): unknown keys are refused."""
        return settings_from_table(cls, raw, source)

    def validated(self) -> "BenchSettings":
        """Check every value; raise a one-line UserError naming the option."""
        from slimdeploy.runtimes.registry import RUNTIMES

        def fail(option: str, message: str) -> UserError:
            return UserError(f"{option}: {message}")

        if not self.runtimes:
            raise fail("--runtime", "give at least one runtime")
        for name in self.runtimes:
            if name not in RUNTIMES:
                raise fail("--runtime", f"unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})")
        _positive_ints("--batch", self.batches, fail)
        _positive_ints("--threads", self.threads, fail)
        if self.mode not in MODES:
            raise fail("--mode", f"must be one of {', '.join(MODES)}, not {self.mode!r}")
        for option, value in (("--instances", self.instances), ("--processes", self.processes)):
            if not _is_int(value) or value < 1:
                raise fail(option, f"must be a positive integer, not {value!r}")
        for option, value in (("--min-iters", self.min_iters), ("--max-iters", self.max_iters),
                              ("--warmup", self.warmup_iters), ("block_calls", self.block_calls),
                              ("block_warmup", self.block_warmup)):
            if not _is_int(value) or value < 0:
                raise fail(option, f"must be a non-negative integer, not {value!r}")
        if self.min_iters < 1:
            raise fail("--min-iters", "must be at least 1")
        if self.max_iters and self.max_iters < self.min_iters:
            raise fail("--max-iters", f"must be 0 (no cap) or at least --min-iters ({self.min_iters})")
        for option, value in (("--min-time", self.min_time), ("warmup_time", self.warmup_time),
                              ("block_time", self.block_time), ("--crosscheck-time", self.crosscheck_time)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise fail(option, f"must be a non-negative number of seconds, not {value!r}")
        if not isinstance(self.stall_timeout, (int, float)) or self.stall_timeout <= 0:
            raise fail("stall_timeout", "must be a positive number of seconds")
        if self.ort_graph_optimization not in ORT_OPT_LEVELS:
            raise fail("--ort-opt", f"must be one of {', '.join(ORT_OPT_LEVELS)}, not {self.ort_graph_optimization!r}")
        if self.openvino_precision not in OPENVINO_PRECISIONS:
            raise fail("--precision", f"must be one of {', '.join(OPENVINO_PRECISIONS)}, not {self.openvino_precision!r}")
        if self.baseline_model is not None and not (isinstance(self.baseline_model, str) and self.baseline_model):
            raise fail("--baseline-model", "must be a model name")
        if self.input_shape is not None:
            _positive_ints("--input-shape", self.input_shape, fail)
        if self.input_range is not None and not _is_value_range(self.input_range):
            shown = ",".join(map(str, self.input_range)) if isinstance(self.input_range, (list, tuple)) else repr(self.input_range)
            raise fail("--input-range", f"expected LOW,HIGH: two finite numbers, LOW below HIGH, got {shown}")
        if not (isinstance(self.threshold, (int, float)) and 0 <= self.threshold < 1):
            raise fail("threshold", "must be in [0, 1)")
        if not (isinstance(self.confidence, (int, float)) and 0 < self.confidence < 1):
            raise fail("confidence", "must be in (0, 1)")
        if not _is_int(self.bootstrap_resamples) or self.bootstrap_resamples < 100:
            raise fail("bootstrap_resamples", "must be an integer >= 100")
        if not _is_int(self.seed) or self.seed < 0:
            raise fail("--seed", "must be a non-negative integer")
        if self.input_range is not None:  # a TOML list becomes the tuple the field declares
            return dataclasses.replace(self, input_range=tuple(self.input_range))
        return self

    def runtime_options(self, runtime: str) -> dict:
        """The settings that distinguish a cell of this runtime (part of the cell id)."""
        if runtime == "onnxruntime":
            return {"graph_optimization": self.ort_graph_optimization}
        if runtime == "openvino":
            return {"precision": self.openvino_precision}
        return {}


def _is_value_range(value: Any) -> bool:
    """``[LOW, HIGH)``: two finite numbers, LOW below HIGH."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return False
    return value[0] < value[1]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_ints(option: str, values, fail) -> None:
    if not values:
        raise fail(option, "give at least one value")
    for value in values:
        if not _is_int(value) or value <= 0:
            raise fail(option, f"expected positive integers, got {value!r}")
