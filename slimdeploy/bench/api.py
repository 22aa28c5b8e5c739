"""``run_bench``: the one code path behind ``slimdeploy bench`` and ``slimdeploy run``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

from slimdeploy import environment, fsutil
from slimdeploy.bench.compare import compare
from slimdeploy.bench.harness import MeasureParams
from slimdeploy.bench.plan import Plan, make_plan, shown_path
from slimdeploy.bench.results import (base_cell, finish_cell, load_previous, merge_records, new_results,
                                      unavailable_cell, write_results)
from slimdeploy.bench.runner import run_job
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.sources import resolve_sources
from slimdeploy.config import refuse_changed_settings
from slimdeploy.errors import UserError
from slimdeploy.runtimes.registry import all_availability

def default_out(sources) -> Path:
    return (sources.run_dir / "bench.json") if sources.run_dir is not None else Path("bench.json")


def prepare(sources, settings: BenchSettings | None = None):
    """Everything that can fail on the user's input, checked before anything runs."""
    settings = (settings or BenchSettings()).validated()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    resolved = resolve_sources(list(sources), settings.models)
    if settings.baseline_model is None:  # recorded in bench.json's config as the name used
        settings = dataclasses.replace(settings, baseline_model=resolved.default_baseline())
    availability = all_availability()
    plan = make_plan(resolved, settings, availability)
    return settings, resolved, availability, plan


def run_bench(sources, settings: BenchSettings | None = None, out=None, *, force: bool = False,
              resume: bool = False, progress=None, on_event=None) -> dict:
    """Benchmark every model of ``sources`` on every available runtime; write and return bench.json.

    ``sources``: run directories and/or artifact files. ``out``: default RUN_DIR/bench.json
    (or ./bench.json). An existing ``out`` is refused unless ``force`` (start over) or
    ``resume`` (keep its finished cell groups, measure the rest). ``progress``: a rich
    Progress. ``on_event``: called with each worker event (dict), for tools and tests.
    """
    started = time.perf_counter()
    settings, resolved, availability, plan = prepare(sources, settings)
    out = Path(out) if out is not None else default_out(resolved)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out / 'bench.json'}")
    previous = load_previous(out) if resume and out.exists() else None
    if previous is None:
        if out.exists() and not force:
            raise UserError(f"{out} already exists; pass --force to start over, or --resume to keep its finished cells")
    else:
        _check_same_measurement(previous, settings, out)
    for leftover in out.parent.glob(f".{out.name}{fsutil.TMP_MARK}*"):
        with contextlib.suppress(OSError):
            leftover.unlink()

    models = {name: {**model.info, "artifacts": {}} for name, model in resolved.models.items()}
    specs = {spec.id: spec for spec in plan.cells}
    for spec in plan.cells:
        models[spec.model]["artifacts"][spec.runtime] = spec.artifact_shown
    config = {**settings.to_dict(), "sources": [shown_path(Path(s), None) for s in _as_list(sources)],
              "input_dims": list(plan.input_dims) if plan.input_dims else None}
    results = new_results(config, environment.describe(), models, availability, resolved.notes)
    cells = {spec.id: base_cell(spec) for spec in plan.cells}
    for spec in plan.unavailable:
        cells[spec.id] = unavailable_cell(spec, availability[spec.runtime].get("reason", "unavailable"))
    kept = _reusable_cells(previous, plan) if previous else {}
    cells.update(kept)

    to_run = sum(1 for job in plan.jobs for g in job.groups for c in g.cells if c.id not in kept)
    task = progress.add_task("bench", total=to_run * settings.processes, info="") if progress is not None else None

    def save() -> None:
        # Written between workers and when interrupted, never while a worker measures: the
        # parent stays idle then, and a partial file lets --resume skip finished groups.
        results["cells"] = list(cells.values())
        write_results(out, results)

    def measure(job) -> None:
        """Every group of ``job`` in ``settings.processes`` workers, one after another. A cell
        that failed in one is not tried again; its cell is that error."""
        parts: dict[str, list] = {}

        def on_record(cell_id: str, record: dict) -> None:
            parts.setdefault(cell_id, []).append(record)
            if task is not None:
                progress.advance(task)

        for index in range(settings.processes):
            failed = {cell_id for cell_id, records in parts.items() if records[-1].get("status") != "ok"}
            groups = [dataclasses.replace(g, cells=[c for c in g.cells if c.id not in failed]) for g in job.groups]
            groups = [g for g in groups if g.cells]
            if groups:
                fields = {**job_fields, "crosscheck": settings.crosscheck and index == 0}
                run_job(dataclasses.replace(job, groups=groups), fields, on_record, on_worker_event, stall_timeout)
        for cell_id, records in parts.items():
            cells[cell_id] = finish_cell(specs[cell_id], merge_records(records))

    def on_worker_event(event: dict) -> None:
        if event.get("event") == "model_info":
            for key, value in event["info"].items():
                models[event["model"]].setdefault(key, value)
        elif event.get("event") == "model_loading" and task is not None:
            spec = specs.get(event.get("id"))
            if spec is not None:
                progress.update(task, info=f"{spec.runtime} b{spec.batch} t{spec.threads}: {spec.model}")
        if on_event is not None:
            on_event(event)

    # --input-range for every model, else what each model says its integer inputs index.
    input_ranges = {name: list(settings.input_range) if settings.input_range else info.get("input_range")
                    for name, info in models.items()}
    job_fields = {"measure": MeasureParams.from_settings(settings), "seed": settings.seed, "input_ranges": input_ranges,
                  "input_range_from": "--input-range" if settings.input_range else "model",
                  "crosscheck": settings.crosscheck, "crosscheck_time": settings.crosscheck_time}
    stall_timeout = settings.stall_timeout
    if settings.crosscheck:  # a worker is silent while benchmark_app runs
        from slimdeploy.bench.crosscheck import longest_crosscheck_seconds

        stall_timeout += longest_crosscheck_seconds(settings.crosscheck_time)
    try:
        for job in plan.jobs:
            pending = [g for g in job.groups if not all(c.id in kept for c in g.cells)]
            if pending:
                measure(dataclasses.replace(job, groups=pending))
                save()
        results["comparisons"] = compare(
            list(cells.values()), models, settings.baseline_model, threshold=settings.threshold,
            confidence=settings.confidence, resamples=settings.bootstrap_resamples, seed=settings.seed)
        results["complete"] = all(c["status"] != "pending" for c in cells.values())
    finally:
        results["wall_seconds"] = time.perf_counter() - started
        save()
    return results


def _as_list(sources):
    return [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)


# Settings that change what a cell's numbers mean: a resumed file must have been made with
# the same ones, or old and new cells would not be comparable.
MEASUREMENT_KEYS = ("mode", "min_iters", "min_time", "max_iters", "warmup_iters", "warmup_time", "block_calls",
                    "block_time", "block_warmup", "instances", "processes", "seed", "input_shape",
                    "ort_graph_optimization", "openvino_precision")


def _check_same_measurement(previous: dict, settings: BenchSettings, out: Path) -> None:
    old = previous.get("config") or {}
    # Keys an older file does not record are not held against it.
    refuse_changed_settings(out, "measured", old, settings.to_dict(), [k for k in MEASUREMENT_KEYS if k in old])


def _reusable_cells(previous: dict, plan: Plan) -> dict:
    """Finished cells of the earlier run, by whole group only: a group is measured
    interleaved, so a half-finished group is measured again from the start."""
    done = {c["id"]: c for c in previous.get("cells", []) if isinstance(c, dict) and c.get("status") == "ok"}
    kept = {}
    for job in plan.jobs:
        for group in job.groups:
            if all(c.id in done for c in group.cells):
                kept.update({c.id: done[c.id] for c in group.cells})
    return kept

