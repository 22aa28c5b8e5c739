"""bench.json as records: the document (``BenchResults``), its cells and its comparisons.

Field order is the order ``slimdeploy bench`` writes the keys.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt

from slimdeploy._version import __version__
from slimdeploy.errors import UserError
from slimdeploy.records.base import ABSENT, Record, constraint
from slimdeploy.records.environment import Environment

SCHEMA_VERSION = 1
CELL_STATUSES = ("ok", "error", "unavailable", "pending")
VERDICTS = ("faster", "slower", "no significant difference")
QUESTIONS = ("vs_baseline", "int8_on_pruned", "pruning_on_int8", "sparse_kernel", "aligned_widths")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stats(Record):
    """Latency statistics of a cell's samples (``bench.stats.summarize``)."""

    WHAT = "latency statistics"

    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    stdev_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    cv: float | None = None
    throughput_per_s: float | None = None
    n: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stability(Record):
    """The evidence behind a cell's ``unstable`` flag (``bench.stats.round_stability``)."""

    WHAT = "cell stability"

    basis: str = ABSENT
    rounds: int = ABSENT
    round_spread: float | None = ABSENT
    process_spread: float | None = ABSENT
    threshold: float = ABSENT
    note: str = ABSENT  # why it was not judged


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputInfo(Record):
    """What a cell was fed: dtype and value range, and where the range came from."""

    WHAT = "cell input"

    dtype: str = ABSENT
    low: float = ABSENT
    high: float = ABSENT
    range_from: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Kernel(Record):
    """The kernel one weight layer ran, where the runtime tells (OpenVINO)."""

    WHAT = "kernel"

    node_name: str = ABSENT
    node_type: str = ABSENT
    exec_type: str = ABSENT
    sparse: bool = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProfileLayer(Record):
    WHAT = "profiled layer"

    name: str = ABSENT
    op_type: str = ABSENT
    kernel: str | None = ABSENT
    us: float = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Profile(Record):
    """``bench --profile``: the time split of a separate profiled pass (per node, its median call)."""

    WHAT = "cell profile"

    tool: str = ABSENT
    runs: int = ABSENT
    total_us: float = ABSENT
    matmul_us: float = ABSENT
    matmul_share: float | None = ABSENT
    by_op_type: dict = ABSENT  # op type -> µs
    kernels: dict = ABSENT  # op type -> kernel names
    layers: list[ProfileLayer] = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Crosscheck(Record):
    """OpenVINO's benchmark_app measuring the same model, alternated with slimdeploy (``bench --crosscheck``)."""

    WHAT = "crosscheck"

    tool: str = ABSENT
    status: str = ABSENT
    error: str | None = ABSENT
    command: str = ABSENT
    seconds: float = ABSENT
    runs: int = ABSENT
    settled: bool = ABSENT
    median_ms: float | None = ABSENT
    engine_median_ms: float | None = ABSENT
    wall_median_ms: float | None = ABSENT
    runs_median_ms: dict = ABSENT  # tool -> its runs' medians
    ratio: float | None = ABSENT
    agrees: bool | None = ABSENT
    min_ratio: float | None = ABSENT
    cpus: list = ABSENT
    cell_engine_median_ms: float = ABSENT
    cell_ratio: float = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cell(Record):
    """One (model, runtime, batch, threads, mode, settings) measurement with every raw latency."""

    WHAT = "bench cell"

    id: str
    model: str
    runtime: str
    batch: int = constraint(minimum=1)
    threads: int = constraint(minimum=1)
    mode: str
    settings: dict = dataclasses.field(default_factory=dict)
    artifact: str | None = None
    status: str = constraint("pending", enum=list(CELL_STATUSES))
    error: str | None = None
    load_seconds: float | None = None
    first_inference_seconds: float | None = None
    samples_ms: list = dataclasses.field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    stats: Stats | None = None
    unstable: bool = False  # the rounds or processes disagreed: ``stability`` says by how much
    # The evidence behind ``unstable`` (``bench.stats.round_stability``): basis, rounds,
    # round_spread, process_spread, threshold (and a note when not judged). Files before it have none.
    stability: Stability = ABSENT
    engine_latency_ms: float | None = None
    engine_stats: Stats | None = None
    crosscheck: Crosscheck | None = None
    applied_settings: dict = dataclasses.field(default_factory=dict)
    parallelism: int = 1
    # Written only when the worker reported them.
    output_shape: list = ABSENT
    input: InputInfo = ABSENT
    group_wall_seconds: float = ABSENT
    blocks: list = ABSENT  # samples per interleaved block, in order
    processes: list = ABSENT  # blocks per worker process
    instances: int = ABSENT
    # The kernel each weight layer ran (int8 models, where the runtime tells: OpenVINO):
    # [{node_name, node_type, exec_type, sparse}]; or why the profile failed.
    kernels: list[Kernel] = ABSENT
    profile_error: str = ABSENT
    # bench --profile: the time split of a separate profiled pass (per node, its median call):
    # {tool, runs, total_us, matmul_us, matmul_share, by_op_type, kernels, layers}.
    profile: Profile = ABSENT
    # The worker's peak RSS after loading and measuring the cell's group (MB), and how much
    # loading this model raised it.
    peak_rss_mb: float = ABSENT
    load_rss_growth_mb: float = ABSENT

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Comparison(Record):
    """One model against the baseline model in the same runtime, batch, threads, mode and settings."""

    WHAT = "bench comparison"

    model: str
    baseline: str
    runtime: str
    batch: int
    threads: int
    mode: str
    settings: dict = dataclasses.field(default_factory=dict)
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    ideal_speedup: float | None = None
    efficiency: float | None = None
    nonzero_ideal_speedup: float | None = None
    sample_interval: list | None = None
    round_interval: list | None = None
    round_speedup: float | None = None
    rounds: int = 0
    # baseline p50 / model p50 over all samples; files before the paired estimate lack it.
    p50_speedup: float = ABSENT
    verdict: str | None = constraint(None, enum=[*VERDICTS, None])
    threshold: float | None = None
    baseline_p50_ms: float | None = None
    model_p50_ms: float | None = None
    baseline_cell: str | None = None
    model_cell: str | None = None
    unstable: bool = False
    bootstrap_samples: list | None = None
    # What it asks: vs_baseline | int8_on_pruned | pruning_on_int8 | sparse_kernel (files
    # before INT8 variants have only vs_baseline comparisons and no key).
    question: str = constraint(ABSENT, enum=list(QUESTIONS))
    # What ideal_speedup assumes, where the FLOP ratio alone does not say it (an int8 side).
    ideal_assumes: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchModel(Record):
    """What bench knows of one model it measured (bench.json ``models``)."""

    WHAT = "bench model"

    params: int | None = ABSENT
    nonzero_params: int | None = ABSENT
    flops: int | None = ABSENT
    widths: list | None = ABSENT
    test_accuracy: float | None = ABSENT
    keras_test_accuracy: float | None = ABSENT
    variant_of: str = ABSENT  # an INT8 variant: the model it was quantized from
    precision: str = ABSENT
    runtime_test_accuracy: dict = ABSENT  # runtime -> its accuracy on the test split (export's verification)
    weights_remaining: float = ABSENT
    nonzero_flops: int | None = ABSENT
    input_dtype: str = ABSENT
    artifact_sha256: dict = ABSENT  # runtime -> sha256 of the file it loaded
    artifacts: dict = ABSENT  # runtime -> file
    sparse_weights_decompression_rate: float = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeInfo(Record):
    """Whether a runtime could be measured here: its version, or why not."""

    WHAT = "bench runtime"

    available: bool = False
    version: str = ABSENT
    reason: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class SparseInt8(Record):
    """Whether OpenVINO's sparse int8 weights were benched, and why (not)."""

    WHAT = "sparse int8 choice"

    applicable: bool = False
    rate: float = ABSENT
    reason: str = ABSENT
    amx: bool = ABSENT
    cpu: str | None = ABSENT
    models: list = ABSENT  # the sparse twins benched


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchConfig(Record):
    """The settings a bench ran with (``BenchSettings.to_dict()``) and what it resolved from them."""

    WHAT = "bench config"

    runtimes: list = ABSENT
    batches: list = ABSENT
    threads: list = ABSENT
    mode: str = ABSENT
    min_iters: int = ABSENT
    min_time: float = ABSENT
    max_iters: int = ABSENT
    warmup_iters: int = ABSENT
    warmup_time: float = ABSENT
    block_calls: int = ABSENT
    block_time: float = ABSENT
    block_warmup: int = ABSENT
    instances: int = ABSENT
    processes: int = ABSENT
    baseline_model: str | None = ABSENT
    models: list | None = ABSENT
    input_shape: list | None = ABSENT
    input_range: list | None = ABSENT
    ort_graph_optimization: str = ABSENT
    openvino_precision: str = ABSENT
    sparse_int8: str = ABSENT
    crosscheck: bool = ABSENT
    crosscheck_time: float = ABSENT
    profile: bool = ABSENT
    threshold: float = ABSENT
    confidence: float = ABSENT
    bootstrap_resamples: int = ABSENT
    seed: int = ABSENT
    stall_timeout: float = ABSENT
    sources: list = ABSENT
    input_dims: list | dict = ABSENT  # older files: the input's dimensions as a list


def _required(factory):
    return dataclasses.field(default_factory=factory, metadata={"required": True})


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchResults(Record):
    """The whole bench.json."""

    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "bench.json"

    schema_version: int = constraint(SCHEMA_VERSION, required=True, minimum=1, maximum=SCHEMA_VERSION)
    tool: str = constraint("", required=True, pattern="^slimdeploy ")
    created: str = constraint("", required=True)
    complete: bool = constraint(False, required=True)
    environment: Environment = _required(Environment)
    config: BenchConfig = _required(BenchConfig)
    models: dict[str, BenchModel] = _required(dict)
    cells: list[Cell] = _required(list)
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    runtimes: dict[str, RuntimeInfo] = _required(dict)
    sparse_int8: SparseInt8 = ABSENT
    notes: list = dataclasses.field(default_factory=list)
    wall_seconds: float | None = None

    @classmethod
    def new(cls, config: BenchConfig, environment: Environment, models: dict[str, BenchModel],
            runtimes: dict[str, RuntimeInfo], notes: list) -> "BenchResults":
        """A document about to be measured: no cells yet, not complete, stamped now."""
        return cls(tool=f"slimdeploy {__version__}", environment=environment, config=config, models=models,
                   runtimes=runtimes, notes=list(notes),
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def check(cls, raw: dict, where: str) -> None:
        for index, cell in enumerate(raw.get("cells") or []):
            samples = cell.get("samples_ms")
            if cell.get("status") == "ok" and (not isinstance(samples, list) or not samples
                                               or not all(isinstance(s, (int, float)) for s in samples)):
                raise UserError(f"{where}: cell {index} is ok but has no samples_ms")

    def finished_cells(self) -> dict[str, Cell]:
        """The measured cells, by id (what ``--resume`` may keep)."""
        return {c.id: c for c in self.cells if c.ok}

