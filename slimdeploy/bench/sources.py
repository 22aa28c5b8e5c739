"""SOURCE arguments -> the models to benchmark and each model's artifact files.

A source is a run directory (its ``exports/export.json`` lists the valid ONNX, OpenVINO
and TensorRT artifacts, and its Keras models are what TensorFlow runs) or an artifact
file (``.onnx``, ``.xml``, ``.keras``, ``.engine``: the model's name is the file stem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.bench.artifacts import ArtifactInfo, inspect_artifact, known_suffixes
from slimdeploy.errors import UserError
from slimdeploy.rundir import MODES, ExportDir, RunDir

INFO_KEYS = ("params", "nonzero_params", "flops", "nonzero_flops", "widths", "test_accuracy",
             "keras_test_accuracy", "weights_remaining", "input_range")


@dataclass
class ModelSource:
    name: str
    # suffix -> artifact path
    artifacts: dict = field(default_factory=dict)
    inspected: dict = field(default_factory=dict)  # suffix -> ArtifactInfo
    info: dict = field(default_factory=dict)

    def add(self, path: Path, origin: str) -> None:
        suffix = path.suffix
        if suffix in self.artifacts and self.artifacts[suffix].resolve() != path.resolve():
            raise UserError(f"model {self.name!r} has two {suffix} artifacts ({self.artifacts[suffix]} and {path}, "
                            f"from {origin}); give one, or rename the file")
        self.artifacts[suffix] = path


@dataclass
class Sources:
    models: dict  # name -> ModelSource, in a stable order
    run_dir: Path | None = None
    # Non-batch input dims the run's recipe declares (None: not known).
    recipe_input_shape: tuple | None = None
    notes: list = field(default_factory=list)

    def default_baseline(self) -> str:
        """The model others are compared with when --baseline-model is not given: ``dense`` of a
        run directory, else the first model given (``bench a.onnx b.onnx``: a)."""
        if self.run_dir is not None and "dense" in self.models:
            return "dense"
        return next(iter(self.models))


def resolve_sources(sources, model_filter=None) -> Sources:
    if not sources:
        raise UserError("give at least one SOURCE: a run directory or artifact files (.onnx, .xml, .keras, .engine)")
    models: dict[str, ModelSource] = {}
    run_dir = None
    recipe_shape = None
    notes: list[str] = []
    for raw in sources:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"source {path} does not exist")
        manifest = ExportDir(path).manifest
        if path.is_dir() and manifest.is_file() and not RunDir(path).dense.path.is_dir():
            # An export directory of a lone model file (`export model.keras` -> exports/model/).
            if not _add_export(manifest, models, notes, {}, Path.cwd()):
                raise UserError(f"{manifest} lists no valid artifact (run `slimdeploy export` again)")
        elif path.is_dir():
            run_dir = run_dir or path
            shape = _add_run_dir(path, models, notes)
            recipe_shape = recipe_shape or shape
        else:
            if path.suffix not in known_suffixes():
                raise UserError(f"source {path}: unsupported file type (give a run directory or {', '.join(known_suffixes())})")
            if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
                raise UserError(f"source {path}: its weights file {path.with_suffix('.bin').name} is missing")
            models.setdefault(path.stem, ModelSource(path.stem)).add(path, str(path))
    if model_filter:
        unknown = [m for m in model_filter if m not in models]
        if unknown:
            raise UserError(f"--models: no model named {', '.join(unknown)} in the sources (found: {', '.join(models) or 'none'})")
        models = {name: model for name, model in models.items() if name in model_filter}  # order: as given
    if not models:
        raise UserError(f"no models found in {', '.join(map(str, sources))} (a run directory needs exports/export.json "
                        "or Keras models; run `slimdeploy export` first)")
    for model in models.values():
        for suffix, artifact in model.artifacts.items():
            info = inspect_artifact(artifact)
            model.inspected[suffix] = info
            for key, value in info.model_info().items():
                model.info.setdefault(key, value)
    return Sources(models=models, run_dir=run_dir, recipe_input_shape=recipe_shape, notes=notes)


def _add_export(export_json: Path, models: dict, notes: list, keras_sources: dict, base: Path) -> bool:
    """The valid artifacts an ``export.json`` lists; whether it listed any. ``keras_sources``
    collects each model's Keras file, read relative to ``base``."""
    manifest = fsutil.read_json(export_json, "export manifest")
    artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    if not isinstance(artifacts, list):
        raise UserError(f"{export_json} is not a slimdeploy export manifest (no 'artifacts' list)")
    found_any = False
    for entry in artifacts:
        if not isinstance(entry, dict) or "model" not in entry or "path" not in entry:
            raise UserError(f"{export_json}: every artifact needs 'model' and 'path'")
        name = str(entry["model"])
        if entry.get("source"):
            keras_sources.setdefault(name, base / entry["source"])
        if not entry.get("valid", False):
            note = (f"skipped {name}/{entry.get('target')}: not valid in {export_json.name} "
                    f"({entry.get('error') or 'verification failed'})")
            if note not in notes:
                notes.append(note)
            continue
        path = export_json.parent / entry["path"]
        if not path.is_file():
            raise UserError(f"{export_json} lists {entry['path']} but {path} does not exist")
        model = models.setdefault(name, ModelSource(name))
        model.add(path, str(export_json))
        for key in INFO_KEYS:
            if entry.get(key) is not None:
                model.info.setdefault(key, entry[key])
        found_any = True
    return found_any


def run_keras_models(run: RunDir) -> dict[str, Path]:
    """The Keras models a run directory holds, when export.json does not name their source."""
    return {"dense": run.dense_model, **{mode: run.mode(mode).ticket for mode in MODES}}


def _add_run_dir(run_dir: Path, models: dict, notes: list) -> tuple | None:
    run = RunDir(run_dir)
    export_json = run.export_manifest
    keras_sources = {}
    found_any = False
    if export_json.is_file():
        found_any = _add_export(export_json, models, notes, keras_sources, run_dir)
    else:
        notes.append(f"{export_json} not found: only the Keras models (TensorFlow runtime) are benchmarked")
    for name, path in run_keras_models(run).items():
        keras_sources.setdefault(name, path)
    for name, path in keras_sources.items():
        if path.suffix == ".keras" and path.is_file():
            models.setdefault(name, ModelSource(name)).add(path, str(run_dir))
            found_any = True
    if not found_any:
        raise UserError(f"run directory {run_dir} has no exports/export.json and no Keras models "
                        f"(run `slimdeploy train`, `prune` and `export` first)")
    metrics = fsutil.read_json(run.dense_metrics, "dense metrics") if run.dense_metrics.is_file() else None
    metrics = metrics if isinstance(metrics, dict) else {}
    _add_run_metrics(run, models, metrics)
    shape = (metrics.get("recipe") or {}).get("input_shape")
    return tuple(shape) if isinstance(shape, list) else None


def _add_run_metrics(run: RunDir, models: dict, dense_metrics: dict) -> None:
    """Accuracy and widths from the run's own records, where export.json lacks them."""
    if "dense" in models:
        for key in ("test_accuracy", "params", "flops", "widths"):
            if dense_metrics.get(key) is not None:
                models["dense"].info.setdefault(key, dense_metrics[key])
    for mode in MODES:
        lottery = run.mode(mode).lottery
        if mode not in models or not lottery.is_file():
            continue
        chosen = _ticket_round(lottery)
        # Counts come from the artifacts themselves (several seeds' rounds are averaged here).
        for key in ("test_accuracy", "widths", "weights_remaining"):
            if chosen is not None and chosen.get(key) is not None:
                models[mode].info.setdefault(key, chosen.get(key))


def _ticket_round(lottery: Path) -> dict | None:
    """The round the ticket was taken from; None when the record does not say (an unreadable
    file is an error, as everywhere; a record of another shape only adds nothing). Read as a
    plain object: a partial record still gives what it has, as it always did."""
    record = fsutil.read_json(lottery, "lottery record")
    rounds = record.get("rounds") if isinstance(record, dict) else None
    ticket = record.get("ticket") if isinstance(record, dict) else None
    if not isinstance(rounds, list) or not isinstance(ticket, dict):
        return None
    return next((r for r in rounds if isinstance(r, dict) and r.get("round") == ticket.get("round")), None)


def expected_input_shape(sources: Sources, requested: tuple | None, baseline: str) -> tuple[tuple | None, str]:
    """The non-batch input dims every artifact must take, and where that rule came from."""
    if requested:
        return tuple(requested), "--input-shape"
    if sources.recipe_input_shape:
        return tuple(sources.recipe_input_shape), f"the recipe of {sources.run_dir}"
    ordered = sorted(sources.models.values(), key=lambda m: m.name != baseline)
    for model in ordered:
        for info in model.inspected.values():
            if info.input_shape and all(isinstance(d, int) for d in info.input_shape[1:]):
                return tuple(info.input_shape[1:]), f"{info.path}"
    return None, ""


def check_fit(info: ArtifactInfo, expected: tuple | None, origin: str, batches, allow_reshape: bool) -> None:
    """Refuse, before any worker starts, an artifact whose input cannot take the bench's input."""
    if info.input_shape is None:
        return
    dims = list(info.input_shape)
    shown = "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"
    if expected is None and None in dims[1:]:
        raise UserError(f"artifact {info.path} takes input {shown}, whose dimensions after the batch are not all fixed; "
                        "give the shape to run it at with --input-shape")
    if expected is not None:
        wanted = "[" + ",".join(["N", *map(str, expected)]) + "]"
        fits = len(dims) == len(expected) + 1 and all(d is None or d == e for d, e in zip(dims[1:], expected))
        if not fits:
            raise UserError(f"artifact {info.path} takes input {shown}, which does not fit the model input {wanted} "
                            f"(from {origin})")
    if dims and dims[0] is not None and not allow_reshape:
        wrong = [b for b in batches if b != dims[0]]
        if wrong:
            raise UserError(f"artifact {info.path} has a static batch size of {dims[0]} (input {shown}); it cannot run "
                            f"--batch {wrong[0]} (re-export it with a dynamic batch dimension)")
