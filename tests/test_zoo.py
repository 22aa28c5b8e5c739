"""Users' own models end to end (issue 13): every model of the test zoo (tests/zoo.py), trained
outside slimdeploy with plain Keras, goes through the real CLI in this process on real
TensorFlow, tf2onnx, ONNX Runtime and OpenVINO: `prune MODEL --data NPZ --mode both` (adopted,
fine-tuned), `export RUN --target all` (every artifact verified against Keras within the fp32
tolerance, its input dtype kept) and `bench RUN` (both tickets compared with dense, each with a
verdict). The coupled layers of the residual and Concatenate tickets are physically narrower;
what cannot be sliced is recorded. Each stage runs once per model (module-scoped), and the
tests read what it wrote."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli_here
from zoo import ZOO, trained

FP32_TOLERANCE = 1e-4
MODELS = ("dense", "structured", "unstructured")
TICKETS = MODELS[1:]
RUNTIMES = ("onnxruntime", "openvino")
VERDICTS = ("faster", "slower", "no significant difference")
QUICK_PRUNE = ("--mode", "both", "--rounds", "1", "--no-controls", "--epochs", "1", "--quiet")
QUICK_BENCH = ("--batch", "1", "--runtime", ",".join(RUNTIMES), "--min-iters", "10", "--min-time", "0.02",
               "--warmup", "2", "--instances", "1", "--processes", "1", "--quiet")
RESIDUAL = ("residual_mlp", "legacy_h5")  # legacy_h5 is the residual MLP saved as .h5


def litert_available() -> bool:
    from slimdeploy.runtimes.registry import availability

    return availability("litert").available


# `export --target all`: every target this machine builds (TensorRT needs a GPU; LiteRT ai-edge-litert).
EXPORTED = ("onnx", "openvino", *(("litert",) if litert_available() else ()))


@dataclass
class ZooRun:
    """One zoo model's way through the CLI; each stage runs on first use and must succeed."""

    name: str
    model: Path
    npz: Path
    run: Path
    done: dict = field(default_factory=dict)

    def stage(self, command: str, *args: str) -> subprocess.CompletedProcess:
        if command not in self.done:
            self.done[command] = run_cli_here(command, *args)
        result = self.done[command]
        assert result.returncode == 0, f"{command} {self.name}: {result.stderr}"
        return result

    def lottery(self, mode: str) -> dict:
        self.stage("prune", str(self.model), "--data", str(self.npz), "--out", str(self.run), *QUICK_PRUNE)
        return _json(self.run / mode / "lottery.json")

    def manifest(self) -> dict:
        self.lottery("structured")
        self.stage("export", str(self.run), "--target", "all", "--quiet")
        return _json(self.run / "exports" / "export.json")

    def bench(self) -> dict:
        self.manifest()
        self.stage("bench", str(self.run), *QUICK_BENCH)
        return _json(self.run / "bench.json")

    def keras_model(self, which: str):
        from slimdeploy.models import load_model

        self.lottery(which if which != "dense" else "structured")
        return load_model(self.run / "dense" / "model.keras" if which == "dense" else self.run / which / "ticket.keras")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """name -> its ZooRun (the model trained 1 epoch on first use)."""
    base = tmp_path_factory.mktemp("zoo")
    runs: dict[str, ZooRun] = {}

    def get(name: str) -> ZooRun:
        if name not in runs:
            model, npz = trained(name, base / name)
            runs[name] = ZooRun(name, model, npz, base / name / "run")
        return runs[name]

    return get


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _ticket_round(lottery: dict) -> dict:
    return next(r for r in lottery["rounds"] if r["round"] == lottery["ticket"]["round"])


def _dense_layers(model) -> dict:
    """name -> Dense layer, nested models walked."""
    import keras

    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            found[layer.name] = layer
        elif getattr(layer, "layers", None):
            found.update(_dense_layers(layer))
    return found


def _kernel_shapes(model) -> dict:
    return {name: tuple(layer.kernel.shape) for name, layer in _dense_layers(model).items()}


# ---------------------------------------------------------------- prune


@pytest.mark.parametrize("name", list(ZOO))
def test_prune_adopts_the_model_and_fine_tunes_both_modes(zoo, name):
    run = zoo(name)
    run.lottery("structured")
    metrics = _json(run.run / "dense" / "metrics.json")
    sha256 = hashlib.sha256(run.model.read_bytes()).hexdigest()
    assert metrics["adopted"]["sha256"] == sha256 and metrics["adopted"]["theta0"] is False
    assert metrics["adopted"]["format"] == ("h5" if run.model.suffix == ".h5" else "keras")
    for mode in ("structured", "unstructured"):
        lottery = run.lottery(mode)
        assert lottery["mode"] == mode
        assert lottery["adopted"]["sha256"] == sha256 and lottery["adopted"]["theta0"] is False
        # No true θ0 in a trained model: the default reset is fine-tuning, and it is what ran.
        assert lottery["settings"]["reset"] == "trained" and lottery["adopted"]["reset"] == "finetune"
        assert set(lottery["resets"]) >= {"finetune"}, lottery["resets"]
        assert lottery["dense"]["test_accuracy"] == metrics["test_accuracy"]
        assert (run.run / mode / lottery["ticket"]["path"]).is_file()


@pytest.mark.parametrize("name", list(ZOO))
def test_the_structured_ticket_is_smaller_and_every_whole_layer_says_why(zoo, name):
    run = zoo(name)
    lottery = run.lottery("structured")
    ticket = _ticket_round(lottery)
    assert ticket["params"] < lottery["dense"]["params"], (ticket, lottery["dense"])
    unprunable = {item["layer"]: item["reason"] for item in lottery["unprunable"]}
    assert all(unprunable.values()), unprunable
    dense, pruned = _kernel_shapes(run.keras_model("dense")), _kernel_shapes(run.keras_model("structured"))
    assert set(pruned) == set(dense)
    for layer, shape in dense.items():
        if pruned[layer][1] == shape[1]:
            assert layer in unprunable, f"{layer} kept its {shape[1]} units and lottery.json does not say why"
        else:
            assert pruned[layer][1] < shape[1] and layer not in unprunable
    # The output layer keeps its classes, and says so.
    assert any("output layer" in reason for reason in unprunable.values()), unprunable


@pytest.mark.parametrize("name", list(ZOO))
def test_the_unstructured_ticket_keeps_its_shapes_with_fewer_nonzero_weights(zoo, name):
    run = zoo(name)
    lottery = run.lottery("unstructured")
    ticket = _ticket_round(lottery)
    assert ticket["params"] == lottery["dense"]["params"]
    assert ticket["nonzero_params"] < ticket["params"]
    assert _kernel_shapes(run.keras_model("unstructured")) == _kernel_shapes(run.keras_model("dense"))


@pytest.mark.parametrize("name", RESIDUAL)
def test_the_residual_ticket_narrows_both_add_members_and_the_head_rows(zoo, name):
    shapes = _kernel_shapes(zoo(name).keras_model("structured"))
    kept = shapes["first"][1]
    assert kept < 32, shapes
    # One unit set for the whole Add group: both members and the layer reading the sum.
    assert shapes == {"first": (16, kept), "second": (kept, kept), "head": (kept, 3)}


def test_the_concatenate_ticket_narrows_each_branch_and_the_consumer_rows(zoo):
    shapes = _kernel_shapes(zoo("concat_mlp").keras_model("structured"))
    left, right = shapes["left"][1], shapes["right"][1]
    assert left < 24 and right < 16, shapes
    assert shapes["left"][0] == shapes["right"][0] == 16
    assert shapes["hidden"][0] == left + right and shapes["hidden"][1] < 16, shapes


def test_a_layer_feeding_a_nested_model_is_recorded_as_kept_whole(zoo):
    run = zoo("nested_sequential")
    unprunable = {item["layer"]: item["reason"] for item in run.lottery("structured")["unprunable"]}
    assert "stem" in unprunable and "nested model 'block'" in unprunable["stem"], unprunable
    shapes = _kernel_shapes(run.keras_model("structured"))
    assert shapes["stem"] == (16, 24)
    inner = [shape for layer, shape in shapes.items() if layer not in ("stem", "head")]
    assert len(inner) == 2 and inner[0][0] == 24 and all(shape[1] < 16 for shape in inner), shapes


# ---------------------------------------------------------------- export


@pytest.mark.parametrize("name", list(ZOO))
def test_every_artifact_is_verified_with_the_input_dtype_kept(zoo, name):
    import onnx
    import openvino as ov

    run = zoo(name)
    manifest = run.manifest()
    with np.load(run.npz) as arrays:
        dtype = arrays["x_test"].dtype.name
    # Verified on the run's own data (the adopted .npz), not on a default dataset.
    assert manifest["data"]["sha256"] == hashlib.sha256(run.npz.read_bytes()).hexdigest()
    artifacts = {(a["model"], a["target"]): a for a in manifest["artifacts"]}
    assert set(artifacts) == {(model, target) for model in MODELS for target in EXPORTED}
    for artifact in artifacts.values():
        assert artifact["valid"], artifact["error"]
        assert artifact["precision"] == "fp32" and artifact["inference_precision"] == "f32"
        assert artifact["max_abs_diff"] <= FP32_TOLERANCE and artifact["tolerance"] == FP32_TOLERANCE
        assert artifact["top1_agreement"] == 1.0
        assert artifact["input_dtype"] == dtype
        assert artifact["test_accuracy"] == pytest.approx(artifact["keras_test_accuracy"], abs=1e-9)
        path = run.run / "exports" / artifact["path"]
        if artifact["target"] == "onnx":
            onnx_input = onnx.load(str(path)).graph.input[0]
            assert onnx.helper.tensor_dtype_to_np_dtype(onnx_input.type.tensor_type.elem_type).name == dtype
        elif artifact["target"] == "litert":
            from ai_edge_litert.interpreter import Interpreter

            assert np.dtype(Interpreter(model_path=str(path)).get_input_details()[0]["dtype"]).name == dtype
        else:
            assert ov.Core().read_model(str(path)).inputs[0].get_element_type().to_dtype().name == dtype
    skipped = {s["target"]: s["reason"] for s in manifest["skipped"]}
    assert "tensorrt" in skipped and skipped["tensorrt"], manifest["skipped"]


@pytest.mark.parametrize("name", list(ZOO))
def test_flops_read_from_every_artifact_are_keras_own(zoo, name):
    """A per-time-step Dense computes its kernel once per step, a convolution once per output
    position, a masked weight not at all: each file must say so, as its Keras model does."""
    from slimdeploy.bench.artifacts import READERS, inspect_artifact

    run = zoo(name)
    manifest = run.manifest()
    for artifact in manifest["artifacts"]:
        if Path(artifact["path"]).suffix not in READERS:  # a .tflite: only LiteRT reads it; export.json has its counts
            continue
        facts = manifest["models"][artifact["model"]]
        info = inspect_artifact(run.run / "exports" / artifact["path"])
        assert (info.flops, info.nonzero_flops) == (facts["flops"], facts["nonzero_flops"]), artifact["path"]


# ---------------------------------------------------------------- bench


@pytest.mark.parametrize("name", list(ZOO))
def test_bench_compares_both_tickets_with_dense_with_a_verdict(zoo, name):
    run = zoo(name)
    results = run.bench()
    artifact = run.manifest()["artifacts"][0]
    cells = results["cells"]
    assert sorted((c["model"], c["runtime"]) for c in cells) == sorted(
        (model, runtime) for model in MODELS for runtime in RUNTIMES)
    for cell in cells:
        assert cell["status"] == "ok", cell["error"]
        assert cell["stats"]["p50_ms"] > 0
        assert cell["input"]["dtype"] == artifact["input_dtype"]
        if artifact["input_range"]:  # token ids: drawn from the Embedding's own range
            assert [cell["input"]["low"], cell["input"]["high"]] == artifact["input_range"]
            assert cell["input"]["range_from"] == "model"
    comparisons = {(c["model"], c["runtime"]): c for c in results["comparisons"]}
    assert set(comparisons) == {(ticket, runtime) for ticket in TICKETS for runtime in RUNTIMES}
    for comparison in comparisons.values():
        assert comparison["baseline"] == "dense" and comparison["verdict"] in VERDICTS, comparison
        assert comparison["ci_low"] <= comparison["speedup"] <= comparison["ci_high"]


def test_a_legacy_h5_model_benchmarks_in_tensorflow(zoo, tmp_path):
    run = zoo("legacy_h5")
    quick = [a if a != ",".join(RUNTIMES) else "tensorflow" for a in QUICK_BENCH]
    result = run_cli_here("bench", str(run.model), "--out", str(tmp_path / "bench.json"), *quick)
    assert result.returncode == 0, result.stderr
    results = _json(tmp_path / "bench.json")
    [cell] = results["cells"]
    assert cell["status"] == "ok" and cell["runtime"] == "tensorflow", cell["error"]
    # The .h5 file's FLOPs are those of the model it was adopted as.
    assert results["models"]["legacy_h5"]["flops"] == run.manifest()["models"]["dense"]["flops"]


def test_a_variable_length_sequence_model_exports_and_benchmarks_at_a_given_length(tmp_path):
    import keras

    from zoo import STEPS, TOKENS, embedding_text

    npz = tmp_path / "tokens.npz"
    fixed = embedding_text(npz)
    keras.utils.set_random_seed(0)
    # The same layers on Input((None,)): any sequence length.
    model = keras.Sequential([keras.Input((None,), dtype="int32", name="input"), *fixed.layers])
    model.save(tmp_path / "var.keras")
    out = tmp_path / "exports"
    litert = ("litert",) if litert_available() else ()  # LiteRT resizes both dynamic dims
    result = run_cli_here("export", str(tmp_path / "var.keras"), "--data", str(npz), "--target", "onnx",
                          "--target", "openvino", *(arg for t in litert for arg in ("--target", t)), "--out", str(out),
                          "--quiet")
    assert result.returncode == 0, result.stderr
    for artifact in _json(out / "export.json")["artifacts"]:
        assert artifact["valid"] and artifact["input_shape"] == [None, None], artifact
        assert artifact["max_abs_diff"] <= FP32_TOLERANCE
    # The bench must be told the length to time; then it runs it.
    result = run_cli_here("bench", str(out), "--out", str(tmp_path / "b.json"), *QUICK_BENCH)
    assert result.returncode == 2 and "--input-shape" in result.stderr, result.stderr
    assert not (tmp_path / "b.json").exists()
    result = run_cli_here("bench", str(out), "--out", str(tmp_path / "b.json"), "--input-shape", str(STEPS),
                          *QUICK_BENCH, "--runtime", ",".join((*RUNTIMES, *litert)))
    assert result.returncode == 0, result.stderr
    results = _json(tmp_path / "b.json")
    assert results["config"]["input_dims"] == [STEPS]
    assert {cell["runtime"] for cell in results["cells"]} == {*RUNTIMES, *litert}
    for cell in results["cells"]:
        assert cell["status"] == "ok", cell["error"]
        assert cell["input"] == {"dtype": "int32", "low": 0, "high": TOKENS, "range_from": "model"}


def test_a_per_step_dense_on_any_length_has_no_flop_count_rather_than_a_wrong_one(tmp_path):
    """Its FLOPs per sample depend on the sequence length: export and bench say null, never a guess."""
    import keras

    from zoo import FEATURES, TIME_STEPS, per_step_dense

    npz = tmp_path / "steps.npz"
    fixed = per_step_dense(npz)
    model = keras.Sequential([keras.Input((None, FEATURES), name="input"), *fixed.layers])
    model.save(tmp_path / "any_length.keras")
    out = tmp_path / "exports"
    result = run_cli_here("export", str(tmp_path / "any_length.keras"), "--data", str(npz), "--target", "onnx",
                          "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = _json(out / "export.json")
    assert manifest["models"]["any_length"]["flops"] is None
    [artifact] = manifest["artifacts"]
    assert artifact["valid"] and artifact["flops"] is None and artifact["max_abs_diff"] <= FP32_TOLERANCE
    result = run_cli_here("bench", str(out), "--out", str(tmp_path / "b.json"), "--input-shape",
                          f"{TIME_STEPS},{FEATURES}", *QUICK_BENCH)
    assert result.returncode == 0, result.stderr
    results = _json(tmp_path / "b.json")
    assert results["models"]["any_length"].get("flops") is None
    assert all(cell["status"] == "ok" for cell in results["cells"])
