"""A cell's identity: every string that names it, exactly as the previous versions wrote them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from slimdeploy.bench.cellkey import CellKey

ORT = {"model": "dense", "runtime": "onnxruntime", "batch": 64, "threads": 1, "mode": "latency",
       "settings": {"graph_optimization": "all"}}
OV = {"model": "structured", "runtime": "openvino", "batch": 1, "threads": 4, "mode": "throughput",
      "settings": {"precision": "FP16"}}
TF = {"model": "dense", "runtime": "tensorflow", "batch": 8, "threads": 2, "mode": "latency", "settings": {}}
# A file from before threads, mode and settings were recorded.
OLD = {"model": "unstructured", "runtime": "tensorrt", "batch": 256}


def key_of(cell: dict) -> CellKey:
    """``CellKey.of`` a record with these attributes (None where a file from before them has none)."""
    return CellKey.of(SimpleNamespace(**{"threads": None, "mode": None, "settings": None, **cell}))


@pytest.mark.parametrize("cell, expected", [
    (ORT, "dense|onnxruntime|b64|t1|latency|opt=all"),
    (OV, "structured|openvino|b1|t4|throughput|precision=FP16"),
    (TF, "dense|tensorflow|b8|t2|latency"),
])
def test_id(cell, expected):
    assert key_of(cell).id == expected


@pytest.mark.parametrize("cell, expected", [
    (ORT, "dense | onnxruntime | batch 64 | 1 thread | latency | graph_optimization=all"),
    (OV, "structured | openvino | batch 1 | 4 threads | throughput | precision=FP16"),
    (TF, "dense | tensorflow | batch 8 | 2 threads | latency"),
    (OLD, "unstructured | tensorrt | batch 256"),
])
def test_name(cell, expected):
    assert key_of(cell).name == expected


def test_label_shows_only_what_was_asked():
    key = key_of(ORT)
    assert key.label(threads=False, mode=False) == "batch 64"
    assert key.label(threads=True, mode=False) == "batch 64, 1 thread"
    assert key.label(threads=True, mode=True) == "batch 64, 1 thread, latency mode"
    assert key.label(threads=True, mode=True, settings=True) == "batch 64, 1 thread, latency mode, graph_optimization=all"
    assert key_of(OV).label(threads=True, mode=False, settings=True) == "batch 1, 4 threads, precision=FP16"
    assert key_of(TF).label(threads=False, mode=False, settings=True) == "batch 8"
    assert key_of(OLD).label(threads=True, mode=True, settings=True) == "batch 256"


def test_keys_match_whatever_the_settings_order_and_group_without_the_model():
    a = key_of({**TF, "settings": {"b": 2, "a": 1}})
    b = CellKey.from_parts("dense", "tensorflow", 8, 2, "latency", {"a": 1, "b": 2})
    assert a == b and hash(a) == hash(b) and a.settings == (("a", 1), ("b", 2))
    assert a.group == ("tensorflow", 8, 2, "latency", (("a", 1), ("b", 2)))
    assert key_of({**TF, "model": "structured"}).group == key_of(TF).group
    assert key_of(TF) != key_of({**TF, "threads": 1})
    # Old records without threads or mode still have a key.
    assert key_of(OLD) == CellKey("unstructured", "tensorrt", 256, None, None, ())
