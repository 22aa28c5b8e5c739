"""Which Dense layers of a Keras model can lose units, and what must be sliced with them.

Each tensor's *layout* says where every channel of its last axis comes from: a sequence of
segments, each the units of one group of Dense layers or channels nothing removes. Element-wise
layers, normalization over the last axis and pooling keep the layout; Flatten repeats it per
position; Concatenate joins layouts; an element-wise merge (Add, Multiply, ...) makes the groups
meeting in it one group with one shared set of units (Torch-Pruning's DepGraph groups). A Dense
layer reading a layout has its kernel rows sliced by it, a normalization layer its weights.
Anything else (a layer that mixes channels, a model output, a shared layer, a nested model's
input, a merge with fixed channels) blocks the groups that reach it, with the reason recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from slimdeploy.errors import UserError


@dataclass(frozen=True)
class Segment:
    group: int | None      # index in DenseGraph.groups; None: channels that are never removed
    width: int             # channels in the analysed (dense) model


Layout = tuple[Segment, ...]


@dataclass
class DenseGraph:
    dense: list[str]                                   # Dense layers (nested ones too), in model order
    prunable: list[str]                                # Dense layers whose units may be removed
    unprunable: dict[str, str]                         # Dense layer -> why its units stay
    outputs: set[str]                                  # Dense layers whose units reach a model output
    consumers: dict[str, list[str]] = field(default_factory=dict)  # prunable Dense -> Dense layers reading its units
    producer: dict[str, str] = field(default_factory=dict)         # Dense -> a prunable Dense whose group is its whole input
    batchnorms: dict[str, str] = field(default_factory=dict)       # BatchNormalization -> a prunable Dense of its one group
    groups: list[list[str]] = field(default_factory=list)          # prunable Dense layers that keep one shared unit set
    group_of: dict[str, int] = field(default_factory=dict)         # prunable Dense -> its index in groups
    rows: dict[str, Layout] = field(default_factory=dict)          # Dense -> layout of its kernel rows (when a group is in it)
    channels: dict[str, Layout] = field(default_factory=dict)      # Batch/LayerNormalization -> layout of its channels


def all_layers(model):
    """Every layer of ``model``, nested models and the layers inside them too, in model order."""
    for layer in model.layers:
        yield layer
        if _is_model(layer):
            yield from all_layers(layer)


def leaf_layers(model):
    return (layer for layer in all_layers(model) if not _is_model(layer))


def find_layer(model, name: str):
    """The layer called ``name`` anywhere in ``model`` (``model.get_layer`` sees only the top level)."""
    found = [layer for layer in all_layers(model) if layer.name == name]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"model '{model.name}' has no layer named '{name}'")
    raise UserError(f"model '{model.name}' has {len(found)} layers named '{name}' (inside nested models); "
                    "pruning needs unique layer names: rename them")


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def analyze(model) -> DenseGraph:
    import keras  # lazy: heavy

    _refuse_duplicate_names(model, keras)
    tracer = _Tracer(keras)
    try:
        inputs = [tracer.fixed(tuple(t.shape), t._keras_history.operation.name) for t in model.inputs]
        outputs = tracer.trace(model, inputs)
    except _Untraceable as exc:
        dense = _dense_names(model, keras)
        return DenseGraph(dense=dense, prunable=[], unprunable={name: str(exc) for name in dense}, outputs=set(dense))
    for layout in outputs:
        for segment in layout:
            if segment.gid is not None:
                tracer.reached_output.add(segment.gid)
        tracer.block(layout, "output layer (classes are never removed)")
    return tracer.finish(_dense_names(model, keras))


def _dense_names(model, keras) -> list[str]:
    return [layer.name for layer in all_layers(model) if isinstance(layer, keras.layers.Dense)]


def _refuse_duplicate_names(model, keras) -> None:
    """Pruning state is keyed by layer name: two weighted layers of one name would be confused."""
    counts = Counter(layer.name for layer in leaf_layers(model) if layer.weights)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise UserError(f"model '{model.name}' has {counts[repeated[0]]} layers named '{repeated[0]}' (inside nested "
                        "models); pruning needs unique layer names: rename them")


class _Untraceable(Exception):
    pass


class _Seg(NamedTuple):
    gid: int | None        # group id while tracing (union-find); None: fixed channels
    width: int | None
    trail: tuple = ()      # merges and concatenations a group's units went through (for reasons)
    origin: str = ""       # the layer fixed channels come from


_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_PASS_THROUGH = ("Activation", "Dropout", "SpatialDropout1D", "ReLU", "LeakyReLU", "ELU", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity")
_POOLING = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
            "GlobalMaxPooling2D", "GlobalMaxPooling3D", "AveragePooling1D", "AveragePooling2D", "MaxPooling1D",
            "MaxPooling2D")
# Activations that mix the units of a layer: removing one changes the others.
# glu halves the width as well: its units cannot map one to one.
_MIXING_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")


def _types(keras, names):
    return tuple(getattr(keras.layers, name) for name in names if hasattr(keras.layers, name))


class _Tracer:
    """Walks a model's graph once, computing each tensor's layout and grouping Dense layers."""

    def __init__(self, keras):
        self.keras = keras
        self.merges, self.pass_through, self.pooling = (_types(keras, names) for names in (_MERGES, _PASS_THROUGH, _POOLING))
        self.parent: dict[int, int] = {}
        self.gid_of: dict[str, int] = {}                       # Dense -> its group id
        self.reasons: dict[int, list[str]] = defaultdict(list)  # group id -> why it cannot shrink
        self.own_reasons: dict[str, str] = {}                  # shared Dense -> why (shown before its group's reasons)
        self.mixing: dict[str, str] = {}                       # Dense -> its activation that mixes units
        self.calls: Counter = Counter()
        self.dense_inputs: dict[str, list[tuple]] = defaultdict(list)
        self.norm_inputs: dict[str, tuple] = {}
        self.norm_types: dict[str, str] = {}
        self.reached_output: set[int] = set()

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        self.parent[b] = a
        return a

    def block(self, layout, reason: str) -> None:
        for segment in layout:
            if segment.gid is not None:
                trail = f" (through {', '.join(segment.trail[-3:])})" if segment.trail else ""
                self.reasons[segment.gid].append(reason + trail)

    @staticmethod
    def fixed(shape: tuple, origin: str) -> tuple:
        return (_Seg(None, shape[-1] if len(shape) > 1 else 1, origin=origin),)

    def trace(self, model, inputs: list[tuple]) -> list[tuple]:
        graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph in a Functional
        nodes = getattr(graph, "_nodes_by_depth", None)
        if nodes is None:
            raise _Untraceable(f"model '{model.name}' has no graph the analysis can follow (not built, or subclassed)")
        values = {id(tensor): layout for tensor, layout in zip(graph.inputs, inputs)}
        for depth in sorted(nodes, reverse=True):
            for node in nodes[depth]:
                if node.is_input or not node.operation:
                    continue
                ins = [values.get(id(tensor)) for tensor in node.input_tensors]
                if any(layout is None for layout in ins):
                    continue
                for tensor, layout in zip(node.outputs, self.step(node.operation, node, ins)):
                    values[id(tensor)] = layout
        return [values[id(tensor)] for tensor in graph.outputs]

    def step(self, op, node, ins: list[tuple]) -> list[tuple]:
        """The layouts of ``op``'s outputs."""
        layers = self.keras.layers
        self.calls[op.name] += 1
        shapes = [tuple(tensor.shape) for tensor in node.input_tensors]
        out_shapes = [tuple(tensor.shape) for tensor in node.outputs]
        label = f"{type(op).__name__} '{op.name}'"
        if _is_model(op):
            for layout in ins:
                self.block(layout, f"feeds nested model '{op.name}' (a nested model's input keeps its width)")
            return self.trace(op, [self.fixed(shape, op.name) for shape in shapes])
        if isinstance(op, layers.Dense):
            return [self.dense(op, ins[0])]
        if isinstance(op, (layers.BatchNormalization, layers.LayerNormalization)) and _over_last_axis(op.axis, len(shapes[0])):
            self.norm_inputs[op.name] = ins[0]
            self.norm_types[op.name] = type(op).__name__
            return [ins[0]]
        if (isinstance(op, self.pass_through) and not _mixes(getattr(op, "activation", None))
                or isinstance(op, self.pooling) and getattr(op, "data_format", "channels_last") == "channels_last"):
            return [ins[0]]
        if isinstance(op, layers.Flatten) and (len(shapes[0]) <= 2 or _flattens_channels_last(op, shapes[0])):
            positions = int(np.prod(shapes[0][1:-1])) if len(shapes[0]) > 2 else 1
            return [_joined(ins[0] * positions)]
        if isinstance(op, self.merges):
            return [self.merge(ins, label, out_shapes[0], op.name)]
        if isinstance(op, layers.Concatenate) and op.axis in (-1, len(shapes[0]) - 1):
            return [self.concatenate(ins, label)]
        for layout in ins:
            self.block(layout, f"feeds {label} (cannot be sliced safely)")
        return [self.fixed(shape, op.name) for shape in out_shapes]

    def dense(self, layer, layout) -> tuple:
        self.dense_inputs[layer.name].append(layout)
        if layer.name not in self.gid_of:
            gid = len(self.parent)
            self.parent[gid] = gid
            self.gid_of[layer.name] = gid
            if _mixes(layer.activation):
                self.mixing[layer.name] = layer.activation.__name__
        return (_Seg(self.gid_of[layer.name], int(layer.units)),)

    def merge(self, ins: list[tuple], label: str, out_shape: tuple, name: str) -> tuple:
        """An element-wise merge: the groups meeting position by position become one group."""
        widths = [tuple(segment.width for segment in layout) for layout in ins]
        if any(w != widths[0] for w in widths) or None in widths[0]:
            for layout in ins:
                self.block(layout, f"meets channels laid out differently in {label}")
            return self.fixed(out_shape, name)
        merged = []
        for segments in zip(*ins):
            grouped = [segment for segment in segments if segment.gid is not None]
            fixed = [segment for segment in segments if segment.gid is None]
            if grouped and fixed:
                reason = f"meets '{fixed[0].origin}' in {label} (a skip from channels no Dense layer here removes)"
                self.block(grouped, reason)
            if fixed:
                merged.append(fixed[0])
                continue
            root = grouped[0].gid
            for segment in grouped[1:]:
                root = self.union(root, segment.gid)
            trail = tuple(dict.fromkeys(step for segment in grouped for step in segment.trail)) + (label,)
            merged.append(_Seg(root, grouped[0].width, trail))
        return tuple(merged)

    def concatenate(self, ins: list[tuple], label: str) -> tuple:
        segments = [segment._replace(trail=segment.trail + (label,)) if segment.gid is not None else segment
                    for layout in ins for segment in layout]
        return _joined(segments)

    def finish(self, dense: list[str]) -> DenseGraph:
        self._block_shared()
        for name, activation in self.mixing.items():
            self.reasons[self.gid_of[name]].append(f"its activation {activation} mixes its units")
        consumers: dict[int, list[str]] = defaultdict(list)
        for name, layouts in self.dense_inputs.items():
            for segment in layouts[0]:
                if segment.gid is not None and name not in consumers[self.find(segment.gid)]:
                    consumers[self.find(segment.gid)].append(name)
        reasons: dict[int, list[str]] = defaultdict(list)
        for gid, found in self.reasons.items():
            reasons[self.find(gid)].extend(found)
        for name, gid in self.gid_of.items():
            root = self.find(gid)
            if not reasons[root] and not consumers[root]:
                reasons[root].append("no Dense layer reads its units")
        members: dict[int, list[str]] = defaultdict(list)
        for name in dense:
            if name in self.gid_of:
                members[self.find(self.gid_of[name])].append(name)
        graph = DenseGraph(dense=dense, prunable=[], unprunable={}, outputs=set())
        index: dict[int, int] = {}
        reached = {self.find(gid) for gid in self.reached_output}
        for name in dense:
            if name not in self.gid_of:
                graph.unprunable[name] = "not on a path from the model's inputs to its outputs that can be followed"
                continue
            root = self.find(self.gid_of[name])
            if root in reached:
                graph.outputs.add(name)
            if reasons[root]:
                graph.unprunable[name] = self._reason(name, members[root], reasons[root])
                continue
            if root not in index:
                index[root] = len(graph.groups)
                graph.groups.append(members[root])
            graph.prunable.append(name)
            graph.group_of[name] = index[root]
            graph.consumers[name] = list(consumers[root])
        self._layouts(graph, index)
        return graph

    def _block_shared(self) -> None:
        for name, count in self.calls.items():
            if count < 2:
                continue
            if name in self.gid_of:
                self.own_reasons[name] = f"shared layer (called {count} times)"
                self.reasons[self.gid_of[name]].append(self.own_reasons[name])
                for layout in self.dense_inputs[name]:
                    self.block(layout, f"feeds shared Dense layer '{name}'")
            if name in self.norm_inputs:
                self.block(self.norm_inputs.pop(name), f"feeds shared layer '{name}'")

    def _reason(self, name: str, members: list[str], reasons: list[str]) -> str:
        reason = self.own_reasons.get(name) or reasons[0]
        others = [member for member in members if member != name]
        return reason + (f"; shares its units with {', '.join(others)}" if others else "")

    def _layouts(self, graph: DenseGraph, index: dict[int, int]) -> None:
        """The public layouts of the layers that are sliced: only prunable groups stay groups."""
        def public(layout) -> Layout:
            segments = [_Seg(index.get(self.find(s.gid)) if s.gid is not None else None, s.width) for s in layout]
            return tuple(Segment(s.gid, int(s.width)) for s in _joined(segments))

        for name, layouts in self.dense_inputs.items():
            layout = public(layouts[0])
            if any(segment.group is not None for segment in layout):
                graph.rows[name] = layout
                if len(layout) == 1:
                    graph.producer[name] = graph.groups[layout[0].group][0]
        for name, raw in self.norm_inputs.items():
            layout = public(raw)
            if not any(segment.group is not None for segment in layout):
                continue
            graph.channels[name] = layout
            if self.norm_types[name] == "BatchNormalization" and len(layout) == 1:
                graph.batchnorms[name] = graph.groups[layout[0].group][0]


def _joined(segments) -> tuple:
    """Adjacent fixed segments as one (their origins do not matter to slicing)."""
    joined: list[_Seg] = []
    for segment in segments:
        if segment.gid is None and joined and joined[-1].gid is None:
            previous = joined[-1]
            width = None if previous.width is None or segment.width is None else previous.width + segment.width
            joined[-1] = previous._replace(width=width)
        else:
            joined.append(segment)
    return tuple(joined)


def _over_last_axis(axis, rank: int) -> bool:
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


def _flattens_channels_last(layer, shape: tuple) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last" and None not in shape[1:]


def _mixes(activation) -> bool:
    return getattr(activation, "__name__", "") in _MIXING_ACTIVATIONS
