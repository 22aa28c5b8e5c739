"""The regression gate: `slimdeploy report NEW --baseline OLD --max-regression 10%`.

Rule (slimdeploy/report/gate.py): a cell regresses when the 95% bootstrap interval of
median(old) / median(new) lies entirely below 1 / (1 + threshold).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import run_cli
from test_report_inputs import make_bench, make_cell, write_json

from slimdeploy.bench.stats import summarize

@pytest.fixture(autouse=True)
def _no_real_job_summary(monkeypatch):
    # Under GitHub Actions these tests must not write into the real job summary.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


SMALL = {"runtimes": ("onnxruntime", "openvino"), "batches": (1, 64), "n": 150}


def doctored_faster(bench: dict, factor: float) -> dict:
    """The same bench with every latency divided by ``factor``: a baseline that was faster."""
    faster = copy.deepcopy(bench)
    for cell in faster["cells"]:
        if cell["status"] == "ok":
            cell["samples_ms"] = [s / factor for s in cell["samples_ms"]]
            cell["stats"] = summarize(cell["samples_ms"], cell["batch"])
    return faster


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    base = tmp_path_factory.mktemp("gate")
    new = make_bench(0, **SMALL)
    return {
        "new": write_json(base / "new.json", new),
        "twice_as_fast": write_json(base / "old-2x.json", doctored_faster(new, 2.0)),
        # Same machine, same model, measured again: samples re-drawn from the same distributions.
        "redrawn": write_json(base / "old-redrawn.json", make_bench(1, **SMALL)),
        "other_models": write_json(base / "other.json", make_bench(0, runtimes=("tensorflow",), batches=(8,), n=20)),
        "dir": base,
    }


def test_gate_fails_against_a_baseline_twice_as_fast(benches):
    result = run_cli("report", str(benches["new"]), "--baseline", str(benches["twice_as_fast"]), "--max-regression", "10%")
    assert result.returncode == 1, result.stderr
    assert "FAILED: 12 regressed" in result.stdout
    assert "dense | onnxruntime | batch 64" in result.stdout and "+100.0%" in result.stdout
    assert not (benches["dir"] / "report").exists()  # gate only: no report files without --out


def test_gate_passes_against_itself(benches):
    result = run_cli("report", str(benches["new"]), "--baseline", str(benches["new"]), "--max-regression", "10%", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["passed"] is True and doc["counts"]["unchanged"] == 12 and doc["counts"]["regressed"] == 0
    assert all(row["speedup"] == pytest.approx(1.0) for row in doc["cells"])


def test_gate_passes_when_the_difference_is_noise(benches):
    result = run_cli("report", str(benches["new"]), "--baseline", str(benches["redrawn"]), "--max-regression", "10%", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["passed"] is True and doc["counts"]["regressed"] == 0
    # Noise moved the medians a little, both ways; the threshold was never crossed.
    changes = [row["change"] for row in doc["cells"]]
    assert max(abs(c) for c in changes) < 0.05 and any(c != 0 for c in changes)


def test_gate_json_for_a_regression_and_github_summary(benches, tmp_path):
    summary = tmp_path / "summary.md"
    result = run_cli("report", str(benches["new"]), "--baseline", str(benches["twice_as_fast"]), "--json",
                     env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["passed"] is False and doc["counts"]["regressed"] == 12
    row = doc["cells"][0]
    assert row["status"] == "regressed" and row["ci_high"] < 1 / 1.1 and row["change"] == pytest.approx(1.0, rel=1e-6)
    assert "Regression gate: FAILED" in summary.read_text()


def test_gate_with_out_also_writes_the_report(benches, tmp_path):
    result = run_cli("report", str(benches["new"]), "--baseline", str(benches["new"]), "--out", str(tmp_path / "r"),
                     "--format", "gab", "--no-step-summary")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["gab.json"]


def test_no_cells_in_common_is_a_one_line_error(benches):
    result = run_cli("report", str(benches["new"]), "--baseline", str(benches["other_models"]))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no cells in common" in lines[0]


def compare_benches(new: dict, old: dict, max_regression: float) -> dict:
    """The gate on two bench.json documents, read as records."""
    from slimdeploy.records.bench import BenchResults
    from slimdeploy.report import gate

    return gate.compare_benches(BenchResults.from_json(new), BenchResults.from_json(old), max_regression)


def test_threshold_and_significance_both_matter():
    new = make_bench(0, **SMALL)
    # 30% slower: beyond 10% and far beyond the noise -> regressed.
    assert compare_benches(new, doctored_faster(new, 1.3), 0.10)["counts"]["regressed"] == 12
    # 5% slower: real but within a 10% threshold -> unchanged.
    assert compare_benches(new, doctored_faster(new, 1.05), 0.10)["counts"]["regressed"] == 0
    # The same 30% against a 50% threshold -> unchanged; and a faster new run is an improvement.
    assert compare_benches(new, doctored_faster(new, 1.3), 0.50)["passed"] is True
    assert compare_benches(doctored_faster(new, 2.0), new, 0.10)["counts"]["improved"] == 12


def test_a_cell_that_crashes_now_fails_the_gate():
    old = make_bench(0, **SMALL)
    new = copy.deepcopy(old)
    crashed = new["cells"][0]
    crashed.update(status="error", error="runtime crashed", samples_ms=[], stats=None)
    result = compare_benches(new, old, 0.10)
    assert result["passed"] is False and result["counts"]["failed"] == 1
    assert next(r for r in result["cells"] if r["status"] == "failed")["reason"].endswith("runtime crashed")
    new["cells"][1]["status"] = "unavailable"
    assert compare_benches(new, old, 0.10)["counts"]["skipped"] == 1


def _bursty_bench(levels: list, rng) -> dict:
    """One cell measured in one worker, a round of 50 calls at each latency level, blocks recorded."""
    samples = np.concatenate([level * rng.lognormal(0.0, 0.01, 50) for level in levels]).tolist()
    cell = make_cell("dense", "onnxruntime", 1, samples)
    cell.update(blocks=[50] * len(levels), processes=[len(levels)])
    return {"cells": [cell]}


def test_a_burst_of_load_in_some_rounds_is_judged_on_the_rounds():
    rng = np.random.default_rng(0)
    old = _bursty_bench([1.0] * 20, rng)
    # The machine was busy for 12 of the 20 rounds: calls within a round agree, so a
    # per-call interval is narrow, but only 20 rounds stand behind the slowdown.
    new = _bursty_bench([1.3, 1.0, 1.3] * 4 + [1.0, 1.3] * 4, rng)
    row = compare_benches(new, old, 0.10)["cells"][0]
    assert row["speedup"] < 1 / 1.1 and row["status"] == "unchanged" and row["ci_high"] > 1 / 1.1
    # Without blocks (or blocks that do not add up), only the per-call interval is left.
    for bench in (old, new):
        del bench["cells"][0]["blocks"], bench["cells"][0]["processes"]
    assert compare_benches(new, old, 0.10)["cells"][0]["status"] == "regressed"
    new["cells"][0].update(blocks=[49] * 20, processes=[20])
    assert compare_benches(new, old, 0.10)["cells"][0]["status"] == "regressed"
