"""What tf2onnx leaves behind: rewrite it into standard ONNX ops, or name the Keras layer it came from.

tf2onnx copies a TensorFlow op it has no handler for into the graph as it is, which onnx.checker and
the runtimes reject: ``rewrite_untranslated_ops`` computes each op in ``REWRITES`` with standard ops
(of every Keras activation only these two fail; tests/test_export_activations.py). When a conversion
still fails, ``checker_failure`` and ``conversion_failure`` name the Keras layer and activation from
TensorFlow's op path (``sequential_1/dense_1_2/Gelu/Erfc``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rewrite:
    """An untranslated op computed as ``standard(x)`` combined with the constant 1 by ``Sub``."""

    standard: str  # the ONNX op that does the work
    one_minus: bool  # True: 1 - standard(x); False: standard(x) - 1


# TensorFlow op type, as tf2onnx leaves it -> its rewrite (exact gelu's erfc, celu's expm1).
REWRITES = {"Erfc": Rewrite("Erf", one_minus=True), "Expm1": Rewrite("Exp", one_minus=False)}


def rewrite_untranslated_ops(proto) -> list[str]:
    """Replace each node ``REWRITES`` lists, in every graph of ``proto``; the op types replaced, one per node."""
    replaced: list[str] = []
    _rewrite_graph(proto.graph, replaced)
    return replaced


def _rewrite_graph(graph, replaced: list[str]) -> None:
    nodes = []
    for node in graph.node:
        for attribute in node.attribute:
            for body in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                _rewrite_graph(body, replaced)
        rewrite = REWRITES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rewrite is None:
            nodes.append(node)
        else:
            nodes.extend(_replacement(node, rewrite))  # in place: the graph stays topologically sorted
            replaced.append(node.op_type)
    del graph.node[:]
    graph.node.extend(nodes)


def _replacement(node, rewrite: Rewrite) -> list:
    from onnx import TensorProto, helper  # lazy: heavy

    # Names under the old node's path: a later failure still maps back to its Keras layer.
    base = node.name or node.output[0]
    one, value = f"{base}/one", f"{base}/{rewrite.standard}"
    constant = helper.make_node("Constant", [], [one], name=one,
                                value=helper.make_tensor(one, TensorProto.FLOAT, [], [1.0]))
    standard = helper.make_node(rewrite.standard, [node.input[0]], [value], name=value)
    operands = [one, value] if rewrite.one_minus else [value, one]
    return [constant, standard, helper.make_node("Sub", operands, [node.output[0]], name=f"{base}/Sub")]


# --- Failures, named by Keras layer ----------------------------------------------------------

def checker_failure(model, exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0][:200]
    bad = re.search(r"Name: (\S+) OpType: (\S+)", str(exc))  # the checker's "Bad node spec" context
    if bad is None:
        return f"onnx.checker rejected the ONNX graph of {model.name}: {reason}"
    node, op = bad.groups()
    return f"onnx: {_describe_source(model, node)} converts to op {op}, which onnx.checker rejects: {reason}"


def conversion_failure(model, records: list, exc: Exception) -> str:
    reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    for record in records:
        # tfonnx logs "Failed to convert node %r (fct=%r)\n%r" with the node's summary, "OP=<type>\n...".
        if str(record.msg).startswith("Failed to convert node") and len(record.args or ()) == 3:
            node, _, summary = record.args
            op = re.match(r"OP=(\S+)", str(summary))
            return (f"onnx: {_describe_source(model, node)} converts to op {op.group(1) if op else '?'}, "
                    f"which tf2onnx cannot convert: {reason}")
    return f"tf2onnx could not convert {model.name}: {reason}"


def _describe_source(model, node_name: str) -> str:
    layer = source_layer(model, node_name)
    if layer is None:
        return f"node '{node_name}' of model '{model.name}'"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return f"layer '{layer.name}' ({type(layer).__name__})"
    return f"layer '{layer.name}' (activation {getattr(activation, '__name__', activation)})"


def source_layer(model, node_name: str):
    """The innermost Keras layer (nested models walked) whose op path ``node_name`` lies on, or None."""
    found, candidates = None, [model]
    for scope in node_name.split("/")[:-1]:  # the last part names the op itself
        layer = _layer_for_scope(scope, candidates)
        if layer is None:
            break
        found, candidates = layer, getattr(layer, "layers", [])  # a nested model: its layers next
    return None if found is model else found


def _layer_for_scope(scope: str, layers):
    """The layer that opened TensorFlow name scope ``scope`` (Keras opens it to build and to call, so the
    call's scope has one "_N" suffix: layer ``dense_1`` computes under ``dense_1_2``)."""
    by_name = {layer.name: layer for layer in layers}
    return by_name.get(re.sub(r"_\d+$", "", scope)) or by_name.get(scope)
