"""What SOURCE names: one ``.keras`` file, or a run directory (its dense model, every ticket, and
each ticket's aligned-width copies ``<mode>-rN``)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from slimdeploy import fsutil, saved_run
from slimdeploy.errors import UserError
from slimdeploy.rundir import MODES, ExportDir, RunDir, aligned_model_name

KNOWN_TICKETS = MODES  # pruning modes first, in this order; any other ticket directory follows alphabetically


@dataclass
class ModelSource:
    name: str  # dense, structured, unstructured, or the file's stem
    path: Path
    label: str  # as recorded in export.json: relative to the run directory, or the path given


@dataclass
class SourcePlan:
    source: Path
    run_dir: Path | None  # None for a lone .keras file
    models: list[ModelSource]
    out_dir: Path
    manifest = property(lambda self: ExportDir(self.out_dir).manifest)
    partial_manifest = property(lambda self: ExportDir(self.out_dir).partial_manifest)


def resolve_source(source: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> SourcePlan:
    source = Path(source)
    if not source.exists():
        raise UserError(f"SOURCE {source} does not exist (give a .keras file or a run directory)")
    if source.is_dir():
        saved_run.dense_metrics(source)  # one clear error when this is not a run directory
        run = RunDir(source)
        models = [ModelSource("dense", run.dense_model, run.relative(run.dense_model))]
        for name in _ticket_names(run):
            mode = run.mode(name)
            models.append(ModelSource(name, mode.ticket, run.relative(mode.ticket)))
            # The ticket's widths rounded to SIMD-friendly multiples, exported to be benchmarked beside it.
            models += [ModelSource(aligned_model_name(name, multiple), path, run.relative(path))
                       for multiple, path in mode.aligned_tickets().items()]
        default_out = run.exports_dir
        run_dir = source
    else:
        models = [ModelSource(source.stem, source, str(source))]
        # Each lone file its own directory: two files side by side must not share one export.json.
        default_out = RunDir(source.parent).exports_dir / source.stem
        run_dir = None
    return SourcePlan(source=source, run_dir=run_dir, models=models, out_dir=Path(out_dir) if out_dir else default_out)


def _ticket_names(run: RunDir) -> list[str]:
    not_tickets = (run.dense.path, run.exports_dir)
    names = [d.name for d in run.root.iterdir() if d.is_dir() and d not in not_tickets and run.mode(d.name).ticket.is_file()]
    return sorted(names, key=lambda name: (KNOWN_TICKETS.index(name) if name in KNOWN_TICKETS else len(KNOWN_TICKETS), name))


def prepare_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed and prove it is writable; return whether it was created."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output directory {out_dir} exists and is not a directory")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output directory {out_dir}: cannot create the directory: {exc.strerror or exc}") from exc
    reason = fsutil.check_writable_dir(out_dir)
    if reason is not None:
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise UserError(f"output directory {out_dir} is not writable: {reason}")
    return created

