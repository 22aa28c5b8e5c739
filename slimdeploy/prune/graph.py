"""Which Dense layers of a Keras model can lose units, and what must be sliced with them.

Removing unit j of a Dense layer D is safe when every path from D's output passes only
through element-wise layers (activations, Dropout, BatchNormalization over the last axis)
and ends in Dense layers: then D's kernel column j, its bias j, the BatchNormalization
entries j and row j of each consuming Dense kernel go, and nothing else changes. A residual
Add, a Concatenate, a Flatten, a shared layer or a model output cannot be sliced that way,
so D keeps its units and the reason is recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class DenseGraph:
    dense: list[str]                                   # top-level Dense layers, in model order
    prunable: list[str]                                # Dense layers whose units may be removed
    unprunable: dict[str, str]                         # Dense layer -> why its units stay
    outputs: set[str]                                  # Dense layers whose units are model outputs
    consumers: dict[str, list[str]] = field(default_factory=dict)  # prunable Dense -> Dense layers reading it
    producer: dict[str, str] = field(default_factory=dict)         # Dense -> the prunable Dense it reads
    batchnorms: dict[str, str] = field(default_factory=dict)       # BatchNormalization -> prunable Dense it follows


def _pass_through_types():
    import keras

    layers = keras.layers
    names = ("Activation", "Dropout", "ReLU", "LeakyReLU", "ELU", "GaussianNoise", "GaussianDropout",
             "AlphaDropout", "ActivityRegularization", "Identity")
    return tuple(getattr(layers, name) for name in names if hasattr(layers, name))


def _walk(model):
    """The model's own graph: how often each layer is called and who reads each layer's output."""
    calls: Counter = Counter()
    readers: dict[str, list] = defaultdict(list)
    seen = set()
    stack = [tensor._keras_history for tensor in model.outputs]
    while stack:
        operation, node_index, _ = stack.pop()
        key = (id(operation), node_index)
        if key in seen:
            continue
        seen.add(key)
        calls[operation.name] += 1
        node = operation._inbound_nodes[node_index]
        for tensor in node.input_tensors:
            history = tensor._keras_history
            readers[history.operation.name].append(operation)
            stack.append(history)
    output_ops = {tensor._keras_history.operation.name for tensor in model.outputs}
    return calls, readers, output_ops


def analyze(model) -> DenseGraph:
    import keras

    pass_through = _pass_through_types()
    calls, readers, output_ops = _walk(model)
    dense = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    graph = DenseGraph(dense=dense, prunable=[], unprunable={}, outputs=set())
    for name in dense:
        reason, consumers, batchnorms, is_output = _follow(model.get_layer(name), calls, readers, output_ops, pass_through, keras)
        if is_output:
            graph.outputs.add(name)
        if reason:
            graph.unprunable[name] = reason
            continue
        graph.prunable.append(name)
        graph.consumers[name] = consumers
        for consumer in consumers:
            graph.producer[consumer] = name
        for bn in batchnorms:
            graph.batchnorms[bn] = name
    return graph


def _follow(layer, calls, readers, output_ops, pass_through, keras):
    """Walk forward from a Dense layer through element-wise layers; say why it cannot shrink, if so."""
    if calls[layer.name] > 1:
        return f"shared layer (called {calls[layer.name]} times)", [], [], False
    consumers, batchnorms, is_output, reason = [], [], False, None
    frontier, visited = [layer], set()
    while frontier:
        current = frontier.pop()
        if current.name in visited:
            continue
        visited.add(current.name)
        if current.name in output_ops:
            is_output = True
            reason = reason or "output layer (classes are never removed)"
        for reader in readers.get(current.name, []):
            if isinstance(reader, keras.layers.Dense):
                if calls[reader.name] > 1:
                    reason = reason or f"feeds shared Dense layer '{reader.name}'"
                elif reader.name not in consumers:
                    consumers.append(reader.name)
            elif isinstance(reader, keras.layers.BatchNormalization):
                rank = len(reader.input.shape) if calls[reader.name] == 1 else None
                if calls[reader.name] > 1:
                    reason = reason or f"feeds shared layer '{reader.name}'"
                elif reader.axis not in (-1, [-1], rank - 1, [rank - 1]):
                    reason = reason or f"feeds BatchNormalization '{reader.name}' over an axis other than the units"
                else:
                    batchnorms.append(reader.name)
                    frontier.append(reader)
            elif isinstance(reader, pass_through):
                if calls[reader.name] > 1:
                    reason = reason or f"feeds shared layer '{reader.name}'"
                else:
                    frontier.append(reader)
            else:
                reason = reason or f"feeds {type(reader).__name__} layer '{reader.name}' (cannot be sliced safely)"
    if not reason and not consumers:
        reason = "no Dense layer reads its units"
    return reason, consumers, batchnorms, is_output
