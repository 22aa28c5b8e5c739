"""Parity against Keras: the validation and test images through the artifact and its Keras model. Recorded:
the outputs' max and mean absolute difference, the task's agreement and test score beside Keras's (under
the field names ``top1_agreement``, ``test_accuracy``, ``keras_test_accuracy``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimdeploy.data import as_model_input
from slimdeploy.export.target import Runner, Tolerance
from slimdeploy.models import model_input_dtype
from slimdeploy.tasks import DEFAULT_TASK, Task


@dataclass
class Reference:
    """Keras's outputs on the verification images, computed once per model."""

    x: np.ndarray  # validation images, then test images
    outputs: np.ndarray
    n_validation: int
    y_test: np.ndarray
    keras_test_accuracy: float
    task: Task = DEFAULT_TASK  # how outputs are scored and compared


def verification_images(data, limit: int | None = None) -> tuple:
    return data.x_val[:limit], data.x_test[:limit], data.y_test[:limit]


def keras_reference(model, data, *, limit: int | None = None, batch: int = 256) -> Reference:
    x_val, x_test, y_test = verification_images(data, limit)
    # In the model's own input dtype (as Keras feeds it): the artifacts take exactly this.
    x = np.ascontiguousarray(as_model_input(np.concatenate([x_val, x_test]), model_input_dtype(model), data.source))
    outputs = np.asarray(model.predict(x, batch_size=batch, verbose=0), dtype=np.float32)
    keras_score = data.task.score(outputs[len(x_val):], y_test)
    return Reference(x=x, outputs=outputs, n_validation=len(x_val), y_test=y_test, keras_test_accuracy=keras_score,
                     task=data.task)


def compare(reference: Reference, outputs: np.ndarray, tolerance: Tolerance) -> dict:
    """The parity figures (export.json's artifact fields) and whether they are within ``tolerance``;
    ``error`` says why not."""
    task = reference.task
    outputs = np.asarray(outputs, dtype=np.float32)
    limits = {"keras_test_accuracy": reference.keras_test_accuracy, "tolerance": tolerance.atol,
              "min_top1_agreement": tolerance.min_top1_agreement}
    drop_limit = {} if tolerance.max_accuracy_drop is None else {"max_accuracy_drop": tolerance.max_accuracy_drop}
    error = None
    if outputs.shape != reference.outputs.shape:
        error = f"output shape {list(outputs.shape)} differs from Keras's {list(reference.outputs.shape)}"
    elif not np.all(np.isfinite(outputs)):
        error = f"{int(np.sum(~np.isfinite(outputs)))} outputs are NaN or infinite"
    if error:
        return {"max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": None, "test_accuracy": None, **limits,
                "valid": False, "error": error, **drop_limit}
    diff = np.abs(outputs.astype(np.float64) - reference.outputs.astype(np.float64))
    agreement = task.agreement(outputs, reference.outputs)
    score = task.score(outputs[reference.n_validation:], reference.y_test)
    problems = []
    if tolerance.atol is not None and float(diff.max()) > tolerance.atol:
        problems.append(f"max abs diff {float(diff.max()):.3g} exceeds the tolerance {tolerance.atol:g}")
    if agreement < tolerance.min_top1_agreement:
        problems.append(f"{task.agreement_label} {agreement:.4%} is below {tolerance.min_top1_agreement:.1%}")
    drop = task.drop(reference.keras_test_accuracy, score)
    if tolerance.max_accuracy_drop is not None and task.exceeds(drop, tolerance.max_accuracy_drop):
        problems.append(f"test {task.metric_label} {score:.4f} is {task.format_points(task.points(drop), '.2f')} below "
                        f"Keras's {reference.keras_test_accuracy:.4f} (at most {task.points(tolerance.max_accuracy_drop):g} "
                        "allowed)")
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "top1_agreement": agreement,
            "test_accuracy": score, **limits, "valid": not problems, "error": "; ".join(problems) or None, **drop_limit}


def verify(runner: Runner, reference: Reference, tolerance: Tolerance, batch: int) -> dict:
    return compare(reference, runner.run(reference.x, batch), tolerance)
