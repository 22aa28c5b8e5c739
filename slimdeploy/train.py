"""Training: seeding, compiling from a recipe, fitting (optionally under masks), evaluating,
and the ``train`` stage that writes ``RUN_DIR/dense/``."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from slimdeploy import environment, fsutil
from slimdeploy.config import OPTIMIZER_CLASSES, Recipe, TrainingSettings
from slimdeploy.data import Dataset
from slimdeploy.dirlock import DirectoryLock
from slimdeploy.errors import UserError
from slimdeploy.models import build_model, count_flops, count_params, model_input_dtype, save_model, save_weights
from slimdeploy.progress import keras_epoch_callback
from slimdeploy.quiet import quiet_environment
from slimdeploy.records.run import DataInfo, DenseMetrics
from slimdeploy.rundir import ModelDir, RunDir
from slimdeploy.tasks import DEFAULT_TASK, Task

# Several batches per call into TensorFlow: same numbers, about 2x faster on small MLPs.
STEPS_PER_EXECUTION = 64


def quiet_tensorflow() -> None:
    quiet_environment()


def seed_everything(seed: int) -> None:
    """Fix Python, NumPy and TensorFlow randomness and make TF ops deterministic."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# The optimizers that take a momentum (Adam and AdamW have betas instead).
_WITH_MOMENTUM = ("sgd", "rmsprop")


def make_optimizer(training: TrainingSettings):
    import keras

    options = {"learning_rate": training.learning_rate}
    if training.optimizer in _WITH_MOMENTUM:
        options["momentum"] = training.momentum
    if training.weight_decay is not None:
        options["weight_decay"] = training.weight_decay
    return getattr(keras.optimizers, OPTIMIZER_CLASSES[training.optimizer])(**options)


def make_loss(training: TrainingSettings):
    import keras

    if training.from_logits:
        # The name alone would mean probabilities: a logits model needs the loss object.
        class_name = "".join(part.capitalize() for part in training.loss.split("_"))
        return keras.losses.get({"class_name": class_name, "config": {"from_logits": True}})
    return training.loss


def compile_model(model, training: TrainingSettings, steps_per_execution: int = STEPS_PER_EXECUTION,
                  task: Task = DEFAULT_TASK) -> None:
    model.compile(
        optimizer=make_optimizer(training),
        loss=make_loss(training),
        metrics=task.compile_metrics(),
        steps_per_execution=steps_per_execution,
    )


def check_input_shape(model, data: Dataset, what: str = "model") -> None:
    """Refuse data the model cannot take as it is: another shape, or fractional numbers
    for an integer (token id) input."""
    expected = tuple(model.input_shape[1:])
    # None: a dimension the model takes at any size (a variable-length sequence).
    fits = len(expected) == len(data.input_shape) and all(
        e is None or e == d for e, d in zip(expected, data.input_shape))
    if not fits:
        raise UserError(f"{what} expects inputs of shape {expected} but the data has {data.input_shape}")
    wanted = np.dtype(model_input_dtype(model))
    if np.issubdtype(wanted, np.integer) and not np.issubdtype(np.dtype(data.input_dtype), np.integer):
        raise UserError(f"{what} takes {wanted.name} inputs (integer ids) but the data holds {data.input_dtype} values "
                        f"from {data.source}{' divided by ' + format(data.scale, 'g') if data.scale else ''}; "
                        "give integer arrays and no scaling")
    check_labels(model, data, what)


def check_labels(model, data: Dataset, what: str = "model") -> None:
    """Refuse a model whose outputs the data's task cannot score against its labels
    (``Task.check_outputs``: for multiclass, a single output unit or too few units)."""
    units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    data.task.check_outputs(units, (data.y_train, data.y_val, data.y_test), data.source, what)


def fit(model, data: Dataset, training: TrainingSettings, *, seed: int, epochs: int | None = None,
        progress=None, description: str = "train", callbacks=(), steps_per_execution: int = STEPS_PER_EXECUTION) -> dict:
    """Compile and fit; return the per-epoch history. The seed fixes the data order."""
    epochs = training.epochs if epochs is None else epochs
    seed_everything(seed)
    compile_model(model, training, steps_per_execution, data.task)
    steps = math.ceil(len(data.x_train) / training.batch_size)
    bar = keras_epoch_callback(progress, description, epochs, steps, data.task.metric)
    history = model.fit(
        data.x_train, data.y_train,
        batch_size=training.batch_size,
        epochs=epochs,
        validation_data=(data.x_val, data.y_val) if len(data.x_val) else None,
        shuffle=True,
        verbose=0,
        callbacks=[bar, *callbacks],
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024, task: Task = DEFAULT_TASK) -> float:
    """The task's score of ``model`` on ``x`` against ``y`` (multiclass: top-1 accuracy)."""
    return task.score(predict(model, x, batch_size), y)


def split_accuracies(model, data: Dataset) -> dict:
    """The data's task's score on the test and validation splits (None without a validation
    split), under the field names records hold them (``test_accuracy``, ``val_accuracy``)."""
    return {"test_accuracy": accuracy(model, data.x_test, data.y_test, task=data.task),
            "val_accuracy": accuracy(model, data.x_val, data.y_val, task=data.task) if len(data.x_val) else None}


def predict(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def train_dense(recipe: Recipe, data: Dataset, out_dir: Path, *, force: bool = False, progress=None) -> dict:
    """Build the recipe's model, keep θ0, train, and write ``out_dir/dense/`` atomically.

    Returns ``dense/metrics.json`` as written (``DenseMetrics.to_json()``). While another
    process writes ``out_dir`` (``dirlock``), a ``UserError`` names it."""
    training = recipe.training
    seed_everything(training.seed)
    model = build_model(recipe)
    check_input_shape(model, data, f"recipe {recipe.path or recipe.name}")
    with DirectoryLock(out_dir, stage="train"), fsutil.atomic_dir(RunDir(out_dir).dense.path, force=force) as staging_path:
        staging = ModelDir(staging_path)
        # θ0: the weights before the first training step, needed for lottery-ticket resets.
        save_weights(model, staging.init_weights)
        started = time.perf_counter()
        history = fit(model, data, training, seed=training.seed, progress=progress, description="dense")
        train_seconds = time.perf_counter() - started
        metrics = DenseMetrics(
            model="dense",
            **split_accuracies(model, data),
            params=count_params(model),
            flops=count_flops(model),
            epochs=training.epochs,
            seed=training.seed,
            train_seconds=round(train_seconds, 3),
            recipe=recipe.to_dict(),
            data=DataInfo.from_json(data.describe()),
            versions=environment.library_versions(),
        )
        save_model(model, staging.model)
        fsutil.write_json(staging.history, history)
        metrics.save(staging.metrics)
    return metrics.to_json()
