"""Fashion-MNIST from IDX .gz files or a user .npz, found without internet where possible.

Search order (the first place holding all four files wins):
``--data DIR`` (authoritative: if given and unusable, that is an error), ``$SLIMDEPLOY_DATA``,
``~/.keras/datasets/fashion-mnist``, ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``), then ``keras.datasets.fashion_mnist`` (downloads where there
is internet). ``--data`` may also name an ``.npz`` with ``x_train, y_train, x_test, y_test``.

Values are never changed behind the user's back: Fashion-MNIST IDX pixels are divided by
255 (their documented scaling); every other source keeps its values and dtype unless a
``scale`` is given. What was applied is part of ``Dataset.describe()``, which every stage
records, so a run's later stages rebuild exactly the same arrays (``runinfo.run_dataset``).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimdeploy.errors import DataError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FIX_HINT = (
    "fix: `apt-get install dataset-fashion-mnist`, or put the four IDX .gz files in a directory "
    "and pass --data DIR (or set SLIMDEPLOY_DATA), or pass --data FILE.npz"
)


# The scaling each kind of source gets when none is asked for: IDX files hold 0..255
# pixels and the article's models expect [0, 1]; a user's arrays are used as they are.
DEFAULT_SCALE = {"idx": 255.0, "keras": 255.0, "npz": None}
DEFAULT_VALIDATION = 5000


@dataclass
class RawData:
    """The four arrays as read, and where they came from."""

    arrays: dict
    source: str  # a path, or keras.datasets.fashion_mnist
    kind: str  # idx, npz or keras
    sha256: str  # of the .npz file; of the four IDX files (a sha256sum listing); of the arrays


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    # How these arrays were made from the source; enough to make them again.
    kind: str = "npz"
    sha256: str | None = None
    seed: int = 0
    validation_size: int = 0
    limit: int | None = None
    scale: float | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dtype(self) -> str:
        return self.x_train.dtype.name

    def describe(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
            "seed": self.seed,
            "validation_size": self.validation_size,
            "limit": self.limit,
            "scale": self.scale,
            "dtype": self.input_dtype,
            "input_shape": list(self.input_shape),
            "train": int(len(self.x_train)),
            "validation": int(len(self.x_val)),
            "test": int(len(self.x_test)),
        }

    def input_contract(self) -> str:
        """What an artifact made from a model trained on this data expects, in words."""
        if self.scale:
            return f"{self.input_dtype} values: the raw data divided by {self.scale:g}"
        return f"{self.input_dtype} values exactly as in {self.source} (no scaling)"


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Read one gzip-compressed IDX file; every way it can be broken names the file."""
    path = Path(path)
    kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip ({exc})") from exc
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for IDX {kind}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header announces {'x'.join(map(str, dims))} = {expected} bytes, file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, filename in IDX_FILES.items():
        magic = IMAGES_MAGIC if key.startswith("x") else LABELS_MAGIC
        arrays[key] = read_idx(directory / filename, magic)
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        # np.load would try other formats (a pickle, a bare .npy) and advise unsafe loading.
        raise DataError(f"{path}: not an .npz archive (needs x_train, y_train, x_test, y_test)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in IDX_FILES if key not in npz.files]
            if missing:
                raise DataError(f"{path}: .npz lacks {', '.join(missing)} (needs x_train, y_train, x_test, y_test)")
            return {key: np.asarray(npz[key]) for key in IDX_FILES}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: holds pickled Python objects, which slimdeploy never loads (save plain arrays)") from exc
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc


def _missing_files(directory: Path) -> list[str]:
    return [name for name in IDX_FILES.values() if not (directory / name).is_file()]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _idx_sha256(directory: Path) -> str:
    # The hash of a `sha256sum` listing of the four files, in a fixed order.
    listing = "".join(f"{_file_sha256(directory / name)}  {name}\n" for name in IDX_FILES.values())
    return hashlib.sha256(listing.encode()).hexdigest()


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in IDX_FILES:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _validated(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or len(x) == 0:
            raise DataError(f"{source}: x_{split} must hold at least one image, got shape {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{source}: y_{split} must be one label per image, got shape {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{source}: {len(x)} {split} images but {len(y)} {split} labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: y_{split} must hold integer class labels, got {y.dtype}")
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise DataError(f"{source}: x_{split} must hold finite numbers")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(f"{source}: train images {arrays['x_train'].shape[1:]} and test images {arrays['x_test'].shape[1:]} differ in shape")
    return arrays


def _from_npz(path: Path) -> RawData:
    return RawData(_validated(_read_npz(path), str(path)), str(path.resolve()), "npz", _file_sha256(path))


def _from_idx_dir(directory: Path) -> RawData:
    arrays = _validated(_read_idx_dir(directory), str(directory))
    return RawData(arrays, str(directory.resolve()), "idx", _idx_sha256(directory))


def locate(data: str | os.PathLike | None = None, allow_download: bool = True) -> RawData:
    """Find and read the raw arrays, with where they came from and their sha256."""
    if data is not None:
        path = Path(data).expanduser()
        if path.is_file():
            return _from_npz(path)
        if path.is_dir():
            missing = _missing_files(path)
            if missing:
                raise DataError(f"--data {path}: missing {', '.join(missing)}; {FIX_HINT}")
            return _from_idx_dir(path)
        raise DataError(f"--data {path}: no such file or directory; {FIX_HINT}")

    tried = []
    env_dir = os.environ.get("SLIMDEPLOY_DATA")
    candidates = []
    if env_dir:
        candidates.append(("$SLIMDEPLOY_DATA", Path(env_dir).expanduser()))
    else:
        tried.append("$SLIMDEPLOY_DATA (not set)")
    candidates.append(("keras cache", Path.home() / ".keras" / "datasets" / "fashion-mnist"))
    candidates.append(("Debian package", DEBIAN_DIR))
    for label, directory in candidates:
        if directory.is_file() and directory.suffix == ".npz":
            return _from_npz(directory)
        missing = _missing_files(directory) if directory.is_dir() else None
        if missing == []:
            return _from_idx_dir(directory)
        tried.append(f"{directory} ({label}: {'not found' if missing is None else 'missing ' + ', '.join(missing)})")
    if allow_download:
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
            arrays = _validated({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, "keras download")
            return RawData(arrays, KERAS_SOURCE, "keras", _arrays_sha256(arrays))
        except Exception as exc:  # any network or cache failure: report it with the rest
            tried.append(f"keras.datasets.fashion_mnist download ({type(exc).__name__}: {str(exc)[:80]})")
    raise DataError(f"Fashion-MNIST not found; tried: {'; '.join(tried)}; {FIX_HINT}")


KERAS_SOURCE = "keras.datasets.fashion_mnist"


def load_dataset(
    data: str | os.PathLike | None = None,
    validation_size: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    allow_download: bool = True,
    scale: float | None = None,
) -> Dataset:
    """Load, scale where asked and split off a seeded validation set.

    ``validation_size``: the held-out rows (default: ``DEFAULT_VALIDATION``, at most a tenth
    of the training rows). ``scale``: divide the inputs by this number (they become
    float32); None means the source's own convention (IDX pixels: 255; an .npz: unchanged,
    dtype kept).
    ``limit`` keeps at most that many training and test images (for quick runs and
    tests); the validation split is then at most a tenth of the kept training images.
    """
    raw = locate(data, allow_download)
    if validation_size is None:
        validation_size = min(DEFAULT_VALIDATION, len(raw.arrays["x_train"]) // 10)
    return split_dataset(raw, validation_size, seed, limit, DEFAULT_SCALE[raw.kind] if scale is None else scale)


def split_dataset(raw: RawData, validation_size: int, seed: int, limit: int | None, scale: float | None) -> Dataset:
    """The seeded split of ``raw``, divided by ``scale`` exactly as given (None: unchanged)."""
    arrays = raw.arrays
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise DataError(f"scale must be a positive number, got {scale!r}")
    if limit is not None:
        if limit < 2:
            raise DataError(f"--limit must be at least 2, got {limit}")
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_test, y_test = x_test[:limit], y_test[:limit]
        validation_size = min(validation_size, max(1, len(x_train) // 10))
    if validation_size >= len(x_train):
        raise DataError(f"validation size {validation_size} leaves no training images out of {len(x_train)}")
    # The validation split is drawn with its own seeded permutation so that it does not
    # depend on anything but the seed; the test set is never touched until reporting.
    order = np.random.default_rng(seed).permutation(len(x_train))
    val_idx, train_idx = np.sort(order[:validation_size]), np.sort(order[validation_size:])
    return Dataset(
        x_train=_scaled(x_train[train_idx], scale),
        y_train=y_train[train_idx].astype(np.int64),
        x_val=_scaled(x_train[val_idx], scale),
        y_val=y_train[val_idx].astype(np.int64),
        x_test=_scaled(x_test, scale),
        y_test=y_test.astype(np.int64),
        source=raw.source,
        kind=raw.kind,
        sha256=raw.sha256,
        seed=int(seed),
        validation_size=int(validation_size),
        limit=limit,
        scale=float(scale) if scale is not None else None,
    )


def _scaled(x: np.ndarray, scale: float | None) -> np.ndarray:
    """Divided by ``scale`` as float32; without one, the values and dtype as they are."""
    if scale is None:
        return np.ascontiguousarray(x)
    return x.astype(np.float32) / np.float32(scale)


def as_model_input(x: np.ndarray, dtype: str, what: str = "data") -> np.ndarray:
    """``x`` in the dtype a model's input has, as Keras itself would feed it; refuses the casts
    that would change values (fractional numbers into an integer input)."""
    target = np.dtype(dtype)
    if x.dtype == target:
        return x
    if np.issubdtype(target, np.integer):
        if not np.issubdtype(x.dtype, np.integer):
            if not np.all(np.mod(x, 1) == 0):
                raise DataError(f"{what} holds {x.dtype} values with fractions, but the model's input is {target.name} "
                                "(integer ids): give integer arrays")
        info = np.iinfo(target)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise DataError(f"{what} holds values outside the range of the model's {target.name} input")
    return x.astype(target)
