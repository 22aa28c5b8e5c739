"""Read what a report is made of: a run directory or a bench JSON alone.

bench.json, <mode>/lottery.json, exports/export.json and dense/metrics.json are each optional, but
one of the first three must be there; a file that is present must load whole (``Record.load``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slimdeploy.bench.stats import summarize
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchResults, Cell, Comparison, Stats
from slimdeploy.records.export import ExportManifest
from slimdeploy.records.lottery import LotteryRecord
from slimdeploy.records.run import DenseMetrics
from slimdeploy.rundir import RunDir
from slimdeploy.tasks import Task, task_for


@dataclass
class ReportInputs:
    source: Path
    run_dir: Path | None = None
    bench: BenchResults | None = None
    lotteries: dict[str, LotteryRecord] = field(default_factory=dict)  # by mode
    export: ExportManifest | None = None
    dense_metrics: DenseMetrics | None = None
    notes: list[str] = field(default_factory=list)  # what is missing, in plain words
    # No file records the task yet: every run is the default (multiclass) one.
    task: Task = field(default_factory=task_for)

    @property
    def cells(self) -> list[Cell]:
        return self.bench.cells if self.bench else []

    @property
    def comparisons(self) -> list[Comparison]:
        return self.bench.comparisons if self.bench else []

    def ok_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.ok]


def load_source(source: str | Path) -> ReportInputs:
    """SOURCE is a run directory or a bench JSON file."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"report source {source} does not exist (give a run directory or a bench JSON file)")
    if source.is_file():
        inputs = ReportInputs(source=source, bench=load_bench(source))
        inputs.notes += bench_notes(inputs.bench)
        inputs.notes.append(
            "Made from a bench JSON alone: the pruning rounds (lottery.json) and exported files "
            "(export.json) of its run are not shown; give the run directory to see them."
        )
        return inputs
    return _load_run_dir(source)


def _load_run_dir(run_dir: Path) -> ReportInputs:
    inputs = ReportInputs(source=run_dir, run_dir=run_dir)
    run = RunDir(run_dir)
    if run.bench_json.is_file():
        inputs.bench = load_bench(run.bench_json)
        inputs.notes += bench_notes(inputs.bench)
    else:
        inputs.notes.append(f"No benchmark results: {run.bench_json} is missing (run `slimdeploy bench {run_dir}`).")
    # Every mode directory the run holds, not only the two it writes.
    for path in sorted(run.root.glob(run.relative(run.mode("*").lottery))):
        lottery = LotteryRecord.load(path, "lottery file")
        inputs.lotteries[str(lottery.mode or path.parent.name)] = lottery
    if not inputs.lotteries:
        inputs.notes.append(
            f"No pruning rounds: no {run_dir}/<mode>/lottery.json (run `slimdeploy prune {run_dir}`); "
            f"the {inputs.task.metric_label}-vs-weights plot is left out."
        )
    if run.export_manifest.is_file():
        inputs.export = ExportManifest.load(run.export_manifest)
    else:
        inputs.notes.append(f"No exported files: {run.export_manifest} is missing, so file sizes and per-runtime "
                            f"{inputs.task.metric_label} are not shown.")
    if run.dense_metrics.is_file():
        inputs.dense_metrics = DenseMetrics.load(run.dense_metrics)
    if inputs.bench is None and not inputs.lotteries and inputs.export is None:
        raise UserError(
            f"nothing to report in {run_dir}: no bench.json, <mode>/lottery.json or exports/export.json "
            f"(run `slimdeploy run` or the stages train, prune, export, bench first)"
        )
    return inputs


def bench_notes(bench: BenchResults) -> list[str]:
    """What the bench file itself says is missing: an unfinished run, its own notes."""
    notes = []
    if not bench.complete:
        pending = sum(c.status == "pending" for c in bench.cells)
        notes.append(f"The benchmark did not finish ({pending} cells pending): resume it with `slimdeploy bench --resume`; "
                     "this report shows the cells measured so far.")
    return notes + [str(n) for n in bench.notes or [] if n]


def load_bench(path: str | Path) -> BenchResults:
    """A bench results file; an ok cell without statistics (a hand-made file) gets them from its samples."""
    bench = BenchResults.load(path, "bench results")
    return bench.replace(cells=[c if not c.ok or (c.stats and c.stats.p50_ms is not None)
                                else c.replace(stats=Stats.from_json(summarize(c.samples_ms, int(c.batch))))
                                for c in bench.cells])
