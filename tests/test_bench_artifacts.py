"""Builders of real bench inputs (ONNX MLPs, OpenVINO IR, Keras models, a run directory)
shared by the bench tests, and tests of reading artifacts without a runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimdeploy.bench.artifacts import inspect_artifact
from slimdeploy.errors import ModelFileError

ARTICLE_WIDTHS = (300, 150, 10)
NARROW_WIDTHS = (30, 15, 10)


def random_layers(widths, seed=0, sparsity=0.0, inputs=784):
    """[(kernel, bias)] for an MLP; with ``sparsity`` the smallest-magnitude kernel entries are 0."""
    rng = np.random.default_rng(seed)
    layers, previous = [], inputs
    for units in widths:
        kernel = rng.normal(0, np.sqrt(2.0 / previous), (previous, units)).astype(np.float32)
        if sparsity:
            cutoff = np.quantile(np.abs(kernel), sparsity)
            kernel[np.abs(kernel) <= cutoff] = 0.0
        layers.append((kernel, rng.normal(0, 0.01, units).astype(np.float32)))
        previous = units
    return layers


def onnx_mlp(path: Path, layers, input_dims=("N", 28, 28)) -> Path:
    """An ONNX MLP as tf2onnx writes one: Reshape -> (MatMul, Add, Relu)... -> Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    flat = int(np.prod([d for d in input_dims[1:]]))
    inits = [numpy_helper.from_array(np.array([-1, flat], dtype=np.int64), "flat_shape")]
    nodes = [helper.make_node("Reshape", ["input", "flat_shape"], ["h0"])]
    current = "h0"
    for index, (kernel, bias) in enumerate(layers):
        inits += [numpy_helper.from_array(kernel, f"kernel{index}"), numpy_helper.from_array(bias, f"bias{index}")]
        nodes.append(helper.make_node("MatMul", [current, f"kernel{index}"], [f"mm{index}"]))
        nodes.append(helper.make_node("Add", [f"mm{index}", f"bias{index}"], [f"pre{index}"]))
        last = index == len(layers) - 1
        out = "output" if last else f"h{index + 1}"
        nodes.append(helper.make_node("Softmax", [f"pre{index}"], [out], axis=-1) if last
                     else helper.make_node("Relu", [f"pre{index}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_dims))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [input_dims[0], layers[-1][0].shape[1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def openvino_ir(onnx_path: Path, xml_path: Path | None = None) -> Path:
    import openvino as ov

    from slimdeploy.quiet import openvino_telemetry_off

    xml_path = xml_path or onnx_path.with_suffix(".xml")
    with openvino_telemetry_off():  # as slimdeploy converts: no telemetry sender forked offline
        ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path


def keras_mlp(path: Path, layers):
    import keras

    from slimdeploy.models import save_model

    model = keras.Sequential([keras.Input(shape=(28, 28), name="input"), keras.layers.Flatten()]
                             + [keras.layers.Dense(k.shape[1], activation="softmax" if i == len(layers) - 1 else "relu")
                                for i, (k, _) in enumerate(layers)])
    for layer, (kernel, bias) in zip([l for l in model.layers if isinstance(l, keras.layers.Dense)], layers):
        layer.set_weights([kernel, bias])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    return model


def make_run_dir(run_dir: Path) -> Path:
    """A run directory as train/prune/export leave it: Keras models, ONNX + IR exports, export.json.

    dense = the article's 784-300-150-10; structured = 784-30-15-10 (a 10%-of-units ticket);
    unstructured = dense with 90% of each kernel's entries zero.
    """
    from slimdeploy import environment
    from slimdeploy.recipes import load_recipe
    from slimdeploy.models import count_flops, count_nonzero_params, count_params, dense_widths

    specs = {
        "dense": ("dense/model.keras", random_layers(ARTICLE_WIDTHS, seed=1)),
        "structured": ("structured/ticket.keras", random_layers(NARROW_WIDTHS, seed=2)),
        "unstructured": ("unstructured/ticket.keras", random_layers(ARTICLE_WIDTHS, seed=3, sparsity=0.9)),
    }
    recipe = load_recipe("fashion_mlp")
    artifacts = []
    for name, (keras_path, layers) in specs.items():
        model = keras_mlp(run_dir / keras_path, layers)
        counts = {"params": count_params(model), "nonzero_params": count_nonzero_params(model),
                  "flops": count_flops(model), "nonzero_flops": count_flops(model, nonzero_only=True),
                  "widths": dense_widths(model)}
        onnx_path = onnx_mlp(run_dir / "exports" / f"{name}.onnx", layers)
        xml_path = openvino_ir(onnx_path)
        for target, path, files in (("onnx", onnx_path, [onnx_path.name]),
                                    ("openvino", xml_path, [xml_path.name, xml_path.with_suffix(".bin").name])):
            artifacts.append({"model": name, "source": keras_path, "target": target, "path": path.name,
                              "files": files, "precision": "fp32", "input_name": "input",
                              "input_shape": [None, 28, 28], **counts, "valid": True, "error": None})
    recipe_dict = recipe.to_dict()
    recipe_dict["input_shape"] = list(recipe_dict["input_shape"])
    (run_dir / "dense" / "metrics.json").write_text(json.dumps({"recipe": recipe_dict, "seed": 0}))
    (run_dir / "exports" / "export.json").write_text(json.dumps(
        {"schema_version": 1, "settings": {}, "environment": environment.describe(), "artifacts": artifacts,
         "skipped": []}))
    return run_dir


@pytest.fixture(scope="session")
def bench_run(tmp_path_factory) -> Path:
    """A real run directory with three models and their ONNX/IR exports. Read-only for tests."""
    return make_run_dir(tmp_path_factory.mktemp("bench") / "run")


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory) -> dict:
    """Bare dense/structured/unstructured ONNX files and their IRs (no Keras)."""
    base = tmp_path_factory.mktemp("bench_onnx")
    paths = {}
    for name, layers in (("dense", random_layers(ARTICLE_WIDTHS, seed=1)),
                         ("structured", random_layers(NARROW_WIDTHS, seed=2)),
                         ("unstructured", random_layers(ARTICLE_WIDTHS, seed=3, sparsity=0.9))):
        paths[name] = onnx_mlp(base / f"{name}.onnx", layers)
        paths[name + ".xml"] = openvino_ir(paths[name])
    return paths


# --- tests of reading artifacts ---------------------------------------------------------------

def test_onnx_counts_match_the_article_model(onnx_models):
    info = inspect_artifact(onnx_models["dense"])
    assert info.input_name == "input"
    assert info.input_shape == [None, 28, 28]
    assert info.widths == [300, 150, 10]
    assert info.params == 784 * 300 + 300 + 300 * 150 + 150 + 150 * 10 + 10 == 282160
    assert info.flops == 2 * (784 * 300 + 300 * 150 + 150 * 10)
    assert info.nonzero_flops == info.flops


def test_nonzero_flops_count_the_zeros_apart(onnx_models):
    dense = inspect_artifact(onnx_models["unstructured"])
    assert dense.flops == 2 * (784 * 300 + 300 * 150 + 150 * 10)
    # 90% of each kernel is zero; dense kernels still compute them.
    assert 0.09 < dense.nonzero_flops / dense.flops < 0.11
    narrow = inspect_artifact(onnx_models["structured"])
    assert narrow.widths == [30, 15, 10]
    assert narrow.flops == 2 * (784 * 30 + 30 * 15 + 15 * 10)


def test_openvino_ir_reads_the_same_shape_and_flops(onnx_models):
    for name in ("dense", "structured", "unstructured"):
        ir = inspect_artifact(onnx_models[name + ".xml"])
        onnx_info = inspect_artifact(onnx_models[name])
        assert ir.input_shape == [None, 28, 28]
        assert ir.flops == onnx_info.flops
        assert ir.nonzero_flops == onnx_info.nonzero_flops
        assert ir.widths == onnx_info.widths


def test_static_shapes_are_read(tmp_path):
    path = onnx_mlp(tmp_path / "static.onnx", random_layers((20, 10), inputs=32 * 32), input_dims=(1, 32, 32))
    assert inspect_artifact(path).input_shape == [1, 32, 32]
    assert inspect_artifact(openvino_ir(path)).input_shape == [1, 32, 32]


def test_corrupt_or_empty_artifacts_are_one_line_errors(tmp_path, onnx_models):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(onnx_models["dense"].read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="corrupt.onnx is not a readable ONNX model"):
        inspect_artifact(corrupt)
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        inspect_artifact(empty)
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<html>not an IR</html")
    with pytest.raises(ModelFileError, match="not a readable OpenVINO IR"):
        inspect_artifact(garbage)
    bad_keras = tmp_path / "bad.keras"
    bad_keras.write_bytes(b"PK not really")
    with pytest.raises(ModelFileError, match="not a readable .keras archive"):
        inspect_artifact(bad_keras)


def test_keras_input_shape_is_read_from_the_archive(bench_run):
    info = inspect_artifact(bench_run / "dense" / "model.keras")
    assert info.input_shape == [None, 28, 28]


# --- malformed files: lengths that disagree with what the file declares --------------------------

def _edited_onnx(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` with ``edit(kernel0)`` applied to its first kernel's proto."""
    import onnx

    model = onnx.load(str(source))
    edit(next(t for t in model.graph.initializer if t.name == "kernel0"), model)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(model.SerializeToString())
    return target


def _set(tensor, dims=None, raw=None, floats=None):
    if dims is not None:
        del tensor.dims[:]
        tensor.dims.extend(dims)
    if raw is not None:
        tensor.raw_data = raw
    if floats is not None:
        tensor.ClearField("raw_data")
        tensor.float_data.extend(floats)


def _external(tensor, model, entries):
    import onnx

    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def test_onnx_tensors_whose_data_disagree_with_their_dims_are_malformed(tmp_path):
    """Raw bytes, typed values and external files are measured against the declared dims
    without building the array: a 2^20 x 2^20 float tensor (4 TiB) would fail to allocate, so
    the documented line (not a MemoryError) shows nothing was materialised."""
    source = onnx_mlp(tmp_path / "mlp.onnx", random_layers((4, 10), seed=0))
    kernel_bytes = 784 * 4 * 4
    cases = {
        "huge": (lambda t, m: _set(t, dims=[2 ** 20, 2 ** 20], raw=b"\0" * 4),
                 "tensor 'kernel0' declares 1048576x1048576 FLOAT values (4398046511104 bytes) but its data holds 4 bytes"),
        "long_raw": (lambda t, m: _set(t, raw=t.raw_data + b"\0" * 4),
                     f"declares 784x4 FLOAT values ({kernel_bytes} bytes) but its data holds {kernel_bytes + 4} bytes"),
        "typed": (lambda t, m: _set(t, dims=[2, 2], floats=[1.0, 2.0, 3.0]),
                  "declares 2x2 FLOAT values (4 entries) but its float_data hold 3"),
        "empty": (lambda t, m: _set(t, dims=[2, 2], floats=[]), "declares 2x2 FLOAT values (4 entries) but it holds 0"),
        "negative": (lambda t, m: _set(t, dims=[-1, 4]), "has a negative dimension ([-1, 4])"),
        "ext_length": (lambda t, m: _external(t, m, {"location": "w.bin", "length": "12"}),
                       f"declares 784x4 FLOAT values ({kernel_bytes} bytes) but its external data entry gives length 12"),
        "ext_long_file": (lambda t, m: _external(t, m, {"location": "w.bin", "offset": "8"}),
                          f"but 'w.bin' holds {kernel_bytes + 8} bytes from offset 8"),
        "ext_offset": (lambda t, m: _external(t, m, {"location": "w.bin", "offset": "-3"}),
                       "keeps its data in 'w.bin' at offset '-3', not a byte count"),
    }
    (tmp_path / "w.bin").write_bytes(b"\0" * (kernel_bytes + 16))
    for name, (edit, message) in cases.items():
        path = _edited_onnx(source, tmp_path / f"{name}.onnx", edit)
        with pytest.raises(ModelFileError) as caught:
            inspect_artifact(path)
        assert str(caught.value).startswith(f"artifact {path} is malformed: tensor 'kernel0' "), (name, caught.value)
        assert message in str(caught.value), (name, caught.value)
    # External data of exactly the declared length (with or without `length`) is read.
    (tmp_path / "exact.bin").write_bytes(b"\0" * 8 + np.ones((784, 4), np.float32).tobytes())
    for name, entries in (("exact", {"location": "exact.bin", "offset": "8"}),
                          ("exact_length", {"location": "exact.bin", "offset": "8", "length": str(kernel_bytes)})):
        path = _edited_onnx(source, tmp_path / f"{name}.onnx", lambda t, m, e=entries: _external(t, m, e))
        assert inspect_artifact(path).params == 784 * 4 + 4 + 4 * 10 + 10


def test_onnx_checker_refuses_a_graph_whose_tensors_are_well_formed(tmp_path):
    from slimdeploy.onnxsafety import check_onnx_file

    source = onnx_mlp(tmp_path / "mlp.onnx", random_layers((4, 10), seed=0))

    def unknown_op(tensor, model):
        model.graph.node[1].op_type = "MatMulButFaster"

    path = _edited_onnx(source, tmp_path / "unknown_op.onnx", unknown_op)
    with pytest.raises(ModelFileError, match=f"ONNX model {path} is malformed: onnx.checker: .*MatMulButFaster"):
        check_onnx_file(path)
    assert check_onnx_file(source).graph.node  # the file it came from passes


def test_ir_bin_must_hold_exactly_what_the_xml_refers_to(tmp_path, onnx_models):
    """max(offset + size) over the Const layers: a .bin shorter or longer is malformed; an
    IR that OpenVINO saved passes as it is (it writes no padding)."""
    from slimdeploy.irsafety import check_openvino_ir, ir_weights_extent

    xml = onnx_models["structured.xml"]
    weights = xml.with_suffix(".bin").read_bytes()
    assert ir_weights_extent(check_openvino_ir(xml), xml) == len(weights)
    for name, blob, message in (("short", weights[:-1], f"holds {len(weights) - 1} bytes but its Const layers need "
                                                        f"{len(weights)} \\(truncated\\)"),
                                ("long", weights + b"\0", f"holds {len(weights) + 1} bytes but its Const layers need {len(weights)} \\(1 bytes too many")):
        copy = tmp_path / name / xml.name
        copy.parent.mkdir()
        copy.write_bytes(xml.read_bytes())
        copy.with_suffix(".bin").write_bytes(blob)
        with pytest.raises(ModelFileError, match=f"artifact {copy} is malformed: {xml.stem}.bin {message}"):
            inspect_artifact(copy)


def test_ir_xml_with_a_doctype_is_refused_before_entities_expand(tmp_path, onnx_models):
    """A "billion laughs" declaration: nine levels of ten would expand to 10^9 characters."""
    xml = onnx_models["structured.xml"]
    entities = '<!ENTITY e0 "lol">' + "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    text = xml.read_text()
    end = text.index("?>") + 2
    copy = tmp_path / xml.name
    copy.write_text(f"{text[:end]}\n<!DOCTYPE net [{entities}]>{text[end:]}".replace("<net ", "<net title=\"&e9;\" ", 1))
    copy.with_suffix(".bin").write_bytes(xml.with_suffix(".bin").read_bytes())
    with pytest.raises(ModelFileError, match="refused: it has a DOCTYPE declaration"):
        inspect_artifact(copy)
