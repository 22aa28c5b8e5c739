"""Fashion-MNIST from IDX .gz files, a user .npz or a folder of images, found without internet where possible.

Search order: ``--data`` (authoritative), ``$SLIMDEPLOY_DATA``, ``~/.keras/datasets/fashion-mnist``,
``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``), then a keras download. An
``.npz`` holds ``x_train, y_train, x_test, y_test`` (and optionally ``x_val, y_val``); an image folder
holds class-named folders (``DIR/cat/*.png``, or ``DIR/train/…`` and ``DIR/test/…``).

Values are never changed behind the user's back: IDX pixels are divided by 255, every other source
keeps its values unless a ``scale`` is given; ``Dataset.describe()`` records what was applied, so
later stages rebuild the same arrays (``saved_run.run_dataset``).
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
from numpy.lib import format as npy

from slimdeploy.archives import check_zip_members
from slimdeploy.errors import DataError
from slimdeploy.fsutil import file_sha256
from slimdeploy.tasks import DEFAULT_TASK, Task

IDX_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FIX_HINT = ("fix: `apt-get install dataset-fashion-mnist`, or put the four IDX .gz files in a directory "
            "and pass --data DIR (or set SLIMDEPLOY_DATA), or pass --data FILE.npz")
# The scaling each kind of source gets when none is asked for.
DEFAULT_SCALE = {"idx": 255.0, "keras": 255.0, "npz": None, "image_folder": None}
DEFAULT_VALIDATION = 5000
VALIDATION_KEYS = ("x_val", "y_val")  # optional in an .npz: the validation split as given
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# A folder tree without train/ and test/: this share of it is the test split, drawn with a fixed seed.
IMAGE_TEST_FRACTION = 0.2
IMAGE_TEST_SEED = 0
KERAS_SOURCE = "keras.datasets.fashion_mnist"
PICKLED = "holds pickled Python objects, which slimdeploy never loads (save plain arrays)"
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


@dataclass
class RawData:
    """The four arrays as read, and where they came from."""

    arrays: dict
    source: str  # a path, or keras.datasets.fashion_mnist
    kind: str  # idx, npz, image_folder or keras
    sha256: str  # of the .npz file; of the IDX files or images (a sha256sum listing); of the arrays
    task: Task = DEFAULT_TASK  # what the labels are (checked against it)

    @property
    def validation_given(self) -> bool:
        return "x_val" in self.arrays


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    # How these arrays were made from the source: enough to make them again.
    kind: str = "npz"
    sha256: str | None = None
    seed: int = 0
    validation_size: int = 0
    limit: int | None = None
    scale: float | None = None
    validation_given: bool = False  # the source held its own validation split (x_val, y_val)
    task: Task = DEFAULT_TASK  # what the labels are and how a model is scored on them (not in describe())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dtype(self) -> str:
        return self.x_train.dtype.name

    def describe(self) -> dict:
        return {"source": self.source, "kind": self.kind, "sha256": self.sha256, "seed": self.seed,
                "validation_size": self.validation_size, "limit": self.limit, "scale": self.scale,
                "dtype": self.input_dtype, "input_shape": list(self.input_shape), "train": int(len(self.x_train)),
                "validation": int(len(self.x_val)), "test": int(len(self.x_test)),
                **({"validation_from": "x_val, y_val"} if self.validation_given else {})}

    def input_contract(self) -> str:
        """What an artifact made from a model trained on this data expects, in words."""
        if self.scale:
            return f"{self.input_dtype} values: the raw data divided by {self.scale:g}"
        return f"{self.input_dtype} values exactly as in {self.source} (no scaling)"


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
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
        raise DataError(f"{path}: IDX header announces {'x'.join(map(str, dims))} = {expected} bytes, "
                        f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    return {key: read_idx(directory / name, IMAGES_MAGIC if key.startswith("x") else LABELS_MAGIC)
            for key, name in IDX_FILES.items()}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        # np.load would try other formats (a pickle, a bare .npy) and advise unsafe loading.
        raise DataError(f"{path}: not an .npz archive (needs x_train, y_train, x_test, y_test)")
    check_zip_members(path, "data", error=DataError)
    try:
        with np.load(path, allow_pickle=False) as npz:
            # x_val, y_val when it holds either (then the other one is reported missing when absent).
            wanted = list(IDX_FILES) + (list(VALIDATION_KEYS) if set(VALIDATION_KEYS) & set(npz.files) else [])
            missing = [key for key in wanted if key not in npz.files]
            if missing:
                raise DataError(f"{path}: .npz lacks {', '.join(missing)} (needs x_train, y_train, x_test, y_test; "
                                f"it has {', '.join(npz.files) or 'no arrays'})")
            for key in wanted:
                _check_npy_header(npz.zip, key, path)
            return {key: np.asarray(npz[key]) for key in wanted}
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        pickled = isinstance(exc, ValueError) and "pickle" in str(exc)
        raise DataError(f"{path}: {PICKLED}" if pickled else f"{path}: not a readable .npz file ({exc})") from exc


def _check_npy_header(archive: zipfile.ZipFile, key: str, path: Path) -> None:
    """An array's ``.npy`` header, read before its data: an object dtype (a pickle) is refused, and so is
    a shape that needs more bytes than the member holds (numpy would allocate it first)."""
    name = f"{key}.npy" if f"{key}.npy" in archive.namelist() else key
    info = archive.getinfo(name)
    with archive.open(info) as member:
        try:
            version = npy.read_magic(member)
        except ValueError:
            return  # not .npy: numpy reads it as raw bytes
        if version not in ((1, 0), (2, 0), (3, 0)):
            return  # numpy refuses it by itself
        # 3.0 differs from 2.0 only in the header's text encoding (utf-8 field names).
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        try:
            shape, _, dtype = read_header(member)
        except ValueError as exc:
            # numpy's text for a header over its size limit suggests allow_pickle: not what this is.
            raise DataError(f"{path}: {name} has a corrupt or oversized .npy header (cut short, unreadable, "
                            f"or beyond numpy's header size limit)") from exc
        data_bytes = info.file_size - member.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: {PICKLED}")
    declared = math.prod(shape) * dtype.itemsize
    if declared > data_bytes:
        raise DataError(f"{path}: {name} declares shape {shape} of {dtype} ({declared:,} bytes) but holds "
                        f"{data_bytes:,} bytes of data (corrupt or forged)")


def _missing_files(directory: Path) -> list[str]:
    return [name for name in IDX_FILES.values() if not (directory / name).is_file()]


def _listing_sha256(directory: Path, names) -> str:
    """The hash of a `sha256sum` listing of ``names`` (relative to ``directory``), in their order."""
    listing = "".join(f"{file_sha256(directory / name)}  {name}\n" for name in names)
    return hashlib.sha256(listing.encode()).hexdigest()


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in IDX_FILES:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _validated(arrays: dict[str, np.ndarray], source: str, task: Task) -> dict[str, np.ndarray]:
    splits = ("train", "test", "val") if "x_val" in arrays else ("train", "test")
    for split in splits:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or len(x) == 0:
            raise DataError(f"{source}: x_{split} must hold at least one image, got shape {x.shape}")
        task.check_label_shape(y, split, source)
        if len(x) != len(y):
            raise DataError(f"{source}: {len(x)} {split} images but {len(y)} {split} labels")
        task.check_label_values(y, split, source)
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise DataError(f"{source}: x_{split} must hold finite numbers")
    for split in splits[1:]:
        if arrays["x_train"].shape[1:] != arrays[f"x_{split}"].shape[1:]:
            raise DataError(f"{source}: train images {arrays['x_train'].shape[1:]} and {split} images "
                            f"{arrays[f'x_{split}'].shape[1:]} differ in shape")
    return arrays


def _from_npz(path: Path, task: Task) -> RawData:
    return RawData(_validated(_read_npz(path), str(path), task), str(path.resolve()), "npz", file_sha256(path), task)


def _from_idx_dir(directory: Path, task: Task) -> RawData:
    return RawData(_validated(_read_idx_dir(directory), str(directory), task), str(directory.resolve()), "idx",
                   _listing_sha256(directory, IDX_FILES.values()), task)


def _class_folders(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _image_files(directory: Path) -> list[str]:
    """The images image_dataset_from_directory reads from ``directory``'s class folders, sorted, relative."""
    found = []
    for class_name in _class_folders(directory):
        for root, _, files in os.walk(directory / class_name):
            found += [str((Path(root) / name).relative_to(directory).as_posix()) for name in files
                      if name.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def _is_image_folder(directory: Path) -> bool:
    """Sub-folders and none of the IDX files: a folder tree of images (IDX wins when both)."""
    return len(_missing_files(directory)) == len(IDX_FILES) and bool(_class_folders(directory))


def _image_layout(directory: Path) -> dict[str, Path]:
    if (directory / "train").is_dir() and (directory / "test").is_dir():
        return {"train": directory / "train", "test": directory / "test"}
    return {"all": directory}


def _image_format(first_image: Path, input_shape) -> tuple[tuple[int, int], str, bool]:
    """(image_size, color_mode, drop the channel axis) from a model's input shape when it is an image's,
    (H, W) or (H, W, 1|3|4), else from the first image."""
    shape = tuple(input_shape or ())
    if any(not isinstance(d, int) for d in shape):  # a model that takes any size: the images' own
        shape = ()
    if len(shape) == 2:
        return shape, "grayscale", True
    if len(shape) == 3 and shape[2] in COLOR_MODES:
        return shape[:2], COLOR_MODES[shape[2]], False
    size, bands = _image_header(first_image)
    return size, COLOR_MODES.get(bands, "rgb"), False


def _image_header(path: Path) -> tuple[tuple[int, int], int]:
    from PIL import Image  # lazy: only image folders need Pillow

    try:
        with Image.open(path) as image:
            return (image.size[1], image.size[0]), len(image.getbands())
    except OSError as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc


def _read_image_tree(directory: Path, class_names: list[str], image_size, color_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """All images of one class-folder tree, in Keras's deterministic order, as float32 and int labels."""
    import keras  # lazy: heavy

    try:
        images = keras.utils.image_dataset_from_directory(
            directory, labels="inferred", label_mode="int", class_names=class_names, color_mode=color_mode,
            image_size=image_size, shuffle=False, batch_size=None, verbose=False)
        pairs = [(np.asarray(x), int(y)) for x, y in images.as_numpy_iterator()]
    except Exception as exc:  # a file TensorFlow cannot decode: name it, with PIL's reason when PIL can tell
        raise DataError(_unreadable_image(directory) or f"{directory}: holds an image that cannot be read "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from exc
    x = np.stack([x for x, _ in pairs]).astype(np.float32)
    return x, np.array([y for _, y in pairs], dtype=np.int64)


def _unreadable_image(directory: Path) -> str | None:
    from PIL import Image  # lazy: only image folders need Pillow

    for name in _image_files(directory):
        try:
            with Image.open(directory / name) as image:
                image.load()
        except Exception as exc:
            return f"{directory / name}: not a readable image ({exc})"
    return None


def _from_image_folder(directory: Path, input_shape, task: Task) -> RawData:
    layout = _image_layout(directory)
    class_names = _class_folders(next(iter(layout.values())))
    for tree in layout.values():
        found = _class_folders(tree)
        if len(found) < 2:
            raise DataError(f"{tree}: an image folder needs at least 2 class folders, found {len(found)}"
                            f"{' (' + ', '.join(found) + ')' if found else ''}")
        if found != class_names:
            raise DataError(f"{tree}: class folders {', '.join(found)} differ from those of "
                            f"{layout['train']}: {', '.join(class_names)}")
        if not _image_files(tree):
            raise DataError(f"{tree}: no readable image ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    files = _image_files(directory)
    image_size, color_mode, drop_channel = _image_format(directory / files[0], input_shape)
    _refuse_conversions(directory, files, image_size, color_mode)
    trees = {split: _read_image_tree(tree, class_names, image_size, color_mode) for split, tree in layout.items()}
    if drop_channel:
        trees = {split: (x[..., 0], y) for split, (x, y) in trees.items()}
    if "all" in trees:
        trees = _held_out_test(*trees["all"])
    arrays = {f"{xy}_{split}": trees[split][i] for split in ("train", "test") for i, xy in enumerate("xy")}
    return RawData(_validated(arrays, str(directory), task), str(directory.resolve()), "image_folder",
                   _listing_sha256(directory, files), task)


def _refuse_conversions(directory: Path, files: list[str], image_size, color_mode: str) -> None:
    """Keras would resize or recolour an image that differs from the model's input: refused instead."""
    bands = {mode: n for n, mode in COLOR_MODES.items()}[color_mode]
    for name in files:
        size, image_bands = _image_header(directory / name)
        if size != tuple(image_size) or image_bands != bands:
            raise DataError(f"{directory / name}: a {size[0]}x{size[1]} image with {image_bands} channel(s), but the "
                            f"model takes {image_size[0]}x{image_size[1]} with {bands}; slimdeploy does not resize or "
                            "convert images: prepare them at the model's size first")


def _held_out_test(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(IMAGE_TEST_SEED).permutation(len(x))
    test_rows = max(1, round(len(x) * IMAGE_TEST_FRACTION))
    test_idx, train_idx = np.sort(order[:test_rows]), np.sort(order[test_rows:])
    return {"train": (x[train_idx], y[train_idx]), "test": (x[test_idx], y[test_idx])}


def locate(data: str | os.PathLike | None = None, allow_download: bool = True, input_shape=None,
           task: Task = DEFAULT_TASK) -> RawData:
    """The raw arrays, where they came from and their sha256. ``input_shape``: the model's, the size and
    colour mode a folder's images are read with (else the first image's own)."""
    if data is not None:
        path = Path(data).expanduser()
        if path.is_file():
            return _from_npz(path, task)
        if path.is_dir():
            if _is_image_folder(path):
                return _from_image_folder(path, input_shape, task)
            missing = _missing_files(path)
            if missing:
                raise DataError(f"--data {path}: missing {', '.join(missing)}; {FIX_HINT}")
            return _from_idx_dir(path, task)
        raise DataError(f"--data {path}: no such file or directory; {FIX_HINT}")

    env_dir = os.environ.get("SLIMDEPLOY_DATA")
    tried = [] if env_dir else ["$SLIMDEPLOY_DATA (not set)"]
    candidates = [("$SLIMDEPLOY_DATA", Path(env_dir).expanduser())] if env_dir else []
    candidates += [("keras cache", Path.home() / ".keras" / "datasets" / "fashion-mnist"), ("Debian package", DEBIAN_DIR)]
    for label, directory in candidates:
        if directory.is_file() and directory.suffix == ".npz":
            return _from_npz(directory, task)
        missing = _missing_files(directory) if directory.is_dir() else None
        if missing == []:
            return _from_idx_dir(directory, task)
        tried.append(f"{directory} ({label}: {'not found' if missing is None else 'missing ' + ', '.join(missing)})")
    if allow_download:
        try:
            import keras  # lazy: heavy

            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
            arrays = _validated({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
                                "keras download", task)
            return RawData(arrays, KERAS_SOURCE, "keras", _arrays_sha256(arrays), task)
        except Exception as exc:  # any network or cache failure: report it with the rest
            tried.append(f"keras.datasets.fashion_mnist download ({type(exc).__name__}: {str(exc)[:80]})")
    raise DataError(f"Fashion-MNIST not found; tried: {'; '.join(tried)}; {FIX_HINT}")


def load_dataset(data: str | os.PathLike | None = None, validation_size: int | float | None = None, seed: int = 0,
                 limit: int | None = None, allow_download: bool = True, scale: float | None = None, input_shape=None,
                 task: Task = DEFAULT_TASK) -> Dataset:
    """Load, scale where asked and split off a seeded validation set.

    ``validation_size``: a count or a fraction of the training rows (default ``DEFAULT_VALIDATION``, at
    most a tenth of them); ignored when the source holds ``x_val, y_val``. ``scale``: divide the inputs
    by it (float32); None: the source's own convention. ``limit``: at most that many training and test
    images (the validation split then at most a tenth of the kept training images).
    """
    raw = locate(data, allow_download, input_shape, task)
    if validation_size is None:
        validation_size = min(DEFAULT_VALIDATION, len(raw.arrays["x_train"]) // 10)
    return split_dataset(raw, validation_size, seed, limit, DEFAULT_SCALE[raw.kind] if scale is None else scale)


def validation_rows(validation_size: int | float, rows: int) -> int:
    """A validation size (a count, or a fraction in (0, 1) of ``rows``) as a count."""
    if isinstance(validation_size, float) and not validation_size.is_integer():
        if not 0 < validation_size < 1:
            raise DataError(f"validation size must be a count or a fraction in (0, 1), got {validation_size}")
        return max(1, round(validation_size * rows))
    if validation_size < 0:
        raise DataError(f"validation size must be a count or a fraction in (0, 1), got {validation_size}")
    return int(validation_size)


def _leading_rows(arrays: dict, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    return (x, y) if limit is None else (x[:limit], y[:limit])


def split_dataset(raw: RawData, validation_size: int | float, seed: int, limit: int | None,
                  scale: float | None) -> Dataset:
    """The seeded split of ``raw`` (its own ``x_val, y_val`` where it has them), divided by ``scale``."""
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise DataError(f"scale must be a positive number, got {scale!r}")
    if limit is not None and limit < 2:
        raise DataError(f"--limit must be at least 2, got {limit}")
    x_train, y_train = _leading_rows(raw.arrays, "train", limit)
    x_test, y_test = _leading_rows(raw.arrays, "test", limit)
    if raw.validation_given:
        x_val, y_val = _leading_rows(raw.arrays, "val", limit)
    else:
        x_train, y_train, x_val, y_val = _drawn_validation(x_train, y_train, validation_size, seed, limit, raw.source)
    labels = raw.task.labels
    return Dataset(x_train=_scaled(x_train, scale), y_train=labels(y_train), x_val=_scaled(x_val, scale),
                   y_val=labels(y_val), x_test=_scaled(x_test, scale), y_test=labels(y_test), source=raw.source,
                   kind=raw.kind, sha256=raw.sha256, seed=int(seed), validation_size=len(x_val), limit=limit,
                   scale=float(scale) if scale is not None else None, validation_given=raw.validation_given,
                   task=raw.task)


def _drawn_validation(x_train, y_train, validation_size, seed: int, limit: int | None, source: str):
    """(x_train, y_train, x_val, y_val): ``validation_size`` rows drawn (seeded) from the training rows."""
    validation_size = validation_rows(validation_size, len(x_train))
    if limit is not None:
        validation_size = min(validation_size, max(1, len(x_train) // 10))
    if validation_size >= len(x_train):
        raise DataError(f"{source}: validation size {validation_size} leaves no training rows out of {len(x_train)}")
    order = np.random.default_rng(seed).permutation(len(x_train))
    val_idx, train_idx = np.sort(order[:validation_size]), np.sort(order[validation_size:])
    return x_train[train_idx], y_train[train_idx], x_train[val_idx], y_train[val_idx]


def _scaled(x: np.ndarray, scale: float | None) -> np.ndarray:
    return np.ascontiguousarray(x) if scale is None else x.astype(np.float32) / np.float32(scale)


def as_model_input(x: np.ndarray, dtype: str, what: str = "data") -> np.ndarray:
    """``x`` in the dtype of a model's input, as Keras would feed it; refuses casts that change values."""
    target = np.dtype(dtype)
    if x.dtype == target:
        return x
    if np.issubdtype(target, np.integer):
        if not np.issubdtype(x.dtype, np.integer) and not np.all(np.mod(x, 1) == 0):
            raise DataError(f"{what} holds {x.dtype} values with fractions, but the model's input is {target.name} "
                            "(integer ids): give integer arrays")
        info = np.iinfo(target)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise DataError(f"{what} holds values outside the range of the model's {target.name} input")
    return x.astype(target)
