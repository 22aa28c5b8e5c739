"""bench.json: cells from worker records, the document around them, its schema, resuming."""

from __future__ import annotations

import datetime as _dt
import json
from importlib import resources
from pathlib import Path

from slimdeploy import __version__, fsutil
from slimdeploy.bench import stats
from slimdeploy.bench.plan import CellSpec
from slimdeploy.errors import UserError

SCHEMA_VERSION = 1


def base_cell(spec: CellSpec) -> dict:
    return {
        "id": spec.id, "model": spec.model, "runtime": spec.runtime, "batch": spec.batch,
        "threads": spec.threads, "mode": spec.mode, "settings": dict(spec.settings),
        "artifact": spec.artifact_shown, "status": "pending", "error": None,
        "load_seconds": None, "first_inference_seconds": None,
        "samples_ms": [], "iterations": 0, "seconds": 0.0, "stats": None, "unstable": False,
        "engine_latency_ms": None, "engine_stats": None, "crosscheck": None,
        "applied_settings": {}, "parallelism": 1,
    }


def finish_cell(spec: CellSpec, record: dict) -> dict:
    """A worker's record -> a bench.json cell with statistics."""
    cell = base_cell(spec)
    cell["status"] = record.get("status", "error")
    cell["error"] = record.get("error")
    for key in ("load_seconds", "first_inference_seconds", "applied_settings", "parallelism", "output_shape", "input",
                "group_wall_seconds", "crosscheck", "blocks", "processes", "instances"):
        if record.get(key) is not None:
            cell[key] = record[key]
    samples = record.get("samples_ms") or []
    if cell["status"] == "ok":
        if not samples:
            cell.update(status="error", error="no samples were recorded")
            return cell
        cell["samples_ms"] = samples
        cell["iterations"] = int(record.get("iterations", len(samples)))
        cell["seconds"] = float(record.get("seconds", sum(samples) / 1000.0))
        cell["stats"] = stats.summarize(samples, spec.batch)
        cell["unstable"] = stats.is_unstable(cell["stats"])
        engine = record.get("engine_samples_ms")
        if engine:
            cell["engine_stats"] = stats.summarize(engine, spec.batch)
            cell["engine_latency_ms"] = cell["engine_stats"]["p50_ms"]
    return cell


def merge_records(parts: list[dict]) -> dict:
    """One cell's records from its worker processes, in order -> one record. A cell that
    failed in any process is that error. ``processes`` keeps how many interleaved blocks
    each process measured, so the comparison can pair rounds within a process."""
    failed = next((part for part in parts if part.get("status") != "ok"), None)
    if failed is not None:
        return failed
    merged = dict(parts[0])  # load and first-inference times: the first process's (a cold start)
    for key in ("samples_ms", "engine_samples_ms", "blocks"):
        merged[key] = [value for part in parts for value in (part.get(key) or [])] or None
    for key in ("iterations", "seconds", "group_wall_seconds"):
        merged[key] = sum(part.get(key) or 0 for part in parts)
    merged["processes"] = [len(part.get("blocks") or []) for part in parts]
    merged["crosscheck"] = next((part["crosscheck"] for part in parts if part.get("crosscheck")), None)
    return merged


def unavailable_cell(spec: CellSpec, reason: str) -> dict:
    cell = base_cell(spec)
    cell.update(status="unavailable", error=reason)
    return cell


def new_results(settings_dict: dict, environment: dict, models: dict, runtimes: dict, notes: list) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": f"slimdeploy {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
        "environment": environment,
        "config": settings_dict,
        "models": models,
        "cells": [],
        "comparisons": [],
        "runtimes": runtimes,
        "notes": list(notes),
        "wall_seconds": None,
    }


def schema() -> dict:
    text = resources.files("slimdeploy").joinpath("schemas/bench.schema.json").read_text()
    return json.loads(text)


def validate(results: dict) -> None:
    """Raise jsonschema.ValidationError when ``results`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(results, schema())


def write_results(path: Path, results: dict) -> None:
    fsutil.write_json(path, results)


def load_previous(path: Path) -> dict:
    """A bench.json to resume from: only its finished cells are kept."""
    data = fsutil.read_json(path, "bench results")
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or not isinstance(data.get("cells"), list):
        raise UserError(f"{path} is not a slimdeploy bench.json (schema_version {SCHEMA_VERSION}); "
                        "cannot --resume from it (use --force to start over)")
    return data
