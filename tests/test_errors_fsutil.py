"""A full disk, simulated at the OS boundary: the write fails with ENOSPC the way the kernel
reports it. The old file survives, no temporary is left, and the error is one line naming the
file as the user knows it (not its temporary name). The CLI side, with a real failing write
(a file-size limit), is in test_errors_cli.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from errors_doc import check
from errors_inputs import leftovers
from slimdeploy import fsutil
from slimdeploy.errors import UserError


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "bench.json"
    fsutil.write_json(target, {"old": True})
    monkeypatch.setattr(Path, "write_bytes", _no_space)
    with pytest.raises(fsutil.StorageError) as caught:
        fsutil.write_json(target, {"new": True})
    monkeypatch.undo()
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 2
    check("fsutil-disk-full", 2, f"slimdeploy bench: error: {caught.value}\n", target)
    assert target.read_text() == '{\n  "old": true\n}\n'
    assert not leftovers(tmp_path)


def test_a_library_writing_into_a_temporary_directory_is_reported_under_the_final_name(tmp_path):
    """Keras and h5py raise OSError with errno set and a long message of their own."""
    final = tmp_path / "run" / "dense"
    with pytest.raises(fsutil.StorageError) as caught:
        with fsutil.atomic_dir(final) as staging:
            with fsutil.atomic_path(staging / "model.keras") as tmp:
                tmp.write_bytes(b"half a model")
                raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28, ...)")
    assert str(caught.value) == f"cannot write {final / 'model.keras'}: {os.strerror(errno.ENOSPC)}"
    assert not final.exists() and not leftovers(tmp_path)


def test_other_os_errors_are_not_mistaken_for_a_full_disk(tmp_path):
    with pytest.raises(PermissionError):
        with fsutil.atomic_path(tmp_path / "x.json"):
            raise PermissionError(errno.EACCES, "denied")
    assert not leftovers(tmp_path)
