"""Reading what an earlier stage left in a run directory."""

from __future__ import annotations

from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.recipes import recipe_from_record, training_from_record
from slimdeploy.data import KERAS_SOURCE, load_dataset, locate, split_dataset
from slimdeploy.errors import UserError
from slimdeploy.records.base import present
from slimdeploy.records.run import DataInfo, DenseMetrics
from slimdeploy.rundir import RunDir


def dense_metrics(run_dir: str | Path) -> DenseMetrics:
    """``RUN_DIR/dense/metrics.json``, after checking that the run has a dense model at all."""
    run = RunDir(run_dir)
    run_dir, path = run.root, run.dense_metrics
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} is a file, not a run directory (give the directory that slimdeploy train --out wrote)")
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    if not run.has_dense_model():
        raise UserError(f"{run_dir} has no dense model (expected {run.dense.path}/model.keras and metrics.json; run `slimdeploy train --out {run_dir}` first)")
    raw = fsutil.read_json(path, DenseMetrics.WHAT)
    if not isinstance(raw, dict) or not ("recipe" in raw or "adopted" in raw):
        raise UserError(f"{path} is not a slimdeploy metrics file (no 'recipe')")
    return DenseMetrics.from_json(raw, path)


def run_recipe(run_dir: str | Path):
    """The recipe a trained run was built from (an adopted run has none: ``run_training``)."""
    metrics = dense_metrics(run_dir)
    if metrics.adopted:
        raise UserError(f"{run_dir} holds an adopted model ({metrics.adopted.source}), not one trained from a recipe")
    return recipe_from_record(metrics.recipe, str(RunDir(run_dir).dense_metrics))


def run_training(run_dir: str | Path, metrics: DenseMetrics | None = None):
    """The ``TrainingSettings`` every retraining of the run uses: its recipe's ``[training]``,
    or for an adopted model the settings recorded when it was adopted."""
    metrics = metrics or dense_metrics(run_dir)
    source = str(RunDir(run_dir).dense_metrics)
    if metrics.adopted:
        return training_from_record(metrics.adopted.training, f"{source}: adopted.training")
    return recipe_from_record(metrics.recipe, source).training


def adopted(run_dir: str | Path, metrics: DenseMetrics | None = None):
    return (metrics or dense_metrics(run_dir)).adopted or None


def run_dataset(run_dir: str | Path, data: str | Path | None = None, *, data_override: bool = False):
    """The same train/validation/test arrays the dense model was trained with: the recorded data,
    checked against its sha256, or ``data`` with the same sha256; other data is refused unless
    ``data_override`` (then the recorded split, seed and scaling are applied to it)."""
    run_dir = Path(run_dir)
    metrics = dense_metrics(run_dir)
    recorded = metrics.data or DataInfo()
    metrics_path = RunDir(run_dir).dense_metrics
    if not recorded.sha256:
        return _legacy_run_dataset(metrics, data)
    source = recorded.source
    # A folder of images is read at the size and colour mode the model was trained with.
    image_shape = present(recorded.input_shape) if recorded.kind == "image_folder" else None
    if data is None:
        if source != KERAS_SOURCE and not Path(source).exists():
            raise UserError(f"the data {run_dir} was trained on, {source}, no longer exists "
                            f"(recorded in {metrics_path}); give it again with --data")
        raw = locate(None if source == KERAS_SOURCE else source, input_shape=image_shape)
        if raw.sha256 != recorded.sha256:
            raise UserError(f"the data {run_dir} was trained on, {source}, has changed since "
                            f"(sha256 {raw.sha256[:12]}… is not the recorded {recorded.sha256[:12]}…)")
    else:
        given = Path(data).expanduser()
        raw = locate(given, input_shape=image_shape)  # a missing or broken --data is named as in train
        if raw.sha256 != recorded.sha256 and not data_override:
            raise UserError(f"--data {given} is not the data {run_dir} was trained on ({source}, sha256 "
                            f"{recorded.sha256[:12]}…); leave --data out to use the run's own data, "
                            "or pass --data-override to use this data anyway")
    return split_dataset(raw, recorded.validation_size, recorded.seed, present(recorded.limit), present(recorded.scale))


def _legacy_run_dataset(metrics: DenseMetrics, data):
    """Runs trained before the data was recorded with its sha256: re-derive the split."""
    described = metrics.data or DataInfo()
    limit = None
    if present(described.train) is not None and present(described.validation) is not None:
        full = described.train + described.validation
        limit = full if full < 60000 else None
    validation_size = metrics.recipe["dataset"]["validation_size"] if limit is None else described.validation
    dataset = load_dataset(data, validation_size=validation_size, seed=metrics.seed, limit=limit)
    if dataset.kind == "npz":
        # Such runs scaled .npz values by a guess that is no longer made: retraining is the fix.
        raise UserError(f"{dataset.source}: this run was trained before slimdeploy recorded how its data was "
                        "scaled; train it again (slimdeploy train --force) to use an .npz")
    return dataset
