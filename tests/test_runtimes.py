"""Runtimes behind one Session interface: registered, equivalent, honest about what is missing."""

from __future__ import annotations

import pkgutil

import numpy as np
import pytest

import slimdeploy.runtimes as runtimes_package
from slimdeploy.runtimes import registry
from test_bench_artifacts import bench_run, onnx_models  # noqa: F401  (shared fixtures)

TRT = registry.availability("tensorrt")


def test_every_runtime_module_is_registered():
    helpers = {"registry", "session"}
    modules = {m.name for m in pkgutil.iter_modules(runtimes_package.__path__)} - helpers
    registered = {spec.module.rsplit(".", 1)[1] for spec in registry.RUNTIMES.values()}
    assert modules == registered
    for name in registry.RUNTIMES:
        module = registry.runtime_module(name)
        assert issubclass(module.SESSION, registry.Session)
        assert callable(module.availability)


def test_listing_runtimes_does_not_import_them():
    import subprocess
    import sys

    code = ("import sys; from slimdeploy.runtimes.registry import all_availability; all_availability(); "
            "print(sorted(m for m in ('tensorflow', 'onnxruntime', 'openvino', 'tensorrt', 'ai_edge_litert') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(TRT.available, reason="TensorRT is available on this machine")
def test_tensorrt_is_unavailable_with_a_reason():
    info = registry.all_availability()["tensorrt"]
    assert info["available"] is False
    assert "tensorrt is not installed" in info["reason"] or "no NVIDIA GPU" in info["reason"]


@pytest.mark.skipif(not TRT.available, reason=f"TensorRT unavailable: {TRT.reason}")
def test_tensorrt_session_runs_an_engine(tmp_path, onnx_models):  # noqa: F811
    # Built here so the test needs only TensorRT itself (the export stage builds engines too).
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_models["dense"].read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 28, 28), (8, 28, 28), (64, 28, 28))
    config.add_optimization_profile(profile)
    engine_path = tmp_path / "dense.engine"
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))
    x = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    with registry.open_session("onnxruntime", onnx_models["dense"], 8, 1) as reference:
        expected = reference.infer(x)
    with registry.open_session("tensorrt", engine_path, 8, 1) as session:
        got = session.infer(x)
        assert session.engine_latency_ms() > 0
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_all_runtimes_compute_the_keras_model_on_real_images(bench_run, small_data):  # noqa: F811
    from slimdeploy.models import load_model

    images = small_data.x_test[:16]
    expected = load_model(bench_run / "dense" / "model.keras").predict(images, verbose=0)
    artifacts = {"tensorflow": bench_run / "dense" / "model.keras",
                 "onnxruntime": bench_run / "exports" / "dense.onnx",
                 "openvino": bench_run / "exports" / "dense.xml"}
    for runtime, artifact in artifacts.items():
        with registry.open_session(runtime, artifact, 16, 1, {}) as session:
            assert session.input_shape() == (16, 28, 28)
            got = session.infer(images)
            np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=runtime)
            # The timed call reuses the input set once and gives the same answer.
            np.testing.assert_allclose(np.asarray(session.run()), expected, atol=1e-5, err_msg=runtime)


def test_tensorflow_session_reports_model_counts(bench_run):  # noqa: F811
    # (Its thread count is checked in a real worker: tests/test_bench_run.py.)
    with registry.open_session("tensorflow", bench_run / "structured" / "ticket.keras", 4, 1) as session:
        assert "intra_op_threads" in session.applied_settings()
        counts = session.describe_model()
    assert counts["widths"] == [30, 15, 10]
    assert counts["flops"] == 2 * (784 * 30 + 30 * 15 + 15 * 10)


def test_openvino_static_shape_explicit_precision_and_engine_latency(onnx_models):  # noqa: F811
    x = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    with registry.open_session("openvino", onnx_models["dense.xml"], 4, 1, {"precision": "f32"}) as session:
        applied = session.applied_settings()
        assert applied["inference_precision"] == "f32"
        assert applied["static_input_shape"] == [4, 28, 28]
        assert applied["inference_num_threads"] == 1
        assert applied["performance_hint"] == "LATENCY"
        session.infer(x)
        assert 0 < session.engine_latency_ms() < 1000
    with registry.open_session("openvino", onnx_models["dense.xml"], 4, 1, {"precision": "bf16"}) as session:
        assert session.applied_settings()["inference_precision"] in ("bf16", "f32")  # f32 where bf16 is absent


def test_an_isa_limit_below_bf16_makes_openvino_compute_in_f32(onnx_models, monkeypatch):  # noqa: F811
    """ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU: the plugin would still pick bf16 (and fail to build it);
    the session asks for f32, as on a CPU without bf16, and export's capabilities lose BF16."""
    from slimdeploy.export.openvino import device_capabilities
    from slimdeploy.runtimes.openvino import isa_limit_excludes

    assert isa_limit_excludes("bf16", "AVX2") and isa_limit_excludes("f16", "avx512_core_vnni")
    assert not isa_limit_excludes("bf16", "AVX512_CORE_BF16") and not isa_limit_excludes("bf16", "avx2_vnni_2")
    assert isa_limit_excludes("f16", "AVX512_CORE_BF16") and not isa_limit_excludes("f16", "AVX10_1_512")
    assert not any(isa_limit_excludes(p, limit) for p in ("bf16", "f16", "f32") for limit in ("", "ALL", "DEFAULT", "x"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "BF16" not in device_capabilities() and "FP32" in device_capabilities()
    with registry.open_session("openvino", onnx_models["dense.xml"], 4, 1, {"precision": "bf16"}) as session:
        assert session.applied_settings()["inference_precision"] == "f32"
        assert session.infer(np.zeros((4, 28, 28), np.float32)).shape == (4, 10)


def test_openvino_throughput_mode_uses_an_async_queue(onnx_models):  # noqa: F811
    x = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    with registry.open_session("openvino", onnx_models["dense.xml"], 8, 1, {}, mode="throughput") as session:
        assert session.applied_settings()["performance_hint"] == "THROUGHPUT"
        session.set_input(x)
        session.run_parallel()
        assert session.parallelism >= 1
        assert session.engine_latency_ms() > 0


@pytest.mark.parametrize("level", ["disabled", "basic", "extended", "all"])
def test_onnxruntime_optimization_levels_all_compute_the_same(onnx_models, level):  # noqa: F811
    x = np.random.default_rng(0).random((2, 28, 28), dtype=np.float32)
    with registry.open_session("onnxruntime", onnx_models["dense"], 2, 1, {"graph_optimization": "disabled"}) as ref:
        expected = ref.infer(x)
    with registry.open_session("onnxruntime", onnx_models["dense"], 2, 1, {"graph_optimization": level}) as session:
        assert session.applied_settings()["graph_optimization"] == level
        np.testing.assert_allclose(session.infer(x), expected, atol=1e-6)


def test_a_wrong_input_shape_is_refused(onnx_models):  # noqa: F811
    with registry.open_session("onnxruntime", onnx_models["dense"], 4, 1) as session:
        with pytest.raises(ValueError, match="does not fit"):
            session.set_input(np.zeros((4, 32, 32), np.float32))


# --- the full artifact checks and the bench worker's timed load --------------------------------

@pytest.fixture(scope="module")
def runnable_but_refused(onnx_models, tmp_path_factory) -> dict:  # noqa: F811
    """Files the runtimes run but slimdeploy's full checks refuse: an ONNX model with an unused
    initializer shorter than its dims say, an IR whose .bin has bytes its Const layers never read."""
    import shutil

    import onnx

    from test_bench_artifacts import openvino_ir

    base = tmp_path_factory.mktemp("refused_by_checks")
    model = onnx.load(str(onnx_models["structured"]))
    unused = onnx.helper.make_tensor("unused", onnx.TensorProto.FLOAT, [4], [0.0] * 4)
    unused.ClearField("float_data")
    unused.raw_data = b"\0" * 8  # 4 floats declared, 2 held
    model.graph.initializer.append(unused)
    onnx.save(model, str(base / "short.onnx"))
    shutil.copy(onnx_models["structured"], base / "plain.onnx")
    xml = openvino_ir(base / "plain.onnx", base / "padded.xml")
    with open(xml.with_suffix(".bin"), "ab") as weights:
        weights.write(b"\0" * 16)
    return {"onnxruntime": base / "short.onnx", "openvino": xml}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_session_checks_its_file_in_full_unless_the_caller_has(runnable_but_refused, runtime):
    from slimdeploy.errors import ModelFileError
    from slimdeploy.onnxsafety import CHECKED_OPTION

    artifact = runnable_but_refused[runtime]
    with pytest.raises(ModelFileError, match="is malformed"):  # a library caller, export verification
        registry.open_session(runtime, artifact, 2, 1)
    # The bench worker: the parent checked the file; its timed load is the runtime's alone.
    with registry.open_session(runtime, artifact, 2, 1, {CHECKED_OPTION: True}) as session:
        assert session.infer(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


def test_the_bench_workers_timed_load_leaves_the_full_checks_to_the_parent(runnable_but_refused):
    from slimdeploy.bench.harness import MeasureParams
    from slimdeploy.bench.settings import BenchSettings
    from slimdeploy.bench.worker import CellSpec, GroupSpec, JobSpec, run_job

    settings = BenchSettings(min_iters=3, min_time=0.0, max_iters=3, warmup_iters=0, instances=1, processes=1)
    events = []
    for runtime, artifact in runnable_but_refused.items():
        cell = CellSpec(id="c", model="m", runtime=runtime, batch=1, threads=1, mode="latency", settings={},
                        artifact=str(artifact), artifact_shown=str(artifact))
        group = GroupSpec(batch=1, cells=[cell])
        job = JobSpec(runtime=runtime, threads=1, mode="latency", settings={},
                      measure=MeasureParams.from_settings(settings), groups=[group])
        run_job(job, lambda event, **fields: events.append((event, fields)))
    cells = [fields["cell"] for event, fields in events if event == "cell"]
    assert [(cell["status"], cell["error"]) for cell in cells] == [("ok", None), ("ok", None)]
    assert all(cell["load_seconds"] > 0 for cell in cells)
