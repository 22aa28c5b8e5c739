"""bench.json: cells from worker records, the document around them, its schema, resuming."""

from __future__ import annotations

from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.bench import stats
from slimdeploy.bench.plan import CellSpec
from slimdeploy.errors import UserError
from slimdeploy.records.bench import SCHEMA_VERSION, BenchResults, Cell  # noqa: F401 - SCHEMA_VERSION re-exported
from slimdeploy.records.schema import json_schema


def base_cell(spec: CellSpec) -> Cell:
    """A cell not measured yet: its identity, status "pending"."""
    return Cell(id=spec.id, model=spec.model, runtime=spec.runtime, batch=spec.batch, threads=spec.threads,
                mode=spec.mode, settings=dict(spec.settings), artifact=spec.artifact_shown)


# Worker record keys copied into the cell as they are, when the worker reported them.
_COPIED_KEYS = ("load_seconds", "first_inference_seconds", "applied_settings", "parallelism", "output_shape", "input",
                "group_wall_seconds", "crosscheck", "blocks", "processes", "instances", "kernels", "profile", "profile_error",
                "peak_rss_mb", "load_rss_growth_mb")


def finish_cell(spec: CellSpec, record: dict) -> Cell:
    """A worker's record (a message across the process boundary) -> a bench.json cell with statistics."""
    values = {key: record[key] for key in _COPIED_KEYS if record.get(key) is not None}
    values.update(status=record.get("status", "error"), error=record.get("error"))
    samples = record.get("samples_ms") or []
    if values["status"] == "ok" and not samples:
        values.update(status="error", error="no samples were recorded")
    elif values["status"] == "ok":
        stability = stats.round_stability(samples, record.get("blocks"), record.get("processes"))
        values.update(samples_ms=samples, iterations=int(record.get("iterations", len(samples))),
                      seconds=float(record.get("seconds", sum(samples) / 1000.0)),
                      stats=stats.summarize(samples, spec.batch), unstable=stats.is_unstable(stability),
                      stability=stability.to_json())
        if record.get("engine_samples_ms"):
            engine = stats.summarize(record["engine_samples_ms"], spec.batch)
            values.update(engine_stats=engine, engine_latency_ms=engine["p50_ms"])
    return Cell.from_json({**base_cell(spec).to_json(), **values})


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


def unavailable_cell(spec: CellSpec, reason: str) -> Cell:
    return base_cell(spec).replace(status="unavailable", error=reason)


def schema() -> dict:
    return json_schema(BenchResults)


def validate(results: dict) -> None:
    """Raise jsonschema.ValidationError when ``results`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(results, schema())


def load_previous(path: Path) -> BenchResults:
    """A bench.json to resume from: only its finished cells are kept (comparisons are made anew)."""
    raw = fsutil.read_json(path, "bench results")
    try:
        previous = BenchResults.validated(raw, path, "bench results")
    except UserError as exc:
        raise UserError(f"{path} is not a slimdeploy bench.json (schema_version {SCHEMA_VERSION}); "
                        "cannot --resume from it (use --force to start over)") from exc
    return previous.replace(cells=[c for c in previous.cells if c.ok], comparisons=[])
