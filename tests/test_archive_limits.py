"""Issue 17: archives and legacy files are checked from their directory before anything is
inflated. A .keras or .npz whose member inflates to a gigabyte of zeros (about 1 MB on disk)
is refused through the real CLI within 2 s and without the memory growing by 200 MB; an .npz
object array is refused without its pickle running; a legacy .h5 dataset that declares a
gigabyte and stores nothing is refused before Keras reads it (docs/errors.md rows citing this
file)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli_here
from errors_doc import check
from slimdeploy.archives import ENV_VAR, ArchiveLimits, check_zip_members
from slimdeploy.errors import UserError

GIB = 1 << 30
ZEROS = bytes(16 << 20)
KERAS_BOMB_BLOCKS = 64  # x 16 MiB: the weights member inflates to 1 GiB, five times the growth allowed
NPZ_BOMB_ROWS = 1 << 20  # 28x28 uint8 rows: 784 MiB of pixels (49 x 16 MiB)


def _zeros_deflated(prefix: bytes, blocks: int) -> tuple[bytes, int, int]:
    """(raw deflate stream, crc32, inflated size) of ``prefix`` then ``blocks`` x 16 MiB of zeros.
    A full flush makes the compressed zeros self-contained, so one block is compressed and
    repeated: a gigabyte bomb (about 1000:1, like zip -9) is made in a second, not in ten."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = compressor.compress(ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(blocks):
        crc = zlib.crc32(ZEROS, crc)
    return head + zeros * blocks + b"\x03\x00", crc, len(prefix) + blocks * len(ZEROS)  # + an empty final block


def _write_zip(path: Path, members: dict) -> Path:
    """A zip written by hand (APPNOTE 4.3.7, 4.3.12, 4.3.16): ``members`` maps a name to its bytes
    (stored) or to a ``_zeros_deflated`` triple, which zipfile has no way to write."""
    out, directory = bytearray(), bytearray()
    for name, content in members.items():
        method, (payload, crc, size) = (0, (content, zlib.crc32(content), len(content))) \
            if isinstance(content, bytes) else (8, content)
        encoded, offset = name.encode(), len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(payload), size,
                           len(encoded), 0) + encoded + payload
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(payload), size,
                                 len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(out), 0)
    path.write_bytes(bytes(out + directory + end))
    return path


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import h5py
    import keras

    base = tmp_path_factory.mktemp("archive_limits")
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 28, 28)).astype(np.float32), rng.integers(0, 10, 60)
    np.savez(base / "small.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    inputs = keras.Input((28, 28))
    hidden = keras.layers.Dense(8)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    model.save(base / "mlp.keras")
    model.save(base / "mlp.h5")

    # .keras: the real config, its weights member replaced by a gigabyte of zeros.
    with zipfile.ZipFile(base / "mlp.keras") as real:
        kept = {info.filename: real.read(info) for info in real.infolist() if info.filename != "model.weights.h5"}
    _write_zip(base / "bomb.keras", {**kept, "model.weights.h5": _zeros_deflated(b"", KERAS_BOMB_BLOCKS)})

    # .npz: x_train.npy declares (and holds) 784 MiB of zero pixels.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (NPZ_BOMB_ROWS, 28, 28)})
    _write_zip(base / "bomb.npz", {"x_train.npy": _zeros_deflated(header.getvalue(), NPZ_BOMB_ROWS * 784 // len(ZEROS)),
                                   "y_train.npy": _npy(np.zeros(NPZ_BOMB_ROWS, np.uint8)),
                                   "x_test.npy": _npy(x[:20]), "y_test.npy": _npy(y[:20])})

    # .npz whose x_train.npy header declares a gigabyte and holds one row: numpy would allocate the shape.
    with zipfile.ZipFile(base / "header_bomb.npz", "w") as forged:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (GIB // 3136, 28, 28)})
        forged.writestr("x_train.npy", header.getvalue() + x[:1].tobytes())
        for key, array in (("y_train", y), ("x_test", x[:20]), ("y_test", y[:20])):
            forged.writestr(f"{key}.npy", _npy(array))

    # legacy .h5: a kernel that declares a gigabyte and stores nothing (HDF5 allocates late).
    (base / "bomb.h5").write_bytes((base / "mlp.h5").read_bytes())
    with h5py.File(base / "bomb.h5", "r+") as h5:
        kernels = []
        h5["model_weights"].visititems(lambda name, item: kernels.append(name) if "kernel" in name and
                                       isinstance(item, h5py.Dataset) else None)
        group = h5["model_weights"]
        del group[kernels[0]]
        group.create_dataset(kernels[0], shape=(GIB // 4,), dtype="float32")
        assert group[kernels[0]].id.get_storage_size() == 0
    return base


def _pickled_npz(path: Path, marker: Path) -> Path:
    """An .npz whose x_train is an object array: unpickling it would create ``marker``."""

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    x_train = np.empty(1, dtype=object)
    x_train[0] = Payload()
    np.savez(path, x_train=x_train, y_train=np.zeros(1, np.int64), x_test=np.zeros((1, 28, 28)),
             y_test=np.zeros(1, np.int64))
    return path


def test_the_bombs_are_what_they_claim(files):
    """Small on disk, honest directories, and the first 16 MiB really inflate to zeros."""
    for name, member, inflated in (("bomb.keras", "model.weights.h5", GIB),
                                   ("bomb.npz", "x_train.npy", NPZ_BOMB_ROWS * 784)):
        with zipfile.ZipFile(files / name) as archive:
            assert archive.getinfo(member).file_size >= inflated and (files / name).stat().st_size < 4 << 20
            with archive.open(member) as stream:
                head = stream.read(len(ZEROS))
        assert head.count(0) >= len(ZEROS) - 128, name  # the .npy header, then zeros
    with zipfile.ZipFile(files / "bomb.npz") as archive, archive.open("x_train.npy") as stream:
        np.lib.format.read_magic(stream)
        assert np.lib.format.read_array_header_1_0(stream)[0] == (NPZ_BOMB_ROWS, 28, 28)


# Runs CLI commands in one process whose heavy imports are done first, and measures each
# command's own wall time and peak-memory growth (VmHWM, reset through clear_refs).
MEASURE = r"""
import contextlib, io, json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import h5py, keras
import slimdeploy.adopt, slimdeploy.data, slimdeploy.models, slimdeploy.train
from slimdeploy import cli

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

results = []
for args in json.loads(sys.argv[1]):
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak restarts from the memory in use now
    except OSError:
        pass  # then the growth is counted from the peak of the imports: a bomb still shows
    before, err = peak_kib(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(args)
        except SystemExit as exc:
            code = exc.code
    results.append({"code": code, "seconds": time.perf_counter() - started,
                    "growth_mib": (peak_kib() - before) / 1024, "stderr": err.getvalue()})
print(json.dumps(results))
"""


def inflate_seconds(archive_path: Path, member: str, sample: int = 128 << 20) -> float:
    """How long inflating ``member`` whole would take on this machine: the first ``sample``
    bytes timed, scaled to the member's declared size (the same zeros all through)."""
    with zipfile.ZipFile(archive_path) as archive, archive.open(member) as stream:
        size = archive.getinfo(member).file_size
        started = time.perf_counter()
        read = 0
        while read < sample:
            chunk = stream.read(len(ZEROS))
            if not chunk:
                break
            read += len(chunk)
        return (time.perf_counter() - started) * size / read


def test_keras_and_npz_bombs_are_refused_fast_without_inflating(files, tmp_path):
    commands = {
        "adopt-keras-bomb": ["prune", str(files / "bomb.keras"), "--data", str(files / "small.npz"),
                             "--out", str(tmp_path / "adopted"), "--quiet"],
        "train-npz-bomb": ["train", "--data", str(files / "bomb.npz"), "--out", str(tmp_path / "trained"), "--quiet"],
    }
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(list(commands.values()))], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    bombs = {"adopt-keras-bomb": ("bomb.keras", "model.weights.h5"), "train-npz-bomb": ("bomb.npz", "x_train.npy")}
    for (case_id, args), result in zip(commands.items(), results):
        check(case_id, result["code"], result["stderr"], args[1] if case_id.startswith("adopt") else args[2])
        print(f"{case_id}: refused in {result['seconds']:.2f} s, peak memory grew {result['growth_mib']:.1f} MiB")  # pytest -s
        bomb, member = bombs[case_id]
        # Fast on any CPU: well under the time inflating the member would take, measured here.
        inflating = inflate_seconds(files / bomb, member)
        assert result["seconds"] < inflating / 4, (case_id, result["seconds"], inflating)
        assert result["growth_mib"] < 200, (case_id, result["growth_mib"])
    assert not (tmp_path / "adopted").exists() and not (tmp_path / "trained").exists()


def test_a_bomb_is_refused_by_export_and_bench_too(files, tmp_path):
    result = run_cli_here("export", str(files / "mlp.keras"), "--data", str(files / "bomb.npz"), "--target", "onnx",
                          "--out", str(tmp_path / "exports"), "--quiet")
    check("export-npz-bomb", result.returncode, result.stderr, files / "bomb.npz")
    assert not (tmp_path / "exports").exists()
    result = run_cli_here("bench", str(files / "bomb.keras"), "--runtime", "tensorflow",
                          "--out", str(tmp_path / "bench"), "--quiet")
    check("bench-keras-bomb", result.returncode, result.stderr, files / "bomb.keras")
    assert not (tmp_path / "bench" / "bench.json").exists()


def test_an_npz_object_array_is_refused_and_its_pickle_never_runs(files, tmp_path):
    live_marker = tmp_path / "live.txt"
    np.load(_pickled_npz(tmp_path / "live.npz", live_marker), allow_pickle=True)["x_train"]
    assert live_marker.exists(), "the payload must be live for this test to mean anything"
    marker = tmp_path / "ran.txt"
    pickled = _pickled_npz(tmp_path / "pickled.npz", marker)
    out = tmp_path / "run"
    result = run_cli_here("prune", str(files / "mlp.keras"), "--data", str(pickled), "--out", str(out), "--quiet")
    check("adopt-npz-pickled", result.returncode, result.stderr, pickled)
    assert not marker.exists() and not out.exists()


def test_an_npy_header_declaring_more_than_it_holds_is_refused(files, tmp_path):
    out = tmp_path / "run"
    result = run_cli_here("train", "--data", str(files / "header_bomb.npz"), "--out", str(out), "--quiet")
    check("train-npz-header-bomb", result.returncode, result.stderr, files / "header_bomb.npz")
    assert not out.exists()


def test_a_legacy_h5_dataset_declaring_a_gigabyte_is_refused_before_keras_reads_it(files, tmp_path):
    out = tmp_path / "run"
    result = run_cli_here("prune", str(files / "bomb.h5"), "--data", str(files / "small.npz"), "--out", str(out),
                          "--quiet")
    check("adopt-h5-bomb", result.returncode, result.stderr, files / "bomb.h5")
    assert not out.exists()


def test_real_models_and_data_pass_the_limits(files):
    from slimdeploy.data import load_dataset
    from slimdeploy.models import load_model

    assert load_model(files / "mlp.keras").count_params() == load_model(files / "mlp.h5").count_params()
    assert len(load_dataset(files / "small.npz", validation_size=10).x_train) == 50


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _forge_declared_size(path: Path, member: str, size: int) -> Path:
    """Rewrite the uncompressed size that the central directory declares for ``member``; its data stays."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while raw[at + 46:at + 46 + int.from_bytes(raw[at + 28:at + 30], "little")] != member.encode():
        at = raw.find(b"PK\x01\x02", at + 1)
    raw[at + 24:at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("case, limits, message", [
    ("escape", ArchiveLimits(), "archive member '../x' would be written outside its directory"),
    ("twice", ArchiveLimits(), "archive member 'a' appears twice"),
    ("many", ArchiveLimits(members=2), "declares 3 archive members, more than the 2 allowed"),
    ("large", ArchiveLimits(member_bytes=3500), "archive member 'b' would inflate to 4.0 KiB, more than"),
    ("total", ArchiveLimits(total_bytes=6000), "more than the 5.9 KiB allowed in all, reached at archive member 'b'"),
    ("forged", ArchiveLimits(), "archive member 'b' would inflate to 4.0 GiB from"),
    ("spread", ArchiveLimits(ratio_floor=2000, ratio=50), "its members would inflate to 2.9 KiB from"),
    # The end record says 3 members but a directory with room for 20,001: refused from the
    # numbers alone, before zipfile parses (and allocates) the whole directory.
    ("directory", ArchiveLimits(), "declares a zip directory of 920,046 bytes, room for 20,001 archive members, "
                                   "more than the 10,000 allowed"),
])
def test_zip_directory_checks_name_the_member(tmp_path, case, limits, message):
    members = {"a": b"x" * 3000, "b": bytes(4096), "c": b""}
    if case == "escape":
        members["../x"] = b""
    path = _zip(tmp_path / "a.zip", members)
    if case == "twice":
        with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
            archive.writestr("a", b"other")
    if case == "forged":
        _forge_declared_size(path, "b", (1 << 32) - 1)
    if case == "spread":  # each member under the floor, together far above the ratio
        path = _zip(tmp_path / "a.zip", {"a": bytes(1500), "b": bytes(1500)})
    if case == "directory":
        raw = bytearray(path.read_bytes())
        at = raw.rfind(b"PK\x05\x06") + 12  # the end record's directory size
        raw[at:at + 4] = (46 * 20_001).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
    with pytest.raises(UserError) as refused:
        check_zip_members(path, "data", limits)
    assert str(refused.value).startswith(f"data {path} refused: ") and message in str(refused.value), refused.value


def test_the_limits_follow_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, "member=64G, total=1T,ratio=500,members=20")
    assert ArchiveLimits.from_env() == ArchiveLimits(member_bytes=64 << 30, total_bytes=1 << 40, ratio=500.0,
                                                     members=20)
    path = _zip(tmp_path / "many.npz", {f"m{k}": b"" for k in range(21)})
    with pytest.raises(UserError, match="more than the 20 allowed"):
        check_zip_members(path, "data")
    monkeypatch.setenv(ENV_VAR, "member=lots")
    result = run_cli_here("train", "--data", str(tmp_path / "many.npz"), "--out", str(tmp_path / "run"), "--quiet")
    check("train-archive-limits-env", result.returncode, result.stderr)
    assert not (tmp_path / "run").exists()


def test_compressible_real_data_under_the_ratio_floor_passes(tmp_path):
    """Real data compresses far beyond 200:1 (sorted labels, binarized images on black): a member
    of 32 MiB of zeros (about 1000:1) is not refused; the same ratio over 256 MiB is."""
    path = _write_zip(tmp_path / "sparse.npz", {"x_train.npy": _zeros_deflated(b"", 2)})
    assert [info.file_size for info in check_zip_members(path, "data")] == [32 << 20]
    with pytest.raises(UserError, match=r"above the 200:1 allowed for archive members over 16.0 MiB: "
                                        r"a decompression bomb or data that is almost all zeros"):
        check_zip_members(path, "data", ArchiveLimits(ratio_floor=16 << 20))


def _keras_with_weights(path: Path, source: Path, weights: bytes, compression: int) -> Path:
    with zipfile.ZipFile(source) as real, zipfile.ZipFile(path, "w", compression) as out:
        for info in real.infolist():
            out.writestr(info.filename, weights if info.filename == "model.weights.h5" else real.read(info))
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_the_weights_inside_a_keras_file_are_checked_stored_or_recompressed(files, tmp_path, compression):
    """Keras stores the weights member (read in place); a re-zipped file deflates it (inflated to a
    temporary file). Either way the real weights pass and a dataset declaring 1 GiB is refused."""
    import h5py

    from slimdeploy.errors import ModelFileError
    from slimdeploy.models import check_keras_archive

    with zipfile.ZipFile(files / "mlp.keras") as real:
        weights = real.read("model.weights.h5")
    real_path = _keras_with_weights(tmp_path / "real.keras", files / "mlp.keras", weights, compression)
    assert check_keras_archive(real_path)["class_name"] == "Functional"
    with h5py.File(tmp_path / "forged.h5", "w") as h5:
        h5.create_dataset("layers/dense/vars/0", shape=(GIB // 4,), dtype="float32")  # stores nothing
    forged = _keras_with_weights(tmp_path / "forged.keras", files / "mlp.keras",
                                 (tmp_path / "forged.h5").read_bytes(), compression)
    with pytest.raises(ModelFileError, match=r"HDF5 dataset 'layers/dense/vars/0' would inflate to 1.0 GiB from 0 B"):
        check_keras_archive(forged)


def test_an_oversized_npy_header_is_not_called_a_pickle(files, tmp_path):
    """numpy refuses a header over 10,000 bytes with advice about allow_pickle; the array holds no pickle."""
    from slimdeploy.data import load_dataset
    from slimdeploy.errors import DataError

    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 28, 28), }".ljust(20_000 - 10) + "\n"
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")
    with zipfile.ZipFile(files / "small.npz") as real, zipfile.ZipFile(tmp_path / "long.npz", "w") as out:
        for info in real.infolist():
            out.writestr(info.filename, header + bytes(3136) if info.filename == "x_train.npy" else real.read(info))
    with pytest.raises(DataError) as refused:
        load_dataset(tmp_path / "long.npz", validation_size=10)
    assert str(refused.value) == f"{tmp_path / 'long.npz'}: x_train.npy has a corrupt or oversized .npy header " \
                                 "(cut short, unreadable, or beyond numpy's header size limit)"
