"""What SOURCE names: one ``.keras`` file, or a run directory (its dense model and every ticket)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from slimdeploy.errors import UserError

TICKET_FILE = "ticket.keras"
# Pruning modes first, in this order; any other ticket directory follows alphabetically.
KNOWN_TICKETS = ("structured", "unstructured")


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


def resolve_source(source: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> SourcePlan:
    from slimdeploy import runinfo

    source = Path(source)
    if not source.exists():
        raise UserError(f"SOURCE {source} does not exist (give a .keras file or a run directory)")
    if source.is_dir():
        runinfo.dense_metrics(source)  # one clear error when this is not a run directory
        models = [ModelSource("dense", source / "dense" / "model.keras", "dense/model.keras")]
        ticket_dirs = sorted(
            (d for d in source.iterdir() if d.is_dir() and d.name not in ("dense", "exports") and (d / TICKET_FILE).is_file()),
            key=lambda d: (KNOWN_TICKETS.index(d.name) if d.name in KNOWN_TICKETS else len(KNOWN_TICKETS), d.name),
        )
        models += [ModelSource(d.name, d / TICKET_FILE, f"{d.name}/{TICKET_FILE}") for d in ticket_dirs]
        default_out = source / "exports"
        run_dir = source
    else:
        models = [ModelSource(source.stem, source, str(source))]
        # Each lone file its own directory: two files side by side must not share one export.json.
        default_out = source.parent / "exports" / source.stem
        run_dir = None
    return SourcePlan(source=source, run_dir=run_dir, models=models, out_dir=Path(out_dir) if out_dir else default_out)


def prepare_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed and prove it is writable; return whether it was created."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output directory {out_dir} exists and is not a directory")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output directory {out_dir}: cannot create the directory: {exc.strerror or exc}") from exc
    # os.access says yes to root even on a read-only file system: try it instead.
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if created:
            _remove_empty(out_dir)
        raise UserError(f"output directory {out_dir} is not writable: {exc.strerror or exc}") from exc
    return created


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
