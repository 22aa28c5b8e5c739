"""bench.json: cells from worker reports, its schema, resuming."""

from __future__ import annotations

from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.bench import stats
from slimdeploy.bench.worker import CellReport, CellSpec
from slimdeploy.errors import UserError
from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import SCHEMA_VERSION, BenchResults, Cell, Stats
from slimdeploy.records.schema import json_schema


def base_cell(spec: CellSpec) -> Cell:
    """A cell not measured yet: its identity, status "pending"."""
    return Cell(id=spec.id, model=spec.model, runtime=spec.runtime, batch=spec.batch, threads=spec.threads,
                mode=spec.mode, settings=dict(spec.settings), artifact=spec.artifact_shown)


# What a cell takes from its worker report as it is, when the worker reported it.
_COPIED = ("load_seconds", "first_inference_seconds", "applied_settings", "parallelism", "output_shape", "input",
           "group_wall_seconds", "crosscheck", "blocks", "processes", "instances", "kernels", "profile", "profile_error",
           "peak_rss_mb", "load_rss_growth_mb")


def finish_cell(spec: CellSpec, report: CellReport) -> Cell:
    """A worker's report -> a bench.json cell with statistics."""
    copied = {name: getattr(report, name) for name in _COPIED}
    cell = base_cell(spec).replace(**{k: v for k, v in copied.items() if v is not None and v is not ABSENT},
                                   status=report.status, error=report.error)
    samples = report.samples_ms or []
    if cell.ok and not samples:
        return cell.replace(status="error", error="no samples were recorded")
    if not cell.ok:
        return cell
    stability = stats.round_stability(samples, report.blocks or None, report.processes or None)
    iterations = len(samples) if report.iterations is ABSENT else report.iterations
    cell = cell.replace(samples_ms=samples, iterations=int(iterations),
                        seconds=float(sum(samples) / 1000.0 if report.seconds is ABSENT else report.seconds),
                        stats=Stats.from_json(stats.summarize(samples, spec.batch)),
                        unstable=stats.is_unstable(stability), stability=stability)
    if report.engine_samples_ms:
        engine = Stats.from_json(stats.summarize(report.engine_samples_ms, spec.batch))
        cell = cell.replace(engine_stats=engine, engine_latency_ms=engine.p50_ms)
    return cell


def merge_records(parts: list[CellReport]) -> CellReport:
    """One cell's reports from its worker processes, in order -> one report (a cell that failed in
    any process is that error). ``processes`` keeps how many interleaved blocks each process measured,
    so the comparison can pair rounds within a process. Load times are the first process's (a cold start)."""
    failed = next((part for part in parts if part.status != "ok"), None)
    if failed is not None:
        return failed
    return parts[0].replace(
        samples_ms=[v for part in parts for v in (part.samples_ms or [])] or None,
        engine_samples_ms=[v for part in parts for v in (part.engine_samples_ms or [])] or None,
        blocks=[v for part in parts for v in (part.blocks or [])] or None,
        iterations=sum(part.iterations or 0 for part in parts), seconds=sum(part.seconds or 0 for part in parts),
        group_wall_seconds=sum(part.group_wall_seconds or 0 for part in parts),
        processes=[len(part.blocks or []) for part in parts],
        crosscheck=next((part.crosscheck for part in parts if part.crosscheck), None))


def unavailable_cell(spec: CellSpec, reason: str) -> Cell:
    return base_cell(spec).replace(status="unavailable", error=reason)


def schema() -> dict:
    return json_schema(BenchResults)


def validate(results: dict) -> None:
    """Raise jsonschema.ValidationError when ``results`` does not follow the schema."""
    import jsonschema  # lazy: heavy

    jsonschema.validate(results, schema())


def load_previous(path: Path) -> BenchResults:
    """A bench.json to resume from: only its finished cells are kept, so only they need to be whole
    (comparisons are made anew)."""
    raw = fsutil.read_json(path, "bench results")
    if isinstance(raw, dict) and isinstance(raw.get("cells"), list):  # the file's JSON, before it is a record
        raw = {**raw, "cells": [c for c in raw["cells"] if isinstance(c, dict) and c.get("status") == "ok"],
               "comparisons": []}
    try:
        return BenchResults.validated(raw, path, "bench results")
    except UserError as exc:
        raise UserError(f"{path} is not a slimdeploy bench.json (schema_version {SCHEMA_VERSION}); "
                        "cannot --resume from it (use --force to start over)") from exc
