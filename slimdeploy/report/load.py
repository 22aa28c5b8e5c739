"""Read what a report is made of: a run directory or a bench JSON alone.

bench.json, <mode>/lottery.json, exports/export.json and dense/metrics.json are each optional, but
one of the first three must be there; a file that is present must load whole (a report built from
half a file would give a wrong answer).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.bench.stats import summarize
from slimdeploy.errors import UserError
from slimdeploy.records.base import ABSENT, Record, check_schema_version
from slimdeploy.records.bench import BenchResults, Cell, Comparison
from slimdeploy.records.export import ExportManifest
from slimdeploy.records.lottery import LotteryRecord, Round
from slimdeploy.records.run import DenseMetrics
from slimdeploy.rundir import RunDir
from slimdeploy.tasks import Task, task_for

CELL_STATUSES = ("ok", "error", "unavailable", "pending")


@dataclass
class ReportInputs:
    source: Path
    run_dir: Path | None = None
    bench: BenchResults | None = None
    bench_path: Path | None = None
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
        inputs = ReportInputs(source=source, bench=load_bench(source), bench_path=source)
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
    bench_path = run.bench_json
    if bench_path.is_file():
        inputs.bench = load_bench(bench_path)
        inputs.bench_path = bench_path
        inputs.notes += bench_notes(inputs.bench)
    else:
        inputs.notes.append(f"No benchmark results: {bench_path} is missing (run `slimdeploy bench {run_dir}`).")
    # Every mode directory the run holds, not only the two it writes.
    for lottery_path in sorted(run.root.glob(run.relative(run.mode("*").lottery))):
        raw = _load_versioned(lottery_path, "lottery file", LotteryRecord)
        if not isinstance(raw.get("rounds"), list):
            raise UserError(f"lottery file {lottery_path} has no 'rounds' list")
        lottery = LotteryRecord.from_json(_partial_lottery(raw), lottery_path)
        inputs.lotteries[str(lottery.mode or lottery_path.parent.name)] = lottery
    if not inputs.lotteries:
        inputs.notes.append(
            f"No pruning rounds: no {run_dir}/<mode>/lottery.json (run `slimdeploy prune {run_dir}`); "
            f"the {inputs.task.metric_label}-vs-weights plot is left out."
        )
    export_path = run.export_manifest
    if export_path.is_file():
        raw = _load_versioned(export_path, "export manifest", ExportManifest)
        if not isinstance(raw.get("artifacts"), list):
            raise UserError(f"export manifest {export_path} has no 'artifacts' list")
        inputs.export = ExportManifest.from_json(raw, export_path)
    else:
        inputs.notes.append(f"No exported files: {export_path} is missing, so file sizes and per-runtime "
                            f"{inputs.task.metric_label} are not shown.")
    metrics_path = run.dense_metrics
    if metrics_path.is_file():
        metrics = fsutil.read_json(metrics_path, "dense metrics")
        if not isinstance(metrics, dict):
            raise UserError(f"dense metrics {metrics_path} is not a JSON object")
        inputs.dense_metrics = DenseMetrics.from_json(metrics, metrics_path)
    if inputs.bench is None and not inputs.lotteries and inputs.export is None:
        raise UserError(
            f"nothing to report in {run_dir}: no bench.json, <mode>/lottery.json or exports/export.json "
            f"(run `slimdeploy run` or the stages train, prune, export, bench first)"
        )
    return inputs


def _partial_lottery(raw: dict) -> dict:
    """``raw`` with the fields a lottery record requires but hand-made files lack read as ABSENT
    (the report reads what they hold)."""

    def fill(cls: type[Record], doc):
        if not isinstance(doc, dict):
            return doc
        return {**{f.name: ABSENT for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}, **doc}

    rounds = [fill(Round, r) for r in raw["rounds"]]
    for r in rounds:
        if isinstance(r, dict) and isinstance(r.get("controls"), dict):
            r["controls"] = {name: fill(Round, c) for name, c in r["controls"].items()}
    return fill(LotteryRecord, {**raw, "rounds": rounds})


def bench_notes(bench: BenchResults) -> list[str]:
    """What the bench file itself says is missing: an unfinished run, its own notes."""
    notes = []
    if bench.complete is False:
        pending = sum(c.status == "pending" for c in bench.cells)
        notes.append(f"The benchmark did not finish ({pending} cells pending): resume it with `slimdeploy bench --resume`; "
                     "this report shows the cells measured so far.")
    return notes + [str(n) for n in bench.notes or [] if n]


def _load_versioned(path: Path, what: str, record: type[Record]) -> dict:
    doc = fsutil.read_json(path, what)
    if not isinstance(doc, dict):
        raise UserError(f"{what} {path} is not a JSON object")
    check_schema_version(doc, f"{what} {path}", record.SCHEMA_VERSION, required=True,
                         remedy="upgrade slimdeploy or re-run bench")
    return doc


def load_bench(path: str | Path) -> BenchResults:
    """A bench results file, checked enough that every view can trust its shape."""
    path = Path(path)
    doc = _load_versioned(path, "bench results", BenchResults)
    _validate_with_schema(doc, path)
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise UserError(f"bench results {path} has no 'cells' list")
    for index, cell in enumerate(cells):
        where = f"bench results {path}: cell {index}"
        if not isinstance(cell, dict):
            raise UserError(f"{where} is not an object")
        for key in ("model", "runtime", "batch", "status"):
            if key not in cell:
                raise UserError(f"{where} has no '{key}'")
        if cell["status"] not in CELL_STATUSES:
            raise UserError(f"{where} has status {cell['status']!r} (expected one of {', '.join(CELL_STATUSES)})")
        if cell["status"] == "ok":
            samples = cell.get("samples_ms")
            if not isinstance(samples, list) or not samples or not all(isinstance(s, (int, float)) for s in samples):
                raise UserError(f"{where} is ok but has no samples_ms")
            if not isinstance(cell.get("stats"), dict) or "p50_ms" not in cell["stats"]:
                # Older or hand-made files: the statistics follow from the raw samples.
                cell["stats"] = summarize(samples, int(cell["batch"]))
    comparisons = doc.setdefault("comparisons", [])
    if not isinstance(comparisons, list):
        raise UserError(f"bench results {path}: 'comparisons' is not a list")
    for index, comparison in enumerate(comparisons):
        for key in ("model", "runtime", "batch", "speedup", "verdict"):
            if not isinstance(comparison, dict) or key not in comparison:
                raise UserError(f"bench results {path}: comparison {index} has no '{key}'")
    for key in ("models", "environment", "config", "runtimes"):
        if not isinstance(doc.get(key) or {}, dict):
            raise UserError(f"bench results {path}: '{key}' is not an object")
    return BenchResults.from_json(doc, path)


def _validate_with_schema(doc: dict, path: Path) -> None:
    """Validate against the bench stage's JSON Schema when the package ships it."""
    try:
        schema_file = resources.files("slimdeploy") / "schemas" / "bench.schema.json"
        if not schema_file.is_file():
            return
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, ModuleNotFoundError):
        return
    import jsonschema  # lazy: only when the schema is shipped

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise UserError(f"bench results {path} does not match the bench schema at {where}: {error.message[:200]}")
