"""Every common Keras activation exports to ONNX and OpenVINO and matches Keras (fp32, 1e-4).

Real tf2onnx, ONNX Runtime and OpenVINO. tf2onnx leaves some TensorFlow ops untranslated
(exact gelu computes Erfc); ``slimdeploy.export.onnx_rewrite`` rewrites them, and what is
still rejected is one line naming the Keras layer, its activation and the op.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from errors_doc import check

from slimdeploy.errors import WorkError
from slimdeploy.export.api import export_source
from slimdeploy.export.settings import ExportSettings

TOLERANCE = 1e-4
ACTIVATIONS = ("gelu", "silu", "swish", "selu", "elu", "softplus", "softsign", "hard_sigmoid", "hard_silu",
               "mish", "leaky_relu", "relu6", "tanh", "sigmoid", "log_softmax", "celu")
VERIFY_LIMIT = 500  # validation and test images each: enough to reach both tails of every activation


def activation_model(activation, hidden: str = "hidden"):
    """Input((28,28)) -> Flatten -> Dense(32, activation) -> Dense(10, softmax), seeded weights.

    The hidden biases spread the pre-activations over about [-10, 10] so both tails of the
    activation (where 1 - erf(x) and erfc(x) part ways) are exercised; the small output
    weights keep the softmax from saturating and hiding differences."""
    import keras

    model = keras.Sequential([
        keras.Input((28, 28)), keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation=activation, name=hidden),
        keras.layers.Dense(10, activation="softmax", name="scores"),
    ], name=f"act_{activation}")
    _seed_weights(model)
    return model


def _seed_weights(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            wide = layer.units != 10  # hidden: wide pre-activations; output: moderate logits
            layer.set_weights([rng.normal(0, 0.1 if wide else 0.05, kernel.shape).astype("float32"),
                               rng.normal(0, 4.0 if wide else 0.1, bias.shape).astype("float32")])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_exports_and_matches_keras(activation, small_data, tmp_path):
    path = tmp_path / f"{activation}.keras"
    activation_model(activation).save(path)
    manifest = export_source(path, ExportSettings(targets=["onnx", "openvino"], verify_limit=VERIFY_LIMIT),
                             tmp_path / "exports", data=small_data)
    artifacts = {a["target"]: a for a in manifest["artifacts"]}
    assert sorted(artifacts) == ["onnx", "openvino"]
    for target, artifact in artifacts.items():
        assert artifact["valid"], (activation, target, artifact["error"])
        assert artifact["max_abs_diff"] <= TOLERANCE, (activation, target, artifact["max_abs_diff"])
        assert artifact["top1_agreement"] == 1.0, (activation, target, artifact["top1_agreement"])
        assert artifact["inference_precision"] == "f32", (activation, target)


def test_approximate_gelu_converts_and_matches_keras(small_data, tmp_path):
    """No serializable Keras layer computes approximate gelu (Dense and Activation take the
    name "gelu", which is exact), so a .keras file cannot hold it; a model built in Python
    can. Its tanh form converts as it is; checked here through the same converters."""
    import keras

    from slimdeploy.export.onnx import OnnxTarget, keras_to_onnx
    from slimdeploy.export.openvino import OpenVinoTarget

    model = activation_model(None)
    layers = [keras.Input((28, 28)), *model.layers[:2],
              keras.layers.Lambda(lambda x: keras.activations.gelu(x, approximate=True), name="gelu_tanh"),
              model.layers[2]]
    approximate = keras.Sequential(layers, name="approximate")
    x = small_data.x_test[:VERIFY_LIMIT]
    expected = approximate.predict(x, verbose=0)
    onnx_path = tmp_path / "approximate.onnx"
    keras_to_onnx(approximate, onnx_path, opset=17, static_batch=None)
    settings = ExportSettings(targets=["openvino"])
    openvino = OpenVinoTarget()
    xml = openvino.export(onnx_path, tmp_path, "approximate", settings).files[0]
    for runner in (OnnxTarget().open(onnx_path, settings), openvino.open(xml, settings)):
        diff = float(np.abs(runner.run(x, 256) - expected).max())
        assert diff <= TOLERANCE, (runner.runtime, diff)


def test_without_the_rewrite_gelu_is_one_line_naming_layer_activation_and_op(tmp_path):
    from slimdeploy.export.onnx import keras_to_onnx

    with pytest.raises(WorkError) as failure:
        keras_to_onnx(activation_model("gelu"), tmp_path / "gelu.onnx", opset=17, static_batch=None, rewrite=False)
    message = str(failure.value)
    assert message.startswith("onnx: layer 'hidden' (activation gelu) converts to op Erfc, which onnx.checker rejects: ")
    assert "\n" not in message
    assert not (tmp_path / "gelu.onnx").exists()


def test_a_nested_layer_is_named_through_tensorflow_scope_suffixes(tmp_path):
    """TensorFlow computes layer ``dense`` under scope ``dense_1`` and layer ``dense_1`` under
    ``dense_1_2``: the message must still name the right layer, inside a nested model."""
    import keras

    from slimdeploy.export.onnx import keras_to_onnx

    inner = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16, name="dense"),
                              keras.layers.Dense(16, activation="celu", name="dense_1")], name="inner")
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(32, name="dense"),
                              inner, keras.layers.Dense(10, name="scores")], name="outer")
    with pytest.raises(WorkError, match=r"^onnx: layer 'dense_1' \(activation celu\) converts to op Expm1, "):
        keras_to_onnx(model, tmp_path / "nested.onnx", opset=17, static_batch=None, rewrite=False)


def test_untranslated_op_through_the_cli(tmp_path, monkeypatch, capsys):
    """With no rewrite left for it, gelu's Erfc reaches the user as the documented line, and
    nothing of tf2onnx's own output reaches the terminal."""
    from slimdeploy import cli
    from slimdeploy.export import onnx_rewrite

    path = tmp_path / "gelu.keras"
    activation_model("gelu").save(path)
    monkeypatch.setattr(onnx_rewrite, "REWRITES", {})
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:  # cli.main installs its own SIGINT/SIGTERM handlers; pytest's come back afterwards
        code = cli.main(["export", str(path), "--target", "onnx", "--out", str(tmp_path / "exports"),
                         "--verify-limit", "100", "--quiet"])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    captured = capsys.readouterr()
    check("export-untranslated-op", code, captured.err, "'hidden'", "activation gelu", "op Erfc", tmp_path / "exports")
    assert captured.out == ""
