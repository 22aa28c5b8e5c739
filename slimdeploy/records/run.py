"""``dense/metrics.json`` as a record: what ``slimdeploy train`` measured and how it trained.

Field order is the order ``train`` writes the keys. A seed's own dense model
(``<mode>/seed_S/dense/metrics.json``, written by ``prune --seeds``) is the same record
without ``flops``, ``recipe``, ``data`` and ``versions``.
"""

from __future__ import annotations

import dataclasses

from slimdeploy.records.base import ABSENT, Record


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataInfo(Record):
    """The data a model was trained on (``Dataset.describe()``), enough to rebuild the same split.

    Runs trained before the data was recorded with its sha256 have only some of these keys.
    ``override`` is set in ``lottery.json`` only (``prune --data-override``).
    """

    WHAT = "data record"

    source: str = ABSENT
    kind: str = ABSENT
    sha256: str | None = ABSENT
    seed: int = ABSENT
    validation_size: int = ABSENT
    limit: int | None = ABSENT
    scale: float | None = ABSENT
    dtype: str = ABSENT
    input_shape: list = ABSENT
    train: int = ABSENT
    validation: int = ABSENT
    test: int = ABSENT
    override: bool = ABSENT
    verification: dict = ABSENT  # export.json only: split -> images verified on
    input_contract: str = ABSENT  # export.json only: what the exported input expects


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdoptedModel(Record):
    """Where an adopted run's dense model came from (``slimdeploy prune MODEL``, ``run --model``).

    ``theta0`` is false: the weights before the user's training are unknown, and
    ``init.weights.h5`` holds the model re-initialised with its own layers' initializers
    under ``seed`` instead (``init_weights`` says so). ``training`` is the ``TrainingSettings``
    every retraining uses; ``training_from`` says, per setting, where it came from
    (``compile_config``, ``last_layer``, ``flags`` or ``defaults``).
    """

    WHAT = "adopted model record"

    source: str = ABSENT              # the user's file, absolute
    sha256: str = ABSENT
    format: str = ABSENT              # "keras" or "h5"
    theta0: bool = False
    init_weights: str = ABSENT
    training: dict = ABSENT
    training_from: dict = ABSENT
    ignored: list = ABSENT            # what of the saved compile config could not be used, and why
    validation: str = ABSENT          # where the validation rows came from, and whether the model may have seen them


@dataclasses.dataclass(frozen=True, kw_only=True)
class DenseMetrics(Record):
    """``RUN_DIR/dense/metrics.json``.

    ``recipe`` is the recipe as ``Recipe.to_dict()`` wrote it (``config.recipe_from_record``
    reads it back); an adopted run has ``adopted`` instead (``AdoptedModel``).
    ``saved_run.run_training`` gives the training settings of either. ``data`` says which data
    and split were used (``saved_run.run_dataset``).
    Every key may be missing from a file some older version or a hand-made run wrote
    (``get(key)`` reads a missing one as None); ``train`` writes them all.
    """

    WHAT = "dense metrics"

    model: str = ABSENT               # "dense"
    test_accuracy: float = ABSENT
    val_accuracy: float | None = ABSENT
    params: int = ABSENT
    flops: int = ABSENT
    epochs: int = ABSENT
    seed: int = ABSENT
    train_seconds: float | None = ABSENT
    recipe: dict = ABSENT
    data: DataInfo = ABSENT
    adopted: AdoptedModel = ABSENT    # adopted runs only; they have no ``recipe``
    versions: dict = ABSENT
