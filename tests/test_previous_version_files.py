"""Files written by the previous version (tests/fixtures/previous_version/) still load: the
report reads the run directory they make, and every typed record reads and writes each file
back unchanged."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO, run_cli_here

PREVIOUS = REPO / "tests" / "fixtures" / "previous_version"

# Which record reads which file, and the records nested in it (key of their list).
RECORDS = {
    "bench.json": ("bench", "BenchResults", {"cells": "Cell", "comparisons": "Comparison"}),
    "exports/export.json": ("export", "ExportManifest", {"artifacts": "Artifact"}),
    "structured/lottery.json": ("lottery", "LotteryRecord", {"rounds": "Round"}),
    "unstructured/lottery.json": ("lottery", "LotteryRecord", {"rounds": "Round"}),
    "structured/round_1/metrics.json": ("lottery", "Round", {}),
    "structured/round_2/metrics.json": ("lottery", "Round", {}),
    "unstructured/round_1/metrics.json": ("lottery", "Round", {}),
    "unstructured/round_2/metrics.json": ("lottery", "Round", {}),
    "dense/metrics.json": ("run", "DenseMetrics", {}),
    "run.json": ("pipeline", "RunRecord", {}),
}


def read(name: str):
    return json.loads((PREVIOUS / name).read_text())


def record_class(module: str, name: str):
    records = pytest.importorskip(f"slimdeploy.records.{module}")
    if not hasattr(records, name):
        pytest.skip(f"slimdeploy.records.{module}.{name} does not exist yet")
    return getattr(records, name)


def test_every_fixture_file_has_a_record_listed():
    written = {str(p.relative_to(PREVIOUS)) for p in PREVIOUS.rglob("*.json")}
    # history.json (Keras's per-epoch log) and settings.json (the resume check's copy) are
    # plain JSON no other stage reads back.
    assert written - {"dense/history.json", "structured/settings.json", "unstructured/settings.json"} == set(RECORDS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_record_reads_and_writes_the_file_unchanged(name):
    module, cls_name, nested = RECORDS[name]
    cls = record_class(module, cls_name)
    raw = read(name)
    assert cls.from_json(raw).to_json() == raw
    assert cls.load(PREVIOUS / name).to_json() == raw
    for key, item_name in nested.items():
        item_cls = record_class(module, item_name)
        for item in raw[key]:
            assert item_cls.from_json(item).to_json() == item


def test_report_of_a_previous_version_run(tmp_path):
    run_dir = tmp_path / "prev"
    shutil.copytree(PREVIOUS, run_dir)
    out = tmp_path / "report"
    result = run_cli_here("report", str(run_dir), "--format", "md,json", "--out", str(out), "--no-step-summary")
    assert result.returncode == 0, result.stderr
    assert {"report.md", "report.json"} <= {p.name for p in out.iterdir()}
    page = (out / "report.md").read_text()
    from slimdeploy.report.facts import runtime_name

    bench = read("bench.json")
    for cell in bench["cells"]:
        assert runtime_name(cell["runtime"]) in page and cell["model"] in page
    for comparison in bench["comparisons"]:
        row = [line for line in page.splitlines()
               if line.startswith(f"| {runtime_name(comparison['runtime'])} | {comparison['model']} vs {comparison['baseline']} |")]
        assert row and comparison["verdict"] in row[0], comparison
    # Its speedups are ratios of medians judged by the former rule, and the report says so.
    assert "this bench.json predates the paired estimate" in page
    assert "median over interleaved rounds" not in page
    # The input files are read, never rewritten.
    for name in RECORDS:
        assert json.loads((run_dir / name).read_text()) == read(name)
