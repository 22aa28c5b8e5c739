"""The bench end to end through its API: real workers, real runtimes, short cells."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal

import jsonschema
import pytest

from slimdeploy.bench import crosscheck, stats
from slimdeploy.bench.api import run_bench
from slimdeploy.bench.results import merge_records, schema, validate
from slimdeploy.bench.worker import CellReport
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.records.bench import Stability
from slimdeploy.errors import UserError
from slimdeploy.runtimes.registry import availability
from test_bench_artifacts import bench_run, onnx_models  # noqa: F401  (shared fixtures)

QUICK = BenchSettings(min_iters=20, min_time=0.1, warmup_iters=3, warmup_time=0.02, block_calls=3, instances=2,
                      block_time=0.005, bootstrap_resamples=500)


def quick(**changes) -> BenchSettings:
    return dataclasses.replace(QUICK, **changes)


@pytest.fixture(scope="module")
def full_results(bench_run, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("bench_out") / "bench.json"
    results = run_bench([bench_run], quick(runtimes=("tensorflow", "onnxruntime", "openvino", "tensorrt"),
                                           batches=(1, 32)), out).to_json()
    return results, out


def test_bench_json_follows_its_schema(full_results):
    results, out = full_results
    on_disk = json.loads(out.read_text())
    validate(on_disk)
    assert on_disk["complete"] is True
    assert on_disk["schema_version"] == 1
    assert on_disk["environment"]["cpu"]["logical_cores"] >= 1
    assert "onnxruntime" in on_disk["environment"]["libraries"]
    assert on_disk["config"]["batches"] == [1, 32]


def test_a_slightly_negative_load_growth_from_before_still_validates(full_results):
    # Files written before the worker kept its highest peak reading could hold one (Linux's
    # lazily updated VmHWM fell by 0.365 MB over a TensorFlow load): their report must still load.
    results, out = full_results
    older = json.loads(out.read_text())
    older["cells"][0]["load_rss_growth_mb"] = -0.365
    validate(older)


def test_the_worker_peak_never_falls():
    import numpy as np

    from slimdeploy.bench.worker import peak_rss_mb

    readings = [peak_rss_mb()]
    for size in (50, 5, 80, 1):  # MB allocated, touched and handed back each time
        block = np.ones(size * 250_000, dtype=np.float32)
        readings.append(peak_rss_mb())
        del block
        readings.append(peak_rss_mb())
    # A reading of the current RSS, or the raw VmHWM when it falls, would not be sorted.
    assert all(r is not None for r in readings) and readings == sorted(readings)


def test_the_schema_rejects_what_it_should():
    jsonschema.Draft202012Validator.check_schema(schema())
    bad = {"schema_version": 2}
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def assert_each_process_met_time_or_cap(cell: dict, settings: BenchSettings) -> None:
    """Each worker process measured its share of --min-time, unless its share of --max-iters came
    first (calls of a few µs reach the cap sooner on a faster CPU: neither bound alone holds everywhere)."""
    share = len(cell["processes"])
    blocks = iter(cell["blocks"])
    samples = iter(cell["samples_ms"])
    for process_blocks in cell["processes"]:
        calls = sum(next(blocks) for _ in range(process_blocks))
        timed_ms = sum(next(samples) for _ in range(calls))
        capped = calls >= math.ceil(settings.max_iters / share)
        assert capped or timed_ms >= 1000 * settings.min_time / share * (1 - 1e-9), (cell["id"], calls, timed_ms)
    assert cell["seconds"] == pytest.approx(sum(cell["samples_ms"]) / 1000)


def test_every_cell_is_measured_with_raw_samples_and_statistics(full_results):
    results, _ = full_results
    cells = {c["id"]: c for c in results["cells"]}
    # 3 models x 3 available runtimes x 2 batches; TensorRT has no .engine here, so no cells.
    assert len(cells) == 18
    for cell in cells.values():
        assert cell["status"] == "ok", cell["error"]
        assert cell["iterations"] == len(cell["samples_ms"]) >= 20
        assert_each_process_met_time_or_cap(cell, QUICK)
        assert cell["stats"]["p50_ms"] > 0 and cell["stats"]["min_ms"] <= cell["stats"]["p50_ms"] <= cell["stats"]["max_ms"]
        assert cell["stability"]["rounds"] == len(cell["blocks"])
        assert cell["unstable"] == stats.is_unstable(Stability.from_json(cell["stability"]))
        assert cell["load_seconds"] > 0 and cell["first_inference_seconds"] > 0
        assert cell["instances"] == 2  # sessions rotated per round
        assert sum(cell["blocks"]) == cell["iterations"]
        # Four worker processes (the default), each measuring its share; blocks split by process.
        assert len(cell["processes"]) == 4 and all(cell["processes"])
        assert sum(cell["processes"]) == len(cell["blocks"])
    tf = cells["dense|tensorflow|b32|t1|latency"]
    assert tf["applied_settings"]["intra_op_threads"] == 1  # set in its own worker process
    ort = cells["dense|onnxruntime|b32|t1|latency|opt=all"]
    assert ort["artifact"] == os.path.join("exports", "dense.onnx")
    assert ort["applied_settings"]["intra_op_num_threads"] == 1
    ov = cells["structured|openvino|b32|t1|latency|precision=f32"]
    assert ov["applied_settings"]["inference_precision"] == "f32"
    assert ov["engine_latency_ms"] > 0 and ov["engine_stats"]["n"] == ov["iterations"]


def test_comparisons_say_narrow_is_faster_and_carry_the_ideal(full_results):
    results, _ = full_results
    assert results["runtimes"]["tensorrt"]["available"] is availability("tensorrt").available
    comparisons = {(c["runtime"], c["batch"], c["model"]): c for c in results["comparisons"]}
    assert len(comparisons) == 12
    assert results["models"]["structured"]["widths"] == [30, 15, 10]
    for runtime in ("onnxruntime", "openvino"):
        narrow = comparisons[(runtime, 32, "structured")]
        # 11.7x fewer FLOPs: even a busy machine shows it.
        assert narrow["ideal_speedup"] == pytest.approx(11.68, rel=0.01)
        assert narrow["verdict"] == stats.FASTER
        assert narrow["ci_low"] <= narrow["speedup"] <= narrow["ci_high"]
        # The speedup and interval are the paired ones, from the interleaved rounds; the ratio of
        # the overall medians is kept beside them.
        assert narrow["rounds"] > 1
        assert narrow["speedup"] == narrow["round_speedup"]
        assert [narrow["ci_low"], narrow["ci_high"]] == narrow["round_interval"]
        assert narrow["p50_speedup"] == pytest.approx(narrow["baseline_p50_ms"] / narrow["model_p50_ms"])
        sparse = comparisons[(runtime, 32, "unstructured")]
        assert sparse["ideal_speedup"] == 1.0
        assert sparse["nonzero_ideal_speedup"] > 9


def test_an_existing_result_is_not_overwritten_and_resume_keeps_finished_cells(full_results, bench_run):  # noqa: F811
    results, out = full_results
    with pytest.raises(UserError, match="already exists; pass --force"):
        run_bench([bench_run], quick(runtimes=("onnxruntime",), batches=(1, 32)), out)
    events = []
    resumed = run_bench([bench_run], quick(runtimes=("tensorflow", "onnxruntime", "openvino", "tensorrt"),
                                           batches=(1, 32)), out, resume=True, on_event=events.append).to_json()
    assert events == []  # nothing was measured again
    before = {c["id"]: c["samples_ms"] for c in results["cells"]}
    assert {c["id"]: c["samples_ms"] for c in resumed["cells"]} == before
    with pytest.raises(UserError, match="other settings.*min_time 0.1 -> 0.5"):
        run_bench([bench_run], quick(min_time=0.5), out, resume=True)


def _killer(runtime, when):
    """An on_event hook that SIGKILLs the worker of ``runtime`` the first time ``when(event)``."""
    state = {"pid": None, "done": False}

    def hook(event):
        if event.get("runtime") != runtime:
            return
        if event["event"] == "ready":
            state["pid"] = event["pid"]
        elif not state["done"] and when(event):
            state["done"] = True
            os.kill(state["pid"], signal.SIGKILL)

    return hook


def test_a_worker_killed_while_measuring_loses_only_that_cell_group(onnx_models, tmp_path):  # noqa: F811
    sources = [onnx_models[n] for n in ("dense", "structured", "unstructured")] + [onnx_models["dense.xml"]]
    hook = _killer("onnxruntime", lambda e: e["event"] == "measuring" and e["group"] == 1)
    results = run_bench(sources, quick(runtimes=("onnxruntime", "openvino"), batches=(1, 2, 4)),
                        tmp_path / "bench.json", on_event=hook).to_json()
    status = {c["id"]: (c["status"], c["error"]) for c in results["cells"]}
    for model in ("dense", "structured", "unstructured"):
        killed = status[f"{model}|onnxruntime|b2|t1|latency|opt=all"]
        assert killed[0] == "error"
        assert "onnxruntime worker was killed by signal SIGKILL" in killed[1] and "while measuring batch 2" in killed[1]
        # The groups before and after it, and the other runtime, survive.
        assert status[f"{model}|onnxruntime|b1|t1|latency|opt=all"][0] == "ok"
        assert status[f"{model}|onnxruntime|b4|t1|latency|opt=all"][0] == "ok"
    assert status["dense|openvino|b2|t1|latency|precision=f32"][0] == "ok"
    ort_batches = {c["batch"] for c in results["comparisons"] if c["runtime"] == "onnxruntime"}
    assert ort_batches == {1, 4}
    # OpenVINO reads the .onnx files of models that have no IR.
    assert status["structured|openvino|b2|t1|latency|precision=f32"][0] == "ok"
    validate(json.loads((tmp_path / "bench.json").read_text()))


def test_a_model_that_kills_its_worker_while_loading_is_not_tried_again(onnx_models, tmp_path):  # noqa: F811
    sources = [onnx_models[n + ".xml"] for n in ("dense", "structured", "unstructured")]
    hook = _killer("openvino", lambda e: e["event"] == "model_loading" and e["model"] == "structured")
    results = run_bench(sources, quick(runtimes=("openvino",), batches=(1, 2)), tmp_path / "bench.json",
                        on_event=hook).to_json()
    status = {c["id"]: (c["status"], c["error"]) for c in results["cells"]}
    first = status["structured|openvino|b1|t1|latency|precision=f32"]
    assert first[0] == "error" and "SIGKILL" in first[1] and "structured.xml at batch 1" in first[1]
    later = status["structured|openvino|b2|t1|latency|precision=f32"]
    assert later[0] == "error" and later[1].startswith("not run:")
    assert "structured.xml crashed the openvino worker earlier" in later[1]
    for model in ("dense", "unstructured"):
        for batch in (1, 2):
            assert status[f"{model}|openvino|b{batch}|t1|latency|precision=f32"][0] == "ok"
    assert [c["model"] for c in results["comparisons"]] == ["unstructured", "unstructured"]


def test_an_unavailable_runtime_is_listed_with_its_reason(onnx_models, tmp_path):  # noqa: F811
    if availability("tensorrt").available:
        pytest.skip("TensorRT is available on this machine")
    engine = tmp_path / "dense.engine"
    engine.write_bytes(b"a TensorRT engine would be here")
    results = run_bench([engine, onnx_models["dense"]], quick(runtimes=("tensorrt", "onnxruntime"), batches=(1,)),
                        tmp_path / "bench.json").to_json()
    cells = {c["runtime"]: c for c in results["cells"]}
    assert cells["tensorrt"]["status"] == "unavailable"
    assert cells["tensorrt"]["error"] == results["runtimes"]["tensorrt"]["reason"]
    assert "tensorrt is not installed" in cells["tensorrt"]["error"] or "GPU" in cells["tensorrt"]["error"]
    assert cells["onnxruntime"]["status"] == "ok"
    validate(json.loads((tmp_path / "bench.json").read_text()))


def test_records_of_a_cells_processes_merge_in_order_and_an_error_in_any_is_the_cells():
    first = {"status": "ok", "samples_ms": [1.0, 2.0, 3.0], "blocks": [2, 1], "iterations": 3, "seconds": 0.006,
             "engine_samples_ms": [0.9, 1.9, 2.9], "crosscheck": {"tool": "benchmark_app"}, "load_seconds": 0.5}
    second = {"status": "ok", "samples_ms": [4.0, 5.0], "blocks": [2], "iterations": 2, "seconds": 0.009,
              "engine_samples_ms": [3.9, 4.9], "crosscheck": None, "load_seconds": 0.2}
    first, second = CellReport.from_json(first), CellReport.from_json(second)
    merged = merge_records([first, second]).to_json()
    assert merged["samples_ms"] == [1.0, 2.0, 3.0, 4.0, 5.0] and merged["blocks"] == [2, 1, 2]
    assert merged["processes"] == [2, 1] and merged["iterations"] == 5
    assert merged["seconds"] == pytest.approx(0.015) and merged["engine_samples_ms"][-1] == 4.9
    assert merged["crosscheck"] == {"tool": "benchmark_app"} and merged["load_seconds"] == 0.5
    broken = CellReport.from_json({"status": "error", "error": "openvino worker was killed by signal SIGKILL"})
    assert merge_records([first, broken]) == broken


def test_crosscheck_records_benchmark_app_beside_the_engine_median(onnx_models, tmp_path):  # noqa: F811
    sources = [onnx_models["dense.xml"]]
    results = run_bench(sources, quick(runtimes=("openvino",), batches=(16,), crosscheck=True, crosscheck_time=1),
                        tmp_path / "bench.json").to_json()
    cross = results["cells"][0]["crosscheck"]
    assert cross["status"] == "ok", cross["error"]
    assert cross["median_ms"] > 0 and cross["engine_median_ms"] > 0
    assert "-shape [16,28,28]" in cross["command"] and "-nthreads 1" in cross["command"]
    assert "-infer_precision f32" in cross["command"] and "-nstreams 1" in cross["command"]
    # The same runtime measured two ways: far apart only if one of them measures itself.
    assert 0.5 < cross["ratio"] < 2.0
    # Alternating runs, 3 to 8 of each, and the reported medians are the lowest run medians.
    runs = cross["runs_median_ms"]
    assert crosscheck.MIN_RUNS <= cross["runs"] <= crosscheck.MAX_RUNS
    assert len(runs["benchmark_app"]) == len(runs["slimdeploy"]) == cross["runs"]
    assert cross["median_ms"] == min(runs["benchmark_app"]) and cross["engine_median_ms"] == min(runs["slimdeploy"])
    assert cross["settled"] == (crosscheck.settled(runs["benchmark_app"]) and crosscheck.settled(runs["slimdeploy"]))
    assert cross["settled"] or cross["runs"] == crosscheck.MAX_RUNS
    validate(json.loads((tmp_path / "bench.json").read_text()))


def test_crosscheck_stops_once_each_tool_has_seen_its_lowest_level_twice():
    assert not crosscheck.settled([0.25])
    assert crosscheck.settled([0.36, 0.25, 0.26])  # the fast state seen twice; one slow run ignored
    assert not crosscheck.settled([0.25, 0.36, 0.37])  # the fast state seen once: keep going
    assert crosscheck.settled([0.25, 0.25 * 1.05])
    assert not crosscheck.settled([0.25, 0.25 * 1.06])


def test_resume_measures_again_only_the_unfinished_cell_groups(onnx_models, tmp_path):  # noqa: F811
    out = tmp_path / "bench.json"
    sources = [onnx_models["dense"], onnx_models["structured"]]
    settings = quick(runtimes=("onnxruntime",), batches=(1, 2))
    first = run_bench(sources, settings, out).to_json()
    # As an interrupted run leaves it: one cell of batch 2 not finished.
    data = json.loads(out.read_text())
    for cell in data["cells"]:
        if cell["batch"] == 2 and cell["model"] == "structured":
            cell.update(status="pending", samples_ms=[], stats=None)
    data["complete"] = False
    out.write_text(json.dumps(data))
    events = []
    resumed = run_bench(sources, settings, out, resume=True, on_event=events.append).to_json()
    measured = {e["batch"] for e in events if e["event"] == "group_start"}
    assert measured == {2}  # the whole batch-2 group again (it is measured interleaved), batch 1 kept
    assert resumed["complete"] is True
    old = {c["id"]: c["samples_ms"] for c in first["cells"]}
    new = {c["id"]: c["samples_ms"] for c in resumed["cells"]}
    assert new["dense|onnxruntime|b1|t1|latency|opt=all"] == old["dense|onnxruntime|b1|t1|latency|opt=all"]
    assert new["dense|onnxruntime|b2|t1|latency|opt=all"] != old["dense|onnxruntime|b2|t1|latency|opt=all"]
    assert all(c["status"] == "ok" for c in resumed["cells"])
