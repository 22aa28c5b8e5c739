"""INT8 variants in the bench: a real run (tiny_run pruned both ways, exported with int8 by the
real CLI) benched on TensorFlow, ONNX Runtime and OpenVINO with short cells."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from conftest import run_cli_here
from slimdeploy.bench import compare
from slimdeploy.bench.api import NO_AMX, run_bench, sparse_int8_choice
from slimdeploy.bench.results import validate
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.table import problem_lines, verdict_table
from slimdeploy.environment import cpu_info
from slimdeploy.records.bench import BenchResults
from slimdeploy.runtimes.openvino import SPARSE_RATE_OPTION, cpu_has_amx

QUICK = BenchSettings(runtimes=("tensorflow", "onnxruntime", "openvino"), batches=(1,), min_iters=10, min_time=0.05,
                      warmup_iters=3, warmup_time=0.02, block_calls=3, block_time=0.005, instances=1,
                      bootstrap_resamples=200)
FLOATS = ("dense", "structured", "unstructured")
VARIANTS = tuple(f"{m}-int8" for m in FLOATS)


@pytest.fixture(scope="module")
def int8_run(tiny_run, small_data, tmp_path_factory):
    """tiny_run pruned one round each way, exported to ONNX and OpenVINO in fp32 and int8."""
    from slimdeploy.prune.lottery import prune_run
    from slimdeploy.prune.settings import PruneSettings

    run_dir = tmp_path_factory.mktemp("int8") / "run"
    shutil.copytree(tiny_run, run_dir)
    for mode in ("structured", "unstructured"):
        prune_run(run_dir, PruneSettings(mode=mode, rounds=1, rate=0.5, epochs=1, controls=False), data=small_data)
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--target", "openvino", "--precision", "fp32,int8",
                          "--calibration-size", "200", "--verify-limit", "500", "--quiet")
    assert result.returncode in (0, 1), result.stderr
    accept_int8_artifacts(run_dir / "exports" / "export.json")
    return run_dir


def accept_int8_artifacts(manifest_path):
    """Mark the int8 artifacts valid that export kept as NAME.failed: a 2-epoch model's int8
    variants agree with Keras on ~95% of labels, below export's 97% (near-ties flip), and what
    is tested here is how the bench treats variants, not export's thresholds."""
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["artifacts"]:
        if entry.get("precision") == "int8" and not entry["valid"]:
            assert entry["path"].endswith(".failed"), entry
            for name in entry["files"]:
                (manifest_path.parent / name).rename(manifest_path.parent / name.removesuffix(".failed"))
            entry.update(path=entry["path"].removesuffix(".failed"), valid=True, error=None,
                         files=[name.removesuffix(".failed") for name in entry["files"]])
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def results(int8_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8_bench") / "bench.json"
    return run_bench([int8_run], QUICK, out).to_json()


def test_variants_are_models_but_never_run_the_float_keras_file(results):
    validate(results)
    measured = {(c["model"], c["runtime"]) for c in results["cells"] if c["status"] == "ok"}
    for variant in VARIANTS:
        assert (variant, "onnxruntime") in measured and (variant, "openvino") in measured
        # Its export.json source is the fp32 Keras file: TensorFlow must not run it under this name.
        assert not any(c["model"] == variant and c["runtime"] == "tensorflow" for c in results["cells"])
    assert {m for m, rt in measured if rt == "tensorflow"} == set(FLOATS)


def test_models_info_names_variant_precision_and_accuracy_per_runtime(results):
    models = results["models"]
    for name in FLOATS:
        assert models[name]["precision"] == "fp32" and "variant_of" not in models[name]
    for name in VARIANTS:
        info = models[name]
        assert info["variant_of"] == name.removesuffix("-int8") and info["precision"] == "int8"
        accuracy = info["runtime_test_accuracy"]
        assert set(accuracy) == {"onnxruntime", "openvino"}
        assert all(0.5 < a <= 1 for a in accuracy.values())
        assert info["artifacts"]["onnxruntime"].endswith("-int8.onnx")
        assert info["artifacts"]["openvino"].endswith("-int8.xml")


def test_stacking_comparisons_have_their_own_baselines_and_questions(results):
    found = {(c["runtime"], c["model"], c["baseline"]): c for c in results["comparisons"]}
    for runtime in ("onnxruntime", "openvino"):
        expected = {
            ("dense-int8", "dense"): "vs_baseline",
            ("structured-int8", "dense"): "vs_baseline",
            ("structured-int8", "structured"): "int8_on_pruned",
            ("unstructured-int8", "unstructured"): "int8_on_pruned",
            ("structured-int8", "dense-int8"): "pruning_on_int8",
            ("unstructured-int8", "dense-int8"): "pruning_on_int8",
            ("structured", "dense"): "vs_baseline",
        }
        for (model, baseline), question in expected.items():
            c = found[(runtime, model, baseline)]
            assert c["question"] == question
            assert c["speedup"] > 0 and c["ci_low"] <= c["ci_high"]
            int8_side = "int8" in model or "int8" in baseline
            assert (c.get("ideal_assumes") == compare.INT8_IDEAL) == int8_side
        assert found[(runtime, "unstructured-int8", "unstructured")]["ideal_speedup"] == pytest.approx(1.0)
        assert (runtime, "dense-int8", "dense-int8") not in found
    # TensorFlow has no int8 model: only the float comparisons.
    assert {c["question"] for c in results["comparisons"] if c["runtime"] == "tensorflow"} == {"vs_baseline"}
    # The records read them back, and the table shows each row's baseline.
    assert BenchResults.from_json(results).to_json()["comparisons"] == results["comparisons"]
    assert any(column.header == "vs" for column in verdict_table(BenchResults.from_json(results)).columns)


def test_sparse_int8_auto_follows_this_cpu(results):
    """--sparse-int8 auto on the machine at hand: twins only where the CPU has AMX (each side is
    checked on a CPU of its kind; test_the_sparse_choice_follows_the_setting_and_the_flags checks both)."""
    cpu = cpu_info()
    if cpu_has_amx(cpu):
        sparse = results["sparse_int8"]
        assert sparse["applicable"] is True and sparse["amx"] is True and sparse["reason"] == "the CPU reports AMX"
        assert sparse["models"] and all(name.endswith("-sparse") and results["models"][name]["variant_of"]
                                        for name in sparse["models"])
        assert not any("sparse int8: not benched" in line for line in problem_lines(BenchResults.from_json(results)))
        return
    assert results["sparse_int8"] == {"applicable": False, "reason": NO_AMX, "cpu": cpu["model"]}
    assert not any(name.endswith("-sparse") for name in results["models"])
    assert f"sparse int8: not benched — {NO_AMX}" in problem_lines(BenchResults.from_json(results))


def test_the_sparse_choice_follows_the_setting_and_the_flags():
    assert sparse_int8_choice("auto", {"model": "x", "flags": ["avx2", "amx_int8"]}).applicable is True
    assert sparse_int8_choice("auto", {"model": "x", "flags": ["avx2"]}).applicable is False
    assert sparse_int8_choice("off", {"model": "x", "flags": ["amx_tile"]}).applicable is False
    forced = sparse_int8_choice("on", {"model": "x", "flags": ["avx2"]})
    assert forced.applicable is True and forced.amx is False and forced.rate == 0.5


def test_sparse_int8_on_measures_the_sparse_twin_on_openvino_only(int8_run, tmp_path):
    settings = dataclasses.replace(QUICK, runtimes=("onnxruntime", "openvino"), sparse_int8="on", processes=1,
                                   models=("dense", "unstructured", "dense-int8", "unstructured-int8"))
    results = run_bench([int8_run], settings, tmp_path / "bench.json").to_json()
    validate(results)
    twin = "unstructured-int8-sparse"
    assert results["sparse_int8"]["applicable"] is True and results["sparse_int8"]["models"] == [twin]
    assert results["sparse_int8"]["rate"] == 0.5
    assert results["models"][twin]["variant_of"] == "unstructured-int8"
    assert results["models"][twin][SPARSE_RATE_OPTION] == 0.5
    cells = [c for c in results["cells"] if c["model"] == twin]
    assert [c["runtime"] for c in cells] == ["openvino"]
    (cell,) = cells
    assert cell["status"] == "ok", cell["error"]
    assert cell["applied_settings"][SPARSE_RATE_OPTION] == pytest.approx(0.5)
    assert cell["artifact"] == results["models"]["unstructured-int8"]["artifacts"]["openvino"]
    kernels = cell["kernels"]
    assert len(kernels) == 3 and all(k["node_type"].startswith("FullyConnected") for k in kernels)  # 3 Dense layers
    if not cpu_has_amx(cpu_info()):
        assert not any(k["sparse"] for k in kernels)  # no AMX: the plugin keeps its dense kernels
    # The plain int8 variant's kernels are recorded too; its sessions get no sparse rate.
    plain = next(c for c in results["cells"] if c["model"] == "unstructured-int8" and c["runtime"] == "openvino")
    assert plain["kernels"] and SPARSE_RATE_OPTION not in plain["applied_settings"]
    questions = {(c["model"], c["baseline"]): c["question"] for c in results["comparisons"]}
    assert questions[(twin, "unstructured-int8")] == "sparse_kernel"
    assert questions[(twin, "dense")] == "vs_baseline"
    assert not any(c["model"] == twin and c["runtime"] != "openvino" for c in results["comparisons"])
