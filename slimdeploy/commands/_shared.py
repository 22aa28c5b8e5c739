"""Argument helpers shared by subcommands (value parsers live in ``slimdeploy.parsers``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path


def add_run_data_arguments(parser, use: str) -> None:
    """``--data`` and ``--data-override`` for stages that read a run's recorded data."""
    parser.add_argument("--data", help=f"data for {use}: by default a run directory's own recorded data (the file it was "
                                       "trained on, checked by sha256); a lone model file uses Fashion-MNIST (see "
                                       "`train --help`) or this Fashion-MNIST directory or .npz")
    parser.add_argument("--data-override", action="store_true",
                        help="use --data although it is not the data the run was trained on (recorded as an override)")


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextlib.contextmanager
def remove_if_created(directory: Path):
    """If ``directory`` did not exist before and the block fails, leave nothing behind."""
    existed = directory.exists()
    try:
        yield
    except BaseException:
        if not existed and directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
        raise
