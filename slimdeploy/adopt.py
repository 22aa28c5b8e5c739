"""Adoption: a user's trained Keras model becomes a run's dense model (``RUN_DIR/dense/``).

The user's file is read, never written: ``dense/model.keras`` is the model re-saved (checked to
give the same outputs) and evaluated; ``dense/metrics.json`` holds an ``adopted`` block
(``records.run.AdoptedModel``) instead of a recipe. An adopted model has no true θ0, so
``init.weights.h5`` holds it re-initialised with its own layers' initializers under the seed.
Training settings come from the flags, else the saved compile config, else ``TrainingSettings``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np

from slimdeploy import environment, fsutil, saved_run
from slimdeploy.recipes import OPTIMIZER_CLASSES, OPTIMIZERS, TrainingSettings, keras_loss, training_from_record
from slimdeploy.data import Dataset, load_dataset
from slimdeploy.errors import UserError, WorkError
from slimdeploy.models import (count_flops, count_params, load_model, model_format, require_single_io, save_model,
                               save_weights, saved_compile_config)
from slimdeploy.prune.lottery import check_prune
from slimdeploy.records.base import present
from slimdeploy.records.run import AdoptedModel, DataInfo, DenseMetrics
from slimdeploy.rundir import ModelDir, RunDir
from slimdeploy.train import RETRAINING, TrainSettings, check_input_shape, predict, seed_everything, split_accuracies

TRAINING_FLAGS = RETRAINING  # the older name
# What describes the split a run was adopted with: the same values mean the same arrays.
SPLIT_KEYS = ("sha256", "seed", "validation_size", "limit", "scale")
CHECK_ROWS = 256  # rows compared between the user's model and its re-saved copy
INIT_WEIGHTS_NOTE = ("not the true θ0: the model re-initialised with its own layers' initializers under the seed "
                     "(prune --reset init retrains from these)")


def adopt_model(model_path, data, out_dir, *, validation_size=None, seed: int = 0, scale=None,
                training: dict | None = None, force: bool = False, progress=None) -> dict:
    """``adopt`` with the settings as keywords (``training``: those of ``RETRAINING``); returns
    ``metrics.json``'s content. ``progress`` is accepted for symmetry with ``train_dense``."""
    train = TrainSettings(data=data, seed=seed, validation_size=validation_size, scale=scale, **(training or {}))
    return adopt(model_path, train, out_dir, force=force).to_json()


def adopt(model_path, train: TrainSettings, out_dir, *, force: bool = False) -> DenseMetrics:
    """Write ``out_dir/dense/`` for the user's model at ``model_path``, trained on ``train.data``."""
    model_path = Path(model_path).expanduser()
    sha256 = fsutil.file_sha256(model_path) if model_path.is_file() else None  # of the very bytes loaded next
    model, dataset = load_for_adoption(model_path, train)
    settings, origin, ignored = training_settings(model, model_path, train)
    seed = train.seed or 0
    with fsutil.atomic_dir(RunDir(out_dir).dense.path, force=force) as staging_path:
        staging = ModelDir(staging_path)
        save_model(model, staging.model)
        _check_same_outputs(model, staging.model, dataset.x_test[:CHECK_ROWS], model_path)
        save_weights(reinitialised(model, seed), staging.init_weights)
        metrics = DenseMetrics(
            model="dense", **split_accuracies(model, dataset), params=count_params(model), flops=count_flops(model),
            seed=seed, data=DataInfo.from_json(dataset.describe()),
            adopted=AdoptedModel(
                source=str(model_path.resolve()), sha256=sha256, format=model_format(model_path),
                theta0=False, init_weights=INIT_WEIGHTS_NOTE, training=dataclasses.asdict(settings),
                training_from=origin, **({"ignored": ignored} if ignored else {}),
                validation=validation_origin(dataset)),
            versions=environment.library_versions())
        metrics.save(staging.metrics)
    return metrics


def load_for_adoption(model_path: Path, train: TrainSettings):
    """The user's model (safe mode) and ``train.data`` (a path, or a ``Dataset``), checked to fit
    each other: one-line errors for missing data, a file that is no model, inputs or labels the
    model cannot take."""
    if train.data is None:
        raise UserError(f"adopting {model_path} needs --data: the data it was trained on (an .npz, a folder of "
                        "class-named image folders, or the Fashion-MNIST directory)")
    model = load_model(model_path, "model")
    require_single_io(model, model_path, "model")
    dataset = train.data if isinstance(train.data, Dataset) else load_dataset(
        train.data, train.validation_size, train.seed or 0, limit=train.limit, scale=train.scale,
        input_shape=tuple(model.input_shape[1:]))
    check_input_shape(model, dataset, f"model {model_path}")
    return model, dataset


def reinitialised(model, seed: int):
    """The same architecture with fresh weights from its own layers' initializers (seeded)."""
    import keras  # lazy: heavy

    seed_everything(seed)
    return keras.models.clone_model(model)


def _check_same_outputs(model, saved_path: Path, rows: np.ndarray, source: Path) -> None:
    if not len(rows):
        return
    again = load_model(saved_path, "re-saved model")
    difference = float(np.max(np.abs(predict(model, rows) - predict(again, rows))))
    if not difference <= 1e-6:
        raise WorkError(f"re-saving {source} as .keras changed its outputs (max |diff| {difference:.3g})")


def training_settings(model, model_path: Path, train: TrainSettings) -> tuple[TrainingSettings, dict, list]:
    """The settings retraining uses, where each came from, and what of the saved compile
    config was left unused (with why)."""
    values, ignored = _from_compile_config(saved_compile_config(model_path))
    origin = {key: "compile_config" for key in values}
    given = {key: value for key, value in train.retraining().items() if value is not None}
    values.update(given)
    origin.update({key: "flags" for key in given})
    # Only a cross-entropy takes logits (train.make_loss); the last layer says which it gets.
    if "from_logits" not in values and values.get("loss", TrainingSettings.loss).endswith("_crossentropy"):
        logits = _logits_from_last_layer(model)
        if logits is not None:
            values["from_logits"], origin["from_logits"] = logits, "last_layer"
    values["seed"] = train.seed or 0
    defaults = dataclasses.asdict(TrainingSettings())
    origin.update({key: "defaults" for key in defaults if key not in origin and key != "seed"})
    origin["seed"] = "adoption"
    settings = training_from_record(values, f"training settings of {model_path}")
    return settings, {key: origin[key] for key in defaults}, ignored


_OPTIMIZER_NAMES = {class_name: name for name, class_name in OPTIMIZER_CLASSES.items()}


def _from_compile_config(config: dict | None) -> tuple[dict, list]:
    """TrainingSettings values a saved compile config gives, and notes on what it could not give."""
    values, ignored = {}, []
    if not isinstance(config, dict):
        return values, ignored
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict):
        values.update(_optimizer_values(optimizer, ignored))
    elif isinstance(optimizer, str):
        if optimizer.lower() in OPTIMIZERS:
            values["optimizer"] = optimizer.lower()
        else:
            ignored.append(f"optimizer {optimizer!r}: not one of {', '.join(OPTIMIZERS)}")
    loss = config.get("loss")
    if loss is not None:
        values.update(_loss_values(loss, ignored))
    return values, ignored


def _optimizer_values(optimizer: dict, ignored: list) -> dict:
    class_name = optimizer.get("class_name")
    options = optimizer.get("config") if isinstance(optimizer.get("config"), dict) else {}
    name = _OPTIMIZER_NAMES.get(class_name)
    if name is None:
        ignored.append(f"optimizer {class_name}: not one of {', '.join(OPTIMIZER_CLASSES.values())}")
        return {}
    values: dict = {"optimizer": name}
    rate = options.get("learning_rate")
    if isinstance(rate, dict):  # a schedule: its starting rate, said in the record
        start = (rate.get("config") or {}).get("initial_learning_rate")
        ignored.append(f"learning-rate schedule {rate.get('class_name')}: "
                       + ("its initial_learning_rate is used as a constant rate" if start is not None else "not used"))
        rate = start
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        values["learning_rate"] = _saved_float(rate)
    if name in ("sgd", "rmsprop") and isinstance(options.get("momentum"), (int, float)):
        values["momentum"] = _saved_float(options["momentum"])
    if isinstance(options.get("weight_decay"), (int, float)):
        values["weight_decay"] = _saved_float(options["weight_decay"])
    return values


def _saved_float(value: float) -> float:
    """Keras keeps hyperparameters as float32: 3e-4 is saved as 0.0003000000142492354."""
    return float(str(np.float32(value)))


def _loss_values(loss, ignored: list) -> dict:
    """``loss`` and ``from_logits`` from a saved loss: a name (probabilities, as Keras reads it) or a config."""
    if isinstance(loss, str):
        name, options = loss, {}
    elif isinstance(loss, dict) and loss.get("class_name") == "function" and isinstance(loss.get("config"), str):
        name, options = loss["config"], {}
    elif isinstance(loss, dict) and isinstance(loss.get("class_name"), str):
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", loss["class_name"]).lower()
        options = loss.get("config") if isinstance(loss.get("config"), dict) else {}
    else:
        ignored.append("loss: one loss per output is not supported (slimdeploy takes one output)")
        return {}
    try:
        keras_loss(name)
    except Exception:  # Keras says "unknown" as ValueError, KeyError or TypeError
        ignored.append(f"loss {name!r}: not a Keras built-in loss")
        return {}
    return {"loss": name, "from_logits": bool(options.get("from_logits", False))}


def _logits_from_last_layer(model) -> bool | None:
    """softmax or sigmoid at the end: probabilities (False); no activation: logits (True); else None."""
    import keras  # lazy: heavy

    layer = model.outputs[0]._keras_history.operation
    if isinstance(layer, keras.layers.Softmax):
        return False
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    return {"softmax": False, "sigmoid": False, "linear": True}.get(activation)


def _other_adoption(run: RunDir, model_path: Path, dataset: Dataset, train: TrainSettings) -> str | None:
    """How ``run``'s dense model differs from adopting ``model_path`` on ``dataset``, or None."""
    metrics = saved_run.dense_metrics(run.root)
    adopted = metrics.adopted
    if not adopted:
        return f"a model trained from a recipe, not {model_path}"
    if adopted.sha256 != fsutil.file_sha256(model_path):
        return f"another model ({adopted.source}, sha256 {adopted.sha256[:12]}…), not {model_path}"
    recorded, wanted = metrics.data or DataInfo(), DataInfo.from_json(dataset.describe())
    changed = [key for key in SPLIT_KEYS if present(getattr(recorded, key)) != present(getattr(wanted, key))]
    # --epochs is also the prune's own setting (epochs per round), so it may change between prunes.
    changed += [key for key, value in train.retraining().items() if value is not None and key != "epochs"
                and (adopted.training or {}).get(key) != value]
    if changed:
        return f"{model_path} adopted with other data or settings ({', '.join(changed)})"
    return None


def adopt_for_pruning(model_file, run_dir, prune_settings, train: TrainSettings, *, resume: bool = False,
                      force: bool = False) -> Dataset:
    """Adopt ``model_file`` into ``run_dir/dense`` (or reuse the same adoption there), check that
    each of ``prune_settings`` can prune it, and return the loaded data. If a check fails before
    pruning starts, nothing this call made is left."""
    model_file = Path(model_file).expanduser()
    _, dataset = load_for_adoption(model_file, train)
    run = RunDir(run_dir)
    with fsutil.remove_if_created(run.root, on=(UserError,)), fsutil.remove_if_created(run.dense.path, on=(UserError,)):
        adopt_or_reuse(model_file, dataset, run.root, train, force=force)
        for settings in prune_settings:  # the model's own refusals (no Dense layer, unreachable --target)
            check_prune(run.root, settings, resume=resume, force=force, data=dataset)
    return dataset


def adopt_or_reuse(model_file, dataset: Dataset, run_dir, train: TrainSettings, *, force: bool = False) -> None:
    """Adopt ``model_file`` into ``run_dir``, unless this very adoption (the same model and data
    sha256, split and training flags) is there already. Another dense model there is a one-line
    error, or with ``force`` replaced together with everything made from it."""
    run = RunDir(run_dir)
    if run.dense.path.exists():
        problem = _other_adoption(run, Path(model_file), dataset, train)
        if problem is None:
            return
        if not force:
            raise UserError(f"{run.dense.path} holds {problem}; pass --force to replace it, or give another --out")
        for path in run.derived_paths():  # no result may describe the model it replaces
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    adopt(model_file, dataclasses.replace(train, data=dataset), run_dir, force=force)


def validation_origin(dataset: Dataset) -> str:
    """Whether an adopted model's validation rows were held out from its training, as far as we know."""
    if dataset.validation_given:
        return "x_val, y_val as given in the data"
    return (f"{dataset.validation_size} rows drawn (seed {dataset.seed}) from x_train: the adopted model may have "
            f"been trained on them, so validation {dataset.task.metric_label} (the reset winner, --max-drop) can favour it; "
            "give x_val, y_val in the .npz to hold them out")
