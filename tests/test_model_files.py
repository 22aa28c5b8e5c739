"""Model files are untrusted input: safe loading, and one-line errors for broken files."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from slimdeploy.errors import ModelFileError
from slimdeploy.models import load_model

# Builds a .keras whose Lambda layer writes a marker file when its code runs.
MAKE_EVIL = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
marker, target = sys.argv[1], sys.argv[2]
def payload(x):
    open(marker, "w").write("code in the model file ran")
    return x
model = keras.Sequential([keras.Input((28, 28)), keras.layers.Lambda(payload), keras.layers.Flatten(), keras.layers.Dense(10)])
model.save(target)
os.remove(marker)
"""


@pytest.fixture(scope="module")
def evil_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evil")
    marker, target = directory / "marker.txt", directory / "evil.keras"
    subprocess.run([sys.executable, "-c", MAKE_EVIL, str(marker), str(target)], check=True, capture_output=True)
    assert target.is_file() and not marker.exists()
    return target, marker


def test_lambda_layer_is_refused_and_never_executed(evil_model):
    target, marker = evil_model
    with pytest.raises(ModelFileError, match="refused.*safe mode"):
        load_model(target)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"not a zip at all", "corrupt or truncated"),
])
def test_broken_keras_files(tmp_path, content, message):
    path = tmp_path / "m.keras"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_truncated_keras_file(tiny_run, tmp_path):
    data = (tiny_run / "dense" / "model.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        load_model(path)


def test_wrong_kind_and_missing(tmp_path, tiny_run):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "none.keras")
    with pytest.raises(ModelFileError, match="not a .keras file"):
        load_model(tiny_run / "dense" / "metrics.json")


def test_nan_weights_are_refused(tiny_run, tmp_path):
    from slimdeploy.models import save_model

    model = load_model(tiny_run / "dense" / "model.keras")
    kernel = model.layers[1].kernel
    values = kernel.numpy()
    values[0, 0] = np.nan
    kernel.assign(values)
    path = tmp_path / "nan.keras"
    save_model(model, path)
    with pytest.raises(ModelFileError, match="NaN or Inf"):
        load_model(path)


def test_zip_that_is_not_a_model(tmp_path):
    path = tmp_path / "zip.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="could not be loaded"):
        load_model(path)


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/evil", "assets/../../x"])
def test_archive_members_escaping_the_directory_are_refused(tiny_run, tmp_path, member):
    path = tmp_path / "escape.keras"
    with zipfile.ZipFile(tiny_run / "dense" / "model.keras") as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr(member, "payload")
    with pytest.raises(ModelFileError, match="would be written outside"):
        load_model(path)


def test_flops_count_conv1d_and_refuse_to_guess_for_unmodelled_layers(tmp_path):
    import keras

    from slimdeploy.models import count_flops

    inputs = keras.Input((20, 1))
    flat = keras.layers.Flatten()(keras.layers.Conv1D(4, 3)(inputs))
    assert count_flops(keras.Model(inputs, keras.layers.Dense(3)(flat))) == 2 * (3 * 4 * 18 + 18 * 4 * 3)
    # A model reloaded from disk counts the same (Keras gives its first layer two inbound nodes).
    sequential = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(3)])
    sequential.save(tmp_path / "s.keras")
    assert count_flops(load_model(tmp_path / "s.keras")) == count_flops(sequential) == 2 * (8 * 4 + 4 * 3)
    inputs = keras.Input((6, 4))
    recurrent = keras.layers.SimpleRNN(5)(inputs)
    assert count_flops(keras.Model(inputs, keras.layers.Dense(3)(recurrent))) is None
