"""Structured pruning: score hidden Dense units, pick survivors, rebuild the model narrower.

A surviving unit keeps its kernel column and bias, the normalization entries after it and its
rows in the Dense kernels that read it; layers of one group keep the same units. The layouts
come from ``graph.analyze``; nothing in the rebuilt model is masked.
"""

from __future__ import annotations

import numpy as np

from slimdeploy.errors import WorkError
from slimdeploy.prune.graph import DenseGraph, Layout, find_layer, leaf_layers
from slimdeploy.prune.schedule import keep_count


def unit_scores(layer, criterion: str) -> np.ndarray:
    """One score per unit; the lowest go first."""
    if criterion == "bias-threshold":
        return np.abs(layer.bias.numpy())
    kernel = np.abs(layer.kernel.numpy())
    return kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)  # L1 norm of each unit's incoming weights


def group_scores(model, members: list[str], criterion: str) -> np.ndarray:
    """One score per unit position shared by a group's members; the lowest go first."""
    scores = [unit_scores(find_layer(model, name), criterion) for name in members]
    if len(scores) == 1:
        return scores[0]
    if criterion == "bias-threshold":
        # A shared unit goes only when every member's |bias| is below the threshold: the largest decides.
        return np.max(scores, axis=0)
    # Each member's L1 norms divided by their mean, then summed: a raw sum would let the largest layer decide.
    return np.sum([score / (score.mean() or 1.0) for score in scores], axis=0)


def choose_units(model, graph: DenseGraph, criterion: str, *, widths: dict[str, int] | None = None,
                 threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Positions (ascending) of the surviving units, the same for a group's members: "l1" keeps ``widths[name]``
    highest-scoring units, "bias-threshold" those whose |bias| reaches ``threshold`` (at least one)."""
    keep = {}
    for members in graph.groups:
        scores = group_scores(model, members, criterion)
        if criterion == "bias-threshold":
            chosen = np.flatnonzero(scores >= threshold) if (scores >= threshold).any() else np.array([np.argmax(scores)])
        else:
            count = min(widths[members[0]], scores.size)
            chosen = np.argsort(-scores, kind="stable")[:count]
        for name in members:
            keep[name] = np.sort(chosen).astype(np.int64)
    return keep


def planned_widths(original: dict[str, int], rate: float, round_index: int) -> dict[str, int]:
    return {name: keep_count(units, rate, round_index) for name, units in original.items()}


def round_widths(widths: dict[str, int], multiple: int) -> dict[str, int]:
    """Each width rounded down to a multiple of ``multiple``, at least one multiple and never
    wider than it was (Torch-Pruning's ``round_to``: SIMD kernels block by 8 or 16 units)."""
    return {name: min(units, multiple * max(units // multiple, 1)) for name, units in widths.items()}


def dense_param_count(model, graph: DenseGraph, widths: dict[str, int]) -> int:
    """Kernel and bias entries of all Dense layers if the prunable ones had ``widths`` units."""
    total = 0
    for name in graph.dense:
        layer = find_layer(model, name)
        fan_in = int(np.prod(layer.kernel.shape[:-1]))
        if name in graph.rows:
            fan_in = sum(segment.width if segment.group is None else widths[graph.groups[segment.group][0]]
                         for segment in graph.rows[name])
        units = widths.get(name, int(layer.kernel.shape[-1]))
        total += fan_in * units + (units if layer.use_bias else 0)
    return total


def kept_fraction(model, graph: DenseGraph, rate: float, rounds: int) -> float:
    """Fraction of the Dense parameters left after ``rounds`` rounds at ``rate`` (for solving --target)."""
    original = {name: int(find_layer(model, name).units) for name in graph.prunable}
    full = dense_param_count(model, graph, original)
    return dense_param_count(model, graph, planned_widths(original, rate, rounds)) / full


def shrink(model, keep: dict[str, np.ndarray], graph: DenseGraph):
    """A new model in which each layer named in ``keep`` has only the units at those positions, every
    weight sliced from ``model`` (the trained one, θ0, ...); nested models are rebuilt too."""
    import keras  # lazy: heavy

    _check_groups_agree(keep, graph)

    def clone_layer(layer):
        units = {"units": int(len(keep[layer.name]))} if layer.name in keep else {}
        return layer.__class__.from_config({**layer.get_config(), **units})

    narrow = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    for layer in leaf_layers(model):
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in graph.rows or layer.name in keep:
            rows = kept_rows(model, graph.rows[layer.name], keep, graph) if layer.name in graph.rows else None
            weights = _slice_dense(weights, rows, keep.get(layer.name))
        elif layer.name in graph.channels:
            channels = kept_rows(model, graph.channels[layer.name], keep, graph)
            weights = [weight[..., channels] for weight in weights]
        find_layer(narrow, layer.name).set_weights(weights)
    return narrow


def kept_rows(model, layout: Layout, keep: dict[str, np.ndarray], graph: DenseGraph) -> np.ndarray:
    """Positions, in ``model``'s channels laid out as ``layout``, of the channels that stay: a group's
    segment (as wide as its members are now) keeps what ``keep`` gives them (all, when nothing)."""
    parts, offset = [], 0
    for segment in layout:
        width, kept = segment.width, None
        if segment.group is not None:
            first = graph.groups[segment.group][0]
            width, kept = int(find_layer(model, first).units), keep.get(first)
        parts.append(offset + (np.arange(width) if kept is None else kept))
        offset += width
    return np.concatenate(parts).astype(np.int64)


def _check_groups_agree(keep: dict[str, np.ndarray], graph: DenseGraph) -> None:
    for members in graph.groups:
        kept = [keep[name] for name in members if name in keep]
        if any(not np.array_equal(kept[0], other) for other in kept[1:]):
            raise WorkError(f"the layers {', '.join(members)} share their units but were given different units to keep")


def _slice_dense(weights: list[np.ndarray], rows: np.ndarray | None, columns: np.ndarray | None) -> list[np.ndarray]:
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
