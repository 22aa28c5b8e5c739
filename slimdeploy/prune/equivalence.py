"""The check that a structurally pruned model computes what the masked full-width model computes.

The *masked* model (the source with the removed units' columns, biases, normalization entries and the
kernel rows reading them zeroed) is what the narrow model must compute on a probe batch. Producers are
masked from ``keep`` alone, consumers from ``neurons.kept_rows``, so a slicing error shows as a difference.
A sliced LayerNormalization becomes one whose statistics cover the kept channels only.
"""

from __future__ import annotations

import functools

import numpy as np

from slimdeploy.errors import WorkError
from slimdeploy.models import integer_input_range
from slimdeploy.prune import neurons
from slimdeploy.prune.graph import DenseGraph, find_layer

PROBE_ROWS = 16
PROBE_SEED = 0
RELATIVE_TOLERANCE = 1e-5


def check_shrunk(source, narrow, keep: dict[str, np.ndarray], graph: DenseGraph) -> None:
    """Raise ``WorkError`` unless ``narrow`` matches ``source`` with the units not in ``keep`` masked."""
    probe = probe_inputs(source)
    pruned = [name for name, kept in keep.items() if len(kept) < int(find_layer(source, name).units)] or list(keep)
    _compare(_outputs(masked_model(source, keep, graph), probe), _outputs(narrow, probe), pruned)


def masked_model(source, keep: dict[str, np.ndarray], graph: DenseGraph):
    """A copy of ``source`` whose units not in ``keep`` contribute nothing anywhere (only for the check: never saved)."""
    import keras  # lazy: heavy

    kept_channels = {name: neurons.kept_rows(source, layout, keep, graph) for name, layout in graph.channels.items()}
    layer_norms = {name: _layer_norm_mask(find_layer(source, name), kept) for name, kept in kept_channels.items()
                   if isinstance(find_layer(source, name), keras.layers.LayerNormalization)}
    masked = keras.models.clone_model(source, recursive=True, clone_function=lambda layer: _cloned(layer, layer_norms))
    masked.set_weights(source.get_weights())
    for name, kept in keep.items():
        layer = find_layer(masked, name)
        removed = _removed(kept, int(layer.units))
        weights = layer.get_weights()
        weights[0][..., removed] = 0.0
        for bias in weights[1:]:
            bias[removed] = 0.0
        layer.set_weights(weights)
    for name, layout in graph.rows.items():
        layer = find_layer(masked, name)
        weights = layer.get_weights()
        weights[0][_removed(neurons.kept_rows(source, layout, keep, graph), weights[0].shape[0]), :] = 0.0
        layer.set_weights(weights)
    for name, kept in kept_channels.items():
        if name in layer_norms:
            continue  # the masked layer norm zeroes its removed channels itself
        layer = find_layer(masked, name)
        weights = layer.get_weights()
        # Only the scale and offset (gamma, beta, first): zero, they make the channel exactly zero.
        for weight in weights[:_scale_and_offset(layer)]:
            weight[..., _removed(kept, int(find_layer(source, name).input.shape[-1]))] = 0.0
        layer.set_weights(weights)
    return masked


def _cloned(layer, layer_norms: dict[str, np.ndarray]):
    config = layer.get_config()
    if layer.name in layer_norms:
        return masked_layer_normalization().from_config({**config, "kept": layer_norms[layer.name]})
    return layer.__class__.from_config(config)


@functools.cache
def masked_layer_normalization():
    import keras  # lazy: heavy
    from keras import ops

    class MaskedLayerNormalization(keras.layers.LayerNormalization):
        """``keras.ops.layer_normalization``'s formula with each mean over the kept channels; the removed ones zero."""

        def __init__(self, kept, **kwargs):
            super().__init__(**kwargs)
            self.kept = np.asarray(kept, dtype=bool)

        def call(self, inputs):
            x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
            mask = ops.convert_to_tensor(self.kept, dtype=x.dtype)
            count = ops.sum(mask)
            mean = ops.sum(x * mask, axis=-1, keepdims=True) / count
            centred = (x - mean) * mask
            inverse = ops.rsqrt(ops.sum(ops.square(centred), axis=-1, keepdims=True) / count + self.epsilon)
            outputs = (x if self.rms_scaling else centred) * inverse
            if self.gamma is not None:
                outputs = outputs * ops.cast(self.gamma, x.dtype)
            if self.beta is not None:
                outputs = outputs + ops.cast(self.beta, x.dtype)
            return ops.cast(outputs * mask, self.compute_dtype)

    return MaskedLayerNormalization


def _scale_and_offset(layer) -> int:
    """How many of a normalization layer's weights are its learned scale and offset."""
    return int(bool(getattr(layer, "scale", True))) + int(bool(getattr(layer, "center", True)))


def _removed(kept: np.ndarray, size: int) -> np.ndarray:
    return np.setdiff1d(np.arange(size), kept)


def _layer_norm_mask(layer, kept: np.ndarray) -> np.ndarray:
    """The kept channels of a LayerNormalization as a mask; a WorkError unless it normalises the last axis alone."""
    rank = len(layer.input.shape)
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if [axis % rank for axis in axes] != [rank - 1]:
        raise WorkError(f"cannot check the pruned LayerNormalization '{layer.name}': it normalises over axis "
                        f"{layer.axis} of a rank-{rank} input, and the check handles only the last axis")
    mask = np.zeros(int(layer.input.shape[-1]), dtype=bool)
    mask[kept] = True
    return mask


def probe_inputs(model, rows: int = PROBE_ROWS, seed: int = PROBE_SEED):
    """A fixed batch in the model's input shapes and dtypes: integer ids within its Embedding's range."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [rows] + [8 if size is None else int(size) for size in tensor.shape[1:]]
        dtype = np.dtype(str(getattr(tensor.dtype, "name", tensor.dtype)))
        if np.issubdtype(dtype, np.integer):
            low, high = integer_input_range(model) or (0, 2)
            arrays.append(rng.integers(low, high, size=shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def _outputs(model, probe) -> list[np.ndarray]:
    import keras  # lazy: heavy

    return [np.asarray(keras.ops.convert_to_numpy(value)) for value in keras.tree.flatten(model(probe, training=False))]


def _compare(expected: list[np.ndarray], got: list[np.ndarray], pruned: list[str]) -> None:
    for reference, value in zip(expected, got):
        if reference.shape != value.shape:
            raise WorkError(f"structured pruning of {', '.join(pruned)} changed the shape of the outputs "
                            f"({reference.shape} -> {value.shape})")
        difference = float(np.max(np.abs(reference.astype(np.float64) - value))) if reference.size else 0.0
        tolerance = RELATIVE_TOLERANCE * (1.0 + float(np.max(np.abs(reference))) if reference.size else 1.0)
        if not difference <= tolerance:
            raise WorkError(f"structured pruning of {', '.join(pruned)} changed the outputs: max |diff| {difference:.3g} "
                            f"> {tolerance:.3g} against the same model with the removed units masked (a slicing error)")
