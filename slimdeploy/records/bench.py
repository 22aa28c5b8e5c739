"""bench.json as records: the document (``BenchResults``), its cells and its comparisons.

Field order is the order ``slimdeploy bench`` writes the keys (the schema is
slimdeploy/schemas/bench.schema.json). Readers that index a cell as a dict
(``bench.compare``, ``bench.table``, ``report``) get ``to_json()`` of these.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt

from slimdeploy._version import __version__
from slimdeploy.records.base import ABSENT, Record

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cell(Record):
    """One (model, runtime, batch, threads, mode, settings) measurement with every raw latency."""

    WHAT = "bench cell"

    id: str
    model: str
    runtime: str
    batch: int
    threads: int
    mode: str
    settings: dict = dataclasses.field(default_factory=dict)
    artifact: str | None = None
    status: str = "pending"  # pending | ok | error | unavailable
    error: str | None = None
    load_seconds: float | None = None
    first_inference_seconds: float | None = None
    samples_ms: list = dataclasses.field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    stats: dict | None = None
    unstable: bool = False  # the rounds or processes disagreed: ``stability`` says by how much
    # The evidence behind ``unstable`` (``bench.stats.round_stability``): basis, rounds,
    # round_spread, process_spread, threshold (and a note when not judged). Files before it have none.
    stability: dict = ABSENT
    engine_latency_ms: float | None = None
    engine_stats: dict | None = None
    crosscheck: dict | None = None
    applied_settings: dict = dataclasses.field(default_factory=dict)
    parallelism: int = 1
    # Written only when the worker reported them.
    output_shape: list = ABSENT
    input: dict = ABSENT
    group_wall_seconds: float = ABSENT
    blocks: list = ABSENT  # samples per interleaved block, in order
    processes: list = ABSENT  # blocks per worker process
    instances: int = ABSENT
    # The kernel each weight layer ran (int8 models, where the runtime tells: OpenVINO):
    # [{node_name, node_type, exec_type, sparse}]; or why the profile failed.
    kernels: list = ABSENT
    profile_error: str = ABSENT
    # bench --profile: the time split of a separate profiled pass (per node, its median call):
    # {tool, runs, total_us, matmul_us, matmul_share, by_op_type, kernels, layers}.
    profile: dict = ABSENT
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
    verdict: str | None = None
    threshold: float | None = None
    baseline_p50_ms: float | None = None
    model_p50_ms: float | None = None
    baseline_cell: str | None = None
    model_cell: str | None = None
    unstable: bool = False
    bootstrap_samples: list | None = None
    # What it asks: vs_baseline | int8_on_pruned | pruning_on_int8 | sparse_kernel (files
    # before INT8 variants have only vs_baseline comparisons and no key).
    question: str = ABSENT
    # What ideal_speedup assumes, where the FLOP ratio alone does not say it (an int8 side).
    ideal_assumes: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchResults(Record):
    """The whole bench.json."""

    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "bench.json"

    schema_version: int = SCHEMA_VERSION
    tool: str = ""
    created: str = ""
    complete: bool = False
    environment: dict = dataclasses.field(default_factory=dict)
    config: dict = dataclasses.field(default_factory=dict)
    models: dict = dataclasses.field(default_factory=dict)
    cells: list[Cell] = dataclasses.field(default_factory=list)
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    runtimes: dict = dataclasses.field(default_factory=dict)
    # Whether OpenVINO's sparse int8 weights were benched, and why (not).
    sparse_int8: dict = ABSENT
    notes: list = dataclasses.field(default_factory=list)
    wall_seconds: float | None = None

    @classmethod
    def new(cls, config: dict, environment: dict, models: dict, runtimes: dict, notes: list) -> "BenchResults":
        """A document about to be measured: no cells yet, not complete, stamped now."""
        return cls(tool=f"slimdeploy {__version__}", environment=environment, config=config, models=models,
                   runtimes=runtimes, notes=list(notes),
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def finished_cells(self) -> dict[str, Cell]:
        """The measured cells, by id (what ``--resume`` may keep)."""
        return {c.id: c for c in self.cells if c.ok}

