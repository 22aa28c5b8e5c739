"""The task: what a model predicts and how it is scored.

A ``Task`` owns every assumption the stages make about a model's outputs and labels: the metric (its
Keras name, words and direction), the score of a split, the agreement of a runtime's outputs with
Keras's, the accepted labels and outputs, the units of the budget (``--max-drop``) and the INT8
tolerance. One task so far, ``MulticlassTask``; files do not record the task, so ``task_for()`` is it.
A ``Dataset`` carries its task; stages that read only records ask ``task_for``. Record field names
(``test_accuracy``, ``top1_agreement``...) are the files' format and stay as they are.
"""

from __future__ import annotations

import numpy as np

from slimdeploy.errors import DataError, UserError

MISSING = "–"  # what ``Task.format`` shows for a value that is not there (the report's dash)


class Task:
    """The generic parts of a metric, its budget and its wording; a subclass sets the class attributes and
    implements ``score``, ``agreement``, the label checks and ``check_outputs``."""

    name: str = ""
    # The metric: Keras's name for it (a compile metric, the key of its logs), the words people read.
    metric: str = ""
    metric_label: str = ""
    metric_short: str = ""  # in a narrow console column
    higher_is_better: bool = True
    agreement_label: str = ""  # how a runtime's outputs are compared with Keras's, in words
    agreement_items: str = ""  # what the agreement counts
    more_words: str = ""  # a better value as a comparative, as in "nothing both faster and more accurate"
    # The budget (``--max-drop``): a drop of the metric, times ``points_per_unit``, in ``budget_unit``.
    points_per_unit: float = 100
    budget_unit: str = "points"
    budget_unit_short: str = "pts"
    # An INT8 variant's test score at most ``int8_max_drop`` (metric units) below the float Keras model's,
    # and its agreement with it at least ``int8_min_agreement``.
    int8_max_drop: float = 0.0
    int8_min_agreement: float = 1.0

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """The metric of ``outputs`` (one row per example) against ``labels``."""
        raise NotImplementedError

    def agreement(self, outputs: np.ndarray, reference: np.ndarray) -> float:
        """How far ``outputs`` (a runtime's) agree with ``reference`` (Keras's), 0..1."""
        raise NotImplementedError

    def check_label_shape(self, labels: np.ndarray, split: str, source: str) -> None:  # DataError if not
        raise NotImplementedError

    def check_label_values(self, labels: np.ndarray, split: str, source: str) -> None:  # DataError if not
        raise NotImplementedError

    def labels(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` as the stages hold them (the dtype Keras and ``score`` take)."""
        raise NotImplementedError

    def check_outputs(self, units: int | None, labels, source: str, what: str) -> None:
        """UserError unless a model (``what``) with ``units`` output units (None: unknown) can be scored on
        ``labels`` (the splits' label arrays) of ``source``."""
        raise NotImplementedError

    def compile_metrics(self) -> list[str]:
        return [self.metric]

    def drop(self, base: float, value: float) -> float:
        """How much worse ``value`` is than ``base``, in metric units (negative: better)."""
        return base - value if self.higher_is_better else value - base

    def points(self, drop: float) -> float:
        """A drop (or any difference) in metric units, in the budget's units."""
        return drop * self.points_per_unit

    def drop_points(self, base: float, value: float) -> float:
        """The budget's measure of ``value`` against ``base``, as records hold it (4 decimals)."""
        return round(self.points(self.drop(base, value)), 4)

    def within_budget(self, drop_points: float, budget: float) -> bool:
        return drop_points <= budget

    def exceeds(self, drop: float, max_drop: float) -> bool:
        """Whether a drop (metric units) exceeds ``max_drop`` beyond rounding (INT8's test)."""
        return drop > max_drop + 1e-12

    def budget_floor(self, base: float, budget: float) -> float:
        """The worst value within ``budget`` points of ``base``."""
        return base - budget / self.points_per_unit if self.higher_is_better else base + budget / self.points_per_unit

    def rank(self, value: float) -> float:
        """A sort key under which a better value is larger."""
        return value if self.higher_is_better else -value

    @property
    def best_word(self) -> str:
        return "highest" if self.higher_is_better else "lowest"

    @property
    def better_word(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def worse_word(self) -> str:
        return "lower" if self.higher_is_better else "higher"

    @property
    def metric_title(self) -> str:  # "Accuracy"
        return self.metric_label[:1].upper() + self.metric_label[1:]

    @property
    def agreement_title(self) -> str:  # "Top-1 agreement"
        return self.agreement_label[:1].upper() + self.agreement_label[1:]

    @property
    def budget_words(self) -> str:  # "accuracy points"
        return f"{self.metric_label} {self.budget_unit}"

    def format(self, value) -> str:
        """A value of the metric for people: "86.27%" (``MISSING`` for None)."""
        return MISSING if value is None else f"{value * 100:.2f}%"

    def format_points(self, points: float, spec: str = "g") -> str:
        """An amount of the budget: "0.5 points"."""
        return f"{points:{spec}} {self.budget_unit}"


class MulticlassTask(Task):
    """Top-1 classification: the highest of two or more class outputs against an integer label."""

    name = "multiclass"
    metric = "accuracy"
    metric_label = "accuracy"
    metric_short = "acc"
    agreement_label = "top-1 agreement"
    agreement_items = "top-1 labels"
    more_words = "more accurate"
    int8_max_drop = 0.01
    int8_min_agreement = 0.97

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(np.argmax(outputs, axis=1) == labels))

    def agreement(self, outputs: np.ndarray, reference: np.ndarray) -> float:
        return float(np.mean(np.argmax(outputs, axis=1) == np.argmax(reference, axis=1)))

    def check_label_shape(self, labels: np.ndarray, split: str, source: str) -> None:
        if labels.ndim != 1:
            raise DataError(f"{source}: y_{split} must be one label per image, got shape {labels.shape}")

    def check_label_values(self, labels: np.ndarray, split: str, source: str) -> None:
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{source}: y_{split} must hold integer class labels, got {labels.dtype}")
        if len(labels) and labels.min() < 0:
            raise DataError(f"{source}: y_{split} must hold class labels 0, 1, 2, …, got {labels.min()}")

    def labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype(np.int64)

    def check_outputs(self, units: int | None, labels, source: str, what: str) -> None:
        if units == 1:  # the highest of one output is always class 0
            raise UserError(f"{what} has a single output unit (a binary sigmoid or logit): slimdeploy measures "
                            f"{self.metric_label} as the highest of two or more class outputs; give the model 2 output "
                            "units (softmax, sparse categorical cross-entropy) for a binary task")
        highest = max((int(y.max()) for y in labels if len(y)), default=0)
        if units and units > 1 and highest >= units:
            raise UserError(f"{what} has {units} output units (classes 0..{units - 1}) but the labels of {source} "
                            f"go up to {highest}")


MULTICLASS = MulticlassTask()
TASKS: dict[str, Task] = {task.name: task for task in (MULTICLASS,)}
DEFAULT_TASK = MULTICLASS


def task_for(name: str | None = None) -> Task:
    """The task called ``name``; None: the default (multiclass), which every file so far is."""
    if name is None:
        return DEFAULT_TASK
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
