"""Pruning methods: the mode-specific steps of a prune (``lottery.py`` runs the rounds the same way
for each). A method is one class with ``@register``; ``pruning_method(mode)`` finds it. Its state
is, per layer: structured, the original indices of the units kept (the same across a group);
unstructured, a boolean kernel mask (True = kept).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, ClassVar, Iterator

import numpy as np

from slimdeploy.errors import UserError, WorkError
from slimdeploy.prune import masks as masking
from slimdeploy.prune import neurons
from slimdeploy.prune.equivalence import check_shrunk
from slimdeploy.prune.graph import DenseGraph, find_layer

State = dict[str, np.ndarray]
# kind ("init", "rewind", "random") -> the dense-architecture model survivors are reset to.
SourceOf = Callable[[str], object]


class PruningMethod:
    name: ClassVar[str]

    def layers(self, graph: DenseGraph, model_name: str) -> list[str]:
        """The Dense layers this method prunes (a one-line error naming ``model_name`` when there is none)."""
        if not graph.dense:
            raise UserError(f"{model_name} has no Dense layer to prune")
        return list(graph.dense)

    def unprunable(self, graph: DenseGraph) -> dict[str, str]:
        """Layers left alone, with why (recorded in lottery.json)."""
        return {}

    def check_model(self, settings, model, layers: list[str], run_dir: Path) -> None:
        """Refuse settings this model cannot be pruned with."""

    def kept_fraction(self, settings, model, graph: DenseGraph, layers: list[str]) -> Callable[[float], float]:
        """rate -> the fraction of prunable weights left after ``settings.rounds`` rounds (solving --target)."""
        raise NotImplementedError

    def initial_state(self, model, layers: list[str]) -> State:
        raise NotImplementedError

    def next_state(self, model, state: State, round_index: int, *, settings, graph: DenseGraph, rate: float,
                   original_units: dict[str, int]) -> State:
        """The state after pruning round ``round_index`` of ``model`` (which has ``state``)."""
        raise NotImplementedError

    def reset(self, kind: str, previous, previous_state: State | None, new_state: State, source_of: SourceOf,
              graph: DenseGraph):
        """The pruned model, its survivors starting from ``kind`` ("trained": ``previous``'s weights)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def training(self, model, state: State, description: str) -> Iterator[None]:
        """Held around the retraining of a pruned model."""
        yield

    def weights_remaining(self, model, graph: DenseGraph, kept_kernel_weights: int, reference) -> float:
        """The fraction of the dense model's prunable weights ``model`` keeps (``reference``: the dense sizes)."""
        raise NotImplementedError


_METHODS: dict[str, PruningMethod] = {}


def register(cls: type[PruningMethod]) -> type[PruningMethod]:
    _METHODS[cls.name] = cls()
    return cls


def pruning_method(mode: str) -> PruningMethod:
    try:
        return _METHODS[mode]
    except KeyError:
        raise UserError(f"unknown pruning mode {mode!r} (known: {', '.join(_METHODS)})") from None


def method_names() -> tuple[str, ...]:
    return tuple(_METHODS)


def dense_params(model, names: list[str]) -> int:
    """Kernel and bias entries of the named Dense layers."""
    return int(sum(np.prod(weight.shape) for name in names for weight in find_layer(model, name).weights))


@register
class Structured(PruningMethod):
    """Remove hidden Dense units: the model is rebuilt narrower (``neurons``) and checked against the
    masked full-width model (``equivalence``)."""

    name = "structured"

    def layers(self, graph: DenseGraph, model_name: str) -> list[str]:
        super().layers(graph, model_name)
        if not graph.prunable:
            reasons = "; ".join(f"{layer}: {reason}" for layer, reason in graph.unprunable.items())
            raise UserError(f"{model_name} has no Dense layer whose units can be removed ({reasons})")
        return list(graph.prunable)

    def unprunable(self, graph: DenseGraph) -> dict[str, str]:
        return dict(graph.unprunable)

    def check_model(self, settings, model, layers: list[str], run_dir: Path) -> None:
        if settings.criterion != "bias-threshold":
            return
        unbiased = [name for name in layers if not find_layer(model, name).use_bias]
        if unbiased:
            raise UserError(f"--criterion bias-threshold needs a bias in every pruned layer; {unbiased[0]} of the dense "
                            f"model in {run_dir} has none (use_bias = false): use --criterion l1")

    def kept_fraction(self, settings, model, graph: DenseGraph, layers: list[str]) -> Callable[[float], float]:
        return lambda rate: neurons.kept_fraction(model, graph, rate, settings.rounds)

    def initial_state(self, model, layers: list[str]) -> State:
        return {name: np.arange(find_layer(model, name).units, dtype=np.int64) for name in layers}

    def next_state(self, model, state: State, round_index: int, *, settings, graph: DenseGraph, rate: float,
                   original_units: dict[str, int]) -> State:
        widths = neurons.planned_widths({name: original_units[name] for name in state}, rate, round_index)
        if settings.round_to:
            widths = neurons.round_widths(widths, settings.round_to)
        return self.narrowed_state(model, state, widths, settings=settings, graph=graph)

    def narrowed_state(self, model, state: State, widths: dict[str, int], *, settings, graph: DenseGraph) -> State:
        """``state`` narrowed to ``widths`` units per layer, keeping ``model``'s highest-scoring units."""
        positions = neurons.choose_units(model, graph, settings.criterion, widths=widths, threshold=settings.threshold)
        return {name: kept[positions[name]] for name, kept in state.items()}

    def reset(self, kind: str, previous, previous_state: State | None, new_state: State, source_of: SourceOf,
              graph: DenseGraph):
        if kind == "trained":
            source, keep = previous, neurons.positions_within(previous_state, new_state)
        else:
            source, keep = source_of(kind), new_state
        narrow = neurons.shrink(source, keep, graph)
        # Never a silent wrong output: the narrow model must compute what the masked one does.
        check_shrunk(source, narrow, keep, graph)
        return narrow

    def weights_remaining(self, model, graph: DenseGraph, kept_kernel_weights: int, reference) -> float:
        return dense_params(model, graph.dense) / reference.dense_params


@register
class Unstructured(PruningMethod):
    """Mask Dense kernel weights (``masks``): masked weights stay exactly zero through retraining."""

    name = "unstructured"

    def kept_fraction(self, settings, model, graph: DenseGraph, layers: list[str]) -> Callable[[float], float]:
        sizes = masking.kernel_sizes(model, layers)
        return lambda rate: masking.kept_fraction(sizes, graph.outputs, rate, settings.rounds, settings.scope)

    def initial_state(self, model, layers: list[str]) -> State:
        return masking.full_masks(model, layers)

    def next_state(self, model, state: State, round_index: int, *, settings, graph: DenseGraph, rate: float,
                   original_units: dict[str, int]) -> State:
        sizes = {name: mask.size for name, mask in state.items()}
        counts = masking.keep_counts(sizes, graph.outputs, rate, round_index, settings.scope)
        return masking.magnitude_masks(model, state, counts)

    def reset(self, kind: str, previous, previous_state: State | None, new_state: State, source_of: SourceOf,
              graph: DenseGraph):
        import keras  # lazy: heavy

        source = previous if kind == "trained" else source_of(kind)
        model = keras.models.clone_model(source)
        model.set_weights(source.get_weights())
        masking.apply_masks(model, new_state)
        return model

    @contextlib.contextmanager
    def training(self, model, state: State, description: str) -> Iterator[None]:
        masking.attach_masks(model, state)
        try:
            yield
        finally:
            masking.detach_masks(model, state)
        nonzero = masking.masked_nonzeros(model, state)
        if nonzero:
            raise WorkError(f"{description}: {nonzero} pruned weights became non-zero during training")

    def weights_remaining(self, model, graph: DenseGraph, kept_kernel_weights: int, reference) -> float:
        return kept_kernel_weights / reference.kernel_weights
