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


def layer_rates(names: list[str], outputs: set[str], rate: float) -> dict[str, float]:
    """Layer-wise rates: the output layer at half the rate, as in the lottery-ticket paper."""
    return {name: rate * OUTPUT_RATE_FACTOR if name in outputs else rate for name in names}


def keep_counts(sizes: dict[str, int], outputs: set[str], rate: float, round_index: int, scope: str) -> dict[str, int] | int:
    """Weights kept after ``round_index`` rounds: per layer (layer scope) or in total (global scope)."""
    if scope == "global":
        return keep_count(sum(sizes.values()), rate, round_index)
    rates = layer_rates(list(sizes), outputs, rate)
    return {name: keep_count(size, rates[name], round_index) for name, size in sizes.items()}


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
    names = list(scores)
    flat = np.concatenate([scores[name].ravel() for name in names])
    keep = min(keep, int(sum(mask.sum() for mask in masks.values())))
    chosen = np.zeros(flat.shape, dtype=bool)
    chosen[np.argsort(-flat, kind="stable")[:keep]] = True
    result, start = {}, 0
    for name in names:
        size = scores[name].size
        result[name] = chosen[start:start + size].reshape(scores[name].shape)
        start += size
    return result


def apply_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Zero the masked kernel entries in place."""
    for name, mask in masks.items():
        kernel = find_layer(model, name).kernel
        kernel.assign(kernel.numpy() * mask.astype(kernel.numpy().dtype))


class _KeepMasked:
    """Kernel constraint: after each optimizer step, multiply the kernel by its mask."""

    def __init__(self, mask: np.ndarray, dtype):
        self.mask = mask.astype(dtype)

    def __call__(self, weight):
        return weight * self.mask


def attach_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Zero the masked entries and keep them zero through training."""
    apply_masks(model, masks)
    for name, mask in masks.items():
        kernel = find_layer(model, name).kernel
        kernel.constraint = _KeepMasked(mask, kernel.numpy().dtype)


def detach_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Drop the constraints (they are not serialisable) before the model is saved."""
    for name in masks:
        find_layer(model, name).kernel.constraint = None


def masked_nonzeros(model, masks: dict[str, np.ndarray]) -> int:
    """How many pruned entries are not exactly zero (must be 0)."""
    return int(sum(np.count_nonzero(find_layer(model, name).kernel.numpy()[~mask]) for name, mask in masks.items()))


def kernel_zeros(model, names: list[str]) -> tuple[int, int]:
    """(exactly-zero entries, total entries) over the named Dense kernels."""
    zeros = total = 0
    for name in names:
        kernel = find_layer(model, name).kernel.numpy()
        zeros += int(kernel.size - np.count_nonzero(kernel))
        total += int(kernel.size)
    return zeros, total
