"""Benchmark settings: one dataclass whose fields make ``slimdeploy bench``'s options, defaults
in one place, echoed into bench.json (``config``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from slimdeploy.errors import UserError
from slimdeploy.parsers import int_list, name_list, non_negative_float, non_negative_int, number_pair, positive_int
from slimdeploy.runtimes import registry
from slimdeploy.settings_base import Settings, is_int, setting

MODES = ("latency", "throughput")
ORT_OPT_LEVELS = ("disabled", "basic", "extended", "all")
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")
SPARSE_INT8 = ("auto", "on", "off")


# --- checks: each returns the whole one-line error, naming the option ----------------------
def _known_runtimes(names) -> str | None:
    if not names:
        return "--runtime: give at least one runtime"
    for name in names:
        if name not in registry.names():
            return f"--runtime: unknown runtime {name!r} (choose from {', '.join(registry.names())})"
    return None


def _positive_ints(option: str):
    def check(values) -> str | None:
        if not values:
            return f"{option}: give at least one value"
        bad = next((v for v in values if not is_int(v) or v <= 0), None)
        return None if bad is None else f"{option}: expected positive integers, got {bad!r}"

    return check


def _positive_int(option: str):
    return lambda value: None if is_int(value) and value >= 1 else f"{option}: must be a positive integer, not {value!r}"


def _non_negative_int(option: str):
    return lambda value: None if is_int(value) and value >= 0 else f"{option}: must be a non-negative integer, not {value!r}"


def _min_iters(value) -> str | None:
    return _non_negative_int("--min-iters")(value) or (None if value >= 1 else "--min-iters: must be at least 1")


def _seconds(option: str):
    return lambda value: (None if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
                          else f"{option}: must be a non-negative number of seconds, not {value!r}")


def _one_of(option: str, choices: tuple):
    return lambda value: None if value in choices else f"{option}: must be one of {', '.join(choices)}, not {value!r}"


def _value_range(value) -> str | None:
    """None for ``[LOW, HIGH)``: two finite numbers, LOW below HIGH."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 2
                         and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                 for v in value) and value[0] < value[1]):
        return None
    shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else repr(value)
    return f"--input-range: expected LOW,HIGH: two finite numbers, LOW below HIGH, got {shown}"


def _rule(ok, message: str):
    """A check from a predicate and its one fixed message."""
    return lambda value: None if ok(value) else message


@dataclass(frozen=True)
class BenchSettings(Settings):
    runtimes: tuple[str, ...] = setting(
        default_factory=registry.builtin_names, flag="--runtime", parse=name_list, metavar="LIST",
        help="comma-separated runtimes; unavailable ones are listed with the reason", check=_known_runtimes)
    batches: tuple[int, ...] = setting((1, 64, 256), flag="--batch", parse=int_list, metavar="LIST",
                                       help="batch sizes", check=_positive_ints("--batch"))
    threads: tuple[int, ...] = setting((1,), flag="--threads", parse=int_list, metavar="LIST",
                                       help="thread counts per runtime", check=_positive_ints("--threads"))
    mode: str = setting("latency", flag="--mode", choices=MODES, check=_one_of("--mode", MODES),
                        help="latency: one request at a time; throughput: OpenVINO THROUGHPUT hint with an async "
                             "request queue (other runtimes run their synchronous loop)")
    min_iters: int = setting(200, flag="--min-iters", parse=positive_int, check=_min_iters,
                             help="at least this many timed calls per cell, over all --processes")
    min_time: float = setting(2.0, flag="--min-time", parse=non_negative_float, check=_seconds("--min-time"),
                              help="and at least this many seconds per cell, over all --processes")
    max_iters: int = setting(20000, flag="--max-iters", parse=non_negative_int, check=_non_negative_int("--max-iters"),
                             help="stop a cell at this many calls even before --min-time; 0: no cap")
    warmup_iters: int = setting(20, flag="--warmup", parse=non_negative_int, metavar="WARMUP",
                                check=_non_negative_int("--warmup"), help="warm-up calls per cell before timing")
    warmup_time: float = setting(0.2, check=_seconds("warmup_time"))
    # Interleaving: the models of a group take turns in blocks of at least block_calls calls and
    # block_time seconds (short blocks gave steadier ratios under load), after block_warmup untimed calls.
    block_calls: int = setting(3, check=_non_negative_int("block_calls"))
    block_time: float = setting(0.002, check=_seconds("block_time"))
    block_warmup: int = setting(2, check=_non_negative_int("block_warmup"))
    instances: int = setting(4, flag="--instances", parse=positive_int, check=_positive_int("--instances"),
                             help="sessions opened per model and rotated per round, so one session's memory-layout "
                                  "luck (several %% at batch 1) is not taken for a model's speed")
    processes: int = setting(4, flag="--processes", parse=positive_int, check=_positive_int("--processes"),
                             help="worker processes per runtime, each measuring its share of --min-iters and "
                                  "--min-time; the verdict's interval resamples them, so what one process fixes "
                                  "(memory layout) is not taken for a model's speed")
    baseline_model: str | None = setting(
        None, flag="--baseline-model", help="the model the others are compared with",
        check=_rule(lambda v: v is None or (isinstance(v, str) and v), "--baseline-model: must be a model name"),
        shown="dense, else the first SOURCE given")
    models: tuple[str, ...] | None = setting(None, flag="--models", parse=name_list, metavar="LIST",
                                             help="only these models", shown="all found")
    input_shape: tuple[int, ...] | None = setting(
        None, flag="--input-shape", parse=int_list, metavar="DIMS", help="input dimensions without the batch, e.g. 28,28",
        check=lambda v: None if v is None else _positive_ints("--input-shape")(v), shown="the run's recipe or the artifacts")
    input_range: tuple[float, float] | None = setting(
        None, flag="--input-range", parse=number_pair, metavar="LOW,HIGH", check=_value_range,
        help="value range of the generated inputs: integer inputs get ids in [LOW, HIGH), floats uniform values in it",
        shown="read from the model or its export, e.g. an embedding's size for token ids; else [0, 1) for floats, "
              "[0, 128) for integers")
    ort_graph_optimization: str = setting("all", flag="--ort-opt", choices=ORT_OPT_LEVELS,
                                          check=_one_of("--ort-opt", ORT_OPT_LEVELS),
                                          help="ONNX Runtime graph optimization level")
    openvino_precision: str = setting("f32", flag="--inference-precision", choices=OPENVINO_PRECISIONS,
                                      check=_one_of("--precision", OPENVINO_PRECISIONS),  # names the old spelling
                                      help="OpenVINO's compute precision (INFERENCE_PRECISION_HINT), set explicitly "
                                           "and recorded")
    sparse_int8: str = setting("auto", flag="--sparse-int8", choices=SPARSE_INT8,
                               check=_one_of("--sparse-int8", SPARSE_INT8),
                               help="also bench each int8 variant of a model with zeros on OpenVINO with sparse int8 "
                                    "weights (<model>-int8-sparse); auto: where the CPU has AMX")
    crosscheck: bool = setting(False, flag="--crosscheck", switch=True,
                               help="also run OpenVINO's benchmark_app on each OpenVINO cell and record its median")
    crosscheck_time: float = setting(1.0, flag="--crosscheck-time", parse=non_negative_float,
                                     check=_seconds("--crosscheck-time"),
                                     help="whole seconds per run: slimdeploy and benchmark_app alternate, 5 to 10 "
                                          "runs each per cell")
    profile: bool = setting(False, flag="--profile", switch=True,
                            help="after measuring each cell, profile it per layer in a separate pass (OpenVINO "
                                 "PERF_COUNT, ONNX Runtime's profiler): time per op type and the kernel names, for "
                                 "the report's time split")
    threshold: float = setting(0.05, check=_rule(lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
                                                  "threshold: must be in [0, 1)"))
    confidence: float = setting(0.95, check=_rule(lambda v: isinstance(v, (int, float)) and 0 < v < 1,
                                                   "confidence: must be in (0, 1)"))
    bootstrap_resamples: int = setting(2000, check=_rule(lambda v: is_int(v) and v >= 100,
                                                          "bootstrap_resamples: must be an integer >= 100"))
    seed: int = setting(0, flag="--seed", parse=non_negative_int, help="seed for the input data and the bootstrap",
                        check=_rule(lambda v: is_int(v) and v >= 0, "--seed: must be a non-negative integer"))
    # A worker that reports nothing for this long is killed; its cell becomes an error.
    stall_timeout: float = setting(300.0, check=_rule(lambda v: isinstance(v, (int, float)) and v > 0,
                                                       "stall_timeout: must be a positive number of seconds"))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "bench settings") -> BenchSettings:
        return super().from_dict(raw, source)

    def check_together(self) -> None:
        if self.max_iters and self.max_iters < self.min_iters:
            raise UserError(f"--max-iters: must be 0 (no cap) or at least --min-iters ({self.min_iters})")

    def normalized(self) -> BenchSettings:
        """Lists (a TOML table, the command line) become the tuples the fields declare."""
        changes = {name: tuple(getattr(self, name)) for name in ("models", "input_shape", "input_range")
                   if isinstance(getattr(self, name), list)}
        return dataclasses.replace(self, **changes) if changes else self
