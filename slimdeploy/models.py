"""Recipe -> Keras model; counting parameters and FLOPs; loading model files safely."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from slimdeploy.archives import StoredMemberWindow, check_h5_datasets, check_zip_members
from slimdeploy.errors import ModelFileError, UserError
from slimdeploy.fsutil import atomic_path
from slimdeploy.recipes import Recipe, keras_activation, keras_initializer, keras_regularizer, layer_label


def build_model(recipe: Recipe):
    """The recipe's Sequential model, built one layer at a time: a layer that cannot take what the layer
    before gives it is named in one line, not a Keras traceback."""
    import keras  # lazy: heavy

    model = keras.Sequential([keras.Input(shape=recipe.input_shape, dtype=recipe.input_dtype, name="input")],
                             name=recipe.name)
    for index, spec in enumerate(recipe.layers):
        shape = tuple(model.outputs[0].shape) if model.layers else (None, *recipe.input_shape)
        try:
            model.add(_layer(keras, spec))
            model.layers[-1].losses  # regularizers run only here: one that cannot take the kernel fails now
        except (ValueError, TypeError) as exc:
            raise UserError(f"recipe {recipe.path or recipe.name}: {layer_label(index, spec)} cannot be built "
                            f"on its input of shape {shape}: {_keras_reason(exc)}") from exc
    return model


def _layer(keras, spec: dict):
    kind = spec["type"]
    name = spec.get("name")
    if kind == "dense":
        return keras.layers.Dense(spec["units"], name=name, **_kernel_options(spec))
    if kind == "conv2d":
        return keras.layers.Conv2D(spec["filters"], spec["kernel_size"], padding=spec.get("padding", "valid"),
                                   name=name, **_kernel_options(spec))
    if kind == "activation":
        return keras.layers.Activation(keras_activation(spec["activation"]), name=name)
    if kind == "embedding":
        return keras.layers.Embedding(spec["input_dim"], spec["output_dim"], name=name)
    if kind == "reshape":
        return keras.layers.Reshape(tuple(spec["target_shape"]), name=name)
    if kind == "maxpool2d":
        return keras.layers.MaxPooling2D(spec.get("pool_size", 2), name=name)
    if kind == "dropout":
        return keras.layers.Dropout(spec["rate"], name=name)
    simple = {"flatten": keras.layers.Flatten, "batchnorm": keras.layers.BatchNormalization,
              "layer_normalization": keras.layers.LayerNormalization,
              "global_average_pooling1d": keras.layers.GlobalAveragePooling1D,
              "global_average_pooling2d": keras.layers.GlobalAveragePooling2D}
    if kind in simple:
        return simple[kind](name=name)
    raise ValueError(f"unknown layer type {kind!r}")  # recipes are validated when read


def _kernel_options(spec: dict) -> dict:
    """Dense/Conv2D arguments for the keys the recipe sets, resolved through Keras's built-in registries."""
    resolvers = {"activation": keras_activation, "kernel_initializer": keras_initializer,
                 "kernel_regularizer": keras_regularizer, "use_bias": bool}
    return {key: resolve(spec[key]) for key, resolve in resolvers.items() if key in spec}


def _keras_reason(exc: Exception) -> str:
    """Keras's own sentence from an error (without "Exception encountered when calling …" and colours)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    reasons = [line for line in lines if line and not line.startswith("Exception encountered")]
    return (reasons[0] if reasons else type(exc).__name__)[:240]


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


def count_nonzero_params(model) -> int:
    return int(sum(np.count_nonzero(w.numpy()) for w in model.weights))


def count_flops(model, nonzero_only: bool = False) -> int | None:
    """FLOPs of one sample's forward pass: multiply-adds of Dense and Conv1D/2D/3D layers, x2 (with
    ``nonzero_only``, of the non-zero kernel entries). None rather than a wrong number: a layer whose
    positions the model leaves open, or with weights whose arithmetic this does not model (depthwise or
    transposed convolutions, recurrent, attention...). Normalization and Embedding count 0; a shared
    layer is counted once."""
    import keras  # lazy: heavy

    layers = keras.layers
    counted = (layers.Dense, layers.Conv1D, layers.Conv2D, layers.Conv3D)
    uncounted = (layers.DepthwiseConv1D, layers.DepthwiseConv2D, layers.SeparableConv1D, layers.SeparableConv2D,
                 layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
    free = (layers.BatchNormalization, layers.LayerNormalization, layers.Embedding)
    total = 0
    for layer in _all_layers(model):
        if not layer.weights or isinstance(layer, free):
            continue
        if isinstance(layer, uncounted) or not isinstance(layer, counted):
            return None
        # A Dense layer applies at every position of a rank>2 input; a convolution at every output position.
        positions_shape = layer.input.shape[1:-1] if isinstance(layer, layers.Dense) else layer.output.shape[1:-1]
        if any(size is None for size in positions_shape):
            return None
        kernel = layer.kernel.numpy()
        macs = np.count_nonzero(kernel) if nonzero_only else kernel.size
        total += 2 * int(macs) * int(np.prod(positions_shape, dtype=np.int64))
    return int(total)


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _all_layers(layer)
        else:
            yield layer


def model_input_dtype(model) -> str:
    """The numpy name of a Keras model's input dtype: ``float32``, ``int32``, ..."""
    dtype = model.inputs[0].dtype
    return str(getattr(dtype, "name", dtype))


def integer_input_range(model) -> list[int] | None:
    """[0, input_dim) of the smallest Embedding of a model with integer inputs (token ids); None for float
    inputs or no Embedding."""
    import keras  # lazy: heavy

    if not np.issubdtype(np.dtype(model_input_dtype(model)), np.integer):
        return None
    dims = [int(layer.input_dim) for layer in _all_layers(model) if isinstance(layer, keras.layers.Embedding)]
    return [0, min(dims)] if dims else None


def dense_widths(model) -> list[int]:
    import keras  # lazy: heavy

    return [int(layer.units) for layer in _all_layers(model) if isinstance(layer, keras.layers.Dense)]


# Model files slimdeploy reads: the Keras 3 archive and Keras's legacy HDF5 format.
KERAS_SUFFIX = ".keras"
H5_SUFFIXES = (".h5", ".hdf5")
MODEL_SUFFIXES = (KERAS_SUFFIX, *H5_SUFFIXES)


def model_format(path: str | os.PathLike) -> str | None:
    """``"keras"`` or ``"h5"`` by the file's suffix; None for any other."""
    suffix = Path(path).suffix.lower()
    return "keras" if suffix == KERAS_SUFFIX else "h5" if suffix in H5_SUFFIXES else None


def check_model_file(path: str | os.PathLike, what: str = "model") -> dict:
    """``check_h5_model`` or ``check_keras_archive`` (which refuses any other file); the model's config."""
    suffix = Path(path).suffix
    if suffix.lower() in MODEL_SUFFIXES and suffix not in MODEL_SUFFIXES:  # Keras matches suffixes case-sensitively
        raise ModelFileError(f"{what} {path}: Keras reads only lower-case {suffix.lower()} names; rename it to "
                             f"{Path(path).with_suffix(suffix.lower()).name}")
    if model_format(path) == "h5":
        return check_h5_model(path, what)
    return check_keras_archive(path, what)


def load_model(path: str | os.PathLike, what: str = "model"):
    """Load a ``.keras`` or legacy ``.h5`` file with safe mode on (code in it is refused); every way the file
    can be wrong is a one-line ``ModelFileError`` naming it."""
    import keras  # lazy: heavy

    path = Path(path)
    check_model_file(path, what)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; all mean "this file is not usable"
        message = str(exc).split("\n")[0]
        if "safe_mode" in str(exc) or "Lambda" in str(exc) or "unsafe" in str(exc).lower():
            raise ModelFileError(f"{what} {path} refused: {CODE_REFUSAL}") from exc
        if "Could not locate" in str(exc) or "Unknown layer" in str(exc):
            raise ModelFileError(f"{what} {path} uses a layer or object that is not built into Keras: {message[:160]}") from exc
        raise ModelFileError(f"{what} {path} could not be loaded: {type(exc).__name__}: {message[:160]}") from exc
    _check_finite(model, path, what)
    return model


CODE_REFUSAL = ("it contains code (a Lambda layer or custom object) that would run on load; "
                "slimdeploy loads models with Keras safe mode and never executes embedded code")


def check_keras_archive(path: str | os.PathLike, what: str = "model") -> dict:
    """Everything about a ``.keras`` file that can be checked without Keras (reading runs nothing); its config.

    Refuses a missing, empty or corrupt file, members that would land outside their directory or inflate
    beyond the limits (``archives``), and a config holding code (Lambda layers) or objects from outside Keras.
    """
    path = Path(path)
    _check_model_path(path, what, ".keras")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{what} {path} is corrupt or truncated (not a .keras zip archive)")
    # From the zip directory alone, before any member is inflated (config.json included).
    names = {info.filename for info in check_zip_members(path, what, error=ModelFileError)}
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except KeyError as exc:
        raise ModelFileError(f"{what} {path} could not be loaded: the archive has no config.json") from exc
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
        raise ModelFileError(f"{what} {path} is corrupt or truncated ({type(exc).__name__})") from exc
    found = code_in_config(config)
    if found is not None:
        raise ModelFileError(f"{what} {path} refused ({found}): {CODE_REFUSAL}")
    if WEIGHTS_MEMBER in names:
        _check_weights_member(path, what)
    return config


WEIGHTS_MEMBER = "model.weights.h5"  # where Keras 3 keeps a .keras file's weights


def _check_weights_member(path: Path, what: str) -> None:
    """The declared sizes of the HDF5 weights inside a ``.keras``, read in place (Keras stores the member
    uncompressed) or, recompressed, from a temporary copy: seeking back in a deflated stream re-inflates it."""
    import h5py  # lazy: heavy

    try:
        with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
            info = archive.getinfo(WEIGHTS_MEMBER)
            if info.compress_type == zipfile.ZIP_STORED:
                member = StoredMemberWindow(handle, info)
            else:
                member = tempfile.TemporaryFile()
                with archive.open(info) as inflating:
                    shutil.copyfileobj(inflating, member)  # zipfile stops at the declared size
                member.seek(0)
            with member, h5py.File(member, "r") as h5:
                check_h5_datasets(h5, path, what, error=ModelFileError)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, zlib.error) as exc:
        raise ModelFileError(f"{what} {path} is corrupt or truncated (its {WEIGHTS_MEMBER}: "
                             f"{type(exc).__name__})") from exc


def _check_model_path(path: Path, what: str, kind: str) -> None:
    if not path.exists():
        raise ModelFileError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{what} {path} is a directory, not a {kind} file")
    if kind == ".keras" and path.suffix != ".keras":
        raise ModelFileError(f"{what} {path} is not a .keras file (expected the Keras 3 format)")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{what} {path} is empty")


def check_h5_model(path: str | os.PathLike, what: str = "model") -> dict:
    """Everything about a legacy ``.h5`` model that can be checked before Keras reads it; its model config.

    Keras's legacy loader builds objects from the config before safe mode applies, so this is the
    protection: the raw ``model_config`` must hold no code and name only classes Keras defines.
    """
    import h5py  # lazy: heavy

    path = Path(path)
    _check_model_path(path, what, ".h5")
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{what} {path} is corrupt or truncated (not an HDF5 model file)") from exc
    with h5:
        try:
            raw = h5.attrs.get("model_config")
            # Keras's legacy loader reads every weight dataset at the size it declares.
            check_h5_datasets(h5, path, what, error=ModelFileError)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFileError(f"{what} {path} is corrupt or truncated (not an HDF5 model file)") from exc
    if raw is None:
        raise ModelFileError(f"{what} {path} holds no model (no model_config: a weights-only file?); "
                             "save the whole model with model.save()")
    try:
        config = _json_attribute(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{what} {path} is corrupt (its model_config is not JSON)") from exc
    found = code_in_config(config) or find_in_config(config, _not_from_keras)
    if found is not None:
        raise ModelFileError(f"{what} {path} refused ({found}): {CODE_REFUSAL}")
    return config


# Encodings of Keras's legacy JSON (json_utils) and config plumbing that name no class.
_CONFIG_ENCODINGS = ("__tuple__", "__ellipsis__", "__keras_tensor__", "TensorShape", "Functional")
# Keras classes that read something besides the file itself (TFSMLayer: a SavedModel at a path).
_NOT_FROM_CONFIG = ("Lambda", "TFSMLayer")


def _not_from_keras(obj: dict) -> str | None:
    name = obj.get("class_name")
    if not isinstance(name, str) or name in _CONFIG_ENCODINGS:
        return None
    if name == "function" and str(obj.get("module", "")).startswith("keras"):
        return None  # a Keras built-in function (an activation) named by its module
    if name in _NOT_FROM_CONFIG or name not in _keras_class_names():
        return f"{name}, which is not a class built into Keras"
    return None


_KERAS_CLASSES: set[str] = set()


def _keras_class_names() -> set[str]:
    """The classes Keras's public namespaces define (layers, initializers, optimizers, ...)."""
    if not _KERAS_CLASSES:
        import keras  # lazy: heavy

        spaces = (keras, keras.layers, keras.models, keras.initializers, keras.regularizers, keras.constraints,
                  keras.dtype_policies, keras.optimizers, keras.optimizers.schedules, keras.losses, keras.metrics)
        _KERAS_CLASSES.update(name for space in spaces for name, value in vars(space).items() if inspect.isclass(value))
    return _KERAS_CLASSES


def saved_compile_config(path: str | os.PathLike) -> dict | None:
    """How the model was compiled when it was saved (a ``.keras``'s ``compile_config``, a legacy ``.h5``'s
    ``training_config`` with ``optimizer_config`` named ``optimizer``), or None. Read as JSON only."""
    path = Path(path)
    if model_format(path) != "h5":
        return check_keras_archive(path).get("compile_config") or None
    import h5py  # lazy: heavy

    with h5py.File(path, "r") as h5:
        raw = h5.attrs.get("training_config")
    if raw is None:
        return None
    try:
        config = _json_attribute(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(config, dict) and "optimizer_config" in config:
        config = {**config, "optimizer": config.pop("optimizer_config")}
    return config if isinstance(config, dict) else None


def _json_attribute(raw):
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))


def find_in_config(node, look):
    """The first ``look(obj)`` that is not None over every JSON object in a Keras config (depth first)."""
    if isinstance(node, dict):
        found = look(node)
        if found is not None:
            return found
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = find_in_config(child, look)
        if found is not None:
            return found
    return None


def code_in_config(node) -> str | None:
    """What in a Keras config would run or import code from outside Keras (a Lambda layer, an object whose
    ``module`` is not Keras), or None."""
    return find_in_config(node, _code_of)


def _code_of(obj: dict) -> str | None:
    name, module = obj.get("class_name"), obj.get("module")
    if name in ("Lambda", "__lambda__"):
        return f"Lambda layer {(obj.get('config') or {}).get('name', '')!s}".strip()
    if isinstance(name, str) and isinstance(module, str) and not (module == "keras" or module.startswith("keras.")):
        return f"{name} from module {module}"
    return None


def require_single_io(model, path, what: str = "model") -> None:
    n_in, n_out = len(model.inputs), len(model.outputs)
    if n_in != 1 or n_out != 1:
        raise ModelFileError(f"{what} {path} has {n_in} input{'s' * (n_in != 1)} and {n_out} output{'s' * (n_out != 1)}; "
                             "slimdeploy supports models with one image input and one output")


def _check_finite(model, path: Path, what: str) -> None:
    for weight in model.weights:
        if not np.all(np.isfinite(weight.numpy())):
            raise ModelFileError(f"{what} {path} has NaN or Inf values in weight {weight.path}")


def save_model(model, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def save_weights(model, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
