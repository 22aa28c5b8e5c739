"""``export_source``: every model in SOURCE to every requested target, each verified against Keras.

An artifact is written and verified in a staging directory, then renamed to its final name (a
``.bin`` before its ``.xml``): a file with a final name is complete and verified. One that fails
is kept as ``<name>.failed``, recorded with ``valid: false``, and ``ExportFailed`` is raised after
export.json is written. ``resume`` keeps each artifact ``export.partial.json`` recorded as verified
whose files and Keras model are unchanged.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from slimdeploy import fsutil
from slimdeploy._version import __version__
from slimdeploy.data import Dataset, load_dataset
from slimdeploy.dirlock import DirectoryLock, remove_stale_temporaries, writer_directory
from slimdeploy.errors import UserError, WorkError
from slimdeploy.export.job import ExportJob, Kept
from slimdeploy.export.registry import get_target
from slimdeploy.export.settings import ExportSettings
from slimdeploy.export.sources import SourcePlan, prepare_out_dir, resolve_source
from slimdeploy.export.verify import verification_images
from slimdeploy.models import load_model, require_single_io
from slimdeploy.recipes import refuse_changed_settings
from slimdeploy.records.environment import Environment
from slimdeploy.records.export import SCHEMA_VERSION, ExportManifest, Skipped, artifact_fields
from slimdeploy.records.run import DataInfo
from slimdeploy.runtimes.registry import describe_environment
from slimdeploy.saved_run import run_dataset
from slimdeploy.train import check_input_shape, quiet_tensorflow

FIELD_ORDER = artifact_fields()


class ExportFailed(WorkError):
    """Some artifacts failed verification; ``manifest`` (export.json's content) says which and why."""

    def __init__(self, message: str, manifest: dict):
        super().__init__(message)
        self.manifest = manifest


def plan_targets(settings: ExportSettings) -> tuple[list, list[dict]]:
    """The targets to build and the ones skipped: one asked for by name that this machine cannot build
    is the user's error; under "all" it is skipped and noted."""
    targets, skipped = [], []
    for name in settings.resolved_targets():
        target = get_target(name)
        reason = target.unavailable_reason()
        if reason is None:
            targets.append(target)
        elif "all" in settings.targets:
            skipped.append({"target": name, "reason": reason})
        else:
            raise UserError(f"--target {name} cannot be built here: {reason}")
    if settings.int8:
        skipped += [{"target": t.name, "precision": "int8", "reason": t.int8_unavailable}
                    for t in targets if t.int8_unavailable is not None]
        if not settings.float_precision and all(t.int8_unavailable for t in targets):
            raise UserError(f"--precision int8: nothing to make; {targets[0].int8_unavailable}" if targets else
                            "--precision int8: no target to make it for")
    return targets, skipped


def export_source(source, settings: ExportSettings | None = None, out_dir=None, *, force: bool = False,
                  resume: bool = False, progress=None, data=None, data_override: bool = False,
                  scale: float | None = None, on_notice=None) -> dict:
    """Export SOURCE (a ``.keras`` file or a run directory) and return the manifest (export.json's content).

    An existing export is refused unless ``force`` or ``resume`` (a finished export is returned as it
    is). ``data``: a location (as ``--data``) or a loaded ``Dataset``; a run directory's recorded data is
    used unless ``data_override``; a lone file's is divided by ``scale``. ``on_notice``: called with each
    notice, which export.json also keeps in ``notes``. Raises ``UserError`` before writing anything.
    """
    quiet_tensorflow()
    settings = (settings or ExportSettings()).validated()
    plan = resolve_source(source, out_dir)
    targets, skipped = plan_targets(settings)
    # Everything that can be wrong with the user's input is found before anything is written.
    if plan.out_dir.exists() and not plan.out_dir.is_dir():
        raise UserError(f"output directory {plan.out_dir} exists and is not a directory")
    sources_sha256 = {m.name: fsutil.file_sha256(m.path) for m in plan.models}
    # One writer at a time: a second export here would remove this one's temporaries as stale.
    with DirectoryLock(writer_directory(plan.out_dir, plan.run_dir), stage="export", create=prepare_out_dir):
        kept = Kept()
        if resume and not force:
            finished = _finished_export(plan.manifest, settings, sources_sha256)
            if finished is not None:
                return _checked(finished, plan.manifest)
            kept = _resumable_artifacts(plan, settings, sources_sha256)
        elif not force:
            _refuse_an_existing_export(plan, targets, settings)
        models = _load_models(plan)
        dataset = _dataset(plan, data, data_override, scale, models)
        for m in plan.models:
            check_input_shape(models[m.name], dataset, f"{_what(plan, m)} {m.path}")
        created = prepare_out_dir(plan.out_dir)
        remove_stale_temporaries(plan.out_dir)
        # A stale manifest must never describe files this run is about to replace.
        plan.manifest.unlink(missing_ok=True)
        if not resume or force:
            plan.partial_manifest.unlink(missing_ok=True)

        started = time.perf_counter()
        x_val, _, y_test = verification_images(dataset, settings.verify_limit)
        job = ExportJob(settings=settings, plan=plan, targets=targets, dataset=dataset, sources_sha256=sources_sha256,
                        kept=kept, progress=progress, on_notice=on_notice)
        job.run(models, created_out_dir=created)
        data = DataInfo.from_json(dataset.describe(), keep_order=True).replace(
            override=bool(data_override), verification={"validation_images": len(x_val), "test_images": len(y_test)},
            input_contract=dataset.input_contract())
        manifest = ExportManifest(
            schema_version=SCHEMA_VERSION, tool=f"slimdeploy {__version__}",
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"), source=str(plan.source),
            settings=settings.to_dict(), environment=Environment.from_json(describe_environment(), keep_order=True),
            data=data, models=job.model_facts, artifacts=job.artifacts, skipped=[Skipped(**s) for s in skipped],
            notes=job.notices, seconds=round(time.perf_counter() - started, 3))
        manifest.save(plan.manifest)
        plan.partial_manifest.unlink(missing_ok=True)
        return _checked(manifest, plan.manifest)


def _refuse_an_existing_export(plan: SourcePlan, targets: list, settings: ExportSettings) -> None:
    if plan.partial_manifest.exists():
        raise UserError(f"{plan.out_dir} holds an interrupted export; pass --resume to continue it "
                        "or --force to start over")
    finals = [plan.manifest] + [p for m in plan.models for name, _ in settings.variants(m.name) for t in targets
                                for p in t.files(plan.out_dir, name)]
    for path in finals:
        fsutil.refuse_existing(path, force=False)


def _load_models(plan: SourcePlan) -> dict:
    models = {m.name: load_model(m.path, what=_what(plan, m)) for m in plan.models}
    for m in plan.models:
        require_single_io(models[m.name], m.path, _what(plan, m))
    return models


def _what(plan: SourcePlan, m) -> str:  # "model FILE" (a lone file), "dense model FILE" (a run's)
    return "model" if plan.run_dir is None else f"{m.name} model"


def _checked(manifest: ExportManifest, manifest_path: Path) -> dict:
    """The manifest as export.json holds it, or ``ExportFailed`` when some of its artifacts failed."""
    failed = manifest.failed()
    if failed:
        names = ", ".join(f"{a.model}/{a.target} ({a.error})" for a in failed)
        raise ExportFailed(f"{len(failed)} of {len(manifest.artifacts)} artifacts failed verification: {names}; "
                           f"see {manifest_path}", manifest.to_json())
    return manifest.to_json()


def _read_manifest(path: Path, what: str, not_ours: str, settings: ExportSettings) -> ExportManifest:
    """export.json or export.partial.json, made with ``settings``; ``not_ours``: the error for some other JSON."""
    raw = fsutil.read_json(path, what)
    if not isinstance(raw, dict) or not isinstance(raw.get("artifacts"), list):
        raise UserError(not_ours)
    manifest = ExportManifest.from_json(raw, path)
    refuse_changed_settings(path, "made", manifest.settings or {}, settings.to_dict(), settings.to_dict())
    return manifest


def _finished_export(manifest_path: Path, settings: ExportSettings, sources_sha256: dict) -> ExportManifest | None:
    """The finished export of these very models with these settings, or None (none, or its Keras
    models have changed since: everything is exported again)."""
    if not manifest_path.is_file():
        return None
    manifest = _read_manifest(manifest_path, "export manifest",
                              f"{manifest_path} is not a slimdeploy export.json; use --force to export again", settings)
    recorded = {name: facts.source_sha256 if facts else None for name, facts in (manifest.models or {}).items()}
    return manifest if recorded == sources_sha256 else None


def _resumable_artifacts(plan: SourcePlan, settings: ExportSettings, sources_sha256: dict) -> Kept:
    path = plan.partial_manifest
    if not path.exists():
        return Kept()
    partial = _read_manifest(path, "interrupted export record",
                             f"{path} is not a slimdeploy export record; use --force to start over", settings)
    recorded = partial.sources_sha256 or {}
    kept = Kept()
    for artifact in partial.artifacts:
        name = artifact.model
        if not artifact.valid or recorded.get(name) != sources_sha256.get(name):
            continue  # failed, or its Keras model has changed since: export it again
        files = [plan.out_dir / f for f in artifact.files or []]
        if files and all(p.is_file() and artifact.file_sha256.get(p.name) == fsutil.file_sha256(p) for p in files):
            kept.artifacts[name, artifact.target] = artifact
            kept.facts[name] = (partial.models or {}).get(name)
    return kept


def _dataset(plan: SourcePlan, data, data_override: bool, scale: float | None, models: dict):
    if isinstance(data, Dataset):
        return data
    if plan.run_dir is not None:
        if scale is not None:
            raise UserError(f"--scale applies to a lone model file; {plan.run_dir} is verified with the scaling "
                            "it was trained with (recorded in dense/metrics.json)")
        return run_dataset(plan.run_dir, data, data_override=data_override)
    # An image folder is read at the size the (lone) model takes.
    input_shape = tuple(next(iter(models.values())).input_shape[1:])
    return load_dataset(data, scale=scale, input_shape=input_shape)
