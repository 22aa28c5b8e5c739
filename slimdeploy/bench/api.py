"""``run_bench``: the one code path behind ``slimdeploy bench`` and ``slimdeploy run``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Callable

from slimdeploy import environment, fsutil
from slimdeploy.bench.compare import compare
from slimdeploy.bench.crosscheck import longest_crosscheck_seconds
from slimdeploy.bench.plan import JobSpec, Plan, make_plan, shown_path
from slimdeploy.bench.results import base_cell, finish_cell, load_previous, merge_records, unavailable_cell
from slimdeploy.bench.runner import run_job
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.sources import is_lone_export, resolve_sources
from slimdeploy.bench.worker import CellReport
from slimdeploy.recipes import refuse_changed_settings
from slimdeploy.dirlock import DirectoryLock, writer_directory
from slimdeploy.errors import UserError
from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import BenchConfig, BenchModel, BenchResults, RuntimeInfo, SparseInt8
from slimdeploy.records.environment import Environment
from slimdeploy.rundir import BENCH_FILE, RunDir
from slimdeploy.runtimes.openvino import cpu_has_amx
from slimdeploy.runtimes.registry import all_availability, describe_environment


# OpenVINO packs int8 weights sparser than this (CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE).
SPARSE_INT8_RATE = 0.5
NO_AMX = "the CPU reports no AMX (amx_int8/amx_tile missing from its flags)"


def sparse_int8_choice(setting: str, cpu: dict) -> SparseInt8:
    """Whether sparse int8 twins are benched (``--sparse-int8``): the CPU plugin packs sparse int8
    weights only on CPUs with AMX (``cpu``: environment.cpu_info())."""
    amx, model = cpu_has_amx(cpu), cpu.get("model")
    if setting == "off":
        return SparseInt8(applicable=False, reason="--sparse-int8 off", cpu=model)
    if setting == "auto" and not amx:
        return SparseInt8(applicable=False, reason=NO_AMX, cpu=model)
    reason = "the CPU reports AMX" if amx else f"--sparse-int8 on, although {NO_AMX}: the plugin keeps dense kernels"
    return SparseInt8(applicable=True, rate=SPARSE_INT8_RATE, reason=reason, amx=amx, cpu=model)


def prepare(sources, settings: BenchSettings | None = None):
    """Everything that can fail on the user's input, checked before anything runs."""
    settings = (settings or BenchSettings()).validated()
    sparse = sparse_int8_choice(settings.sparse_int8, environment.cpu_info())
    resolved = resolve_sources(_as_list(sources), settings.models, sparse.rate or None, runtimes=settings.runtimes)
    resolved.sparse_int8 = sparse.replace(models=resolved.sparse_twins) if sparse.applicable else sparse
    if settings.baseline_model is None:  # recorded in bench.json's config as the name used
        settings = dataclasses.replace(settings, baseline_model=resolved.default_baseline())
    availability = {name: RuntimeInfo.from_json(info, keep_order=True) for name, info in all_availability().items()}
    return settings, resolved, availability, make_plan(resolved, settings, availability)


def run_bench(sources, settings: BenchSettings | None = None, out=None, *, force: bool = False,
              resume: bool = False, progress=None, on_event=None) -> BenchResults:
    """Benchmark every model of ``sources`` (run directories and/or artifact files) on every available
    runtime; write ``out`` (default RUN_DIR/bench.json, or ./bench.json) and return its record. An
    existing ``out`` is refused unless ``force`` (start over) or ``resume`` (keep its finished cell
    groups); ``on_event`` is called with each worker event (dict), for tools and tests."""
    started = time.perf_counter()
    # The lock is taken before prepare (which hashes and checks every artifact: seconds for a large
    # model), so a second bench hears "busy" at once; the directory is foreseen from the paths.
    with DirectoryLock(_foreseen_writer_directory(sources, out), stage="bench"):
        settings, resolved, availability, plan = prepare(sources, settings)
        if out is None:
            out = RunDir(resolved.run_dir).bench_json if resolved.run_dir is not None else Path(BENCH_FILE)
        out = Path(out)
        # The same lock entered again, unless prepare saw the sources otherwise than foreseen.
        with DirectoryLock(writer_directory(out.parent, resolved.run_dir), stage="bench"):
            return _run_locked(out, settings, resolved, availability, plan, sources, started, force=force,
                               resume=resume, progress=progress, on_event=on_event)


def _foreseen_writer_directory(sources, out) -> Path:
    """The directory ``run_bench`` will lock, from the paths alone: ``out``'s, or for the default
    output the run directory ``resolve_sources`` takes (its first source directory that is not a
    lone model's export directory), else the working directory's."""
    if out is not None:
        return writer_directory(Path(out).parent)
    for raw in _as_list(sources):
        path = Path(raw)
        if path.is_dir() and not is_lone_export(path):
            return path  # the default output's directory, which writer_directory(out.parent, run_dir) gives
    return writer_directory(Path(BENCH_FILE).parent)


def _run_locked(out: Path, settings: BenchSettings, resolved, availability: dict, plan: Plan, sources, started: float, *,
                force: bool, resume: bool, progress, on_event) -> BenchResults:
    previous = _previous_results(out, settings, force=force, resume=resume)
    for leftover in out.parent.glob(f".{out.name}{fsutil.TMP_MARK}*"):
        with contextlib.suppress(OSError):
            leftover.unlink()

    document = BenchDocument.start(out, settings, _as_list(sources), availability, resolved, plan)
    kept = _reusable_cells(previous, plan) if previous else {}
    document.cells.update(kept)
    to_run = sum(1 for job in plan.jobs for g in job.groups for c in g.cells if c.id not in kept)
    watch = Watch(progress, {spec.id: spec for spec in plan.cells}, document.models, on_event)
    watch.start(to_run * settings.processes)
    try:
        for job in plan.jobs:
            pending = [g for g in job.groups if not all(c.id in kept for c in g.cells)]
            if pending:
                document.cells.update(_measure(job.replace(groups=pending), settings, watch))
                document.save()
        document.compare(settings)
    finally:
        document.save(wall_seconds=time.perf_counter() - started)
    return document.results


def _previous_results(out: Path, settings: BenchSettings, *, force: bool, resume: bool) -> BenchResults | None:
    """The results to resume from (None: start afresh); refuses to overwrite without ``force``."""
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out / 'bench.json'}")
    if not out.exists():
        return None
    if not resume:
        if not force:
            raise UserError(f"{out} already exists; pass --force to start over, or --resume to keep its finished cells")
        return None
    previous = load_previous(out)
    old = {key: getattr(previous.config, key) for key in MEASUREMENT_KEYS}
    # Keys an older file does not record are not held against it.
    refuse_changed_settings(out, "measured", old, settings.to_dict(), [k for k, v in old.items() if v is not ABSENT])
    return previous


@dataclasses.dataclass
class BenchDocument:
    """bench.json while it is measured, written between workers and when interrupted (never while a
    worker measures: the parent stays idle then), so a partial file lets --resume skip finished groups."""

    out: Path
    results: BenchResults
    # name -> the model's facts (bench.json's models entry, keys in the order found): workers add to
    # them as they load a model, so they are records only when written.
    models: dict
    cells: dict  # cell id -> Cell, in plan order

    @classmethod
    def start(cls, out: Path, settings: BenchSettings, sources: list, availability: dict, resolved, plan: Plan
              ) -> BenchDocument:
        artifacts: dict[str, dict] = {}
        for spec in plan.cells:
            artifacts.setdefault(spec.model, {})[spec.runtime] = spec.artifact_shown
        models = {name: {**model.info, "artifacts": artifacts.get(name, {})} for name, model in resolved.models.items()}
        config = {**settings.to_dict(), "sources": [shown_path(Path(s), None) for s in sources],
                  "input_dims": list(plan.input_dims) if plan.input_dims else None}
        results = BenchResults.new(BenchConfig.from_json(config, keep_order=True),
                                   Environment.from_json(describe_environment(settings.runtimes), keep_order=True),
                                   {}, availability, resolved.notes).replace(sparse_int8=resolved.sparse_int8)
        cells = {spec.id: base_cell(spec) for spec in plan.cells}
        for spec in plan.unavailable:
            cells[spec.id] = unavailable_cell(spec, availability[spec.runtime].reason or "unavailable")
        return cls(out, results, models, cells)

    def model_records(self) -> dict[str, BenchModel]:
        return {name: BenchModel.from_json(facts, keep_order=True) for name, facts in self.models.items()}

    def compare(self, settings: BenchSettings) -> None:
        comparisons = compare(list(self.cells.values()), self.model_records(), settings.baseline_model,
                              threshold=settings.threshold, confidence=settings.confidence,
                              resamples=settings.bootstrap_resamples, seed=settings.seed)
        self.results = self.results.replace(comparisons=comparisons,
                                            complete=all(c.status != "pending" for c in self.cells.values()))

    def save(self, **changes) -> None:
        self.results = self.results.replace(models=self.model_records(), cells=list(self.cells.values()), **changes)
        self.results.save(self.out)


@dataclasses.dataclass
class Watch:
    """Follows the workers' events (dicts, as they crossed the process boundary): the progress bar
    (cells done, the cell loading now; nothing without a bar), what a worker tells about a model, and
    ``on_event``, which sees each event."""

    progress: object
    specs: dict
    models: dict
    on_event: Callable[[dict], None] | None = None
    task: object = None

    def start(self, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("bench", total=total, info="")

    def cell_done(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)

    def __call__(self, event: dict) -> None:
        if event.get("event") == "model_info":
            for key, value in event["info"].items():
                self.models[event["model"]].setdefault(key, value)
        elif event.get("event") == "model_loading" and self.task is not None and event.get("id") in self.specs:
            spec = self.specs[event["id"]]
            self.progress.update(self.task, info=f"{spec.runtime} b{spec.batch} t{spec.threads}: {spec.model}")
        if self.on_event is not None:
            self.on_event(event)


def _measure(job: JobSpec, settings: BenchSettings, watch: Watch) -> dict:
    """Cell id -> finished Cell: ``job`` measured in ``settings.processes`` workers, one after another.
    A cell that failed in one worker is not tried again; its cell is that error."""
    parts: dict[str, list[CellReport]] = {}

    def on_report(cell_id: str, report: CellReport) -> None:
        parts.setdefault(cell_id, []).append(report)
        watch.cell_done()

    stall_timeout = settings.stall_timeout
    if settings.crosscheck:  # a worker is silent while benchmark_app runs
        stall_timeout += longest_crosscheck_seconds(settings.crosscheck_time)
    for index in range(settings.processes):
        failed = {cell_id for cell_id, reports in parts.items() if reports[-1].status != "ok"}
        # The profiled pass runs in the first worker only: merge_records keeps the first's profile.
        groups = [g.replace(cells=[c if index == 0 else c.replace(profile=None) for c in g.cells if c.id not in failed])
                  for g in job.groups]
        groups = [g for g in groups if g.cells]
        if groups:  # benchmark_app's crosscheck too runs in the first worker only
            run_job(job.replace(groups=groups, crosscheck=job.crosscheck and index == 0), on_report, watch,
                    stall_timeout)
    return {cell_id: finish_cell(watch.specs[cell_id], merge_records(reports)) for cell_id, reports in parts.items()}


def _as_list(sources):
    return [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)


# Settings that change what a cell's numbers mean: a resumed file must have been made with
# the same ones, or old and new cells would not be comparable.
MEASUREMENT_KEYS = ("mode", "min_iters", "min_time", "max_iters", "warmup_iters", "warmup_time", "block_calls",
                    "block_time", "block_warmup", "instances", "processes", "seed", "input_shape",
                    "ort_graph_optimization", "openvino_precision")


def _reusable_cells(previous: BenchResults, plan: Plan) -> dict:
    """Finished cells of the earlier run, by whole group only: a group is measured
    interleaved, so a half-finished group is measured again from the start."""
    done = previous.finished_cells()
    groups = [g for job in plan.jobs for g in job.groups if all(c.id in done for c in g.cells)]
    return {c.id: done[c.id] for g in groups for c in g.cells}
