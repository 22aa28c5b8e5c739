"""bench.json as records: a file written by the previous version reads and writes back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimdeploy.bench.results import base_cell, finish_cell, load_previous, unavailable_cell, validate
from slimdeploy.bench.plan import CellSpec
from slimdeploy.bench.worker import CellReport
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchResults, Cell, Comparison

PREVIOUS = Path(__file__).parent / "fixtures" / "previous_version" / "bench.json"


def previous_raw() -> dict:
    return json.loads(PREVIOUS.read_text())


def test_a_previous_bench_json_round_trips_unchanged():
    raw = previous_raw()
    results = BenchResults.load(PREVIOUS)
    assert results.to_json() == raw
    # Key order too: the file's shape is written as it was.
    assert list(results.to_json()) == list(raw)
    assert [list(c.to_json()) for c in results.cells] == [list(c) for c in raw["cells"]]
    assert [list(c.to_json()) for c in results.comparisons] == [list(c) for c in raw["comparisons"]]
    validate(results.to_json())


def test_records_are_typed_where_the_readers_need_them():
    results = BenchResults.load(PREVIOUS)
    assert all(isinstance(c, Cell) for c in results.cells)
    assert all(isinstance(c, Comparison) for c in results.comparisons)
    first = results.cells[0]
    assert first.ok and first.runtime == "onnxruntime" and first.stats.n == len(first.samples_ms)
    assert set(results.finished_cells()) == {c["id"] for c in previous_raw()["cells"]}


def test_a_newer_schema_is_refused():
    raw = {**previous_raw(), "schema_version": 2}
    with pytest.raises(UserError, match="has schema_version 2; this slimdeploy reads version 1"):
        BenchResults.from_json(raw, "bench.json")


def test_resuming_reads_only_finished_cells(tmp_path):
    raw = previous_raw()
    raw["cells"][1] = {"status": "pending"}  # not kept, so not held against the file
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(raw))
    previous = load_previous(path)
    assert len(previous.cells) == len(raw["cells"]) - 1 and previous.comparisons == []
    path.write_text(json.dumps({**raw, "schema_version": 0}))
    with pytest.raises(UserError, match="cannot --resume"):
        load_previous(path)


SPEC = CellSpec(id="a|onnxruntime|b2|t1|latency|opt=all", model="a", runtime="onnxruntime", batch=2, threads=1,
                mode="latency", settings={"graph_optimization": "all"}, artifact="a.onnx", artifact_shown="a.onnx")


def test_cells_built_from_a_spec_and_a_worker_record_keep_their_shape():
    pending = base_cell(SPEC).to_json()
    assert pending["status"] == "pending" and pending["samples_ms"] == [] and "blocks" not in pending
    assert unavailable_cell(SPEC, "not here").to_json()["error"] == "not here"
    record = {"status": "ok", "samples_ms": [1.0, 2.0, 3.0], "blocks": [3], "processes": [1], "load_seconds": 0.5,
              "input": {"dtype": "float32"}, "engine_samples_ms": [0.5, 0.5, 0.5]}
    cell = finish_cell(SPEC, CellReport.from_json(record)).to_json()
    order = list(previous_raw()["cells"][0])
    assert [k for k in order if k in cell] == [k for k in cell if k in order]
    assert set(cell) - set(order) == {"stability"}  # new since the previous version; one round: not judged
    assert cell["stability"]["note"] == "one round: no spread to judge" and cell["unstable"] is False
    assert cell["stats"]["p50_ms"] == 2.0 and cell["engine_latency_ms"] == 0.5 and cell["blocks"] == [3]
    empty = finish_cell(SPEC, CellReport.from_json({"status": "ok", "samples_ms": []})).to_json()
    assert empty["status"] == "error" and empty["error"] == "no samples were recorded"
