"""The stages as Python functions, for notebooks and scripts (the CLI runs the same code).

    from slimdeploy import prune_model, export_models, bench_models, make_report

    lottery = prune_model("my_model.keras", data="my_data.npz", out="runs/mine", mode="structured")
    manifest = export_models("runs/mine", targets=["onnx", "openvino"])
    results = bench_models("runs/mine", batches=[1, 64])
    paths = make_report("runs/mine")

Each function takes the stage's settings as keyword arguments (the fields of
``PruneSettings``, ``ExportSettings``, ``BenchSettings``, ``ReportSettings``: the CLI's
options with ``_`` for ``-``), writes the same files as the command, and returns the record it
wrote (``slimdeploy.records``). Wrong input raises ``slimdeploy.errors.UserError`` with the
same one-line message the CLI prints; so does a directory another process is writing
(``slimdeploy.dirlock``: each stage locks what it writes, as the CLI does).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from slimdeploy.adopt import adopt_for_pruning, adopt_or_reuse, load_for_adoption
from slimdeploy.bench.api import run_bench
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.recipes import DEFAULT_RECIPE
from slimdeploy.dirlock import DirectoryLock
from slimdeploy.errors import UserError
from slimdeploy.export.api import export_source
from slimdeploy.export.settings import ExportSettings
from slimdeploy.models import model_format
from slimdeploy.prune.lottery import prune_run
from slimdeploy.prune.settings import PruneSettings
from slimdeploy.records.export import ExportManifest
from slimdeploy.records.lottery import LotteryRecord
from slimdeploy.records.run import DenseMetrics
from slimdeploy.report.api import make_report as write_report
from slimdeploy.report.settings import ReportSettings
from slimdeploy.rundir import RunDir
from slimdeploy.train import RETRAINING, TrainSettings, train_dense


def adopt_model(model, data, out=None, *, seed: int = 0, validation_size=None, scale=None, force: bool = False,
                **training):
    """Make ``out`` (default ``runs/<model stem>``) a run directory whose dense model is the trained
    ``model`` file (.keras or legacy .h5), evaluated on ``data``; the same adoption there is reused,
    another model is replaced only with ``force``. ``training``: the ``RETRAINING`` settings (default:
    the model's saved compile config). Returns ``records.run.DenseMetrics``."""
    _refuse_unknown(training, RETRAINING, "adopt_model")
    out = Path(out) if out is not None else Path("runs") / Path(model).stem
    train = TrainSettings(data=data, seed=seed, validation_size=validation_size, scale=scale, **training)
    _, dataset = load_for_adoption(Path(model), train)
    with DirectoryLock(out, stage="adopt"):  # one writer of the run directory at a time
        adopt_or_reuse(model, dataset, out, train, force=force)
        return DenseMetrics.load(RunDir(out).dense_metrics)


def train_model(recipe: str = DEFAULT_RECIPE, out=None, *, force: bool = False, progress=None, **settings):
    """Train a recipe (a name from ``models/`` or a TOML path) into ``out`` (default
    ``runs/<recipe name>``); ``settings``: ``TrainSettings`` fields (data, epochs, seed, limit, ...).
    Returns ``records.run.DenseMetrics``."""
    _refuse_unknown(settings, _field_names(TrainSettings) - {"recipe", "model"}, "train_model")
    return train_dense(*TrainSettings(recipe=recipe, **settings).prepare(out, force=force), force=force,
                       progress=progress)


def prune_model(source, *, data=None, out=None, mode: str = "structured", seed: int = 0, validation_size=None,
                scale=None, resume: bool = False, force: bool = False, progress=None, **settings):
    """Prune a run directory, or adopt a trained model file (with ``data``) into ``out`` and prune it.
    ``mode``: structured, unstructured or both; ``settings``: ``PruneSettings`` fields and, when
    adopting, the ``RETRAINING`` ones. Returns the ``records.lottery.LotteryRecord`` (mode "both": by mode)."""
    modes = ("structured", "unstructured") if mode == "both" else (mode,)
    training = {key: settings.pop(key) for key in RETRAINING if key in settings and key != "epochs"}
    _refuse_unknown(settings, _field_names(PruneSettings) - {"mode"}, "prune_model")
    path = Path(source).expanduser()
    adopting = model_format(path) is not None and not path.is_dir()
    if training and not adopting:
        raise UserError(f"prune_model: {', '.join(training)}: only when adopting a model file")
    all_settings = [PruneSettings(mode=name, **settings).validated() for name in modes]
    run_dir = (Path(out) if out is not None else Path("runs") / path.stem) if adopting else path
    # Adopting writes RUN_DIR/dense before the prunes: one lock over both (prune_run enters it again).
    with DirectoryLock.when(adopting, run_dir, stage="prune"):
        if adopting:
            # As in the CLI: --epochs is both the retraining per round and the recorded training epochs.
            train = TrainSettings(data=data, seed=seed, validation_size=validation_size, scale=scale,
                                  epochs=settings.get("epochs"), **training)
            data = adopt_for_pruning(path, run_dir, all_settings, train, resume=resume, force=force)
        records = {chosen.mode: LotteryRecord.from_json(prune_run(run_dir, chosen, resume=resume, force=force,
                                                                  progress=progress, data=data))
                   for chosen in all_settings}
    return records if mode == "both" else records[mode]


def export_models(source, *, out=None, data=None, force: bool = False, resume: bool = False, progress=None,
                  **settings):
    """Export a run directory or a model file; ``settings``: ``ExportSettings`` fields
    (targets, precision, opset, ...). Returns ``records.export.ExportManifest``."""
    chosen = _settings(ExportSettings, settings, "export_models")
    return ExportManifest.from_json(export_source(source, chosen, out, force=force, resume=resume, progress=progress,
                                                  data=data))


def bench_models(*sources, out=None, force: bool = False, resume: bool = False, progress=None, **settings):
    """Benchmark run directories, export directories or artifact files (the first is the
    baseline); ``settings``: ``BenchSettings`` fields (runtimes, batches, threads, ...).
    Returns ``records.bench.BenchResults``."""
    if not sources:
        raise UserError("bench_models: give at least one run directory, export directory or artifact")
    chosen = _settings(BenchSettings, settings, "bench_models")
    return run_bench([str(source) for source in sources], chosen, out, force=force, resume=resume, progress=progress)


def make_report(source, *, out=None, force: bool = False, **settings) -> list[Path]:
    """Write the report of a run directory or bench.json; ``settings``: ``ReportSettings``
    fields (formats, baseline, ...). Returns the paths written."""
    return write_report(source, _settings(ReportSettings, settings, "make_report"), out, force=force)


def _settings(cls, given: dict, where: str):
    _refuse_unknown(given, _field_names(cls), where)
    return cls(**given).validated()


def _field_names(cls) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def _refuse_unknown(given: dict, known, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
