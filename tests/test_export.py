"""Export through the library API: real tf2onnx, ONNX Runtime and OpenVINO on a tiny trained run.

The run's tickets are made here (the prune stage is tested elsewhere): a structured ticket
whose hidden layers keep the 30/15 units with the largest L1 norm of incoming weights, and
an unstructured ticket with 90% of every kernel zeroed by magnitude.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from test_bench_artifacts import onnx_mlp, random_layers

from slimdeploy.errors import UserError
from slimdeploy.export.api import ExportFailed, export_source
from slimdeploy.export.settings import ExportSettings

STRUCTURED_WIDTHS = (30, 15)
SPARSITY = 0.9
DOCUMENTED_FIELDS = (
    "model", "source", "target", "path", "files", "precision", "inference_precision", "input_name", "input_shape",
    "bytes", "gzip_bytes", "sha256", "params", "nonzero_params", "flops", "max_abs_diff", "mean_abs_diff",
    "top1_agreement", "test_accuracy", "keras_test_accuracy", "tolerance", "valid", "error", "seconds", "versions",
)


# --- tickets (what `slimdeploy prune` will write; made by hand so export is tested alone) ---

def structured_ticket(dense_model, recipe, widths=STRUCTURED_WIDTHS):
    """A narrower model built from the recipe: each hidden Dense layer keeps its units with the
    largest L1 norm of incoming weights, copied from the trained dense model."""
    import keras

    from slimdeploy.models import build_model

    layers = list(recipe.layers)
    dense_positions = [i for i, layer in enumerate(layers) if layer["type"] == "dense"]
    for position, units in zip(dense_positions[:-1], widths):
        layers[position] = {**layers[position], "units": units}
    small = build_model(dataclasses.replace(recipe, layers=tuple(layers)))
    big_layers = [l for l in dense_model.layers if isinstance(l, keras.layers.Dense)]
    small_layers = [l for l in small.layers if isinstance(l, keras.layers.Dense)]
    rows = None
    for index, (big, little) in enumerate(zip(big_layers, small_layers)):
        kernel, bias = big.get_weights()
        if rows is not None:
            kernel = kernel[rows]
        if index < len(widths):
            keep = np.sort(np.argsort(-np.abs(kernel).sum(axis=0))[: widths[index]])
            kernel, bias, rows = kernel[:, keep], bias[keep], keep
        little.set_weights([kernel, bias])
    return small


def unstructured_ticket(dense_model, sparsity=SPARSITY):
    """A copy of the dense model with the smallest-magnitude ``sparsity`` of each kernel zeroed."""
    import keras

    ticket = keras.models.clone_model(dense_model)
    ticket.set_weights(dense_model.get_weights())
    for layer in ticket.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            threshold = np.quantile(np.abs(kernel), sparsity)
            layer.set_weights([np.where(np.abs(kernel) <= threshold, 0.0, kernel).astype(kernel.dtype), bias])
    return ticket


def add_tickets(run_dir: Path) -> None:
    from slimdeploy.models import load_model, save_model
    from slimdeploy.saved_run import run_recipe

    dense = load_model(run_dir / "dense" / "model.keras")
    for mode, ticket in (("structured", structured_ticket(dense, run_recipe(run_dir))), ("unstructured", unstructured_ticket(dense))):
        (run_dir / mode).mkdir(exist_ok=True)
        save_model(ticket, run_dir / mode / "ticket.keras")


@pytest.fixture(scope="module")
def ticket_run(tiny_run, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(tiny_run, run_dir)
    add_tickets(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def exported(ticket_run) -> dict:
    """``export_source(run, targets=all)``: the run's dense model and both tickets."""
    return export_source(ticket_run, ExportSettings())


def artifact(manifest, model, target):
    return next(a for a in manifest["artifacts"] if a["model"] == model and a["target"] == target)


# --- a whole run directory ---

def test_run_directory_exports_every_model_to_every_available_target(exported, ticket_run):
    from slimdeploy.export.tensorrt import missing_requirements
    from slimdeploy.runtimes.litert import availability as litert_availability

    built = {(a["model"], a["target"]) for a in exported["artifacts"]}
    expected_targets = ({"onnx", "openvino"} | ({"tensorrt"} if not missing_requirements() else set())
                        | ({"litert"} if litert_availability().available else set()))
    assert built == {(m, t) for m in ("dense", "structured", "unstructured") for t in expected_targets}
    assert (ticket_run / "exports" / "export.json").is_file()
    on_disk = json.loads((ticket_run / "exports" / "export.json").read_text())
    assert on_disk["artifacts"] == exported["artifacts"]
    assert exported["models"]["structured"]["widths"] == [*STRUCTURED_WIDTHS, 10]


def test_every_fp32_artifact_matches_keras(exported):
    for a in exported["artifacts"]:
        assert a["valid"], a
        assert a["error"] is None
        assert a["inference_precision"] == "f32"  # OpenVINO would pick bf16 on this CPU if not told
        assert a["tolerance"] == 1e-4
        assert 0 <= a["max_abs_diff"] <= 1e-4
        assert a["mean_abs_diff"] <= a["max_abs_diff"]
        assert a["top1_agreement"] >= 0.999
        assert abs(a["test_accuracy"] - a["keras_test_accuracy"]) <= 0.001
        assert a["keras_test_accuracy"] == exported["models"][a["model"]]["keras_test_accuracy"]
    # The verification used the run's own validation and test images.
    assert exported["data"]["verification"] == {"validation_images": 300, "test_images": 3000}


def test_manifest_records_documented_fields_and_true_file_facts(exported, ticket_run):
    out = ticket_run / "exports"
    for a in exported["artifacts"]:
        missing = [key for key in DOCUMENTED_FIELDS if key not in a]
        assert not missing, missing
        files = [out / name for name in a["files"]]
        assert a["path"] == a["files"][0]
        assert all(path.is_file() for path in files)
        assert a["bytes"] == sum(path.stat().st_size for path in files)
        assert a["sha256"] == hashlib.sha256(files[0].read_bytes()).hexdigest()
        assert a["gzip_bytes"] == sum(len(gzip.compress(p.read_bytes(), 9, mtime=0)) for p in files)
        assert a["converter"] and a["runtime"] and a["versions"]
        assert a["seconds"] > 0
    assert exported["environment"]["libraries"]["openvino"]
    assert exported["settings"]["opset"] == 17
    # Nothing half-written is left: no staging directories or temporaries.
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name or p.name.endswith(".failed")]


def test_tensorrt_is_skipped_with_the_reason_when_unavailable(exported, ticket_run):
    from slimdeploy.export.tensorrt import missing_requirements

    from slimdeploy.runtimes.litert import availability as litert_availability

    missing = missing_requirements()
    if not missing:
        pytest.skip("TensorRT and a GPU are present here: nothing is skipped")
    litert = litert_availability()
    assert exported["skipped"] == [{"target": "tensorrt", "reason": " and ".join(missing)}] + (
        [] if litert.available else [{"target": "litert", "reason": litert.reason}])
    assert not list((ticket_run / "exports").glob("*.engine"))


def test_onnx_graph_is_checked_named_and_has_a_dynamic_batch(exported, ticket_run):
    import onnx
    import onnxruntime as ort

    path = ticket_run / "exports" / "dense.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        out = session.run(None, {"input": np.zeros((batch, 28, 28), np.float32)})[0]
        assert out.shape == (batch, 10)


def test_structured_ticket_graph_has_the_narrower_weights(exported, ticket_run):
    import onnx
    import openvino as ov
    from onnx import numpy_helper

    out = ticket_run / "exports"
    proto = onnx.load(str(out / "structured.onnx"))
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    matmul_shapes = [list(weights[n.input[1]].shape) for n in proto.graph.node if n.op_type in ("MatMul", "Gemm")]
    assert matmul_shapes == [[784, 30], [30, 15], [15, 10]]

    model = ov.Core().read_model(str(out / "structured.xml"))
    ov_shapes = [
        sorted(int(d) for d in port.get_shape())
        for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
        for port in op.inputs() if port.get_source_output().get_node().get_type_name() == "Constant"
    ]
    assert ov_shapes == [[30, 784], [15, 30], [10, 15]]
    assert artifact(exported, "structured", "onnx")["matmul_weight_shapes"] == [[784, 30], [30, 15], [15, 10]]
    assert artifact(exported, "dense", "onnx")["matmul_weight_shapes"] == [[784, 300], [300, 150], [150, 10]]
    if any(a["target"] == "litert" for a in exported["artifacts"]):  # made from the Keras model, not the ONNX
        assert artifact(exported, "structured", "litert")["matmul_weight_shapes"] == [[784, 30], [30, 15], [15, 10]]


def test_sizes_follow_parameters_and_zeros(exported, ticket_run):
    import onnx
    from onnx import numpy_helper

    dense = artifact(exported, "dense", "onnx")
    structured = artifact(exported, "structured", "onnx")
    unstructured = artifact(exported, "unstructured", "onnx")
    # Narrower layers: smaller before compression, in proportion to the parameters.
    param_ratio = structured["params"] / dense["params"]
    assert structured["bytes"] / dense["bytes"] == pytest.approx(param_ratio, rel=0.15)
    # Zeros stay zeros in the file, and compress.
    proto = onnx.load(str(ticket_run / "exports" / "unstructured.onnx"))
    zeros = sum(int(np.sum(numpy_helper.to_array(i) == 0)) for i in proto.graph.initializer if i.data_type == 1)
    assert zeros >= unstructured["params"] - unstructured["nonzero_params"]
    assert unstructured["nonzero_params"] < 0.11 * unstructured["params"]
    assert dense["gzip_bytes"] / unstructured["gzip_bytes"] >= 4
    assert unstructured["bytes"] == pytest.approx(dense["bytes"], rel=0.01)  # zeros still take room raw


def test_existing_export_is_refused_without_force(exported, ticket_run):
    manifest = ticket_run / "exports" / "export.json"
    before = manifest.read_bytes()
    with pytest.raises(UserError, match=r"export\.json already exists; pass --force"):
        export_source(ticket_run, ExportSettings(targets=["onnx"]))
    assert manifest.read_bytes() == before


# --- single files, precisions, shapes ---

@pytest.fixture(scope="module")
def dense_file(tiny_run, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("file")
    shutil.copy(tiny_run / "dense" / "model.keras", directory / "mlp.keras")
    return directory / "mlp.keras"


def test_a_keras_file_exports_beside_itself_under_its_stem(dense_file, small_data, tmp_path):
    source = tmp_path / "model_a.keras"
    shutil.copy(dense_file, source)
    manifest = export_source(source, ExportSettings(targets=["openvino"]), data=small_data)
    out = tmp_path / "exports" / "model_a"  # each lone file its own directory
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model_a.bin", "model_a.xml"]
    (a,) = manifest["artifacts"]
    assert (a["model"], a["target"], a["valid"], a["compress_to_fp16"]) == ("model_a", "openvino", True, False)


def test_fp16_halves_the_files_within_the_declared_tolerance(dense_file, small_data, tmp_path):
    import onnx

    manifest = export_source(dense_file, ExportSettings(targets=["onnx", "openvino"], precisions=["fp16"]), tmp_path / "fp16",
                             data=small_data)
    fp32 = export_source(dense_file, ExportSettings(targets=["onnx", "openvino"]), tmp_path / "fp32", data=small_data)
    for half, full in zip(manifest["artifacts"], fp32["artifacts"]):
        assert half["valid"], half
        assert half["precision"] == "fp16"
        assert half["tolerance"] >= 1e-2 and half["min_top1_agreement"] == 0.99
        assert half["top1_agreement"] >= 0.99
        assert half["bytes"] < 0.55 * full["bytes"]
        assert half["max_abs_diff"] > 0  # it really is a different, rounded model
    proto = onnx.load(str(tmp_path / "fp16" / "mlp.onnx"))
    onnx.checker.check_model(proto)
    assert {i.data_type for i in proto.graph.initializer if len(i.dims) == 2} == {onnx.TensorProto.FLOAT16}
    assert artifact(manifest, "mlp", "onnx")["matmul_weight_shapes"] == [[784, 300], [300, 150], [150, 10]]
    assert artifact(manifest, "mlp", "openvino")["compress_to_fp16"] is True


def test_static_batch_exports_fixed_shapes_and_verifies_a_ragged_last_batch(dense_file, small_data, tmp_path):
    import onnxruntime as ort

    settings = ExportSettings(targets=["onnx", "openvino"], batch=7, verify_limit=100)
    manifest = export_source(dense_file, settings, tmp_path, data=small_data)
    assert all(a["valid"] and a["input_shape"] == [7, 28, 28] for a in manifest["artifacts"])
    session = ort.InferenceSession(str(tmp_path / "mlp.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [7, 28, 28]
    assert manifest["data"]["verification"] == {"validation_images": 100, "test_images": 100}  # 200 = 28 batches of 7 + 4


def test_bf16_that_breaks_a_model_is_reported_and_never_looks_complete(dense_file, small_data, tmp_path):
    """A real failure: a model with huge logits computed in bf16 flips answers. The artifact
    must end up as .failed, marked invalid, and an earlier valid export must not survive."""
    from slimdeploy.export.openvino import device_capabilities
    from slimdeploy.models import load_model, save_model

    model = load_model(dense_file)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 100.0, bias])  # sharp softmax: bf16 logit errors move it (f32 does not)
    sharp = tmp_path / "sharp.keras"
    save_model(model, sharp)
    if "BF16" not in device_capabilities():
        # A CPU without bf16 (or ONEDNN_MAX_CPU_ISA below it) computes in f32: the model passes, and
        # export.json says what ran, not what was asked for.
        manifest = export_source(sharp, ExportSettings(targets=["openvino"], openvino_inference_precision="bf16"),
                                 data=small_data)
        (a,) = manifest["artifacts"]
        assert a["valid"] is True and a["inference_precision"] == "f32", a
        return
    export_source(sharp, ExportSettings(targets=["openvino"]), data=small_data)  # f32: passes
    assert (tmp_path / "exports" / "sharp" / "sharp.xml").is_file()

    with pytest.raises(ExportFailed, match=r"failed verification: sharp/openvino") as caught:
        export_source(sharp, ExportSettings(targets=["openvino"], openvino_inference_precision="bf16"),
                      data=small_data, force=True)
    (a,) = caught.value.manifest["artifacts"]
    assert a["valid"] is False and a["inference_precision"] == "bf16"
    assert a["max_abs_diff"] > a["tolerance"]
    assert a["files"] == ["sharp.xml.failed", "sharp.bin.failed"]
    names = sorted(p.name for p in (tmp_path / "exports" / "sharp").iterdir())
    assert names == ["export.json", "sharp.bin.failed", "sharp.xml.failed"]
    on_disk = json.loads((tmp_path / "exports" / "sharp" / "export.json").read_text())
    assert on_disk["artifacts"][0]["valid"] is False

    # Fixed (f32 again) with --force: the failure's leftovers go, the valid pair comes back.
    export_source(sharp, ExportSettings(targets=["openvino"]), data=small_data, force=True)
    assert sorted(p.name for p in (tmp_path / "exports" / "sharp").iterdir()) == ["export.json", "sharp.bin", "sharp.xml"]


class InterruptAfterFirstArtifact:
    """A progress sink that behaves like Ctrl-C arriving right after the first artifact is recorded."""

    def add_task(self, *args, **kwargs):
        return 0

    def update(self, *args, **kwargs):
        pass

    def advance(self, *args, **kwargs):
        raise KeyboardInterrupt


def test_an_interrupted_export_leaves_only_complete_verified_files(dense_file, small_data, tmp_path):
    import onnx

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export_source(dense_file, ExportSettings(targets=["onnx", "openvino"], verify_limit=50), out,
                      progress=InterruptAfterFirstArtifact(), data=small_data)
    # No manifest, no staging, no OpenVINO half; the record of what is done, for --resume.
    assert sorted(p.name for p in out.iterdir()) == ["export.partial.json", "mlp.onnx"]
    onnx.checker.check_model(onnx.load(str(out / "mlp.onnx")))
    (done,) = json.loads((out / "export.partial.json").read_text())["artifacts"]
    assert done["target"] == "onnx" and done["valid"] and done["files"] == ["mlp.onnx"]

    # --resume keeps it (same bytes, not converted again) and exports only OpenVINO; a changed
    # ONNX file would not be kept.
    kept = (out / "mlp.onnx").stat().st_mtime_ns
    manifest = export_source(dense_file, ExportSettings(targets=["onnx", "openvino"], verify_limit=50), out,
                             resume=True, data=small_data)
    assert [(a["target"], a["valid"]) for a in manifest["artifacts"]] == [("onnx", True), ("openvino", True)]
    assert (out / "mlp.onnx").stat().st_mtime_ns == kept
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "mlp.bin", "mlp.onnx", "mlp.xml"]


@pytest.fixture
def interrupt_handlers(monkeypatch):
    """The CLI's SIGINT/SIGTERM handlers, installed for one test and taken down after it."""
    from slimdeploy import interrupts

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(interrupts, "_received", False)
    interrupts.install()
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def sigterm_inside_openvino_conversion(monkeypatch) -> list:
    """Make ``ov.convert_model`` send one SIGTERM from Python code that OpenVINO's ONNX frontend
    calls (a real conversion extension for Relu); returns a list with an entry per call."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.frontend import ConversionExtension

    called = []

    def relu_sending_sigterm(node):
        called.append(node.get_input(0))
        if len(called) == 1:
            signal.raise_signal(signal.SIGTERM)
        return ops.relu(node.get_input(0)).outputs()

    convert = ov.convert_model
    monkeypatch.setattr(ov, "convert_model", lambda path, **options: convert(
        path, extension=[ConversionExtension("Relu", relu_sending_sigterm)], **options))
    return called


def test_openvino_turns_an_interrupt_in_its_callbacks_into_its_own_error(monkeypatch, interrupt_handlers, tmp_path):
    """Why ``reraise_if_interrupted`` exists: OpenVINO swallows the KeyboardInterrupt raised in
    code it calls and raises OpConversionFailure; the remembered signal turns it back."""
    from slimdeploy import interrupts
    import openvino as ov

    sigterm_inside_openvino_conversion(monkeypatch)
    onnx_path = onnx_mlp(tmp_path / "mlp.onnx", random_layers((16, 10), seed=0))
    with pytest.raises(Exception) as raised:
        ov.convert_model(str(onnx_path))
    assert type(raised.value).__name__ == "OpConversionFailure"  # not a KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        interrupts.reraise_if_interrupted(raised.value)


def test_an_interrupt_during_openvino_conversion_waits_for_it_then_stops_the_export(
        dense_file, small_data, tmp_path, monkeypatch, interrupt_handlers):
    """SIGTERM while ``convert_model`` runs (an interrupted convert_model can hang on its telemetry
    lock, or come back as a failed artifact): the conversion finishes, then the export stops as
    after a plain Ctrl-C, with no manifest and no failure recorded."""
    called = sigterm_inside_openvino_conversion(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt) as raised:
        export_source(dense_file, ExportSettings(targets=["onnx", "openvino"], verify_limit=50), out, data=small_data)
    assert len(called) == 2  # both hidden layers' Relu converted: the interrupt waited for the converter
    assert raised.value.__context__ is None  # held, not turned into OpenVINO's own error
    assert sorted(p.name for p in out.iterdir()) == ["export.partial.json", "mlp.onnx"]


def test_resume_after_the_last_artifact_keeps_its_models_facts(dense_file, small_data, tmp_path):
    out = tmp_path / "out"
    settings = ExportSettings(targets=["onnx"], verify_limit=50)
    with pytest.raises(KeyboardInterrupt):  # the model's one artifact is recorded, then Ctrl-C
        export_source(dense_file, settings, out, progress=InterruptAfterFirstArtifact(), data=small_data)
    manifest = export_source(dense_file, settings, out, resume=True, data=small_data)
    facts = manifest["models"]["mlp"]
    assert facts["params"] > 0 and facts["keras_test_accuracy"] > 0
    assert facts["source_sha256"] == hashlib.sha256(dense_file.read_bytes()).hexdigest()


def test_resume_exports_again_what_changed_since(dense_file, small_data, tmp_path):
    out = tmp_path / "out"
    settings = ExportSettings(targets=["onnx"], verify_limit=50)
    first = export_source(dense_file, settings, out, data=small_data)
    # A finished export is returned as it is.
    assert export_source(dense_file, settings, out, resume=True, data=small_data)["created"] == first["created"]
    # An interrupted export whose artifact was altered afterwards: that artifact is redone.
    (out / "export.json").rename(out / "export.partial.json")
    with open(out / "mlp.onnx", "ab") as handle:
        handle.write(b"\0")
    kept = (out / "mlp.onnx").stat().st_mtime_ns
    again = export_source(dense_file, settings, out, resume=True, data=small_data)
    assert (out / "mlp.onnx").stat().st_mtime_ns != kept and again["artifacts"][0]["valid"]
    assert again["artifacts"][0]["sha256"] == hashlib.sha256((out / "mlp.onnx").read_bytes()).hexdigest()


def test_stale_temporaries_are_removed(dense_file, small_data, tmp_path):
    out = tmp_path / "out"
    (out / ".export.tmp-leftover").mkdir(parents=True)
    (out / ".mlp.onnx.tmp-x").write_bytes(b"half")
    export_source(dense_file, ExportSettings(targets=["onnx"], verify_limit=50), out, data=small_data)
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "mlp.onnx"]


# --- bad input: one clear error, nothing written ---

def test_bad_sources_and_outputs_fail_before_writing(dense_file, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        export_source(tmp_path / "missing.keras", ExportSettings())
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match="corrupt"):
        export_source(corrupt, ExportSettings())
    not_a_run = tmp_path / "empty_dir"
    not_a_run.mkdir()
    with pytest.raises(UserError, match="no dense model"):
        export_source(not_a_run, ExportSettings())
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        export_source(dense_file, ExportSettings(), a_file)
    assert not (tmp_path / "exports").exists()


def test_settings_are_validated():
    for bad, message in (
        ({"targets": ["tflite"]}, "unknown export target"),
        ({"precisions": ["int4"]}, "precision"),
        ({"precisions": ["fp32", "fp16"]}, "choose one of fp32 and fp16"),
        ({"calibration_size": 0}, "calibration_size"),
        ({"calibration_method": "kl"}, "calibration_method"),
        ({"opset": 9}, "opset"),
        ({"batch": 0}, "batch"),
        ({"batch": "auto"}, "batch"),
        ({"openvino_inference_precision": "f64"}, "openvino_inference_precision"),
        ({"profile_batches": []}, "profile_batches"),
        ({"trt_opt_batch": 512}, "trt_opt_batch"),
        ({"verify_limit": 0}, "verify_limit"),
    ):
        with pytest.raises(UserError, match=message):
            ExportSettings(**bad).validate()
    assert ExportSettings(targets="onnx").validate().resolved_targets() == ["onnx"]
    assert ExportSettings().resolved_targets() == ["onnx", "openvino", "tensorrt", "litert"]


def test_every_target_module_is_registered_and_declares_a_tolerance():
    import importlib
    import inspect
    import pkgutil

    import slimdeploy.export as package
    from slimdeploy.export.registry import TARGETS
    from slimdeploy.export.target import Target

    found = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"slimdeploy.export.{info.name}")
        found |= {cls for _, cls in inspect.getmembers(module, inspect.isclass) if issubclass(cls, Target) and cls is not Target}
    assert found == {type(t) for t in TARGETS.values()}
    for name, target in TARGETS.items():
        assert target.name == name and target.suffixes and target.runtime
        strict = target.tolerance(ExportSettings(), "f32")
        loose = target.tolerance(ExportSettings(precisions=["fp16"]), "f32")
        assert (strict.atol, strict.min_top1_agreement) == (1e-4, 0.999)
        assert loose.atol > strict.atol and loose.min_top1_agreement == 0.99


def test_compare_catches_every_kind_of_mismatch():
    from slimdeploy.export.target import Tolerance
    from slimdeploy.export.verify import Reference, compare

    outputs = np.eye(10, dtype=np.float32)[np.arange(100) % 10]
    reference = Reference(x=np.zeros((100, 2), np.float32), outputs=outputs, n_validation=40,
                          y_test=np.arange(40, 100) % 10, keras_test_accuracy=1.0)
    strict = Tolerance(1e-4, 0.999)
    assert compare(reference, outputs + 5e-5, strict)["valid"]
    off = compare(reference, outputs + 2e-4, strict)
    assert not off["valid"] and "exceeds the tolerance" in off["error"]
    flipped = outputs.copy()
    flipped[0] = np.roll(flipped[0], 1)
    result = compare(reference, flipped, Tolerance(2.0, 0.999))
    assert not result["valid"] and "agreement" in result["error"] and result["top1_agreement"] == 0.99
    nan = outputs.copy()
    nan[3, 3] = np.nan
    assert "NaN" in compare(reference, nan, strict)["error"]
    assert "shape" in compare(reference, outputs[:, :9], strict)["error"]
