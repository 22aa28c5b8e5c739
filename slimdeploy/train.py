"""Training: the train stage's settings (``TrainSettings``), seeding, compiling from a recipe,
fitting (optionally under masks), evaluating, and writing ``RUN_DIR/dense/``."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimdeploy import environment, fsutil
from slimdeploy.recipes import (DATASET_VALUES, DEFAULT_RECIPE, OPTIMIZER_CLASSES, OPTIMIZERS, TRAINING_VALUES, Recipe,
                               TrainingSettings, check_recipe_data, keras_loss, load_recipe, resolve_recipe_path)
from slimdeploy.data import Dataset, load_dataset
from slimdeploy.dirlock import DirectoryLock
from slimdeploy.errors import UserError
from slimdeploy.models import (MODEL_SUFFIXES, build_model, check_model_file, count_flops, count_params,
                               model_input_dtype, save_model, save_weights)
from slimdeploy.parsers import non_negative_int, positive_float, positive_int, validation_size
from slimdeploy.progress import keras_epoch_callback
from slimdeploy.quiet import quiet_environment
from slimdeploy.records.run import DataInfo, DenseMetrics
from slimdeploy.rundir import ModelDir, RunDir
from slimdeploy.settings_base import Settings, is_int, setting
from slimdeploy.tasks import DEFAULT_TASK, Task

ADOPTING = "adopting"  # the use of the options that adopt a model file (``prune MODEL``)
_COMPILE_CONFIG = "the model's saved compile config, else"


def _at_least(key: str, low: int):
    return lambda value: (None if value is None or (is_int(value) and value >= low)
                          else f"[train] {key} must be an integer >= {low}, got {value!r}")


def _as_in_recipes(key: str, checks: dict):
    """A recipe's own check of ``key`` (``config.TRAINING_VALUES``/``DATASET_VALUES``)."""
    is_valid, wanted = checks[key]
    return lambda value: None if value is None or is_valid(value) else f"[train] {key} must be {wanted}, got {value!r}"


def _existing_data(value) -> str | None:
    missing = value is not None and not Path(value).expanduser().exists()
    return f"[train] data {value}: no such file or directory" if missing else None


def _model_file(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or Path(value).suffix.lower() not in MODEL_SUFFIXES:
        return f"[train] model must be a Keras model file ({', '.join(MODEL_SUFFIXES)}), got {value!r}"
    return None if Path(value).expanduser().is_file() else f"[train] model {value}: no such file"


def _loss_name(value) -> str | None:
    # Only the type here: resolving the name imports Keras (check_recipe does it).
    wrong = value is not None and not (isinstance(value, str) and value)
    return f"[train] loss must be a Keras loss name, got {value!r}" if wrong else None


@dataclass(frozen=True)
class TrainSettings(Settings):
    """The train stage: `slimdeploy train`'s options, `run`'s [train] table, the options that adopt a
    model file. The recipe to train, or the trained ``model`` to adopt, with what changed (None: the
    recipe's or the model's own; an adopted model's seed is 0). ``data`` may be a loaded ``Dataset``."""

    recipe: str | None = setting(None, flag="--recipe", shown=DEFAULT_RECIPE,
                                 help="recipe TOML path or name in models/")
    epochs: int | None = setting(None, flag="--epochs", parse=positive_int, check=_at_least("epochs", 1), shown="",
                                 help="override the recipe's epoch count")
    seed: int | None = setting(
        None, flag="--seed", parse=non_negative_int, check=_at_least("seed", 0), shown="",
        help="override the recipe's seed (data order, init, split)",
        help_for={ADOPTING: "seed of the validation split and of re-initialisation (--reset init) (default: 0)"})
    limit: int | None = setting(None, flag="--limit", parse=positive_int, check=_at_least("limit", 2), shown="",
                                help="use at most N training and N test images (quick runs)")
    data: str | None = setting(
        None, flag="--data", check=_existing_data, shown="search, see README",
        help="Fashion-MNIST directory of IDX .gz files, an .npz, or a directory of class-named image folders",
        help_for={"run": "the data to train on, or that --model was trained on ([train] data): an .npz, a folder of "
                         "class-named image folders, or the Fashion-MNIST directory"})
    model: str | None = setting(
        None, flag="--model", check=_model_file, shown="",
        help="a trained Keras model file (.keras, or a legacy .h5) to adopt instead of training a recipe ([train] "
             "model); needs --data")
    validation_size: int | float | None = setting(
        None, flag="--validation-size", parse=validation_size, check=_as_in_recipes("validation_size", DATASET_VALUES),
        shown="", help="rows held out for validation: a count or a fraction in (0, 1) of the training rows; overrides "
                       "the recipe's [dataset] validation_size. Default: min(5000, a tenth of the rows); an .npz with "
                       "x_val, y_val uses those",
        help_for={ADOPTING: "rows held out for validation: a count or a fraction in (0, 1) of the training rows "
                            "(default: min(5000, a tenth of the rows); an .npz with x_val, y_val uses those)"})
    scale: float | None = setting(
        None, flag="--scale", parse=positive_float, check=_as_in_recipes("scale", DATASET_VALUES), shown="",
        help="divide the input values by this number (e.g. 255 for 0..255 pixels in an .npz); overrides the recipe's "
             "[dataset] scale. Default: IDX Fashion-MNIST pixels /255, any other data unchanged",
        help_for={ADOPTING: "divide the input values by this number, as the model was trained (default: unchanged)"})
    optimizer: str | None = setting(None, flag="--optimizer", choices=OPTIMIZERS,
                                    check=_as_in_recipes("optimizer", TRAINING_VALUES), help="retraining optimizer",
                                    shown=f"{_COMPILE_CONFIG} {TrainingSettings.optimizer}")
    learning_rate: float | None = setting(None, flag="--learning-rate", parse=positive_float,
                                          check=_as_in_recipes("learning_rate", TRAINING_VALUES),
                                          help="retraining learning rate",
                                          shown=f"{_COMPILE_CONFIG} {TrainingSettings.learning_rate}")
    batch_size: int | None = setting(None, flag="--batch-size", parse=positive_int,
                                     check=_as_in_recipes("batch_size", TRAINING_VALUES),
                                     help="retraining batch size", shown=str(TrainingSettings.batch_size))
    loss: str | None = setting(None, flag="--loss", check=_loss_name, help="a Keras loss name",
                               shown=f"{_COMPILE_CONFIG} {TrainingSettings.loss}")

    def check_together(self) -> None:
        if self.model is not None and self.recipe is not None:
            raise UserError(f"[train] gives both recipe {self.recipe!r} (train a model) and model {self.model!r} "
                            "(adopt a trained one); give one")
        if self.model is not None and self.data is None:
            raise UserError(f"[train] model {self.model}: adopting a trained model needs data (--data or [train] data): "
                            "the data it was trained on")
        if self.recipe is not None:
            resolve_recipe_path(self.recipe)  # an unknown recipe fails with the rest of the config

    def check_recipe(self) -> None:
        """The loss name, then the model file's checks (safe mode) or the recipe's (Keras names its
        layers' activations: this imports TensorFlow)."""
        if self.loss is not None:
            try:
                keras_loss(self.loss)
            except Exception:  # Keras says "unknown" as ValueError, KeyError or TypeError
                raise UserError(f"[train] loss must be a Keras loss name (e.g. sparse_categorical_crossentropy), "
                                f"got {self.loss!r}") from None
        if self.model is not None:
            check_model_file(Path(self.model).expanduser(), "[train] model")
        else:
            check_recipe_data(load_recipe(self.recipe), self.data)

    def retraining(self) -> dict:
        """What these settings give of a model's training settings besides the seed (None: not given)."""
        return {name: getattr(self, name) for name in RETRAINING}

    def _changed(self, table):
        return dataclasses.replace(table, **{f.name: getattr(self, f.name) for f in dataclasses.fields(table)
                                             if getattr(self, f.name, None) is not None})

    def prepare(self, out_dir=None, *, force: bool = False) -> tuple[Recipe, Dataset, Path]:
        """The recipe with these changes to its [training] and [dataset], the data and the run
        directory (default ``runs/<recipe name>``), all checked before anything is written."""
        recipe = load_recipe(self.recipe)
        check_recipe_data(recipe, self.data)
        recipe = dataclasses.replace(recipe, training=self._changed(recipe.training),
                                     dataset=self._changed(recipe.dataset))
        out_dir = Path(out_dir or Path("runs") / recipe.name)
        fsutil.refuse_existing(RunDir(out_dir).dense.path, force)
        data = load_dataset(self.data, recipe.dataset.validation_size, recipe.training.seed, limit=self.limit,
                            scale=recipe.dataset.scale, input_shape=recipe.input_shape)
        return recipe, data, out_dir


# The training settings a flag may give besides the seed (adoption's own): epochs, optimizer, ...
RETRAINING = tuple(f.name for f in dataclasses.fields(TrainSettings)
                   if f.name in {t.name for t in dataclasses.fields(TrainingSettings)} - {"seed"})

# Several batches per call into TensorFlow: same numbers, about 2x faster on small MLPs.
STEPS_PER_EXECUTION = 64


def quiet_tensorflow() -> None:
    quiet_environment()


def seed_everything(seed: int) -> None:
    """Fix Python, NumPy and TensorFlow randomness and make TF ops deterministic."""
    quiet_tensorflow()
    import keras  # lazy: heavy, here and below
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_optimizer(training: TrainingSettings):
    import keras

    options = {"learning_rate": training.learning_rate}
    if training.optimizer in ("sgd", "rmsprop"):  # Adam and AdamW have betas instead
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
    model.compile(optimizer=make_optimizer(training), loss=make_loss(training), metrics=task.compile_metrics(),
                  steps_per_execution=steps_per_execution)


def check_input_shape(model, data: Dataset, what: str = "model") -> None:
    """Refuse data of another shape, fractional numbers for integer ids, or labels the outputs cannot score."""
    expected = tuple(model.input_shape[1:])
    # None: a dimension the model takes at any size (a variable-length sequence).
    fits = len(expected) == len(data.input_shape) and all(e is None or e == d for e, d in zip(expected, data.input_shape))
    if not fits:
        raise UserError(f"{what} expects inputs of shape {expected} but the data has {data.input_shape}")
    wanted = np.dtype(model_input_dtype(model))
    if np.issubdtype(wanted, np.integer) and not np.issubdtype(np.dtype(data.input_dtype), np.integer):
        raise UserError(f"{what} takes {wanted.name} inputs (integer ids) but the data holds {data.input_dtype} values "
                        f"from {data.source}{' divided by ' + format(data.scale, 'g') if data.scale else ''}; "
                        "give integer arrays and no scaling")
    check_labels(model, data, what)


def check_labels(model, data: Dataset, what: str = "model") -> None:
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
    history = model.fit(data.x_train, data.y_train, batch_size=training.batch_size, epochs=epochs,
                        validation_data=(data.x_val, data.y_val) if len(data.x_val) else None, shuffle=True,
                        verbose=0, callbacks=[bar, *callbacks])
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024, task: Task = DEFAULT_TASK) -> float:
    """The task's score (multiclass: top-1 accuracy)."""
    return task.score(predict(model, x, batch_size), y)


def split_accuracies(model, data: Dataset) -> dict:
    """The task's score on the test and validation splits (None without one), named as records hold them."""
    return {"test_accuracy": accuracy(model, data.x_test, data.y_test, task=data.task),
            "val_accuracy": accuracy(model, data.x_val, data.y_val, task=data.task) if len(data.x_val) else None}


def predict(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def train_dense(recipe: Recipe, data: Dataset, out_dir: Path, *, force: bool = False, progress=None) -> DenseMetrics:
    """Build the recipe's model, keep θ0, train, and write ``out_dir/dense/`` atomically (under its lock)."""
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
        train_seconds = round(time.perf_counter() - started, 3)
        metrics = DenseMetrics(model="dense", **split_accuracies(model, data), params=count_params(model),
                               flops=count_flops(model), epochs=training.epochs, seed=training.seed,
                               train_seconds=train_seconds, recipe=recipe.to_dict(),
                               data=DataInfo.from_json(data.describe()), versions=environment.library_versions())
        save_model(model, staging.model)
        fsutil.write_json(staging.history, history)
        metrics.save(staging.metrics)
    return metrics
