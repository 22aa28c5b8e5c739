"""bench --profile: a real run (dense 784-300-150-10, a 784-30-15-10 ticket, dense with 90% zeros)
benched on ONNX Runtime and OpenVINO with short cells and one profiled pass each."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli_here
from slimdeploy.bench.results import validate
from slimdeploy.runtimes.session import PROFILE_UNSUPPORTED, is_matmul, layer_profile
from test_bench_artifacts import bench_run  # noqa: F401  (shared fixture)

FAST = ("--min-iters", "10", "--min-time", "0.05", "--warmup", "3", "--instances", "1", "--processes", "1")


def bench_profiled(run_dir, out, *extra):
    result = run_cli_here("bench", str(run_dir), "--runtime", "onnxruntime,openvino", "--batch", "1,32",
                          *FAST, *extra, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def profiled_bench(bench_run, tmp_path_factory):  # noqa: F811
    """bench.json of the run measured with --profile."""
    out = tmp_path_factory.mktemp("profiled") / "bench.json"
    return bench_profiled(bench_run, out, "--profile"), out


def cells_of(results, runtime):
    return {(c["model"], c["batch"]): c for c in results["cells"] if c["runtime"] == runtime}


def test_ort_and_openvino_cells_have_time_splits(profiled_bench):
    results, out = profiled_bench
    validate(json.loads(out.read_text()))
    assert results["config"]["profile"] is True
    for runtime in ("onnxruntime", "openvino"):
        cells = cells_of(results, runtime)
        assert len(cells) == 6
        for cell in cells.values():
            assert cell["status"] == "ok", cell["error"]
            profile = cell["profile"]
            assert "profile_error" not in cell
            assert profile["runs"] == 20 and profile["total_us"] > 0
            assert 0 < profile["matmul_share"] <= 1
            assert abs(sum(profile["by_op_type"].values()) - profile["total_us"]) < 0.01 * profile["total_us"] + 0.01
            matmuls = [layer for layer in profile["layers"] if is_matmul(layer["op_type"])]
            assert all(layer["kernel"] and layer["us"] >= 0 for layer in matmuls)
            if cell["model"] != "structured":  # OpenVINO may fuse a narrow model's last layers into a Subgraph
                assert len(matmuls) == 3  # the three Dense layers, each a matmul node with its kernel named


def test_unstructured_and_dense_run_the_same_matmul_kernels_in_openvino(profiled_bench):
    """Zeros are not skipped: the 90%-zero model gets the very kernels dense gets."""
    results, _ = profiled_bench
    cells = cells_of(results, "openvino")
    for batch in (1, 32):
        dense, unstructured = cells[("dense", batch)], cells[("unstructured", batch)]

        def matmul_kernels(cell):
            return [(k["node_type"], k["exec_type"]) for k in cell["kernels"]]

        assert matmul_kernels(dense) == matmul_kernels(unstructured)
        assert len(matmul_kernels(dense)) == 3 and not any(k["sparse"] for k in unstructured["kernels"])
        assert ({op: names for op, names in dense["profile"]["kernels"].items() if is_matmul(op)}
                == {op: names for op, names in unstructured["profile"]["kernels"].items() if is_matmul(op)})


def test_every_cell_has_memory_and_load_time(profiled_bench):
    results, _ = profiled_bench
    for cell in results["cells"]:
        assert cell["status"] == "ok", cell["error"]
        assert cell["peak_rss_mb"] > 0 and cell["load_seconds"] > 0 and cell["load_rss_growth_mb"] >= 0


def test_a_runtime_without_a_profiler_says_so():
    """TensorFlow has no per-layer profiler wired: the worker records why, not an empty profile."""
    from slimdeploy.bench.worker import CellReport, _add_profile
    from slimdeploy.runtimes.registry import plugin

    record = _add_profile(CellReport(), plugin("tensorflow"), session=None, layers=True).to_json()
    assert "profile" not in record and record["profile_error"] == PROFILE_UNSUPPORTED


def test_the_profiled_pass_is_not_in_the_latency_figures(profiled_bench):
    results, _ = profiled_bench
    for cell in results["cells"]:
        # Every sample is a timed call of an interleaved block: no profiled call among them.
        assert cell["iterations"] == len(cell["samples_ms"]) == sum(cell["blocks"])
        assert cell["stats"]["n"] == cell["iterations"]


def test_without_profile_no_time_split_is_recorded(bench_run, tmp_path):  # noqa: F811
    result = run_cli_here("bench", str(bench_run), "--runtime", "onnxruntime", "--batch", "1", *FAST,
                          "--out", str(tmp_path / "bench.json"), "--quiet")
    assert result.returncode == 0, result.stderr
    cells = json.loads((tmp_path / "bench.json").read_text())["cells"]
    assert cells and all("profile" not in c and "profile_error" not in c and c["peak_rss_mb"] > 0 for c in cells)


def test_layer_profile_takes_each_nodes_median_call_and_sums_matmuls():
    layers = [{"name": "fc1", "op_type": "FullyConnected", "kernel": "brgemm", "us": us} for us in (30.0, 40.0, 900.0)]
    layers += [{"name": "act", "op_type": "Relu", "kernel": "jit", "us": us} for us in (10.0, 10.0, 12.0)]
    profile = layer_profile(layers, runs=3, tool="t")
    assert profile["by_op_type"] == {"FullyConnected": 40.0, "Relu": 10.0}  # the preempted call does not count
    assert profile["total_us"] == 50.0 and profile["matmul_us"] == 40.0 and profile["matmul_share"] == 0.8
    assert profile["kernels"] == {"FullyConnected": ["brgemm"], "Relu": ["jit"]}
    assert [layer["us"] for layer in profile["layers"]] == [40.0, 10.0]
