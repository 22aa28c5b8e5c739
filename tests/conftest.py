"""Shared fixtures: real Fashion-MNIST slices and a tiny trained run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``slimdeploy`` CLI in a subprocess and capture its output."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "slimdeploy", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def small_data():
    """A real Fashion-MNIST slice: 3000 training images (300 held out), 3000 test images."""
    from slimdeploy.data import load_dataset

    return load_dataset(limit=3000, validation_size=300, seed=0, allow_download=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with a dense article MLP trained for 2 epochs on a 3000-image slice.

    Read-only for tests: copy it (``shutil.copytree``) before writing into it.
    """
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_cli("train", "--epochs", "2", "--limit", "3000", "--out", str(run_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    return run_dir
