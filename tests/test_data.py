"""Data loading: real Fashion-MNIST files, the search order, and every way files break."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from slimdeploy.data import DEBIAN_DIR, IDX_FILES, IMAGES_MAGIC, LABELS_MAGIC, load_dataset, locate, read_idx
from slimdeploy.errors import DataError


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """A small but valid IDX directory cut from the real data (200 train, 50 test)."""
    real = locate(allow_download=False).arrays
    directory = tmp_path / "fmnist"
    directory.mkdir()
    write_idx(directory / IDX_FILES["x_train"], real["x_train"][:200], IMAGES_MAGIC)
    write_idx(directory / IDX_FILES["y_train"], real["y_train"][:200], LABELS_MAGIC)
    write_idx(directory / IDX_FILES["x_test"], real["x_test"][:50], IMAGES_MAGIC)
    write_idx(directory / IDX_FILES["y_test"], real["y_test"][:50], LABELS_MAGIC)
    return directory


def test_real_fashion_mnist_shapes_scaling_and_split():
    data = load_dataset(allow_download=False)
    assert data.x_train.shape == (55000, 28, 28) and data.x_val.shape == (5000, 28, 28)
    assert data.x_test.shape == (10000, 28, 28) and data.y_test.shape == (10000,)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert set(np.unique(data.y_train)) == set(range(10))
    # The validation images are held out: none of them is also a training image row.
    train_rows = {row.tobytes() for row in data.x_train[:, 14, :]}
    assert sum(row.tobytes() in train_rows for row in data.x_val[:200, 14, :]) < 20


def test_split_depends_only_on_seed(idx_dir):
    a = load_dataset(idx_dir, validation_size=20, seed=3)
    b = load_dataset(idx_dir, validation_size=20, seed=3)
    c = load_dataset(idx_dir, validation_size=20, seed=4)
    assert np.array_equal(a.y_val, b.y_val) and np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_val, c.x_val)
    assert len(a.x_train) == 180 and len(a.x_test) == 50


def test_search_order_env_var_then_debian(idx_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLIMDEPLOY_DATA", str(idx_dir))
    assert locate(allow_download=False).source == str(idx_dir)
    monkeypatch.setenv("SLIMDEPLOY_DATA", str(tmp_path / "nothing-here"))
    raw = locate(allow_download=False)
    assert raw.source == str(DEBIAN_DIR) and len(raw.arrays["x_train"]) == 60000 and raw.kind == "idx"


def test_keras_cache_comes_before_debian(idx_dir, monkeypatch, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(idx_dir, home / ".keras" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SLIMDEPLOY_DATA", raising=False)
    assert locate(allow_download=False).source.startswith(str(home))


def test_nothing_found_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SLIMDEPLOY_DATA", str(tmp_path / "missing"))
    monkeypatch.setattr("slimdeploy.data.DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(DataError) as info:
        locate(allow_download=False)
    message = str(info.value)
    assert "\n" not in message
    for place in (str(tmp_path / "missing"), ".keras/datasets/fashion-mnist", "no-debian", "apt-get install dataset-fashion-mnist"):
        assert place in message


def test_npz_keeps_its_values_and_dtype_unless_a_scale_is_given(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    x_train = rng.integers(0, 256, (100, 28, 28), dtype=np.uint8)
    np.savez(path, x_train=x_train, y_train=rng.integers(0, 10, 100),
             x_test=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 30))
    data = load_dataset(path, validation_size=10)
    assert data.x_train.shape == (90, 28, 28) and data.x_test.shape == (30, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() > 1 and data.scale is None
    # Every training row is one of the file's rows, unchanged.
    assert {row.tobytes() for row in data.x_train} <= {row.tobytes() for row in x_train}
    scaled = load_dataset(path, validation_size=10, scale=255)
    assert scaled.x_train.dtype == np.float32 and scaled.scale == 255.0
    np.testing.assert_array_equal(scaled.x_train, data.x_train.astype(np.float32) / np.float32(255))
    assert scaled.describe()["scale"] == 255.0 and data.describe()["scale"] is None


def test_idx_pixels_keep_their_documented_scaling(idx_dir):
    data = load_dataset(idx_dir, validation_size=20)
    assert data.scale == 255.0 and data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    assert data.describe()["kind"] == "idx" and len(data.describe()["sha256"]) == 64


def test_standardized_features_are_not_rescaled(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "tab.npz"
    x = rng.standard_normal((200, 20)).astype(np.float32) * 3
    np.savez(path, x_train=x[:150], y_train=rng.integers(0, 3, 150), x_test=x[150:], y_test=rng.integers(0, 3, 50))
    data = load_dataset(path)
    assert data.validation_size == 15  # at most a tenth of the training rows by default
    np.testing.assert_array_equal(np.sort(np.concatenate([data.x_train, data.x_val]), axis=0), np.sort(x[:150], axis=0))


def test_npz_missing_keys_is_named(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((3, 2, 2)))
    with pytest.raises(DataError, match="bad.npz.*lacks"):
        load_dataset(path)


@pytest.mark.parametrize("breakage, message", [
    ("truncate", "corrupt or truncated gzip"),
    ("magic", "wrong magic number"),
    ("count", "IDX header announces"),
    ("not_gzip", "corrupt or truncated gzip"),
])
def test_broken_idx_files_are_named(idx_dir, breakage, message):
    target = idx_dir / IDX_FILES["x_train"]
    raw = gzip.decompress(target.read_bytes())
    if breakage == "truncate":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    elif breakage == "magic":
        target.write_bytes(gzip.compress(struct.pack(">I", LABELS_MAGIC) + raw[4:]))
    elif breakage == "count":
        target.write_bytes(gzip.compress(raw[:-28 * 28 - 5]))
    else:
        target.write_bytes(raw)
    with pytest.raises(DataError) as info:
        load_dataset(idx_dir)
    assert message in str(info.value) and str(target) in str(info.value)


def test_image_label_count_mismatch(idx_dir):
    labels = read_idx(idx_dir / IDX_FILES["y_test"], LABELS_MAGIC)
    write_idx(idx_dir / IDX_FILES["y_test"], labels[:40], LABELS_MAGIC)
    with pytest.raises(DataError, match="50 test images but 40 test labels"):
        load_dataset(idx_dir)
