"""A cell is unstable when its interleaved rounds disagree (round medians), not when its calls vary."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from slimdeploy.bench import stats
from slimdeploy.bench.api import run_bench
from slimdeploy.bench.results import validate
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.table import problem_lines
from slimdeploy.report.ci import gab_entries
from test_bench_artifacts import onnx_models  # noqa: F401  (shared fixture)


def heavy_tailed_rounds(round_scales, calls=40, seed=0):
    """Samples of rounds whose typical call takes ``scale`` ms, with heavy-tailed outliers
    (what microsecond calls look like: a CV far above 10% however quiet the machine)."""
    rng = np.random.default_rng(seed)
    rounds = [scale * (1.0 + rng.pareto(2.5, size=calls) * 0.3) for scale in round_scales]
    return np.concatenate(rounds).tolist(), [calls] * len(round_scales)


def test_agreeing_rounds_are_stable_however_heavy_tailed_the_calls():
    samples, blocks = heavy_tailed_rounds([1.0] * 40)
    stability = stats.round_stability(samples, blocks, [20, 20])
    assert stats.summarize(samples, 1)["cv"] > 0.10  # the old rule would have flagged it
    assert stability["basis"] == "round medians" and stability["rounds"] == 40
    assert stability["round_spread"] < 0.2 and stability["process_spread"] < 0.1
    assert not stats.is_unstable(stability)


def test_rounds_that_disagree_are_unstable():
    # Every other round slowed 1.8x: a machine loaded in bursts.
    samples, blocks = heavy_tailed_rounds([1.0, 1.8] * 20)
    stability = stats.round_stability(samples, blocks, [20, 20])
    assert stability["round_spread"] > stats.UNSTABLE_SPREAD
    assert stats.is_unstable(stability)


def test_a_process_slower_than_the_other_is_unstable():
    # Each process steady, but the second ran 1.6x slower throughout.
    samples, blocks = heavy_tailed_rounds([1.0] * 10 + [1.6] * 30)
    stability = stats.round_stability(samples, blocks, [10, 30])
    assert stability["process_spread"] == pytest.approx(0.6, abs=0.1)
    assert stats.is_unstable(stability)
    # The same rounds as one process: only the round spread can tell.
    assert stats.round_stability(samples, blocks, [40])["process_spread"] is None


def test_one_round_has_no_spread_and_is_not_flagged():
    samples, blocks = heavy_tailed_rounds([1.0])
    stability = stats.round_stability(samples, blocks, [1])
    assert stability["round_spread"] is None and stability["process_spread"] is None
    assert stability["note"] == "one round: no spread to judge"
    assert not stats.is_unstable(stability)
    assert stats.round_stability(samples, None)["note"] == "no rounds recorded: not judged"


def test_the_flag_is_explained_by_its_evidence():
    samples, blocks = heavy_tailed_rounds([1.0, 1.8] * 20)
    stability = stats.round_stability(samples, blocks, [20, 20])
    cell = {"id": "dense|onnxruntime|b1|t1|latency", "model": "dense", "runtime": "onnxruntime", "batch": 1,
            "threads": 1, "mode": "latency", "settings": {}, "status": "ok", "unstable": True,
            "stability": stability, "stats": stats.summarize(samples, 1), "samples_ms": samples}
    line = next(line for line in problem_lines({"cells": [cell]}) if "unstable" in line)
    assert "interleaved rounds disagreed" in line and f"round spread {stability['round_spread']:.0%}" in line
    assert "interleaved rounds disagreed" in gab_entries({"cells": [cell]})[0]["extra"]
    old = {**cell, "stability": None}  # a bench.json from before round stability
    assert "per-call cv" in problem_lines({"cells": [old]})[0]


# Busy loops pinned to one CPU, in step (half-second wall-clock phases); the bench's workers
# inherit the same single CPU from this process, so in a busy phase they get a fraction of it
# and whole stretches of rounds slow down, whatever else (another test worker) runs elsewhere.
PHASE = 0.5
BURSTS = """
import os, time
os.sched_setaffinity(0, {{{cpu}}})
end = time.time() + {seconds}
while time.time() < end:
    if int(time.time() / {phase}) % 2:
        time.sleep({phase} - time.time() % {phase})
    else:
        while int(time.time() / {phase}) % 2 == 0:
            pass
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pinning to one CPU needs os.sched_setaffinity (Linux)")
def test_a_cell_measured_under_bursts_of_load_is_flagged(onnx_models, tmp_path):  # noqa: F811
    sources = [onnx_models["dense"], onnx_models["structured"]]
    # Calls of tens of milliseconds (batch 2048), longer than a scheduler slice: a busy phase preempts each one
    # (a short call fits between slices, so only the tail of a round shows the load, which its median ignores).
    settings = BenchSettings(runtimes=("onnxruntime",), batches=(2048,), min_time=2.0, min_iters=20,
                             bootstrap_resamples=200)
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})  # the bench workers started below inherit it
    busy = [subprocess.Popen([sys.executable, "-c", BURSTS.format(seconds=90, phase=PHASE, cpu=cpu)]) for _ in range(3)]
    try:
        results = run_bench(sources, settings, tmp_path / "bench.json")
    finally:
        os.sched_setaffinity(0, allowed)
        for process in busy:
            process.kill()
            process.wait()
    validate(results)
    cells = [c for c in results["cells"] if c["status"] == "ok"]
    assert len(cells) == 2
    for cell in cells:
        assert cell["unstable"], cell["stability"]
        assert cell["stability"]["round_spread"] > cell["stability"]["threshold"]
        assert "cv" in cell["stats"]  # kept in the data
