"""SOURCE arguments -> the models to benchmark and each model's artifact files. A source is a run
directory (the valid artifacts its ``exports/export.json`` lists, and its Keras models) or an artifact
file of any suffix a registered runtime runs (the model's name is the file stem).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.bench.artifacts import ArtifactInfo, inspect_artifact, known_suffixes
from slimdeploy.errors import UserError
from slimdeploy.export.registry import get_target, names as export_targets, verifying_runtime
from slimdeploy.prune.ticket import ticket_entry
from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import BenchModel, SparseInt8
from slimdeploy.records.export import Artifact
from slimdeploy.records.lottery import LotteryRecord
from slimdeploy.records.run import DenseMetrics
from slimdeploy.rundir import MODES, ExportDir, RunDir, aligned_model_name
from slimdeploy.runtimes.openvino import SPARSE_RATE_OPTION
from slimdeploy.runtimes.registry import names as runtime_names, pick_artifact

INFO_KEYS = ("params", "nonzero_params", "flops", "nonzero_flops", "widths", "test_accuracy",
             "keras_test_accuracy", "weights_remaining", "input_range", "variant_of", "precision")
# The OpenVINO-only twin of an int8 variant opened with sparse int8 weights: "<variant>-sparse".
SPARSE_SUFFIX = "-sparse"
SPARSE_RATE_KEY = "sparse_weights_decompression_rate"  # in a twin's models info
ARTIFACT_SHA256_KEY = "artifact_sha256"  # in a model's info: {runtime: sha256 of the artifact it runs}
RUNTIME_ACCURACY_KEY = "runtime_test_accuracy"  # in a model's info: {runtime: its test accuracy}


@dataclass
class ModelSource:
    name: str
    # suffix -> artifact path
    artifacts: dict = field(default_factory=dict)
    inspected: dict = field(default_factory=dict)  # suffix -> ArtifactInfo
    # The model's facts being gathered (bench.json's models entry, keys in the order found).
    info: dict = field(default_factory=dict)
    # Only these runtimes run it (None: every runtime that reads one of its artifacts).
    runtimes: tuple | None = None
    # Options its sessions get on top of the group's (e.g. OpenVINO's sparse weights rate).
    session_options: dict = field(default_factory=dict)

    @property
    def facts(self) -> BenchModel:
        return BenchModel.from_json(self.info)

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
    sparse_int8: SparseInt8 | None = None

    @property
    def sparse_twins(self) -> list[str]:
        """The OpenVINO-only sparse int8 models (``add_sparse_twins``) being benched."""
        return [name for name, model in self.models.items() if SPARSE_RATE_KEY in model.info]

    def default_baseline(self) -> str:
        """The model others are compared with when --baseline-model is not given: ``dense`` of a
        run directory, else the first model given (``bench a.onnx b.onnx``: a)."""
        if self.run_dir is not None and "dense" in self.models:
            return "dense"
        return next(iter(self.models))


def is_lone_export(path: Path) -> bool:
    """An export directory of a lone model file (`export model.keras` -> exports/model/), not a run."""
    return path.is_dir() and ExportDir(path).manifest.is_file() and not RunDir(path).dense.path.is_dir()


def resolve_sources(sources, model_filter=None, sparse_rate: float | None = None, runtimes=None) -> Sources:
    """The models of ``sources``; with ``sparse_rate``, each int8 variant of a model with zeros
    also gets its OpenVINO-only sparse twin (``add_sparse_twins``). ``runtimes``: the ones the
    bench will run (None: every one), whose artifacts' sha256 bench.json records."""
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
        if is_lone_export(path):
            if not _add_export(manifest, models, notes, {}, Path.cwd()):
                raise UserError(f"{manifest} lists no valid artifact (run `slimdeploy export` again)")
        elif path.is_dir():
            run_dir = run_dir or path
            shape = _add_run_dir(path, models, notes)
            recipe_shape = recipe_shape or shape
        else:
            if path.suffix not in known_suffixes():
                raise UserError(f"source {path}: unsupported file type (give a run directory or {', '.join(known_suffixes())})")
            missing = [p for p in artifact_files(path)[1:] if not p.is_file()]
            if missing:
                raise UserError(f"source {path}: its weights file {missing[0].name} is missing")
            models.setdefault(path.stem, ModelSource(path.stem)).add(path, str(path))
    if model_filter:
        unknown = [m for m in model_filter if m not in models]
        if unknown:
            raise UserError(f"--models: no model named {', '.join(unknown)} in the sources (found: {', '.join(models) or 'none'})")
        models = {name: model for name, model in models.items() if name in model_filter}  # order: as given
    if sparse_rate is not None:  # after --models: a sparse twin comes with its int8 variant
        models = add_sparse_twins(models, sparse_rate)
    if not models:
        raise UserError(f"no models found in {', '.join(map(str, sources))} (a run directory needs exports/export.json "
                        "or Keras models; run `slimdeploy export` first)")
    hashes: dict = {}  # path -> sha256: a sparse twin shares its variant's files
    for model in models.values():
        for suffix, artifact in model.artifacts.items():
            info = inspect_artifact(artifact)
            model.inspected[suffix] = info
            for key, value in info.model_info().items():
                model.info.setdefault(key, value)
        model.info[ARTIFACT_SHA256_KEY] = artifact_hashes(model, hashes, runtimes)
    return Sources(models=models, run_dir=run_dir, recipe_input_shape=recipe_shape, notes=notes)


def artifact_hashes(model: ModelSource, cache: dict | None = None, runtimes=None) -> dict[str, str]:
    """{runtime: sha256 of the artifact that runtime runs}, for ``runtimes`` (None: every one):
    what a report merging benchmarks from several machines checks to be sure they measured the
    same model. Only the runtimes benched: a large model's unused files are not read."""
    cache = {} if cache is None else cache
    hashes = {}
    for runtime in runtime_names():
        wanted = (model.runtimes is None or runtime in model.runtimes) and (runtimes is None or runtime in runtimes)
        artifact = pick_artifact(runtime, model.artifacts.values()) if wanted else None
        if artifact is not None:
            if artifact not in cache:
                cache[artifact] = artifact_sha256(artifact)
            hashes[runtime] = cache[artifact]
    return hashes


def artifact_files(path: Path) -> list[Path]:
    """An artifact's files, primary first: those its export target writes (an IR: .xml and .bin)."""
    target = next((t for t in map(get_target, export_targets()) if t.suffixes[:1] == (path.suffix,)), None)
    return target.files(path.parent, path.stem) if target is not None else [path]


def artifact_sha256(path: Path) -> str:
    """A one-file artifact's sha256 (as export.json's ``file_sha256`` of it); an artifact of several
    files (an IR's graph says nothing of its weights) is the sha256 of a `sha256sum` listing of them.
    Hashed from the files measured, never taken from export.json: a file replaced after export must
    not pass for the model exported."""
    files = artifact_files(path)
    if len(files) == 1:
        return fsutil.file_sha256(path)
    listing = "".join(f"{fsutil.file_sha256(p)}  {p.name}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _add_export(export_json: Path, models: dict, notes: list, keras_sources: dict, base: Path) -> bool:
    """The valid artifacts an ``export.json`` lists; whether it listed any. ``keras_sources``
    collects each model's Keras file, read relative to ``base``. Any file with an ``artifacts`` list
    is read (files before schema versions too); each entry becomes a record once it is known to
    name its model and path."""
    raw = fsutil.read_json(export_json, "export manifest")
    if not isinstance(raw, dict) or not isinstance(raw.get("artifacts"), list):
        raise UserError(f"{export_json} is not a slimdeploy export manifest (no 'artifacts' list)")
    found_any = False
    for raw_entry in raw["artifacts"]:
        if not isinstance(raw_entry, dict) or "model" not in raw_entry or "path" not in raw_entry:
            raise UserError(f"{export_json}: every artifact needs 'model' and 'path'")
        entry = Artifact.from_json(raw_entry, export_json)
        name = str(entry.model)
        # A variant's source is the float model it was quantized from: TensorFlow would run
        # that fp32 file under the variant's name, so a variant never gets a Keras source.
        if entry.source and not entry.variant_of:
            keras_sources.setdefault(name, base / entry.source)
        if not entry.valid:
            note = (f"skipped {name}/{entry.target}: not valid in {export_json.name} "
                    f"({entry.error or 'verification failed'})")
            if note not in notes:
                notes.append(note)
            continue
        path = export_json.parent / entry.path
        if not path.is_file():
            raise UserError(f"{export_json} lists {entry.path} but {path} does not exist")
        model = models.setdefault(name, ModelSource(name))
        model.add(path, str(export_json))
        _fill(model.info, entry, INFO_KEYS)
        runtime = verifying_runtime(entry.target)
        if runtime is not None and entry.test_accuracy is not None:
            # An int8 variant's test score differs per runtime: each artifact's own, by the runtime that runs it.
            model.info.setdefault(RUNTIME_ACCURACY_KEY, {}).setdefault(runtime, entry.test_accuracy)
        found_any = True
    return found_any


# The share of zero parameters from which a model counts as sparse: a trained dense model has
# a few stray zeros (a dead unit's bias), which give a sparse kernel nothing to skip.
MIN_ZERO_FRACTION = 0.05


def _has_zeros(params, nonzero) -> bool:
    if not isinstance(params, int) or not isinstance(nonzero, int) or params <= 0:
        return False
    return 1 - nonzero / params >= MIN_ZERO_FRACTION


def add_sparse_twins(models: dict, rate: float) -> dict:
    """For each int8 variant whose float model has zeros, ``<variant>-sparse``: the same file,
    run by OpenVINO only, whose CPU plugin packs int8 weights sparser than ``rate`` (AMX).
    Added right after its variant, so tables show them side by side."""
    twins = {}
    for name, model in models.items():
        facts = model.facts
        if facts.precision != "int8" or not facts.variant_of:
            continue
        source = models[facts.variant_of].facts if facts.variant_of in models else BenchModel()
        # The variant's own counts where it has them, else its float model's.
        params = facts.params if facts.params is not ABSENT else source.params
        nonzero = facts.nonzero_params if facts.nonzero_params is not ABSENT else source.nonzero_params
        if not _has_zeros(params, nonzero):
            continue  # a sparse kernel would have nothing to skip
        twin = ModelSource(name + SPARSE_SUFFIX, artifacts=dict(model.artifacts), runtimes=("openvino",),
                           session_options={SPARSE_RATE_OPTION: rate})
        twin.info.update({**model.info, "variant_of": name, SPARSE_RATE_KEY: rate})
        accuracy = twin.info.pop(RUNTIME_ACCURACY_KEY, None) or {}
        if any(runtime in twin.runtimes for runtime in accuracy):  # only its runtimes' scores, written last
            twin.info[RUNTIME_ACCURACY_KEY] = {r: score for r, score in accuracy.items() if r in twin.runtimes}
        twins[name] = twin
    return {m.name: m for model in models.values() for m in (model, twins.get(model.name)) if m is not None}


def run_keras_models(run: RunDir) -> dict[str, Path]:
    """The Keras models a run directory holds, when export.json does not name their source."""
    models = {"dense": run.dense_model}
    for mode in MODES:
        models[mode] = run.mode(mode).ticket
        if run.mode(mode).path.is_dir():
            models.update({aligned_model_name(mode, n): path for n, path in run.mode(mode).aligned_tickets().items()})
    return models


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
            model = models.setdefault(name, ModelSource(name))
            model.add(path, str(run_dir))
            model.info.setdefault("precision", "fp32")  # a Keras model is the float model
            found_any = True
    if not found_any:
        raise UserError(f"run directory {run_dir} has no exports/export.json and no Keras models "
                        f"(run `slimdeploy train`, `prune` and `export` first)")
    # The test score and widths from the run's own records, where export.json lacks them.
    metrics = DenseMetrics.load(run.dense_metrics) if run.dense_metrics.is_file() else DenseMetrics()
    if "dense" in models:
        _fill(models["dense"].info, metrics, ("test_accuracy", "params", "flops", "widths"))
    for mode in MODES:
        lottery = run.mode(mode).lottery
        if mode in models and lottery.is_file():
            # Counts come from the artifacts themselves (several seeds' rounds are averaged here).
            _fill(models[mode].info, ticket_entry(LotteryRecord.load(lottery)),
                  ("test_accuracy", "widths", "weights_remaining"))
    shape = (metrics.recipe or {}).get("input_shape")
    return tuple(shape) if isinstance(shape, list) else None


def _fill(info: dict, record, keys) -> None:
    """``info`` (a model's facts being gathered) takes each of ``keys`` that ``record`` has (as a field,
    or a key it does not model) and ``info`` lacks."""
    for key in keys if record is not None else ():
        value = getattr(record, key) if hasattr(record, key) else record.extra.get(key)
        if value is not None and value is not ABSENT:
            info.setdefault(key, value)


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
