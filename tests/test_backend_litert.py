"""LiteRT as an export target and a bench runtime: real TensorFlow converter, real ai_edge_litert.

The tiny trained run (conftest) with its two hand-made tickets (test_export.add_tickets) is
exported to ONNX, OpenVINO IR and LiteRT; each .tflite is verified against Keras like the ONNX
file, benched beside the other runtimes and named in the report. Without ai_edge_litert the
target and the runtime are unavailable with a one-line reason, never a crash.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli_here
from errors_doc import check
from test_export import STRUCTURED_WIDTHS, add_tickets

from slimdeploy.export.settings import ExportSettings
from slimdeploy.runtimes import registry

LITERT = registry.availability("litert")
needs_litert = pytest.mark.skipif(not LITERT.available, reason=f"LiteRT unavailable: {LITERT.reason}")
MODELS = ("dense", "structured", "unstructured")


@pytest.fixture(scope="module")
def litert_run(tiny_run, tmp_path_factory) -> tuple[Path, dict]:
    """The tiny run with both tickets, exported to ONNX, OpenVINO IR and LiteRT."""
    from slimdeploy.export.api import export_source

    if not LITERT.available:
        pytest.skip(f"LiteRT unavailable: {LITERT.reason}")
    run_dir = tmp_path_factory.mktemp("litert") / "run"
    shutil.copytree(tiny_run, run_dir)
    add_tickets(run_dir)
    manifest = export_source(run_dir, ExportSettings(targets=["onnx", "openvino", "litert"], verify_limit=1000))
    return run_dir, manifest


def litert_artifacts(manifest: dict) -> dict:
    return {a["model"]: a for a in manifest["artifacts"] if a["target"] == "litert"}


# --- the registries --------------------------------------------------------------------------

def test_litert_is_registered_on_both_sides():
    from slimdeploy.export import registry as targets
    from slimdeploy.runtimes.session import PROFILE_UNSUPPORTED

    assert registry.names()[:5] == ("tensorflow", "onnxruntime", "openvino", "tensorrt", "litert")
    assert registry.display_name("litert") == "LiteRT" and registry.short_name("litert") == "LRT"
    plugin = registry.plugin("litert")
    assert plugin.suffixes == (".tflite",) and plugin.import_name == "ai_edge_litert.interpreter"
    assert not plugin.accepts_reshape and not plugin.can_crosscheck
    assert plugin.profile_unsupported.startswith(PROFILE_UNSUPPORTED) and "no per-op profiler" in plugin.profile_unsupported
    assert targets.names()[:4] == ("onnx", "openvino", "tensorrt", "litert")
    assert targets.get_target("litert").runtime == "litert" and not targets.get_target("litert").from_onnx
    # Every question about a target is the registries' answer: nothing else lists them.
    assert targets.verifying_runtime("litert") == "litert" and targets.display_name("litert") == "LiteRT"
    assert [targets.verifying_runtime(t) for t in ("onnx", "openvino", "tensorrt", "keras", "nope")] == \
        ["onnxruntime", "openvino", "tensorrt", "tensorflow", None]
    from slimdeploy.bench.settings import BenchSettings

    assert BenchSettings().runtimes == ("tensorflow", "onnxruntime", "openvino", "tensorrt", "litert")
    assert ExportSettings().resolved_targets() == ["onnx", "openvino", "tensorrt", "litert"]


# --- export: converted from Keras, verified in LiteRT ------------------------------------------

@needs_litert
def test_every_model_exports_to_litert_and_matches_keras(litert_run):
    run_dir, manifest = litert_run
    made = litert_artifacts(manifest)
    assert sorted(made) == sorted(MODELS)
    for model, a in made.items():
        assert a["valid"] and a["error"] is None, a
        assert a["path"] == f"{model}.tflite" and (run_dir / "exports" / a["path"]).is_file()
        assert a["runtime"] == "litert" and a["inference_precision"] == "f32"
        assert a["tolerance"] == 1e-4 and 0 <= a["max_abs_diff"] <= 1e-4
        assert a["top1_agreement"] >= 0.999
        assert abs(a["test_accuracy"] - a["keras_test_accuracy"]) <= 0.001
        assert a["input_name"] == "input" and a["output_name"] == "output" and a["input_shape"] == [None, 28, 28]
        assert "TFLiteConverter" in a["converter"] and a["versions"]["ai-edge-litert"] == LITERT.version
        # Made from the Keras model: no ONNX conversion is part of it.
        assert "onnx_conversion_seconds" not in a
    onnx = next(a for a in manifest["artifacts"] if a["target"] == "onnx")
    assert "onnx_conversion_seconds" in onnx
    assert made["structured"]["matmul_weight_shapes"] == [[784, STRUCTURED_WIDTHS[0]], list(STRUCTURED_WIDTHS), [15, 10]]
    # Zeros stay zeros in the file: the unstructured ticket compresses like its ONNX file does.
    assert made["dense"]["gzip_bytes"] / made["unstructured"]["gzip_bytes"] >= 4
    assert manifest["skipped"] == [s for s in manifest["skipped"] if s["target"] != "litert"]


@needs_litert
def test_the_session_resizes_a_dynamic_batch_and_computes_the_keras_model(litert_run, small_data):
    from slimdeploy.models import load_model

    run_dir, _ = litert_run
    tflite = run_dir / "exports" / "structured.tflite"
    images = small_data.x_test[:64]
    expected = load_model(run_dir / "structured" / "ticket.keras").predict(images, verbose=0)
    assert registry.plugin("litert").session.batch_bounds(tflite) == (None, None)
    for batch in (1, 7, 64):
        with registry.open_session("litert", tflite, batch, 2) as session:
            assert session.input_shape() == (batch, 28, 28) and session.input_dtype() == np.float32
            np.testing.assert_allclose(session.infer(images[:batch]), expected[:batch], atol=1e-5)
            np.testing.assert_allclose(session.run(), expected[:batch], atol=1e-5)  # the input stays set
            applied = session.applied_settings()
            assert applied["num_threads"] == 2 and applied["resized_to"] == [batch, 28, 28]
            assert applied["xnnpack"] is True  # LiteRT's default CPU delegate took the graph
        with pytest.raises(ValueError, match="does not fit"):
            registry.open_session("litert", tflite, batch, 1).set_input(np.zeros((batch, 32, 32), np.float32))


@needs_litert
def test_a_static_batch_runs_only_that_batch_and_fp16_halves_the_file(tiny_run, small_data, tmp_path):
    from slimdeploy.export.api import export_source

    keras_file = tmp_path / "mlp.keras"
    shutil.copy(tiny_run / "dense" / "model.keras", keras_file)
    # 37 images at batch 8: the last verification chunk is padded.
    static = export_source(keras_file, ExportSettings(targets=["litert"], batch=8, verify_limit=37),
                           tmp_path / "static", data=small_data)["artifacts"][0]
    assert static["valid"] and static["max_abs_diff"] <= 1e-4 and static["input_shape"] == [8, 28, 28]
    path = tmp_path / "static" / "mlp.tflite"
    assert registry.plugin("litert").session.batch_bounds(path) == (8, None)
    with pytest.raises(ValueError, match="static batch size of 8; it cannot run batch 1"):
        registry.open_session("litert", path, 1, 1)

    fp32 = export_source(keras_file, ExportSettings(targets=["litert"], verify_limit=200), tmp_path / "fp32",
                         data=small_data)["artifacts"][0]
    fp16 = export_source(keras_file, ExportSettings(targets=["litert"], precisions=["fp16"], verify_limit=200),
                         tmp_path / "fp16", data=small_data)["artifacts"][0]
    assert fp16["valid"] and fp16["fp16_weights"] and fp16["tolerance"] == 1e-2
    assert fp16["inference_precision"] == "f32"  # dequantized: computed in fp32
    assert fp16["bytes"] / fp32["bytes"] == pytest.approx(0.5, abs=0.05)


@needs_litert
def test_int8_is_skipped_for_litert_with_the_reason(tmp_path):
    from slimdeploy.export.api import plan_targets

    targets, skipped = plan_targets(ExportSettings(targets=["onnx", "litert"], precisions=["fp32", "int8"]).validated())
    assert [t.name for t in targets] == ["onnx", "litert"]
    assert skipped == [{"target": "litert", "precision": "int8",
                        "reason": "slimdeploy makes no LiteRT INT8 model yet (the ONNX and OpenVINO INT8 variants are made)"}]


# --- bench and report: LiteRT beside the other runtimes -----------------------------------------

@needs_litert
def test_litert_is_benched_and_reported_like_the_other_runtimes(litert_run, tmp_path):
    from slimdeploy.bench.results import validate

    run_dir, _ = litert_run
    out = run_dir / "bench.json"  # the run's own: its report reads export.json beside it
    bench = run_cli_here("bench", str(run_dir), "--runtime", "onnxruntime,openvino,litert", "--batch", "1,16",
                         "--threads", "1", "--min-iters", "20", "--min-time", "0.05", "--warmup", "2",
                         "--instances", "1", "--processes", "1", "--profile", "--force")
    assert bench.returncode == 0, bench.stderr
    assert "\n LRT " in bench.stderr  # the verdict table's short name (the console writes to stderr)
    results = json.loads(out.read_text())
    validate(results)
    assert results["runtimes"]["litert"] == {"available": True, "version": LITERT.version}
    cells = [c for c in results["cells"] if c["runtime"] == "litert"]
    assert sorted((c["model"], c["batch"]) for c in cells) == sorted((m, b) for m in MODELS for b in (1, 16))
    for cell in cells:
        assert cell["status"] == "ok" and cell["artifact"].endswith(f"{cell['model']}.tflite"), cell
        assert cell["settings"] == {} and cell["stats"]["p50_ms"] > 0
        # No per-op profiler in LiteRT's Python API: said, not faked; ONNX Runtime's cells have theirs.
        assert "profile" not in cell and cell["profile_error"] == registry.plugin("litert").profile_unsupported
    assert all("profile" in c for c in results["cells"] if c["runtime"] == "onnxruntime")
    comparisons = {(c["model"], c["batch"]) for c in results["comparisons"] if c["runtime"] == "litert"}
    assert comparisons == {(m, b) for m in ("structured", "unstructured") for b in (1, 16)}
    # The accuracy each runtime's file reached, from export.json: LiteRT's own.
    assert set(results["models"]["dense"]["runtime_test_accuracy"]) == {"onnxruntime", "openvino", "litert"}
    assert results["models"]["dense"]["artifact_sha256"]["litert"]

    report = run_cli_here("report", str(run_dir), "--out", str(tmp_path / "report"), "--format", "md,json",
                          "--no-step-summary")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "**Which model to ship:** On LiteRT," in text  # the decision, per runtime
    assert "| LiteRT |" in text  # latency and comparison rows
    assert "Accuracy, LiteRT" in text and "LiteRT file (raw / gzip)" in text  # the models table
    assert "structured.tflite" in text  # the exported files table


# --- without ai_edge_litert: unavailable with its reason, never a crash -------------------------

@pytest.fixture
def without_litert(monkeypatch):
    """ai_edge_litert as if not installed (its module cannot be found)."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "ai_edge_litert" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_without_ai_edge_litert_litert_is_unavailable_never_a_crash(without_litert, tiny_run, tmp_path):
    from slimdeploy.export.api import plan_targets
    from slimdeploy.export.registry import get_target

    reason = "ai_edge_litert is not installed (pip install 'slimdeploy[litert]')"
    assert registry.availability("litert").to_dict() == {"available": False, "reason": reason}
    assert get_target("litert").unavailable_reason() == reason
    targets, skipped = plan_targets(ExportSettings().validated())  # "all": skipped, and why
    assert "litert" not in [t.name for t in targets] and {"target": "litert", "reason": reason} in skipped

    keras_file = tiny_run / "dense" / "model.keras"
    export = run_cli_here("export", str(keras_file), "--target", "litert", "--out", str(tmp_path / "e"),
                          "--quiet")
    check("export-litert-absent", export.returncode, export.stderr, "--target litert")
    assert not (tmp_path / "e").exists()

    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3 only LiteRT reads this")
    bench = run_cli_here("bench", str(tflite), "--runtime", "litert", "--out", str(tmp_path / "b.json"),
                         "--quiet")
    check("bench-litert-absent", bench.returncode, bench.stderr, "litert")
    # Asked for beside other runtimes: its cells are listed as unavailable, with the reason.
    from slimdeploy.bench.api import run_bench
    from slimdeploy.bench.settings import BenchSettings

    onnx = tmp_path / "m.onnx"
    from test_bench_artifacts import onnx_mlp, random_layers

    onnx_mlp(onnx, random_layers((16, 10)))
    settings = BenchSettings(runtimes=("onnxruntime", "litert"), batches=(1,), min_iters=5, min_time=0.0, warmup_iters=1,
                             instances=1, processes=1)
    results = run_bench([onnx, tflite], settings, tmp_path / "both.json").to_json()
    unavailable = [c for c in results["cells"] if c["runtime"] == "litert"]
    assert unavailable and all(c["status"] == "unavailable" and c["error"] == reason for c in unavailable)
    assert results["runtimes"]["litert"] == {"available": False, "reason": reason}


def test_a_changed_default_keeps_the_bench_runtimes_settable(tmp_path):
    """The default runtimes come from the registry; a config may still name any subset."""
    from slimdeploy.bench.settings import BenchSettings

    settings = BenchSettings.from_dict({"runtimes": ["onnxruntime", "litert"]}, "test")
    assert settings.runtimes == ("onnxruntime", "litert")
    assert dataclasses.replace(BenchSettings(), runtimes=("litert",)).validated().runtimes == ("litert",)
