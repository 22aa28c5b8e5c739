"""Issue 13's bad inputs on an adopted model: `prune MODEL --data DATA` with data or a model that
cannot be used is one line, exit 2, and leaves no run directory behind (docs/errors.md rows
`adopt-*` citing this file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli_here
from errors_doc import check


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import keras
    from PIL import Image

    base = tmp_path_factory.mktemp("adopt_bad")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 20)).astype(np.float32), rng.integers(0, 3, 200)
    _npz(base / "nokey.npz", x_train=x, y_train=y, x_test=x[:50])
    _npz(base / "wide.npz", x_train=x, y_train=np.where(y == 2, 5, y), x_test=x[:50], y_test=y[:50])
    _npz(base / "short.npz", x_train=x, y_train=y[:-1], x_test=x[:50], y_test=y[:50])
    _npz(base / "series.npz", x_train=x[..., None], y_train=y, x_test=x[:50, :, None], y_test=y[:50])
    _npz(base / "binary.npz", x_train=x, y_train=y % 2, x_test=x[:50], y_test=y[:50] % 2)
    _npz(base / "float_ids.npz", x_train=rng.random((200, 12)), y_train=y, x_test=rng.random((50, 12)), y_test=y[:50])
    inputs = keras.Input((20,))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(16)(inputs))).save(base / "mlp.keras")
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(16)(inputs))).save(base / "binary.keras")
    (base / "MLP.H5").write_bytes((base / "mlp.keras").read_bytes())  # its suffix in capitals
    inputs = keras.Input((20, 1))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(3, 3)(inputs))
    keras.Model(inputs, keras.layers.Activation("softmax")(pooled)).save(base / "no_dense.keras")
    inputs = keras.Input((12,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(pooled))).save(base / "ids.keras")
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(flat))).save(base / "images.keras")
    cats = base / "one_class" / "cat"
    cats.mkdir(parents=True)
    for k in range(4):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(cats / f"{k}.png")
    return base


CASES = {  # id: (model, data, what the line must name)
    "adopt-npz-missing-key": ("mlp.keras", "nokey.npz", "y_test"),
    "adopt-labels-out-of-range": ("mlp.keras", "wide.npz", "wide.npz"),
    "adopt-npz-length-mismatch": ("mlp.keras", "short.npz", "short.npz"),
    "adopt-no-dense": ("no_dense.keras", "series.npz", "no_dense.keras"),
    "adopt-image-folder-one-class": ("images.keras", "one_class", "one_class"),
    "adopt-data-dtype": ("ids.keras", "float_ids.npz", "float_ids.npz"),
    "adopt-single-output-unit": ("binary.keras", "binary.npz", "binary.keras"),
    "adopt-upper-case-suffix": ("MLP.H5", "wide.npz", "MLP.H5"),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_data_or_model_that_cannot_be_adopted_is_one_line_and_leaves_nothing(files, tmp_path, case_id):
    model, data, named = CASES[case_id]
    out = tmp_path / "run"
    result = run_cli_here("prune", str(files / model), "--data", str(files / data), "--out", str(out), "--quiet",
                          cwd=tmp_path)
    check(case_id, result.returncode, result.stderr, named)
    assert not out.exists(), f"{case_id} left {out}"
    assert not list(tmp_path.rglob(".*.tmp-*")), "a temporary was left behind"
