"""Files are written atomically: to a temporary name beside the target, then renamed, so a reader never
sees a half-written one, even when the process is killed mid-write."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from slimdeploy.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TMP_MARK = ".tmp-"
# Write failures that say "the place cannot hold the output", not "the work failed".
STORAGE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


class StorageError(UserError):
    """An output could not be written (full disk, quota, size limit, read-only); ``path`` is the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot write {path}: {reason}")


def storage_error(exc: BaseException, target: Path) -> StorageError | None:
    """The one-line error for ``exc`` if it is a storage failure writing ``target`` (Keras and h5py raise
    ``OSError`` with the errno set but a long message of their own)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return StorageError(target, os.strerror(exc.errno))
    return None


def _temporary_in(directory: Path, make, **names) -> str:
    """``make(dir=directory, **names)`` (``tempfile.mkstemp``/``mkdtemp``) after creating ``directory``: the
    writability test (``os.access`` says yes to root even on a read-only file system)."""
    make_output_dir(directory)
    try:
        return make(dir=directory, **names)
    except OSError as exc:
        raise UserError(f"output directory {directory} is not writable") from exc


def make_output_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"output path {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {directory}: {exc.strerror or exc}") from exc


def check_writable_dir(directory: str | os.PathLike) -> str | None:
    """Why no file can be created in ``directory`` (None: one can), by creating one."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".write-probe{TMP_MARK}", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success. ``suffix``: for
    libraries that insist on one (Keras wants ``.keras`` / ``.weights.h5``)."""
    target = Path(target)
    fd, tmp_name = _temporary_in(target.parent, tempfile.mkstemp, prefix=f".{target.name}{TMP_MARK}", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; results are ordinary files that others may read.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        full = storage_error(exc, target)
        if full is not None and full is not exc:
            raise full from exc
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise (storage_error(exc, Path(target)) or UserError(f"cannot write {target}: {exc.strerror or exc}")) from exc


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays show up in metrics; paths in settings.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name, then move it onto ``target`` (replacing one only with ``force``)."""
    target = Path(target)
    refuse_existing(target, force)
    tmp = Path(_temporary_in(target.parent, tempfile.mkdtemp, prefix=f".{target.name}{TMP_MARK}"))
    os.chmod(tmp, 0o777 & ~_current_umask())
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}{TMP_MARK}old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = storage_error(exc, target)
        if full is not None:
            # Name the file as it would have been called, not its temporary directory.
            try:
                shown = target / full.path.relative_to(tmp)
            except ValueError:
                shown = full.path
            raise StorageError(shown, full.reason) from exc
        raise


def refuse_existing(target: str | os.PathLike, force: bool) -> None:
    target = Path(target)
    if target.exists() and not force:
        raise UserError(f"{target} already exists; pass --force to overwrite it")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    try:
        return json.loads(_read_text(path, what))
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc


def read_toml(path: str | os.PathLike, what: str = "TOML file") -> dict:
    path = Path(path)
    try:
        return tomllib.loads(_read_text(path, what))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{what} {path} is not valid TOML: {exc}") from exc


def _read_text(path: Path, what: str) -> str:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory, not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if not data.strip():
        raise UserError(f"{what} {path} is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from exc


@contextlib.contextmanager
def remove_if_created(directory: Path, on: tuple[type[BaseException], ...] = (BaseException,)):
    """If ``directory`` did not exist before and the block fails (with one of ``on``), remove it."""
    existed = directory.exists()
    try:
        yield
    except on:
        if not existed and directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
        raise


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
