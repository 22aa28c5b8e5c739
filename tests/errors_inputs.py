"""Hostile inputs for the error tests: broken, mismatched and untrusted files of every kind,
built from the tiny trained run and small hand-built models."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from slimdeploy.data import DEBIAN_DIR, IDX_FILES
from test_bench_artifacts import onnx_mlp, openvino_ir, random_layers
from test_report_inputs import make_bench, write_run

# A Lambda layer whose code creates MARKER when it runs; serialized as bytecode, so a
# loader without safe mode would run it.
LAMBDA_SOURCE = "lambda x: (__import__('pathlib').Path({marker!r}).write_text('code in the model file ran'), x)[1]"


def lambda_model(path: Path, marker: Path) -> None:
    import keras

    from slimdeploy.models import save_model

    payload = eval(LAMBDA_SOURCE.format(marker=str(marker)))  # noqa: S307 - the test's own payload
    model = keras.Sequential([keras.Input((28, 28), name="input"), keras.layers.Lambda(payload),
                              keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    save_model(model, path)
    marker.unlink()  # building the model called the layer once
    with zipfile.ZipFile(path) as archive:
        assert "__lambda__" in archive.read("config.json").decode()  # the code itself is in the file


def _keras(path: Path, build) -> Path:
    from slimdeploy.models import save_model

    save_model(build(), path)
    return path


def _mlp(input_shape=(28, 28), hidden=16):
    import keras

    return keras.Sequential([keras.Input(input_shape, name="input"), keras.layers.Flatten(),
                             keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(10, activation="softmax")])


def _multi_output():
    import keras

    inputs = keras.Input((28, 28), name="input")
    flat = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, [keras.layers.Dense(10, activation="softmax")(flat), keras.layers.Dense(3)(flat)])


def _multi_input():
    import keras

    a, b = keras.Input((28, 28), name="a"), keras.Input((28, 28), name="b")
    x = keras.layers.Flatten()(keras.layers.Add()([a, b]))
    return keras.Model([a, b], keras.layers.Dense(10, activation="softmax")(x))


def _no_dense():
    import keras

    inputs = keras.Input((28, 28), name="input")
    x = keras.layers.Conv2D(10, 3)(keras.layers.Reshape((28, 28, 1))(inputs))
    return keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.GlobalAveragePooling2D()(x)))


def _non_finite(tiny_run: Path):
    from slimdeploy.models import load_model

    model = load_model(tiny_run / "dense" / "model.keras")
    kernel = model.layers[-1].kernel
    values = kernel.numpy()
    values[0, 0] = np.inf
    kernel.assign(values)
    return model


def _escaping_copy(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("../escaped.txt", "written outside the directory")
    return target


def _external_onnx(source: Path, target: Path, location: str) -> Path:
    """``source`` with its first kernel moved to external data at ``location``."""
    import onnx

    model = onnx.load(str(source))
    tensor = next(t for t in model.graph.initializer if t.name == "kernel0")
    size = len(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(model.SerializeToString())
    return target


def _two_input_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([-1, 784], dtype=np.int64), "shape")
    kernel = numpy_helper.from_array(np.ones((784, 10), np.float32), "kernel")
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Reshape", ["sum", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "kernel"], ["output"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 28, 28]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "two", inputs, [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
                              [shape, kernel])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _run_copy(tiny_run: Path, target: Path, model_file: Path | None = None) -> Path:
    shutil.copytree(tiny_run, target)
    if model_file is not None:
        shutil.copy(model_file, target / "dense" / "model.keras")
    return target


def build(base: Path, tiny_run: Path) -> SimpleNamespace:
    """Every hostile input, under ``base``. Read-only for tests."""
    f = SimpleNamespace(base=base, tiny_run=tiny_run, marker=base / "marker.txt")
    k, o, r, d = (base / name for name in ("keras", "onnx", "runs", "data"))
    for directory in (k, o, r, d):
        directory.mkdir()

    # --- Keras files
    f.keras = k / "mlp.keras"
    shutil.copy(tiny_run / "dense" / "model.keras", f.keras)
    data = f.keras.read_bytes()
    f.keras_empty = k / "empty.keras"
    f.keras_empty.write_bytes(b"")
    f.keras_truncated = k / "truncated.keras"
    f.keras_truncated.write_bytes(data[: len(data) // 2])
    f.keras_lambda = k / "lambda.keras"
    lambda_model(f.keras_lambda, f.marker)
    f.keras_escape = _escaping_copy(f.keras, k / "escape.keras")
    f.keras_inf = _keras(k / "inf.keras", lambda: _non_finite(tiny_run))
    f.keras_32 = _keras(k / "input32.keras", lambda: _mlp((32, 32)))
    f.keras_multi_out = _keras(k / "two_outputs.keras", _multi_output)
    f.keras_multi_in = _keras(k / "two_inputs.keras", _multi_input)
    f.keras_no_dense = _keras(k / "no_dense.keras", _no_dense)
    f.keras_narrow = _keras(k / "narrow.keras", lambda: _mlp(hidden=1))

    # --- ONNX and OpenVINO IR
    layers = random_layers((16, 10), seed=0)
    f.onnx = onnx_mlp(o / "mlp.onnx", layers)
    f.xml = openvino_ir(f.onnx, o / "ir" / "mlp.xml")
    onnx_bytes = f.onnx.read_bytes()
    f.onnx_empty = o / "empty.onnx"
    f.onnx_empty.write_bytes(b"")
    f.onnx_truncated = o / "truncated.onnx"
    f.onnx_truncated.write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    f.onnx_garbage = o / "garbage.onnx"
    f.onnx_garbage.write_bytes(os.urandom(256))
    nan_layers = random_layers((16, 10), seed=0)
    nan_layers[0][0][0, 0] = np.nan
    f.onnx_nan = onnx_mlp(o / "nan.onnx", nan_layers)
    f.onnx_two_inputs = _two_input_onnx(o / "two_inputs.onnx")
    secret = o / "secret.bin"  # outside the directories of the models that point at it
    secret.write_bytes(np.ones((784, 16), np.float32).tobytes())
    f.onnx_ext_up = _external_onnx(f.onnx, o / "ext" / "up.onnx", "../secret.bin")
    f.onnx_ext_abs = _external_onnx(f.onnx, o / "ext" / "absolute.onnx", str(secret))
    (o / "ext" / "link.bin").symlink_to(secret)
    f.onnx_ext_link = _external_onnx(f.onnx, o / "ext" / "link.onnx", "link.bin")
    ir_xml = f.xml.read_bytes()
    ir_bin = f.xml.with_suffix(".bin").read_bytes()
    f.xml_no_bin = o / "nobin" / "mlp.xml"
    f.xml_no_bin.parent.mkdir()
    f.xml_no_bin.write_bytes(ir_xml)
    f.xml_short_bin = o / "short" / "mlp.xml"
    f.xml_short_bin.parent.mkdir()
    f.xml_short_bin.write_bytes(ir_xml)
    f.xml_short_bin.with_suffix(".bin").write_bytes(ir_bin[: len(ir_bin) // 2])
    f.xml_corrupt = o / "corrupt" / "mlp.xml"
    f.xml_corrupt.parent.mkdir()
    f.xml_corrupt.write_bytes(ir_xml[: len(ir_xml) // 3])
    f.xml_corrupt.with_suffix(".bin").write_bytes(ir_bin)
    f.engine = o / "mlp.engine"
    f.engine.write_bytes(b"a TensorRT engine would be here")

    # --- JSON and TOML
    f.json_truncated = base / "truncated.json"
    f.json_truncated.write_text('{"schema_version": 1, "cells": [')
    f.json_not_bench = base / "not_bench.json"
    f.json_not_bench.write_text('{"schema_version": 1}')
    f.bench = base / "bench.json"
    f.bench.write_text(json.dumps(make_bench(0, batches=(1,), n=30)))
    f.report_run = write_run(base / "report_run")
    (f.report_run / "structured" / "lottery.json").write_text('{"schema_version": 1, "rounds": [')
    f.json_empty = base / "empty.json"
    f.json_empty.write_text("")
    f.toml_corrupt = base / "corrupt.toml"
    f.toml_corrupt.write_text("[train]\nepochs = \n")
    f.toml_empty = base / "empty.toml"
    f.toml_empty.write_text("")
    f.a_file = base / "a_file"
    f.a_file.write_text("a regular file, not a directory")

    # --- data
    f.idx_truncated = d / "idx_truncated"
    f.idx_truncated.mkdir()
    for name in IDX_FILES.values():
        if name.startswith("train-labels"):
            raw = gzip.compress(gzip.decompress((DEBIAN_DIR / name).read_bytes())[:5000])
            (f.idx_truncated / name).write_bytes(raw)
        else:
            (f.idx_truncated / name).symlink_to(DEBIAN_DIR / name)
    f.data_empty_dir = d / "empty_dir"
    f.data_empty_dir.mkdir()
    f.npz_garbage = d / "garbage.npz"
    f.npz_garbage.write_bytes(os.urandom(300))
    f.npz_pickled = d / "pickled.npz"
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1, np.int64),
             x_test=np.zeros((1, 28, 28)), y_test=np.zeros(1, np.int64))
    f.npz_pickled.write_bytes(buffer.getvalue())

    # --- run directories (copies of the tiny run with one thing broken)
    f.run = _run_copy(tiny_run, r / "ok")
    for name, model in (("lambda", f.keras_lambda), ("escape", f.keras_escape), ("inf", f.keras_inf),
                        ("input32", f.keras_32), ("two_inputs", f.keras_multi_in), ("no_dense", f.keras_no_dense),
                        ("narrow", f.keras_narrow), ("truncated", f.keras_truncated)):
        setattr(f, f"run_{name}", _run_copy(tiny_run, r / name, model))
    f.run_bad_metrics = _run_copy(tiny_run, r / "bad_metrics")
    (f.run_bad_metrics / "dense" / "metrics.json").write_text('{"recipe": ')
    f.run_bad_settings = _run_copy(tiny_run, r / "bad_settings")
    (f.run_bad_settings / "structured").mkdir()
    (f.run_bad_settings / "structured" / "settings.json").write_text("{not json")
    f.run_bad_export = _run_copy(tiny_run, r / "bad_export")
    (f.run_bad_export / "exports").mkdir(exist_ok=True)
    (f.run_bad_export / "exports" / "export.json").write_text('{"artifacts": [')
    return f


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` with its size and modification time."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file() and not p.is_symlink()}


def leftovers(directory: Path) -> list[str]:
    return [str(p) for p in directory.rglob("*") if ".tmp-" in p.name]


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))


# --- Malformed ONNX and IR files (issue 17): lengths that disagree with what the file declares

# Three levels of entities: harmless here, but the shape of the "billion laughs" attack.
_DOCTYPE = (b'<!DOCTYPE net [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n')


def _declaring_huge_kernel(source: Path, target: Path) -> Path:
    """``source`` with kernel0 declaring 60000x60000 floats (14.4 GB) and holding 4 bytes."""
    import onnx

    model = onnx.load(str(source))
    tensor = next(t for t in model.graph.initializer if t.name == "kernel0")
    del tensor.dims[:]
    tensor.dims.extend([60000, 60000])
    tensor.raw_data = b"\0" * 4
    target.write_bytes(model.SerializeToString())
    return target


def _unsorted_onnx(source: Path, target: Path) -> Path:
    """``source`` with its nodes in reverse order: every tensor is the right size, but a node
    reads a value no earlier node made (onnx.checker: not topologically sorted)."""
    import onnx

    model = onnx.load(str(source))
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    target.write_bytes(model.SerializeToString())
    return target


def _ir_copy(xml: bytes, weights: bytes, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(xml)
    target.with_suffix(".bin").write_bytes(weights)
    return target


def add_malformed(f: SimpleNamespace) -> SimpleNamespace:
    """The malformed files, beside those of ``build`` (same ``f``)."""
    o = f.base / "onnx"
    f.onnx_huge = _declaring_huge_kernel(f.onnx, o / "huge.onnx")
    f.onnx_unsorted = _unsorted_onnx(f.onnx, o / "unsorted.onnx")
    # External data beside the model (allowed), but shorter than the tensor it holds.
    f.onnx_ext_short = _external_onnx(f.onnx, o / "ext_short" / "short.onnx", "short.bin")
    (o / "ext_short" / "short.bin").write_bytes(b"\0" * 100)
    ir_xml = f.xml.read_bytes()
    ir_bin = f.xml.with_suffix(".bin").read_bytes()
    f.xml_long_bin = _ir_copy(ir_xml, ir_bin + b"\0" * 16, o / "long" / "mlp.xml")
    declaration_end = ir_xml.index(b"?>") + 2  # after <?xml ...?>
    uses_entity = ir_xml[declaration_end:].replace(b"<net ", b'<net title="&c;" ', 1)
    f.xml_doctype = _ir_copy(ir_xml[:declaration_end] + b"\n" + _DOCTYPE + uses_entity, ir_bin, o / "doctype" / "mlp.xml")
    return f
