"""A cell is unstable when its interleaved rounds disagree (round medians), not when its calls vary."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from slimdeploy.bench import stats
from slimdeploy.bench.api import run_bench
from slimdeploy.bench.plan import CellSpec
from slimdeploy.bench.results import finish_cell, validate
from slimdeploy.bench.worker import CellReport
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.table import problem_lines
from slimdeploy.records.bench import BenchResults
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
    assert stability.basis == "round medians" and stability.rounds == 40
    assert stability.round_spread < 0.2 and stability.process_spread < 0.1
    assert not stats.is_unstable(stability)


def test_rounds_that_disagree_are_unstable():
    # Every other round slowed 1.8x: a machine loaded in bursts.
    samples, blocks = heavy_tailed_rounds([1.0, 1.8] * 20)
    stability = stats.round_stability(samples, blocks, [20, 20])
    assert stability.round_spread > stats.UNSTABLE_SPREAD
    assert stats.is_unstable(stability)


def test_a_process_slower_than_the_other_is_unstable():
    # Each process steady, but the second ran 1.6x slower throughout.
    samples, blocks = heavy_tailed_rounds([1.0] * 10 + [1.6] * 30)
    stability = stats.round_stability(samples, blocks, [10, 30])
    assert stability.process_spread == pytest.approx(0.6, abs=0.1)
    assert stats.is_unstable(stability)
    # The same rounds as one process: only the round spread can tell.
    assert stats.round_stability(samples, blocks, [40]).process_spread is None


def test_one_round_has_no_spread_and_is_not_flagged():
    samples, blocks = heavy_tailed_rounds([1.0])
    stability = stats.round_stability(samples, blocks, [1])
    assert stability.round_spread is None and stability.process_spread is None
    assert stability.note == "one round: no spread to judge"
    assert not stats.is_unstable(stability)
    assert stats.round_stability(samples, None).note == "no rounds recorded: not judged"


def test_the_flag_is_explained_by_its_evidence():
    samples, blocks = heavy_tailed_rounds([1.0, 1.8] * 20)
    stability = stats.round_stability(samples, blocks, [20, 20])
    cell = {"id": "dense|onnxruntime|b1|t1|latency", "model": "dense", "runtime": "onnxruntime", "batch": 1,
            "threads": 1, "mode": "latency", "settings": {}, "status": "ok", "unstable": True,
            "stability": stability.to_json(), "stats": stats.summarize(samples, 1), "samples_ms": samples}
    line = next(line for line in problem_lines(BenchResults.from_json({"cells": [cell]})) if "unstable" in line)
    assert "interleaved rounds disagreed" in line and f"round spread {stability.round_spread:.0%}" in line
    assert "interleaved rounds disagreed" in gab_entries(BenchResults.from_json({"cells": [cell]}))[0]["extra"]
    old = {key: value for key, value in cell.items() if key != "stability"}  # a bench.json from before round stability
    assert "per-call cv" in problem_lines(BenchResults.from_json({"cells": [old]}))[0]


# --- under real load ------------------------------------------------------------------------------
# Busy loops pinned to the bench's one CPU, in step (wall-clock phases). A busy phase slows a call
# only if the call is longer than a scheduler slice (a short call fits between slices, so only the
# tail of a round shows the load, which its median ignores): so the batch is calibrated to make
# each call last CALL_SECONDS on this machine, whatever its speed, and the phases to span several
# blocks, so whole rounds fall in one phase.
CALL_SECONDS = 0.02
BUSY_LOOPS = 3
BURSTS = """
import os, time
os.sched_setaffinity(0, {{{cpu}}})
end = time.time() + {seconds}
while time.time() < end:
    if time.time() % {cycle} >= {busy}:
        time.sleep({cycle} - time.time() % {cycle})
    else:
        while time.time() % {cycle} < {busy}:
            pass
"""
FIXTURE = Path(__file__).parent / "fixtures" / "rounds_under_load.json"


def calibrated_batch(model: Path, seconds: float = CALL_SECONDS) -> int:
    """The power-of-two batch at which one single-threaded ONNX Runtime call of ``model`` takes
    at least ``seconds`` on this CPU (measured here, now: the machine's speed is not assumed)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    batch = 256
    x = np.random.default_rng(0).random((batch, 28, 28), dtype=np.float32)
    session.run(None, {"input": x})
    started = time.perf_counter()
    for _ in range(3):
        session.run(None, {"input": x})
    per_call = (time.perf_counter() - started) / 3
    return min(batch * 2 ** max(0, math.ceil(math.log2(seconds / per_call))), 1 << 16)


def measured_under_bursts(sources: list, tmp_path: Path) -> dict:
    """bench.json of ``sources`` (equal-sized models) on one CPU shared with bursts of busy loops."""
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})  # the calibration and the bench workers started below run there
    try:
        batch = calibrated_batch(sources[0])
        settings = BenchSettings(runtimes=("onnxruntime",), batches=(batch,), min_time=4.0, min_iters=20,
                                 processes=2, instances=1, bootstrap_resamples=200)
        # A block is block_warmup + block_calls calls, up to (1 + BUSY_LOOPS) times slower when busy:
        # a busy phase holds about three such blocks, a quiet one as many quiet rounds.
        block = (settings.block_warmup + settings.block_calls) * CALL_SECONDS
        busy, cycle = 3 * block * (1 + BUSY_LOOPS), 3 * block * (1 + BUSY_LOOPS) + 3 * block * len(sources)
        loops = [subprocess.Popen([sys.executable, "-c", BURSTS.format(seconds=180, cycle=cycle, busy=busy, cpu=cpu)])
                 for _ in range(BUSY_LOOPS)]
        try:
            return run_bench(sources, settings, tmp_path / "bench.json").to_json()
        finally:
            for process in loops:
                process.kill()
                process.wait()
    finally:
        os.sched_setaffinity(0, allowed)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pinning to one CPU needs os.sched_setaffinity (Linux)")
def test_a_cell_measured_under_bursts_of_load_is_flagged(onnx_models, tmp_path):  # noqa: F811
    # dense and unstructured: the same widths, so both calls are calibrated to the same length.
    results = measured_under_bursts([onnx_models["dense"], onnx_models["unstructured"]], tmp_path)
    validate(results)
    cells = [c for c in results["cells"] if c["status"] == "ok"]
    assert len(cells) == 2
    for cell in cells:
        stability = cell["stability"]
        assert stability["threshold"] == stats.UNSTABLE_SPREAD and stability["rounds"] >= 4
        assert cell["unstable"], stability
        assert max(stability["round_spread"], stability["process_spread"] or 0.0) > stability["threshold"]
        assert "cv" in cell["stats"]  # kept in the data


def test_rounds_recorded_under_load_are_flagged_and_quiet_ones_are_not():
    """Real worker records (round blocks, processes) from benches under bursts of load and on a quiet
    machine, through the code that builds a bench.json cell: the flag follows the rounds, on any CPU."""
    recorded = json.loads(FIXTURE.read_text())
    for name, record in recorded["records"].items():
        spec = CellSpec(id=f"{name}|onnxruntime|b{record['batch']}|t1|latency", model=name, runtime="onnxruntime",
                        batch=record["batch"], threads=1, mode="latency", settings={}, artifact=Path(name),
                        artifact_shown=name)
        report = CellReport.from_json({"status": "ok", **{k: record[k] for k in ("samples_ms", "blocks", "processes")}})
        cell = finish_cell(spec, report)
        assert cell.unstable is record["under_load"], (name, cell.stability)
        assert cell.stability.rounds == len(record["blocks"]) and cell.stability.threshold == stats.UNSTABLE_SPREAD
