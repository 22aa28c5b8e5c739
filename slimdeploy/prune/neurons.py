"""Structured pruning: score hidden Dense units, pick survivors, rebuild the model narrower.

The rebuilt model is an ordinary Keras model with smaller Dense layers (nothing masked):
a surviving unit keeps its kernel column and bias, the BatchNormalization entries after it
and its rows in the next Dense kernels. Which layers may shrink comes from ``graph.analyze``.
"""

from __future__ import annotations

import numpy as np

from slimdeploy.prune.graph import DenseGraph
from slimdeploy.prune.schedule import keep_count


def unit_scores(layer, criterion: str) -> np.ndarray:
    """One score per unit; the lowest go first."""
    if criterion == "bias-threshold":
        return np.abs(layer.bias.numpy())
    kernel = np.abs(layer.kernel.numpy())
    return kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)  # L1 norm of each unit's incoming weights


def choose_units(model, graph: DenseGraph, criterion: str, *, widths: dict[str, int] | None = None,
                 threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Positions (in ``model``'s current layers, ascending) of the units that survive.

    With ``criterion="l1"`` each prunable layer keeps its ``widths[name]`` highest-scoring units;
    with ``"bias-threshold"`` it keeps the units whose |bias| reaches ``threshold`` (at least one).
    """
    keep = {}
    for name in graph.prunable:
        scores = unit_scores(model.get_layer(name), criterion)
        if criterion == "bias-threshold":
            chosen = np.flatnonzero(scores >= threshold)
            if chosen.size == 0:
                chosen = np.array([int(np.argmax(scores))])
        else:
            count = min(widths[name], scores.size)
            chosen = np.argsort(-scores, kind="stable")[:count]
        keep[name] = np.sort(chosen).astype(np.int64)
    return keep


def planned_widths(original: dict[str, int], rate: float, round_index: int) -> dict[str, int]:
    return {name: keep_count(units, rate, round_index) for name, units in original.items()}


def dense_param_count(model, graph: DenseGraph, widths: dict[str, int]) -> int:
    """Kernel and bias entries of all Dense layers if the prunable ones had ``widths`` units."""
    total = 0
    for name in graph.dense:
        layer = model.get_layer(name)
        fan_in = int(np.prod(layer.kernel.shape[:-1]))
        producer = graph.producer.get(name)
        if producer is not None:
            fan_in = widths[producer]
        units = widths.get(name, int(layer.kernel.shape[-1]))
        total += fan_in * units + (units if layer.use_bias else 0)
    return total


def kept_fraction(model, graph: DenseGraph, rate: float, rounds: int) -> float:
    """Fraction of the Dense parameters left after ``rounds`` rounds at ``rate`` (for solving --target)."""
    original = {name: int(model.get_layer(name).units) for name in graph.prunable}
    full = dense_param_count(model, graph, original)
    return dense_param_count(model, graph, planned_widths(original, rate, rounds)) / full


def shrink(model, keep: dict[str, np.ndarray], graph: DenseGraph):
    """A new model in which each layer named in ``keep`` has only the units at those positions.

    Every weight of the result comes from ``model`` (sliced where needed), so the caller
    decides the values by choosing which model to shrink: the trained one, θ0, ...
    """
    import keras

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in keep:
            config["units"] = int(len(keep[layer.name]))
        return layer.__class__.from_config(config)

    narrow = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.Dense):
            weights = _slice_dense(layer, weights, keep.get(graph.producer.get(layer.name)), keep.get(layer.name))
        elif layer.name in graph.batchnorms:
            units = keep[graph.batchnorms[layer.name]]
            weights = [weight[..., units] for weight in weights]
        narrow.get_layer(layer.name).set_weights(weights)
    return narrow


def _slice_dense(layer, weights: list[np.ndarray], rows: np.ndarray | None, columns: np.ndarray | None) -> list[np.ndarray]:
    kernel, rest = weights[0], weights[1:]
    if rows is not None:
        kernel = kernel[..., rows, :]
    if columns is not None:
        kernel = kernel[..., columns]
        rest = [bias[columns] for bias in rest]
    return [kernel, *rest]


def positions_within(outer: dict[str, np.ndarray], inner: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Where the original units of ``inner`` sit inside the narrower model described by ``outer``."""
    return {name: np.searchsorted(outer[name], inner[name]).astype(np.int64) for name in inner}
