"""Shared fixtures: real Fashion-MNIST slices and a tiny trained run directory."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent

# pytest-xdist (--dist loadfile, pyproject.toml) hands whole files to its workers in the order
# collected: the longest go first, so no worker is left running a long file alone at the end.
LONGEST_FIRST = ("test_run_pipeline.py", "test_zoo.py", "test_errors_cli.py", "test_prune_cli.py",
                 "test_errors_interrupt.py", "test_export_cli.py", "test_bench_int8.py", "test_bench_run.py", "test_bench_profile.py",
                 "test_export_int8.py", "test_adopt.py", "test_prune_ticket.py", "test_report_int8.py")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``slimdeploy`` CLI in a subprocess and capture its output."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "slimdeploy", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def run_cli_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``slimdeploy ARGS`` through ``slimdeploy.cli.main`` (what ``python -m slimdeploy`` calls) in
    this process: the same lines and exit status as ``run_cli`` without a new process starting
    TensorFlow (~7 s each). For cases that need a process of their own, use ``run_cli``."""
    import contextlib
    import io
    import signal

    from slimdeploy import cli

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's own errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(previous)
        for sig, handler in handlers.items():  # cli.main turns SIGTERM into an interrupt
            signal.signal(sig, handler)
    return subprocess.CompletedProcess(["slimdeploy", *args], code, out.getvalue(), err.getvalue())


def executable(name: str) -> str:
    """The console script `name` installed with this interpreter (the dev extra's), never a guess from PATH."""
    suffix = ".exe" if os.name == "nt" else ""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / f"{name}{suffix}"
        if candidate.is_file():
            return str(candidate)
    pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e \".[dev]\"")


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


def install_plugin_module(tmp_path: Path, monkeypatch, name: str, source: str, variables) -> None:
    """Write module ``name`` (``source``) where this process and its bench workers import it, and
    name it in each environment variable of ``variables`` (the registries' plug-in lists)."""
    directory = tmp_path / "plugins"
    directory.mkdir()
    (directory / f"{name}.py").write_text(source)
    for variable in variables:
        monkeypatch.setenv(variable, name)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(directory))


def forget_plugin_module(name: str) -> None:
    """The module gone from this process, so the next test imports (and registers) it afresh."""
    import importlib

    sys.modules.pop(name, None)
    importlib.invalidate_caches()
