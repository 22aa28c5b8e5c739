"""Recipes: what model to build and how to train it, read from TOML.

A recipe names the dataset, the layers, the optimizer, learning rate, batch size,
epochs and seed. Defaults live here, in one place, and the resolved recipe is echoed
into every output so each result says how it was made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimdeploy.errors import UserError
from slimdeploy.fsutil import read_toml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = "fashion_mlp"

LAYER_TYPES = {
    "flatten": (),
    "reshape": ("target_shape",),
    "dense": ("units",),
    "conv2d": ("filters", "kernel_size"),
    "maxpool2d": (),
    "dropout": ("rate",),
    "batchnorm": (),
    "activation": ("activation",),
}
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainingSettings:
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    seed: int = 0
    loss: str = "sparse_categorical_crossentropy"


@dataclass(frozen=True)
class DatasetSettings:
    name: str = "fashion_mnist"
    validation_size: int = 5000


@dataclass(frozen=True)
class Recipe:
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[dict, ...]
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    description: str = ""
    path: str | None = None

    def with_training(self, **changes: Any) -> "Recipe":
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))

    def to_dict(self) -> dict:
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


def recipe_from_dict(raw: dict, source: str = "<dict>") -> Recipe:
    def fail(message: str) -> UserError:
        return UserError(f"recipe {source}: {message}")

    if not isinstance(raw, dict):
        raise fail("must be a TOML table")
    model = raw.get("model")
    if not isinstance(model, dict):
        raise fail("missing [model] table")
    input_shape = model.get("input_shape")
    if not (isinstance(input_shape, list) and input_shape and all(_positive_int(d) for d in input_shape)):
        raise fail("model.input_shape must be a list of positive integers")
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise fail("model.layers must be a non-empty list of tables")
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict) or layer.get("type") not in LAYER_TYPES:
            raise fail(f"layer {index}: type must be one of {', '.join(LAYER_TYPES)}")
        for key in LAYER_TYPES[layer["type"]]:
            if key not in layer:
                raise fail(f"layer {index} ({layer['type']}) needs '{key}'")
        if layer["type"] == "dense" and not _positive_int(layer["units"]):
            raise fail(f"layer {index}: units must be a positive integer")
        if layer["type"] == "dropout" and not (isinstance(layer["rate"], (int, float)) and 0 <= layer["rate"] < 1):
            raise fail(f"layer {index}: dropout rate must be in [0, 1)")
    if not any(layer["type"] == "dense" for layer in layers):
        raise fail("needs at least one dense layer")

    training = _table(raw, "training", TrainingSettings, fail)
    if training.optimizer not in OPTIMIZERS:
        raise fail(f"training.optimizer must be one of {', '.join(OPTIMIZERS)}")
    for key in ("batch_size", "epochs"):
        if not _positive_int(getattr(training, key)):
            raise fail(f"training.{key} must be a positive integer")
    if not isinstance(training.seed, int) or isinstance(training.seed, bool) or training.seed < 0:
        raise fail("training.seed must be a non-negative integer")
    if not (isinstance(training.learning_rate, (int, float)) and training.learning_rate > 0):
        raise fail("training.learning_rate must be a positive number")
    dataset = _table(raw, "dataset", DatasetSettings, fail)
    if dataset.name != "fashion_mnist":
        raise fail("dataset.name must be fashion_mnist (or give --data FILE.npz)")
    if not (isinstance(dataset.validation_size, int) and dataset.validation_size >= 0):
        raise fail("dataset.validation_size must be a non-negative integer")
    name = raw.get("name") or Path(source).stem
    return Recipe(
        name=str(name),
        input_shape=tuple(input_shape),
        layers=tuple(dict(layer) for layer in layers),
        dataset=dataset,
        training=training,
        description=str(raw.get("description", "")),
        path=source,
    )


def _table(raw: dict, key: str, cls: type, fail) -> Any:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise fail(f"[{key}] must be a table")
    known = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise fail(f"unknown key(s) in [{key}]: {', '.join(unknown)}")
    try:
        return cls(**table)
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise fail(str(exc)) from exc


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def settings_from_table(cls: type, raw: Any, source: str):
    """A stage's settings dataclass from a TOML table: unknown keys are an error, lists
    become tuples where the field's default is a tuple, and the class's own checks run
    (``validate``/``validated`` or ``__post_init__``)."""
    if not isinstance(raw, dict):
        raise UserError(f"{source} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    values = {}
    for key, value in raw.items():
        default = fields[key].default
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise UserError(f"{source}: {key} must be a list, got {value!r}")
            value = tuple(value)
        values[key] = value
    try:
        settings = cls(**values)
    except TypeError as exc:
        raise UserError(f"{source}: {exc}") from exc
    for check in ("validate", "validated"):
        method = getattr(settings, check, None)
        if callable(method):
            return method() or settings
    return settings


def refuse_changed_settings(path, verb: str, recorded: dict, wanted: dict, keys) -> None:
    """``--resume`` continues only work made with the same settings: one line naming each
    of ``keys`` whose ``recorded`` value differs from the ``wanted`` one."""
    changed = [key for key in keys if recorded.get(key) != wanted[key]]
    if changed:
        detail = ", ".join(f"{key} {recorded.get(key)!r} -> {wanted[key]!r}" for key in changed)
        raise UserError(f"--resume: {path} was {verb} with other settings ({detail}); "
                        "rerun with those settings, or use --force to start over")
