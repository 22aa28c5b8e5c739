"""Unstructured pruning: magnitude masks (True = kept) over Dense kernels that hold through training.

While a masked model trains, each kernel carries a constraint that multiplies it by its mask
after every optimizer step, so pruned weights stay exactly zero whatever the optimizer does.
The constraints are removed before saving. Biases are never pruned.
"""

from __future__ import annotations

import numpy as np

from slimdeploy.prune.graph import find_layer
from slimdeploy.prune.schedule import keep_count
from slimdeploy.prune.settings import OUTPUT_RATE_FACTOR


def kernel_sizes(model, names: list[str]) -> dict[str, int]:
    return {name: int(np.prod(find_layer(model, name).kernel.shape)) for name in names}


def full_masks(model, names: list[str]) -> dict[str, np.ndarray]:
    return {name: np.ones(find_layer(model, name).kernel.shape, dtype=bool) for name in names}


def keep_counts(sizes: dict[str, int], outputs: set[str], rate: float, round_index: int, scope: str) -> dict[str, int] | int:
    """Weights kept after ``round_index`` rounds: per layer (layer scope; the output layer at a lower rate)
    or in total (global scope)."""
    if scope == "global":
        return keep_count(sum(sizes.values()), rate, round_index)
    return {name: keep_count(size, rate * OUTPUT_RATE_FACTOR if name in outputs else rate, round_index)
            for name, size in sizes.items()}


def kept_fraction(sizes: dict[str, int], outputs: set[str], rate: float, rounds: int, scope: str) -> float:
    """Fraction of all prunable kernel weights kept after ``rounds`` rounds (for solving --target)."""
    counts = keep_counts(sizes, outputs, rate, rounds, scope)
    kept = counts if isinstance(counts, int) else sum(counts.values())
    return kept / sum(sizes.values())


def magnitude_masks(model, masks: dict[str, np.ndarray], counts: dict[str, int] | int) -> dict[str, np.ndarray]:
    """Keep the largest-magnitude weights still unmasked: ``counts`` per layer, or one total (global)."""
    scores = {name: np.where(mask, np.abs(find_layer(model, name).kernel.numpy()), -1.0) for name, mask in masks.items()}
    if isinstance(counts, int):
        return _global_masks(scores, masks, counts)
    return {name: _top(scores[name], min(counts[name], int(masks[name].sum()))) for name in masks}


def _top(score: np.ndarray, keep: int) -> np.ndarray:
    flat = score.ravel()
    # A stable sort makes ties (exact equal magnitudes) break the same way every run.
    order = np.argsort(-flat, kind="stable")
    mask = np.zeros(flat.shape, dtype=bool)
    mask[order[:keep]] = True
    return mask.reshape(score.shape)


def _global_masks(scores: dict[str, np.ndarray], masks: dict[str, np.ndarray], keep: int) -> dict[str, np.ndarray]:
    keep = min(keep, int(sum(mask.sum() for mask in masks.values())))
    chosen = _top(np.concatenate([score.ravel() for score in scores.values()]), keep)
    parts = np.split(chosen, np.cumsum([score.size for score in scores.values()])[:-1])
    return {name: part.reshape(scores[name].shape) for name, part in zip(scores, parts)}


def apply_masks(model, masks: dict[str, np.ndarray]) -> None:
    for name, mask in masks.items():
        kernel = find_layer(model, name).kernel
        kernel.assign(kernel.numpy() * mask.astype(kernel.numpy().dtype))


def attach_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Zero the masked entries and keep them zero through training (a kernel constraint applied after each step)."""
    apply_masks(model, masks)
    for name, mask in masks.items():
        kernel = find_layer(model, name).kernel
        kernel.constraint = lambda weight, kept=mask.astype(kernel.numpy().dtype): weight * kept


def detach_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Drop the constraints (they are not serialisable) before the model is saved."""
    for name in masks:
        find_layer(model, name).kernel.constraint = None


def masked_nonzeros(model, masks: dict[str, np.ndarray]) -> int:
    """How many pruned entries are not exactly zero (must be 0)."""
    return int(sum(np.count_nonzero(find_layer(model, name).kernel.numpy()[~mask]) for name, mask in masks.items()))


def kernel_zeros(model, names: list[str]) -> tuple[int, int]:
    """(exactly-zero entries, total entries) over the named Dense kernels."""
    kernels = [find_layer(model, name).kernel.numpy() for name in names]
    total = sum(int(kernel.size) for kernel in kernels)
    return total - sum(int(np.count_nonzero(kernel)) for kernel in kernels), total
