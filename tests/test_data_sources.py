"""The kinds of --data beyond Fashion-MNIST: folders of images, an .npz with its own validation
split, validation sizes as a count or a fraction, and the one-line errors for data that cannot
be used. Real files written in tmp_path, read by the real Keras loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli_here
from errors_doc import check
from slimdeploy.errors import DataError

CLASSES = ("ankle", "bag", "coat")  # sorted: their labels are 0, 1, 2
PER_CLASS, SIDE = 12, 8

TINY_RECIPE = """
name = "tiny"

[model]
input_shape = [4]
layers = [{ type = "dense", units = 3, activation = "softmax" }]

[training]
epochs = 1
batch_size = 8
"""

CNN_RECIPE = """
name = "folder_cnn"

[dataset]
name = "image_folder"
scale = 255

[model]
input_shape = [8, 8, 3]
layers = [
  { type = "conv2d", filters = 4, kernel_size = 3, activation = "relu" },
  { type = "flatten" },
  { type = "dense", units = 8, activation = "relu" },
  { type = "dense", units = 3, activation = "softmax" },
]

[training]
optimizer = "adam"
learning_rate = 0.01
batch_size = 8
epochs = 1
"""


def save_image(path: Path, label: int, rng) -> None:
    """An 8x8 RGB PNG whose channel ``label`` is bright: the class can be read off the pixels."""
    from PIL import Image

    pixels = rng.integers(0, 60, (SIDE, SIDE, 3), dtype=np.uint8)
    pixels[..., label] += 180
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path)


def image_folder(root: Path, per_class: int = PER_CLASS, classes=CLASSES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        for i in range(per_class):
            save_image(root / name / f"{i:02d}.png", label, rng)
    return root


def class_folders_without_images(root: Path) -> Path:
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        (root / name / "notes.txt").write_text("not an image")
    return root


def folder_with_a_broken_image(root: Path) -> Path:
    image_folder(root)
    (root / "bag" / "05.png").write_bytes(b"not a png at all")
    return root / "bag" / "05.png"


def tabular_npz(path: Path, rows: int = 200, **changes) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    y = rng.integers(0, 3, rows)
    arrays = dict(x_train=x[: rows * 3 // 4], y_train=y[: rows * 3 // 4], x_test=x[rows * 3 // 4:], y_test=y[rows * 3 // 4:])
    arrays.update(changes)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def test_an_image_folder_loads_with_its_shapes_labels_and_raw_pixels(tmp_path):
    from slimdeploy.data import load_dataset

    folder = image_folder(tmp_path / "images")
    data = load_dataset(folder, validation_size=3)
    assert data.kind == "image_folder" and data.scale is None and data.source == str(folder.resolve())
    assert data.x_train.shape[1:] == (SIDE, SIDE, 3) and data.x_train.dtype == np.float32
    # 20% of the 36 images are held out as the test split; the rest is train and validation.
    assert len(data.x_test) == 7 and len(data.x_val) == 3 and len(data.x_train) == 26
    assert 200 <= data.x_train.max() <= 255  # pixels as they are, no hidden /255
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert y.dtype == np.int64 and set(y) <= {0, 1, 2}
        np.testing.assert_array_equal(np.argmax(x.mean(axis=(1, 2)), axis=1), y)  # the bright channel is the class
    assert load_dataset(folder, validation_size=3, input_shape=(SIDE, SIDE, 3)).x_train.shape[1:] == (SIDE, SIDE, 3)
    # Keras would resize or recolour images that differ from the model's input: refused instead.
    for other in ((6, 6, 3), (SIDE, SIDE), (SIDE, SIDE, 1)):
        with pytest.raises(DataError, match="does not resize or convert images"):
            load_dataset(folder, validation_size=3, input_shape=other)


def test_a_grayscale_folder_read_for_an_hw_model_has_no_channel_axis(tmp_path):
    from PIL import Image

    from slimdeploy.data import load_dataset

    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (tmp_path / "gray" / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 40, (SIDE, SIDE), dtype=np.uint8) + 60 * label
            Image.fromarray(pixels, "L").save(tmp_path / "gray" / name / f"{i:02d}.png")
    data = load_dataset(tmp_path / "gray", validation_size=3, input_shape=(SIDE, SIDE))
    assert data.x_train.shape[1:] == (SIDE, SIDE)
    # Each class's pixels lie in their own band: the labels follow the folders.
    np.testing.assert_array_equal(data.x_train.mean(axis=(1, 2)) // 60, data.y_train)


def test_the_image_folder_sha256_follows_the_files(tmp_path):
    from slimdeploy.data import locate

    folder = image_folder(tmp_path / "images")
    first = locate(folder).sha256
    assert locate(folder).sha256 == first
    save_image(folder / "bag" / "03.png", 1, np.random.default_rng(99))
    assert locate(folder).sha256 != first


def test_an_image_folder_with_train_and_test_keeps_its_test_split(tmp_path):
    from slimdeploy.data import load_dataset

    image_folder(tmp_path / "images" / "train", per_class=10)
    image_folder(tmp_path / "images" / "test", per_class=4, seed=1)
    data = load_dataset(tmp_path / "images", validation_size=0.1)
    assert len(data.x_test) == 12 and list(data.y_test) == [0] * 4 + [1] * 4 + [2] * 4
    assert len(data.x_val) == 3 and len(data.x_train) == 27


def test_an_npz_with_its_own_validation_split_keeps_it(tmp_path):
    from slimdeploy.data import load_dataset

    x_val = np.arange(40, dtype=np.float32).reshape(10, 4)
    y_val = np.arange(10) % 3
    data = load_dataset(tabular_npz(tmp_path / "val.npz", x_val=x_val, y_val=y_val), validation_size=50)
    np.testing.assert_array_equal(data.x_val, x_val)
    np.testing.assert_array_equal(data.y_val, y_val)
    assert len(data.x_train) == 150  # nothing drawn out of the training rows
    described = data.describe()
    assert described["validation_from"] == "x_val, y_val" and described["validation"] == described["validation_size"] == 10
    assert "validation_from" not in load_dataset(tabular_npz(tmp_path / "plain.npz")).describe()


@pytest.mark.parametrize("size, rows", [(0.2, 30), (12, 12), (None, 15), (0, 0)])
def test_the_validation_size_is_a_count_or_a_fraction(tmp_path, size, rows):
    from slimdeploy.data import load_dataset

    data = load_dataset(tabular_npz(tmp_path / "tab.npz"), validation_size=size, seed=1)
    assert len(data.x_val) == data.validation_size == rows and len(data.x_train) == 150 - rows


def test_the_validation_option_parses_a_count_or_a_fraction():
    import argparse

    from slimdeploy.parsers import validation_size

    assert validation_size("500") == 500 and validation_size("0.25") == 0.25
    for bad in ("1.5", "-3", "0.0", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="a count of rows"):
            validation_size(bad)


def _train(tmp_path, data, *extra):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "out"
    result = run_cli_here("train", "--recipe", str(recipe), "--data", str(data), "--out", str(out), "--quiet", *extra)
    return result, out


@pytest.mark.parametrize("case_id, build", [
    ("train-npz-missing-key", lambda d: tabular_npz(d / "nokey.npz", y_test=None)),
    ("train-npz-length-mismatch", lambda d: tabular_npz(d / "short.npz", y_train=np.zeros(149, dtype=int))),
    ("train-npz-float-labels", lambda d: tabular_npz(d / "floats.npz", y_train=np.zeros(150, dtype=np.float32))),
    ("train-npz-negative-labels", lambda d: tabular_npz(d / "negative.npz", y_test=np.full(50, -1))),
    ("train-labels-out-of-range", lambda d: tabular_npz(d / "wide.npz", y_train=np.arange(150) % 6)),
    ("train-image-folder-one-class", lambda d: image_folder(d / "one_class", classes=("cat",))),
    ("train-image-folder-no-image", lambda d: class_folders_without_images(d / "no_images")),
    ("train-validation-too-large", lambda d: tabular_npz(d / "small.npz")),
    ("train-image-folder-corrupt", lambda d: folder_with_a_broken_image(d / "images")),
])
def test_data_that_cannot_be_used_is_one_line_and_leaves_nothing(tmp_path, case_id, build):
    data = build(tmp_path)
    named = data
    if case_id == "train-image-folder-corrupt":
        data = data.parent.parent  # --data names the folder; the line names the broken file
    extra = ("--validation-size", "150") if case_id == "train-validation-too-large" else ()
    result, out = _train(tmp_path, data, *extra)
    check(case_id, result.returncode, result.stderr, named)
    assert not out.exists()


def test_a_cnn_trains_on_an_image_folder_and_its_export_verifies(tmp_path):
    folder = image_folder(tmp_path / "images")
    recipe = tmp_path / "cnn.toml"
    recipe.write_text(CNN_RECIPE)
    run_dir = tmp_path / "run"
    result = run_cli_here("train", "--recipe", str(recipe), "--data", str(folder), "--validation-size", "0.25",
                          "--out", str(run_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    recorded = json.loads((run_dir / "dense" / "metrics.json").read_text())["data"]
    assert recorded["kind"] == "image_folder" and recorded["input_shape"] == [SIDE, SIDE, 3]
    assert (recorded["train"], recorded["validation"], recorded["test"]) == (22, 7, 7) and recorded["scale"] == 255
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    assert manifest["data"]["sha256"] == recorded["sha256"]
    dense = next(a for a in manifest["artifacts"] if a["model"] == "dense")
    assert dense["valid"] and dense["test_accuracy"] == pytest.approx(
        json.loads((run_dir / "dense" / "metrics.json").read_text())["test_accuracy"], abs=1e-9)


def test_an_image_folder_recipe_needs_a_directory(tmp_path):
    recipe = tmp_path / "cnn.toml"
    recipe.write_text(CNN_RECIPE)
    result = run_cli_here("train", "--recipe", str(recipe), "--out", str(tmp_path / "out"), "--quiet")
    check("train-recipe-image-folder-no-data", result.returncode, result.stderr, recipe)
    assert not (tmp_path / "out").exists()


def test_an_image_of_another_size_is_refused_not_resized(tmp_path):
    from PIL import Image

    folder = image_folder(tmp_path / "images")
    odd = folder / "bag" / "99.png"
    Image.fromarray(np.zeros((SIDE + 2, SIDE + 2, 3), dtype=np.uint8), "RGB").save(odd)
    recipe = tmp_path / "cnn.toml"
    recipe.write_text(CNN_RECIPE)
    out = tmp_path / "run"
    result = run_cli_here("train", "--recipe", str(recipe), "--data", str(folder), "--out", str(out), "--quiet")
    check("train-image-folder-other-size", result.returncode, result.stderr, odd)
    assert not out.exists()
