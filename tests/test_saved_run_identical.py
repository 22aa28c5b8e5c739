"""A saved run reads, writes and reports as it did before the records became typed (issue 27):
tests/fixtures/saved_run is a real quick run (INT8 variants, profiles, both modes) and
tests/fixtures/saved_run_report the report the code before the change made of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimdeploy.records.bench import BenchResults
from slimdeploy.records.export import ExportManifest
from slimdeploy.records.lottery import LotteryRecord, Round
from slimdeploy.records.pipeline import RunRecord
from slimdeploy.records.run import DenseMetrics

FIXTURES = Path(__file__).parent / "fixtures"
SAVED = FIXTURES / "saved_run"
EXPECTED = FIXTURES / "saved_run_report"

RECORDS = {"bench.json": BenchResults, "exports/export.json": ExportManifest, "run.json": RunRecord,
           "dense/metrics.json": DenseMetrics, "structured/lottery.json": LotteryRecord,
           "unstructured/lottery.json": LotteryRecord, "structured/round_1/metrics.json": Round,
           "unstructured/round_2/metrics.json": Round}


def test_the_fixture_is_the_run_the_issue_asks_for():
    bench = BenchResults.load(SAVED / "bench.json")
    assert any(model.endswith("-int8") for model in bench.models), "INT8 variants"
    assert any(cell.profile for cell in bench.cells), "profiles"
    assert {c.question for c in bench.comparisons} >= {"vs_baseline", "int8_on_pruned"}


@pytest.mark.parametrize("relative", sorted(RECORDS))
def test_each_file_is_written_back_key_for_key_in_its_order(relative, tmp_path):
    original = json.loads((SAVED / relative).read_text())
    record = RECORDS[relative].load(SAVED / relative)
    assert json.dumps(record.to_json()) == json.dumps(original)
    record.save(tmp_path / "written.json")
    assert json.loads((tmp_path / "written.json").read_text()) == original


def test_the_report_is_byte_identical(tmp_path):
    shutil.copytree(SAVED, tmp_path / "saved_run")
    done = subprocess.run([sys.executable, "-m", "slimdeploy", "report", "saved_run", "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    made = tmp_path / "saved_run" / "report"
    for name in ("report.md", "report.csv", "gab.json"):
        assert (made / name).read_bytes() == (EXPECTED / name).read_bytes(), name
    # report.json stamps the moment it was made: everything else must be the same bytes.
    expected_created = json.loads((EXPECTED / "report.json").read_text())["created"]
    made_created = json.loads((made / "report.json").read_text())["created"]
    assert (made / "report.json").read_text().replace(made_created, expected_created) == (EXPECTED / "report.json").read_text()


def test_the_answer_names_the_runtime_whose_pick_is_fastest(tmp_path):
    # In this run LiteRT ran the structured-r8 ticket fastest at batch 1, ONNX Runtime its int8 twin at batch 64.
    from slimdeploy.report import answer
    from slimdeploy.report.load import load_source

    inputs = load_source(SAVED)
    decided = answer.decisions(inputs, 0.5)
    sentence = answer.fastest_runtime_sentence(decided)
    at_1 = {d["runtime"]: p["p50_ms"] for d in decided for p in d["picks"] if p["batch"] == 1}
    fastest = min(at_1, key=at_1.get)
    assert fastest == "litert" and "at batch 1, structured-r8 on LiteRT" in sentence
    assert sentence in answer.decision_lines(inputs, 0.5)["fastest"]
    assert answer.fastest_runtime_sentence([d for d in decided if d["runtime"] == "litert"]) is None
