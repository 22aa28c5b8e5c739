"""The task (slimdeploy.tasks): the multiclass task on small real arrays — its score and agreement
against independent numpy computations, its label and output refusals (the one-line messages
data.py and train.py gave before the task owned them), its budget arithmetic and its words."""

from __future__ import annotations

import numpy as np
import pytest

from slimdeploy.errors import DataError, UserError
from slimdeploy.tasks import DEFAULT_TASK, MULTICLASS, TASKS, MulticlassTask, Task, task_for


def _outputs(rows: int, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, classes), dtype=np.float32)


def test_every_file_is_multiclass_and_the_registry_knows_it_by_name():
    assert task_for() is DEFAULT_TASK is MULTICLASS
    assert task_for("multiclass") is MULTICLASS and TASKS == {"multiclass": MULTICLASS}
    assert isinstance(MULTICLASS, MulticlassTask) and isinstance(MULTICLASS, Task)
    with pytest.raises(UserError, match="unknown task 'regression'; known: multiclass"):
        task_for("regression")


def test_score_is_top1_accuracy_to_the_bit():
    outputs, labels = _outputs(1001, 10), np.random.default_rng(1).integers(0, 10, 1001)
    correct = sum(int(row.argmax() == label) for row, label in zip(outputs, labels))
    score = MULTICLASS.score(outputs, labels)
    assert type(score) is float and score == correct / 1001
    # The expression train.accuracy and export verification computed before the task did.
    assert score == float(np.mean(np.argmax(outputs, axis=1) == labels))
    assert MULTICLASS.score(np.eye(4, dtype=np.float32), np.arange(4)) == 1.0
    assert MULTICLASS.score(np.eye(4, dtype=np.float32), np.array([1, 0, 2, 0])) == 0.25


def test_agreement_is_the_share_of_rows_whose_top_class_is_keras_s():
    keras = _outputs(200, 5)
    other = keras.copy()
    other[:7] = np.roll(other[:7], 1, axis=1)  # a different top class on (at most) 7 rows
    expected = sum(int(a.argmax() == b.argmax()) for a, b in zip(other, keras)) / 200
    assert MULTICLASS.agreement(other, keras) == expected == float(np.mean(np.argmax(other, 1) == np.argmax(keras, 1)))
    assert MULTICLASS.agreement(keras + 1e-3, keras) == 1.0  # agreement ignores differences that keep the top class


def test_label_checks_are_the_one_line_data_errors_they_were():
    MULTICLASS.check_label_shape(np.array([0, 1, 2]), "train", "d.npz")
    MULTICLASS.check_label_values(np.array([0, 1, 2], np.uint8), "train", "d.npz")
    MULTICLASS.check_label_values(np.array([], np.int64), "test", "d.npz")
    with pytest.raises(DataError) as shape:
        MULTICLASS.check_label_shape(np.zeros((3, 2), np.int64), "train", "d.npz")
    assert str(shape.value) == "d.npz: y_train must be one label per image, got shape (3, 2)"
    with pytest.raises(DataError) as floats:
        MULTICLASS.check_label_values(np.array([0.0, 1.0]), "test", "d.npz")
    assert str(floats.value) == "d.npz: y_test must hold integer class labels, got float64"
    with pytest.raises(DataError) as negative:
        MULTICLASS.check_label_values(np.array([0, -2, 1]), "val", "d.npz")
    assert str(negative.value) == "d.npz: y_val must hold class labels 0, 1, 2, …, got -2"
    labels = MULTICLASS.labels(np.array([3, 1], np.uint8))
    assert labels.dtype == np.int64 and labels.tolist() == [3, 1]


def test_output_checks_refuse_one_unit_and_labels_beyond_the_units():
    labels = (np.array([0, 1]), np.array([], np.int64), np.array([2]))
    MULTICLASS.check_outputs(3, labels, "d.npz", "model m.keras")
    MULTICLASS.check_outputs(None, labels, "d.npz", "model m.keras")  # unknown units: nothing to check
    with pytest.raises(UserError) as one:
        MULTICLASS.check_outputs(1, labels, "d.npz", "model m.keras")
    assert str(one.value) == (
        "model m.keras has a single output unit (a binary sigmoid or logit): slimdeploy measures accuracy as the "
        "highest of two or more class outputs; give the model 2 output units (softmax, sparse categorical "
        "cross-entropy) for a binary task")
    with pytest.raises(UserError) as few:
        MULTICLASS.check_outputs(2, labels, "d.npz", "model m.keras")
    assert str(few.value) == "model m.keras has 2 output units (classes 0..1) but the labels of d.npz go up to 2"


def test_keras_compiles_accuracy_and_logs_it_under_that_name():
    assert MULTICLASS.compile_metrics() == ["accuracy"] and MULTICLASS.metric == "accuracy"
    assert MULTICLASS.compile_metrics() is not MULTICLASS.compile_metrics()  # a fresh list for each compile


def test_the_budget_is_in_points_of_accuracy():
    task = MULTICLASS
    assert task.higher_is_better and task.rank(0.9) > task.rank(0.8)
    assert task.drop(0.9, 0.885) == 0.9 - 0.885
    # As prune.summary computed it: rounded to 4 decimals after scaling to points.
    assert task.drop_points(0.9, 0.885) == round((0.9 - 0.885) * 100, 4) == 1.5
    assert task.drop_points(0.8, 0.85) == -5.0  # better than dense: a negative drop
    assert task.within_budget(0.5, 0.5) and not task.within_budget(0.5001, 0.5)
    assert task.points(0.0123) == 0.0123 * 100
    assert task.budget_floor(0.8627, 0.5) == 0.8627 - 0.5 / 100
    # INT8: at most one point below Keras (beyond rounding), agreeing on at least 97% of the images.
    assert (task.int8_max_drop, task.int8_min_agreement) == (0.01, 0.97)
    assert not task.exceeds(0.01, 0.01) and not task.exceeds(0.01 + 1e-13, 0.01) and task.exceeds(0.0101, 0.01)


def test_the_words_people_read():
    task = MULTICLASS
    assert (task.metric_label, task.agreement_label, task.budget_unit) == ("accuracy", "top-1 agreement", "points")
    assert task.budget_words == "accuracy points"
    assert (task.best_word, task.better_word, task.worse_word, task.more_words) == (
        "highest", "higher", "lower", "more accurate")
    assert (task.metric_title, task.agreement_title) == ("Accuracy", "Top-1 agreement")
    assert (task.metric_short, task.budget_unit_short, task.agreement_items) == ("acc", "pts", "top-1 labels")
    assert task.format(0.86274) == "86.27%" and task.format(1) == "100.00%" and task.format(None) == "–"
    assert task.format_points(0.5) == "0.5 points" and task.format_points(1.2345, ".2f") == "1.23 points"


def test_a_new_task_is_one_class():
    class LowerIsBetter(Task):
        """A made-up task (mean absolute error) to show the base class's generic parts."""

        name, metric, metric_label, higher_is_better = "mae", "mae", "mean absolute error", False

        def score(self, outputs, labels):
            return float(np.mean(np.abs(outputs[:, 0] - labels)))

    task = LowerIsBetter()
    assert task.drop(0.10, 0.12) == pytest.approx(0.02) and task.drop_points(0.10, 0.08) == -2.0
    assert task.rank(0.1) > task.rank(0.2) and task.budget_floor(0.1, 1) == pytest.approx(0.11)
    assert (task.best_word, task.better_word, task.worse_word) == ("lowest", "lower", "higher")
    assert task.compile_metrics() == ["mae"] and task.metric_title == "Mean absolute error"
    assert task.score(np.array([[1.0], [3.0]]), np.array([2.0, 2.0])) == 1.0
