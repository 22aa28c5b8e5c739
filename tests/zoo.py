"""The test zoo: small Keras 3 models of the shapes users bring, each with matching data.

Each builder takes the ``.npz`` path to write (``x_train, y_train, x_test, y_test``: 320
training and 120 test rows, seed fixed, three classes a 1-2 epoch fit learns above chance)
and returns its compiled model, untrained. ``ZOO`` maps a name to its builder so tests can
parametrize; ``trained(name, directory)`` builds, fits and saves one (as ``.h5`` for
``legacy_h5``, else ``.keras``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = 3
TRAIN, TEST = 320, 120
SEED = 0
TOKENS, STEPS = 50, 12  # the Embedding model's vocabulary and sequence length
TIME_STEPS, FEATURES = 6, 5  # the per-time-step model's (T, F)
IMAGE = 12  # the CNN's images are IMAGE x IMAGE x 1


# --- data -------------------------------------------------------------------------------

def _labels(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, CLASSES, TRAIN + TEST).astype(np.int64)


def _save(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x_train=x[:TRAIN], y_train=y[:TRAIN], x_test=x[TRAIN:], y_test=y[TRAIN:])


def _clusters(path: Path, shape: tuple) -> None:
    """float32 points around one centre per class: separable after a single epoch."""
    rng = np.random.default_rng(SEED)
    y = _labels(rng)
    centres = rng.standard_normal((CLASSES, *shape)) * 1.5
    _save(path, (centres[y] + rng.standard_normal((len(y), *shape))).astype(np.float32), y)


def _tokens(path: Path) -> None:
    """int32 ids in [0, TOKENS); half of each row's tokens come from its class's third of the vocabulary."""
    rng = np.random.default_rng(SEED)
    y = _labels(rng)
    x = rng.integers(0, TOKENS, (len(y), STEPS))
    third = TOKENS // CLASSES
    marked = rng.random(x.shape) < 0.5
    x[marked] = (y[:, None] * third + rng.integers(0, third, x.shape))[marked]
    _save(path, x.astype(np.int32), y)


def _images(path: Path) -> None:
    """Integer-valued float32 pixels in 0..255: each class lights up its own band of rows."""
    rng = np.random.default_rng(SEED)
    y = _labels(rng)
    x = rng.integers(0, 60, (len(y), IMAGE, IMAGE, 1)).astype(np.float32)
    band = IMAGE // CLASSES
    for label in range(CLASSES):
        x[y == label, label * band:(label + 1) * band] += 180
    _save(path, x, y)


# --- models -----------------------------------------------------------------------------

def _compiled(model):
    import keras

    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _seeded():
    import keras

    keras.utils.set_random_seed(SEED)
    return keras


def _sixteen_features(npz: Path):
    """keras (seeded) and the Input of a functional model on 16 clustered features."""
    keras = _seeded()
    _clusters(npz, (16,))
    return keras, keras.Input((16,), name="input")


def residual_mlp(npz: Path):
    keras, inputs = _sixteen_features(npz)
    first = keras.layers.Dense(32, activation="relu", name="first")(inputs)
    second = keras.layers.Dense(32, activation="relu", name="second")(first)
    joined = keras.layers.Add(name="skip")([second, first])
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="head")(joined)
    return _compiled(keras.Model(inputs, outputs, name="residual_mlp"))


def concat_mlp(npz: Path):
    keras, inputs = _sixteen_features(npz)
    left = keras.layers.Dense(24, activation="relu", name="left")(inputs)
    right = keras.layers.Dense(16, activation="relu", name="right")(inputs)
    joined = keras.layers.Concatenate(name="join")([left, right])
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(joined)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="head")(hidden)
    return _compiled(keras.Model(inputs, outputs, name="concat_mlp"))


def layernorm_mlp(npz: Path):
    keras = _seeded()
    _clusters(npz, (16,))
    return _compiled(keras.Sequential([
        keras.Input((16,), name="input"), keras.layers.Dense(32, activation="relu"),
        keras.layers.LayerNormalization(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ], name="layernorm_mlp"))


def embedding_text(npz: Path):
    keras = _seeded()
    _tokens(npz)
    return _compiled(keras.Sequential([
        keras.Input((STEPS,), dtype="int32", name="input"), keras.layers.Embedding(TOKENS, 8),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ], name="embedding_text"))


def tabular(npz: Path):
    keras = _seeded()
    _clusters(npz, (20,))
    return _compiled(keras.Sequential([
        keras.Input((20,), name="input"), keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="relu"), keras.layers.Dense(CLASSES, activation="softmax"),
    ], name="tabular"))


def cnn_dense_head(npz: Path):
    keras = _seeded()
    _images(npz)
    return _compiled(keras.Sequential([
        keras.Input((IMAGE, IMAGE, 1), name="input"), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ], name="cnn_dense_head"))


def per_step_dense(npz: Path):
    keras = _seeded()
    _clusters(npz, (TIME_STEPS, FEATURES))
    return _compiled(keras.Sequential([
        keras.Input((TIME_STEPS, FEATURES), name="input"), keras.layers.Dense(16, activation="relu"),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(CLASSES, activation="softmax"),
    ], name="per_step_dense"))


def nested_sequential(npz: Path):
    keras, inputs = _sixteen_features(npz)
    block = keras.Sequential([keras.Input((24,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(16, activation="relu")], name="block")
    hidden = keras.layers.Dense(24, activation="relu", name="stem")(inputs)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="head")(block(hidden))
    return _compiled(keras.Model(inputs, outputs, name="nested_sequential"))


def legacy_h5(npz: Path):
    """The residual MLP; ``trained`` saves it in the legacy HDF5 format."""
    return residual_mlp(npz)


ZOO = {
    "residual_mlp": residual_mlp,
    "concat_mlp": concat_mlp,
    "layernorm_mlp": layernorm_mlp,
    "embedding_text": embedding_text,
    "tabular": tabular,
    "cnn_dense_head": cnn_dense_head,
    "per_step_dense": per_step_dense,
    "nested_sequential": nested_sequential,
    "legacy_h5": legacy_h5,
}
SUFFIX = {"legacy_h5": ".h5"}  # how each model is saved; .keras unless listed


def trained(name: str, directory: Path, epochs: int = 1) -> tuple[Path, Path]:
    """ZOO[name] built, fitted ``epochs`` epochs (seeded) and saved in ``directory``:
    (model file, its .npz)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz = directory / f"{name}.npz"
    model = ZOO[name](npz)
    with np.load(npz) as arrays:
        model.fit(arrays["x_train"], arrays["y_train"], epochs=epochs, batch_size=32, shuffle=False, verbose=0)
    path = directory / f"{name}{SUFFIX.get(name, '.keras')}"
    model.save(path)
    return path, npz
