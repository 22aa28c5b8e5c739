"""``export_source``: every model in SOURCE to every requested target, each verified against Keras.

Each artifact is written under a temporary name in a staging directory inside the output
directory, verified there, and only then renamed to its final name (an OpenVINO ``.bin``
before its ``.xml``). An artifact that fails verification is kept as ``<name>.failed`` for
inspection, recorded with ``valid: false``, and the call raises ``WorkError`` after
writing ``export.json``. So a file with a final name is always complete and verified.

After each artifact, ``export.partial.json`` records what is done so far (removed when
``export.json`` is written). ``resume=True`` keeps every artifact recorded there as verified
whose files still have their recorded sha256 and whose Keras model is unchanged, and
exports only the rest.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from slimdeploy import __version__, environment, fsutil, interrupts
from slimdeploy.config import refuse_changed_settings
from slimdeploy.errors import SlimdeployError, UserError, WorkError
from slimdeploy.export.registry import get_target
from slimdeploy.export.settings import ExportSettings
from slimdeploy.export.sources import SourcePlan, prepare_out_dir, resolve_source
from slimdeploy.export.verify import keras_reference, verification_images

SCHEMA_VERSION = 1
MANIFEST = "export.json"
PARTIAL = "export.partial.json"
FAILED_SUFFIX = ".failed"


class ExportFailed(WorkError):
    """Some artifacts failed verification; ``manifest`` says which and why."""

    def __init__(self, message: str, manifest: dict):
        super().__init__(message)
        self.manifest = manifest


def plan_targets(settings: ExportSettings) -> tuple[list, list[dict]]:
    """The targets to build and the ones skipped. A target asked for by name that this
    machine cannot build is the user's error; under "all" it is skipped and noted."""
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
    return targets, skipped


def export_source(source, settings: ExportSettings | None = None, out_dir=None, *, force: bool = False,
                  resume: bool = False, progress=None, data=None, data_override: bool = False,
                  scale: float | None = None) -> dict:
    """Export SOURCE (a ``.keras`` file or a run directory) and return the manifest.

    An existing export is refused unless ``force`` (export everything again) or ``resume``
    (keep the verified artifacts of an interrupted export with the same settings; a finished
    export is returned as it is).

    ``data`` is a data location (as ``--data``) or an already loaded
    ``slimdeploy.data.Dataset``. A run directory's own recorded data and split are used by
    default; other data only with ``data_override``. A lone file uses ``data`` (default:
    Fashion-MNIST) divided by ``scale`` (default: the source's own convention).
    Raises ``UserError`` before writing anything when the
    input is wrong, ``ExportFailed`` (a ``WorkError``) when an artifact fails verification.
    """
    from slimdeploy.models import load_model, require_single_io
    from slimdeploy.train import check_input_shape, quiet_tensorflow

    quiet_tensorflow()
    settings = (settings or ExportSettings()).validate()
    plan = resolve_source(source, out_dir)
    targets, skipped = plan_targets(settings)
    # Everything that can be wrong with the user's input is found before anything is written.
    if plan.out_dir.exists() and not plan.out_dir.is_dir():
        raise UserError(f"output directory {plan.out_dir} exists and is not a directory")
    manifest_path, partial_path = plan.out_dir / MANIFEST, plan.out_dir / PARTIAL
    sources_sha256 = {m.name: _sha256(m.path) for m in plan.models}
    done = {}
    if resume and not force:
        finished = _finished_export(manifest_path, settings, sources_sha256)
        if finished is not None:
            return _checked(finished, manifest_path)
        done = _resumable_artifacts(partial_path, settings, plan, sources_sha256)
    elif not force:
        if partial_path.exists():
            raise UserError(f"{plan.out_dir} holds an interrupted export; pass --resume to continue it "
                            "or --force to start over")
        finals = [manifest_path] + [p for m in plan.models for t in targets for p in t.files(plan.out_dir, m.name)]
        for path in finals:
            fsutil.refuse_existing(path, force=False)
    # A lone file is "model FILE"; a run directory's models are "dense model FILE", ...
    what = {m.name: "model" if plan.run_dir is None else f"{m.name} model" for m in plan.models}
    models = {m.name: load_model(m.path, what=what[m.name]) for m in plan.models}
    for m in plan.models:
        require_single_io(models[m.name], m.path, what[m.name])
    dataset = _dataset(plan, data, data_override, scale)
    for m in plan.models:
        check_input_shape(models[m.name], dataset, f"{what[m.name]} {m.path}")
    created = prepare_out_dir(plan.out_dir)
    fsutil.remove_stale_temporaries(plan.out_dir)
    # A stale manifest must never describe files this run is about to replace.
    manifest_path.unlink(missing_ok=True)
    if not resume or force:
        partial_path.unlink(missing_ok=True)

    started = time.perf_counter()
    artifacts, model_facts = [], {}
    x_val, _, y_test = verification_images(dataset, settings.verify_limit)
    verification = {"validation_images": len(x_val), "test_images": len(y_test)}
    partial = {"schema_version": SCHEMA_VERSION, "source": str(plan.source), "settings": settings.to_dict(),
               "sources_sha256": sources_sha256, "models": model_facts, "artifacts": artifacts}

    def record(entry: dict) -> None:
        artifacts.append(entry)
        fsutil.write_json(partial_path, partial)  # what --resume keeps if the run stops here

    staging = Path(tempfile.mkdtemp(prefix=f".export{fsutil.TMP_MARK}", dir=plan.out_dir))
    task = progress.add_task("export", total=len(plan.models) * len(targets), info="") if progress is not None else None
    finished = False
    try:
        for m in plan.models:
            kept = {t.name: done[(m.name, t.name)] for t in targets if (m.name, t.name) in done}
            if len(kept) == len(targets):  # nothing left to do for this model
                model_facts[m.name] = done["facts", m.name]
                for target in targets:
                    record(kept[target.name])
                if progress is not None:
                    progress.advance(task, len(targets))
                continue
            reference = keras_reference(models[m.name], dataset, limit=settings.verify_limit, batch=settings.verify_batch)
            # The facts go in first: the partial record must never hold an artifact without its model's facts.
            model_facts[m.name] = facts = _model_facts(m, models[m.name], reference, sources_sha256[m.name])
            _export_model(m, models[m.name], facts, reference, targets, settings, plan, staging, progress, task,
                          kept, record)
        finished = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not finished and created and not any(plan.out_dir.iterdir()):
            with contextlib.suppress(OSError):
                plan.out_dir.rmdir()  # interrupted before any artifact: leave nothing behind

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "tool": f"slimdeploy {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(plan.source),
        "settings": settings.to_dict(),
        "environment": environment.describe(),
        "data": {**dataset.describe(), "override": bool(data_override), "verification": verification,
                 "input_contract": dataset.input_contract()},
        "models": model_facts,
        "artifacts": artifacts,
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }
    fsutil.write_json(manifest_path, manifest)
    partial_path.unlink(missing_ok=True)
    return _checked(manifest, manifest_path)


def _checked(manifest: dict, manifest_path: Path) -> dict:
    """The manifest, or ``ExportFailed`` when some of its artifacts failed verification."""
    artifacts = manifest["artifacts"]
    failed = [a for a in artifacts if not a["valid"]]
    if failed:
        names = ", ".join(f"{a['model']}/{a['target']} ({a['error']})" for a in failed)
        raise ExportFailed(f"{len(failed)} of {len(artifacts)} artifacts failed verification: {names}; see {manifest_path}", manifest)
    return manifest


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _same_settings(recorded: dict, settings: ExportSettings, path: Path) -> None:
    wanted = settings.to_dict()
    refuse_changed_settings(path, "made", recorded, wanted, wanted)


def _finished_export(manifest_path: Path, settings: ExportSettings, sources_sha256: dict) -> dict | None:
    """The finished export of these very models with these settings, or None when there is
    none or its Keras models have changed since (then everything is exported again)."""
    if not manifest_path.is_file():
        return None
    manifest = fsutil.read_json(manifest_path, "export manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise UserError(f"{manifest_path} is not a slimdeploy export.json; use --force to export again")
    _same_settings(manifest.get("settings") or {}, settings, manifest_path)
    recorded = {name: (facts or {}).get("source_sha256") for name, facts in (manifest.get("models") or {}).items()}
    return manifest if recorded == sources_sha256 else None


def _resumable_artifacts(partial_path: Path, settings: ExportSettings, plan: SourcePlan, sources_sha256: dict) -> dict:
    """(model, target) -> the record of each artifact an interrupted export verified and
    that is still intact; ("facts", model) -> that model's facts."""
    if not partial_path.exists():
        return {}
    partial = fsutil.read_json(partial_path, "interrupted export record")
    if not isinstance(partial, dict) or not isinstance(partial.get("artifacts"), list):
        raise UserError(f"{partial_path} is not a slimdeploy export record; use --force to start over")
    _same_settings(partial.get("settings") or {}, settings, partial_path)
    done = {}
    for entry in partial["artifacts"]:
        name = entry.get("model")
        if not entry.get("valid") or (partial.get("sources_sha256") or {}).get(name) != sources_sha256.get(name):
            continue  # failed, or its Keras model has changed since: export it again
        hashes = entry.get("file_sha256") or {}
        files = [plan.out_dir / f for f in entry.get("files") or []]
        if files and all(p.is_file() and hashes.get(p.name) == _sha256(p) for p in files):
            done[name, entry["target"]] = entry
            done["facts", name] = (partial.get("models") or {}).get(name)
    return done


def _dataset(plan: SourcePlan, data, data_override: bool, scale: float | None):
    from slimdeploy.data import Dataset, load_dataset
    from slimdeploy.runinfo import run_dataset

    if isinstance(data, Dataset):
        return data
    if plan.run_dir is not None:
        if scale is not None:
            raise UserError(f"--scale applies to a lone model file; {plan.run_dir} is verified with the scaling "
                            "it was trained with (recorded in dense/metrics.json)")
        return run_dataset(plan.run_dir, data, data_override=data_override)
    return load_dataset(data, scale=scale)


def _model_facts(m, model, reference, source_sha256: str) -> dict:
    from slimdeploy.models import count_flops, count_nonzero_params, count_params, dense_widths

    return {
        "source": m.label, "source_sha256": source_sha256, "params": count_params(model),
        "nonzero_params": count_nonzero_params(model),
        "flops": count_flops(model), "nonzero_flops": count_flops(model, nonzero_only=True),
        "widths": dense_widths(model), "keras_test_accuracy": reference.keras_test_accuracy,
    }


def _export_model(m, model, facts, reference, targets, settings, plan, staging, progress, task, kept, record) -> None:
    """All targets of one model, each passed to ``record`` as it finishes (``kept``: target ->
    a record verified earlier, used as it is)."""
    from slimdeploy.export.onnx import INPUT_NAME, OUTPUT_NAME, keras_to_onnx
    from slimdeploy.models import integer_input_range, model_input_dtype

    base = {
        "model": m.name, "source": m.label, "precision": settings.precision,
        "input_name": INPUT_NAME, "input_dtype": model_input_dtype(model), "input_range": integer_input_range(model),
        "output_name": OUTPUT_NAME,
        "input_shape": [settings.static_batch, *model.input_shape[1:]], "batch": settings.batch,
        **{key: facts[key] for key in ("params", "nonzero_params", "flops", "widths")},
    }
    # One fp32 ONNX file per model is the input of every target.
    onnx_started = time.perf_counter()
    onnx_source = staging / f"{m.name}.source.onnx"
    onnx_error = None
    try:
        keras_to_onnx(model, onnx_source, opset=settings.opset, static_batch=settings.static_batch)
    except SlimdeployError as exc:
        onnx_error = str(exc)
    onnx_seconds = time.perf_counter() - onnx_started

    for target in targets:
        if progress is not None:
            progress.update(task, info=f"{m.name} → {target.name}")
        if target.name in kept:
            record(kept[target.name])
        else:
            entry = {**base, "target": target.name}
            if onnx_error:
                entry.update(_failed_record(onnx_error))
            else:
                entry.update(_export_one(target, m.name, onnx_source, reference, settings, staging, plan.out_dir))
                if target.name == "onnx":
                    entry["seconds"] = round(entry["seconds"] + onnx_seconds, 3)
            entry["onnx_conversion_seconds"] = round(onnx_seconds, 3)
            record(_ordered(entry))
        if progress is not None:
            progress.advance(task)
    onnx_source.unlink(missing_ok=True)


def _failed_record(error: str) -> dict:
    return {"path": None, "files": [], "valid": False, "error": error, "seconds": 0.0,
            "max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": None, "test_accuracy": None}


def _export_one(target, model_name, onnx_source, reference, settings, staging, out_dir) -> dict:
    from slimdeploy.export.verify import verify

    started = time.perf_counter()
    record: dict = {"converter": None, "runtime": target.runtime, "versions": target.versions()}
    exported = None
    try:
        exported = target.export(onnx_source, staging, model_name, settings)
        record["converter"] = exported.converter
        record.update(exported.details)
        convert_done = time.perf_counter()
        runner = target.open(exported.files[0], settings)
        try:
            tolerance = target.tolerance(settings, runner.inference_precision)
            record["inference_precision"] = runner.inference_precision
            record.update(verify(runner, reference, tolerance, settings.verify_batch))
        finally:
            runner.close()
        record["convert_seconds"] = round(convert_done - started, 3)
        record["verify_seconds"] = round(time.perf_counter() - convert_done, 3)
    except Exception as exc:  # a converter or runtime crash fails this artifact, not the others
        interrupts.reraise_if_interrupted(exc)
        message = str(exc) if isinstance(exc, SlimdeployError) else f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        record.update({"valid": False, "error": message})
    record.setdefault("inference_precision", None)
    record["seconds"] = round(time.perf_counter() - started, 3)

    staged = [p for p in (exported.files if exported else []) if p.is_file()]
    record.update(_file_facts(staged))
    finals = target.files(out_dir, model_name)
    if record.get("valid"):
        for path in finals:  # what an earlier failed export (--force) left for inspection
            path.with_name(path.name + FAILED_SUFFIX).unlink(missing_ok=True)
        _promote(staged, [out_dir / p.name for p in staged])
        record["path"] = finals[0].name
        record["files"] = [p.name for p in finals]
    else:
        # A replaced (--force) artifact must not survive under its final name beside a failure.
        for path in finals:
            path.unlink(missing_ok=True)
        kept = [out_dir / f"{p.name}{FAILED_SUFFIX}" for p in staged]
        _promote(staged, kept)
        record["path"] = kept[0].name if kept else None
        record["files"] = [p.name for p in kept]
        record["valid"] = False
    return record


def _promote(staged: list[Path], finals: list[Path]) -> None:
    # Primary file (.xml) last: it never appears without the files it refers to (.bin).
    for src, dst in reversed(list(zip(staged, finals))):
        os.replace(src, dst)


def _file_facts(files: list[Path]) -> dict:
    """Sizes and hashes: bytes and gzip bytes summed over an artifact's files; sha256 of the
    primary file, and of each file in ``file_sha256``."""
    total = zipped = 0
    hashes = {}
    for path in files:
        data = path.read_bytes()
        total += len(data)
        zipped += len(gzip.compress(data, compresslevel=9, mtime=0))
        hashes[path.name] = hashlib.sha256(data).hexdigest()
    return {"bytes": total, "gzip_bytes": zipped, "sha256": next(iter(hashes.values()), None), "file_sha256": hashes}


FIELD_ORDER = (
    "model", "source", "target", "path", "files", "precision", "inference_precision", "input_name", "input_dtype",
    "input_range", "input_shape",
    "output_name", "batch", "bytes", "gzip_bytes", "sha256", "params", "nonzero_params", "flops", "widths",
    "max_abs_diff", "mean_abs_diff", "top1_agreement", "test_accuracy", "keras_test_accuracy", "tolerance",
    "min_top1_agreement", "valid", "error", "seconds", "converter", "runtime", "versions",
)


def _ordered(record: dict) -> dict:
    """The documented fields first, in a fixed order; target-specific facts after them."""
    first = {key: record.get(key) for key in FIELD_ORDER}
    return {**first, **{key: value for key, value in record.items() if key not in first}}
