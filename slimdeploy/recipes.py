"""Recipes: what model to build and how to train it, read from TOML and echoed into every output.

Recipes are strict: an unknown key or a value of the wrong type is a one-line ``UserError``.
Keras objects (activations, initializers, regularizers, losses) are named, and resolved only
through Keras's built-in registries: a recipe can never make slimdeploy import or run code.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from slimdeploy.errors import UserError
from slimdeploy.fsutil import read_toml
from slimdeploy.settings_base import is_int

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = "fashion_mlp"


# What users set on the kernel layers of their Sequential models.
_KERNEL_KEYS = ("activation", "kernel_initializer", "kernel_regularizer", "use_bias")
# Per layer type: the keys its table needs, and those it may have besides ``type`` and ``name``.
LAYER_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "flatten": ((), ()), "reshape": (("target_shape",), ()), "dense": (("units",), _KERNEL_KEYS),
    "conv2d": (("filters", "kernel_size"), (*_KERNEL_KEYS, "padding")), "maxpool2d": ((), ("pool_size",)),
    "dropout": (("rate",), ()), "batchnorm": ((), ()), "layer_normalization": ((), ()),
    "activation": (("activation",), ()), "embedding": (("input_dim", "output_dim"), ()),
    "global_average_pooling1d": ((), ()), "global_average_pooling2d": ((), ()),
}
RECIPE_KEYS = ("name", "description", "model", "dataset", "training")
MODEL_KEYS = ("input_shape", "input_dtype", "layers")
INPUT_DTYPES = ("float32", "int32", "int64")  # integers: token ids for an Embedding
# npz: the arrays of --data FILE.npz; image_folder: --data DIR of class-named image folders
DATASETS = ("fashion_mnist", "npz", "image_folder")
# The optimizers Keras users save most, by their Keras class (an adopted model's compile config names that).
OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)


@dataclass(frozen=True)
class TrainingSettings:
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.0  # sgd and rmsprop
    weight_decay: float | None = None  # None: the optimizer's own Keras default
    batch_size: int = 32
    epochs: int = 10
    seed: int = 0
    loss: str = "sparse_categorical_crossentropy"
    from_logits: bool = False  # the last layer outputs logits, not probabilities


@dataclass(frozen=True)
class DatasetSettings:
    name: str = "fashion_mnist"
    # A count of rows or a fraction in (0, 1) of them; None: min(5000, a tenth of the rows).
    validation_size: int | float | None = None
    scale: float | None = None  # divide the inputs by this; None: as the data's kind says


@dataclass(frozen=True)
class Recipe:
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[dict, ...]
    input_dtype: str = "float32"
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    description: str = ""
    path: str | None = None

    def to_dict(self) -> dict:
        """The record echoed into metrics.json; ``recipe_from_record`` reads it back."""
        return dataclasses.asdict(self)


def resolve_recipe_path(name_or_path: str | None) -> Path:
    """A recipe is a TOML path, or the name of one in ``models/`` (``fashion_mlp``)."""
    value = name_or_path or DEFAULT_RECIPE
    candidate = Path(value)
    if candidate.is_file():
        return candidate
    if candidate.suffix == "" and "/" not in value:
        for base in (Path.cwd() / "models", REPO_ROOT / "models"):
            named = base / f"{value}.toml"
            if named.is_file():
                return named
    if candidate.exists():
        raise UserError(f"recipe {value} is not a file")
    raise UserError(f"recipe {value} not found (give a .toml path or a name from models/, e.g. fashion_mlp)")


def load_recipe(name_or_path: str | None = None) -> Recipe:
    path = resolve_recipe_path(name_or_path)
    return recipe_from_dict(read_toml(path, "recipe"), str(path))


def recipe_from_record(record: Any, source: str) -> Recipe:
    """The inverse of ``Recipe.to_dict()`` (``dense/metrics.json``'s ``recipe``)."""
    if not isinstance(record, dict):
        raise UserError(f"recipe {source}: must be a table")
    raw = {key: value for key, value in record.items() if key not in (*MODEL_KEYS, "path")}
    raw["model"] = {key: record[key] for key in MODEL_KEYS if key in record}
    return recipe_from_dict(raw, source)


def training_from_record(record: Any, source: str) -> TrainingSettings:
    """Training settings from a table of them (``adopted.training``), checked as a recipe's ``[training]``."""
    return _table({"training": record}, "training", TrainingSettings, TRAINING_VALUES,
                  lambda message: UserError(f"{source}: {message}"))


def check_recipe_data(recipe: Recipe, data: str | Path | None) -> None:
    """A recipe of an .npz or image folders never falls back to Fashion-MNIST."""
    name = recipe.dataset.name
    given = "no --data" if data is None else f"--data {data}"
    if name == "npz" and (data is None or Path(data).suffix != ".npz"):
        raise UserError(f'recipe {recipe.path or recipe.name}: dataset.name = "npz" trains on the arrays of '
                        f"an .npz file, got {given}; give --data FILE.npz")
    if name == "image_folder" and (data is None or not Path(data).expanduser().is_dir()):
        raise UserError(f'recipe {recipe.path or recipe.name}: dataset.name = "image_folder" trains on a '
                        f"directory of class-named image folders, got {given}; give --data DIR")


def recipe_from_dict(raw: Any, source: str = "<dict>") -> Recipe:
    def fail(message: str) -> UserError:
        return UserError(f"recipe {source}: {message}")

    if not isinstance(raw, dict):
        raise fail("must be a TOML table")
    refuse_unknown_keys(raw, RECIPE_KEYS, "the top level", fail)
    model = raw.get("model")
    if not isinstance(model, dict):
        raise fail("missing [model] table")
    refuse_unknown_keys(model, MODEL_KEYS, "[model]", fail)
    input_shape = model.get("input_shape")
    if not (isinstance(input_shape, list) and input_shape and all(_positive_int(d) for d in input_shape)):
        raise fail(f"model.input_shape must be a list of positive integers, got {input_shape!r}")
    input_dtype = model.get("input_dtype", "float32")
    if input_dtype not in INPUT_DTYPES:
        raise fail(f"model.input_dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    layers = _checked_layers(model.get("layers"), input_dtype, fail)
    training = _table(raw, "training", TrainingSettings, TRAINING_VALUES, fail)
    _check_logits(training, layers, fail)
    dataset = _table(raw, "dataset", DatasetSettings, DATASET_VALUES, fail)
    for key in ("name", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise fail(f"{key} must be a string, got {raw[key]!r}")
    return Recipe(name=raw.get("name") or Path(source).stem, input_shape=tuple(input_shape), layers=layers,
                  input_dtype=input_dtype, dataset=dataset, training=training,
                  description=raw.get("description", ""), path=source)


def layer_label(index: int, spec: dict) -> str:
    """How messages name a layer of a recipe: ``model.layers[3] (dense)``."""
    return f"model.layers[{index}] ({spec['type']})"


def refuse_unknown_keys(table: dict, allowed, where: str, fail: Callable[[str], UserError]) -> None:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        named = ", ".join(repr(key) for key in unknown)
        raise fail(f"unknown key{'s' * (len(unknown) > 1)} {named} in {where}; allowed: {', '.join(sorted(allowed))}")


def _checked_layers(layers: Any, input_dtype: str, fail) -> tuple[dict, ...]:
    if not isinstance(layers, list) or not layers:
        raise fail("model.layers must be a non-empty list of tables")
    names: dict[str, int] = {}
    for index, layer in enumerate(layers):
        kind = layer.get("type") if isinstance(layer, dict) else None
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise fail(f"model.layers[{index}]: type must be one of {', '.join(LAYER_TYPES)}, got {kind!r}")
        where, (required, optional) = layer_label(index, layer), LAYER_TYPES[kind]
        refuse_unknown_keys(layer, sorted({"type", "name", *required, *optional}), where, fail)
        for key in required:
            if key not in layer:
                raise fail(f"{where} needs '{key}'")
        _check_values({k: v for k, v in layer.items() if k != "type"}, LAYER_VALUES, f"{where}: ", fail)
        if "name" in layer:  # Keras refuses two layers of one name, without saying which
            if layer["name"] in names:
                raise fail(f"{where}: name {layer['name']!r} is already used by model.layers[{names[layer['name']]}]")
            names[layer["name"]] = index
    if not any(layer["type"] == "dense" for layer in layers):
        raise fail("needs at least one dense layer")
    if layers[0]["type"] == "embedding" and not input_dtype.startswith("int"):
        raise fail(f"{layer_label(0, layers[0])} takes integer token ids, but model.input_dtype is {input_dtype!r}; "
                   'set input_dtype = "int32" in [model]')
    return tuple(dict(layer) for layer in layers)


def _check_logits(training: TrainingSettings, layers: tuple[dict, ...], fail) -> None:
    """``from_logits`` needs a snake_case cross-entropy loss (train.make_loss) and unsquashed outputs."""
    if not training.from_logits:
        return
    if not (training.loss.endswith("_crossentropy") and training.loss.islower()):
        raise fail("training.from_logits = true needs a cross-entropy loss named in snake_case "
                   f"(e.g. sparse_categorical_crossentropy), got {training.loss!r}")
    last = layers[-1]
    if last.get("activation") in ("softmax", "sigmoid"):
        raise fail(f"training.from_logits = true, but {layer_label(len(layers) - 1, last)} applies "
                   f"{last['activation']}; remove that activation (the model then outputs logits) "
                   "or set from_logits = false")


def _table(raw: dict, key: str, cls: type, checks: dict, fail) -> Any:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise fail(f"[{key}] must be a table")
    refuse_unknown_keys(table, [f.name for f in dataclasses.fields(cls)], f"[{key}]", fail)
    _check_values(table, checks, f"{key}.", fail)
    return cls(**table)


def _check_values(table: dict, checks: dict, prefix: str, fail) -> None:
    """``checks[key] = (is_valid, what it must be)``."""
    for key, value in table.items():
        is_valid, wanted = checks[key]
        if not is_valid(value):
            raise fail(f"{prefix}{key} must be {wanted}, got {value!r}")


# By name, Keras's l1 and l2 penalize with a factor of 0.01, and so did Keras 2's l1_l2 (what
# tutorials write); Keras 3 registers it as l1l2 with both factors 0, a penalty of nothing.
_L1L2_NAMES = ("l1_l2", "l1l2", "L1L2")


# lazy: heavy (keras) in the four below.
def keras_activation(name: Any):
    import keras

    return keras.activations.get(_registry_name(name))


def keras_initializer(name: Any):
    import keras

    initializer = keras.initializers.get(_registry_name(name))
    if type(initializer) is keras.initializers.Initializer:  # the abstract base draws nothing
        raise ValueError(f"{name!r} is the abstract initializer base class")
    return initializer


def keras_regularizer(value: Any):
    """A name (``l2``, Keras's default factor) or a table of factors (``{l2 = 0.001}``)."""
    import keras

    if value in _L1L2_NAMES:
        value = {"l1": 0.01, "l2": 0.01}
    identifier = _regularizer_config(value) if isinstance(value, dict) else _registry_name(value)
    regularizer = keras.regularizers.get(identifier)
    if type(regularizer) is keras.regularizers.Regularizer:  # the abstract base adds no loss
        raise ValueError(f"{value!r} is the abstract regularizer base class")
    return regularizer


def keras_loss(name: Any):
    import keras

    return keras.losses.get(_registry_name(name))


def _regularizer_config(factors: dict) -> dict:
    """Built here from numbers: a recipe's table never reaches Keras's deserializer (which imports code)."""
    if not factors or set(factors) - {"l1", "l2"} or not all(_is_number(v) and v >= 0 for v in factors.values()):
        raise ValueError(f"not a table of l1/l2 factors: {factors!r}")
    class_name = "L1L2" if len(factors) == 2 else next(iter(factors)).upper()
    return {"class_name": class_name, "config": {key: float(value) for key, value in factors.items()}}


def _registry_name(value: Any) -> str:
    """Only a name goes to a Keras registry: a table would be deserialized, and may import code."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a name: {value!r}")
    return value


def _resolves(resolver: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def is_valid(value: Any) -> bool:
        try:
            resolver(value)
        except Exception:  # Keras says "unknown name" as ValueError, KeyError or TypeError
            return False
        return True

    return is_valid


def _positive_int(value: Any) -> bool:
    return is_int(value) and value > 0


def _is_number(value: Any) -> bool:
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _size(value: Any) -> bool:
    return _positive_int(value) or (isinstance(value, list) and len(value) == 2 and all(map(_positive_int, value)))


POSITIVE_INT = (_positive_int, "a positive integer")
LAYER_VALUES = {
    "name": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "units": POSITIVE_INT, "filters": POSITIVE_INT, "output_dim": POSITIVE_INT,
    "input_dim": (_positive_int, "a positive integer (the number of distinct token ids)"),
    "kernel_size": (_size, "a positive integer or a list of two"),
    "pool_size": (_size, "a positive integer or a list of two"),
    "target_shape": (lambda v: isinstance(v, list) and bool(v) and all(map(_positive_int, v)),
                     "a list of positive integers"),
    "rate": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "padding": (lambda v: v in ("valid", "same"), '"valid" or "same"'),
    "use_bias": (lambda v: isinstance(v, bool), "true or false"),
    "activation": (_resolves(keras_activation), "a Keras activation name (e.g. relu, softmax, tanh)"),
    "kernel_initializer": (_resolves(keras_initializer),
                           "a Keras initializer name (e.g. glorot_uniform, he_normal, zeros)"),
    "kernel_regularizer": (_resolves(keras_regularizer),
                           "a Keras regularizer name (l1, l2, l1_l2) or a table of factors like {l2 = 0.001}"),
}
TRAINING_VALUES = {
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "learning_rate": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "momentum": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: v is None or (_is_number(v) and v >= 0), "a non-negative number"),
    "batch_size": POSITIVE_INT, "epochs": POSITIVE_INT,
    "seed": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
    "loss": (_resolves(keras_loss), "a Keras loss name (e.g. sparse_categorical_crossentropy)"),
    "from_logits": (lambda v: isinstance(v, bool), "true or false"),
}
DATASET_VALUES = {
    "name": (lambda v: v in DATASETS, "fashion_mnist (the default), npz (the arrays of --data FILE.npz) or "
             "image_folder (--data DIR of class-named image folders)"),
    # None (the default, and no scaling below) is what metrics.json holds; TOML leaves the key out.
    "validation_size": (lambda v: v is None or (is_int(v) and v >= 0) or (isinstance(v, float) and 0 < v < 1),
                        "a non-negative integer (rows) or a fraction in (0, 1)"),
    "scale": (lambda v: v is None or (_is_number(v) and v > 0), "a positive number (the inputs are divided by it)"),
}


def refuse_changed_settings(path, verb: str, recorded: dict, wanted: dict, keys) -> None:
    """``--resume`` continues only work made with the same settings: one line naming each change."""
    changed = [key for key in keys if recorded.get(key) != wanted[key]]
    if changed:
        detail = ", ".join(f"{key} {recorded.get(key)!r} -> {wanted[key]!r}" for key in changed)
        raise UserError(f"--resume: {path} was {verb} with other settings ({detail}); "
                        "rerun with those settings, or use --force to start over")
