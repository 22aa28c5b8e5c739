"""The regression gate: is a new benchmark slower than a baseline, beyond doubt and beyond a threshold?

Cells are matched on their ``CellKey``. For each pair measured in both, the speedup is
s = median(old) / median(new), and its bootstrap interval [low, high] is
``compare.verdict_interval``'s union of the per-call interval and, when both runs recorded blocks,
the process/round interval (across two runs rounds are not paired, so the wider union is kept).
With threshold t (``--max-regression 10%`` -> t = 0.10) a cell is:

- **regressed** when high < 1 / (1 + t): at the stated confidence, the new median is more
  than t slower (asv's rule: an effect beyond the threshold AND a significant one);
- **improved** when low > 1 + t (reported, never fails);
- **unchanged** otherwise;
- **failed** when it ran in the baseline but errored now (worse than any slowdown); a cell
  "unavailable" in either run is skipped and listed.

The gate fails (exit 1) when any cell regressed or failed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimdeploy.bench.compare import verdict_interval
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchResults
from slimdeploy.bench.cellkey import CellKey
from slimdeploy.report.facts import p50
from slimdeploy.report.load import load_source

REGRESSED, FAILED, IMPROVED, UNCHANGED, SKIPPED = "regressed", "failed", "improved", "unchanged", "skipped"


def _bench_of(source: str | Path, role: str) -> BenchResults:
    inputs = load_source(source)
    if inputs.bench is None:
        raise UserError(f"{role} {source} has no benchmark results (bench.json)")
    return inputs.bench


def check_regressions(new_source: str | Path, baseline_source: str | Path, max_regression: float = 0.10,
                      confidence: float = 0.95) -> dict:
    new = _bench_of(new_source, "benchmark")
    old = _bench_of(baseline_source, "baseline")
    result = compare_benches(new, old, max_regression, confidence)
    result["new"], result["baseline"] = str(new_source), str(baseline_source)
    return result


def compare_benches(new: BenchResults, old: BenchResults, max_regression: float = 0.10, confidence: float = 0.95) -> dict:
    if not max_regression > 0:
        raise UserError(f"max regression must be above 0, got {max_regression}")
    old_cells = {CellKey.of(c): c for c in old.cells}
    new_cells = {CellKey.of(c): c for c in new.cells}
    common = [key for key in new_cells if key in old_cells]
    if not common:
        raise UserError(
            "the benchmark and the baseline have no cells in common (matched on model, runtime, batch, threads, "
            "mode and settings): nothing to compare"
        )
    limit = 1.0 / (1.0 + max_regression)
    rows = []
    for key in common:
        old_cell, new_cell = old_cells[key], new_cells[key]
        row = {"name": key.name, "model": key.model, "runtime": key.runtime, "batch": key.batch, "threads": key.threads,
               "mode": key.mode, "settings": new_cell.settings or {},
               "old_p50_ms": None, "new_p50_ms": None, "change": None, "speedup": None, "ci_low": None, "ci_high": None}
        if "unavailable" in (old_cell.status, new_cell.status) or not old_cell.ok:
            row.update(status=SKIPPED, reason=f"baseline {old_cell.status}, new {new_cell.status}")
        elif not new_cell.ok:
            row.update(status=FAILED, reason=f"ran in the baseline, {new_cell.status} now: {new_cell.error or ''}".strip(" :"))
        else:
            speedup = float(np.median(old_cell.samples_ms) / np.median(new_cell.samples_ms))
            interval = verdict_interval(old_cell, new_cell, confidence=confidence)
            low, high = interval.low, interval.high
            if high < limit:
                status = REGRESSED
            elif low > 1.0 + max_regression:
                status = IMPROVED
            else:
                status = UNCHANGED
            row.update(status=status, reason=None, speedup=speedup, ci_low=low, ci_high=high,
                       old_p50_ms=p50(old_cell), new_p50_ms=p50(new_cell),
                       change=1.0 / speedup - 1.0)
        rows.append(row)
    if all(r["status"] == SKIPPED for r in rows):
        raise UserError("no cell ran successfully in both the benchmark and the baseline: nothing to compare")
    counts = {s: sum(r["status"] == s for r in rows) for s in (REGRESSED, FAILED, IMPROVED, UNCHANGED, SKIPPED)}
    return {
        "max_regression": max_regression,
        "confidence": confidence,
        "rule": (f"a cell regresses when the {confidence * 100:.0f}% bootstrap interval of old/new median latency lies "
                 f"entirely below 1/(1+{max_regression:g}) = {limit:.4f}, i.e. the new median is significantly more than "
                 f"{max_regression * 100:g}% slower; a cell that ran before and errors now also fails"),
        "passed": counts[REGRESSED] == 0 and counts[FAILED] == 0,
        "counts": counts,
        "only_in_new": sorted(k.name for k in new_cells if k not in old_cells),
        "only_in_baseline": sorted(k.name for k in old_cells if k not in new_cells),
        "cells": rows,
    }


def gate_markdown(result: dict) -> str:
    """A short Markdown account for the GitHub job summary."""
    bad = [r for r in result["cells"] if r["status"] in (REGRESSED, FAILED)]
    head = (f"## Regression gate: {'passed' if result['passed'] else 'FAILED'}\n\n"
            f"{len(bad)} of {len(result['cells'])} cells in common regressed beyond "
            f"{result['max_regression'] * 100:g}% (rule: {result['rule']}).\n")
    if not bad:
        return head
    lines = ["", "| Cell | Baseline p50 (ms) | New p50 (ms) | Change | Status |", "|---|---|---|---|---|"]
    for r in bad:
        change = f"{r['change'] * 100:+.1f}%" if r["change"] is not None else "–"
        old = f"{r['old_p50_ms']:.4g}" if r["old_p50_ms"] is not None else "–"
        new = f"{r['new_p50_ms']:.4g}" if r["new_p50_ms"] is not None else "–"
        lines.append(f"| {r['name'].replace('|', '/')} | {old} | {new} | {change} | {r['status']}{': ' + r['reason'] if r.get('reason') else ''} |")
    return head + "\n".join(lines) + "\n"
