"""Argument helpers shared by subcommands (value parsers live in ``slimdeploy.parsers``)."""

from __future__ import annotations

import json
import sys

LONE_MODEL_DATA = "a lone model file uses Fashion-MNIST (see `train --help`) or this Fashion-MNIST directory or .npz"


def add_run_data_arguments(parser, use: str, lone_model: str = LONE_MODEL_DATA) -> None:
    """``--data`` and ``--data-override`` for stages that read a run's recorded data."""
    parser.add_argument("--data", help=f"data for {use}: by default a run directory's own recorded data (the file it was "
                                       f"trained on, checked by sha256); {lone_model}")
    parser.add_argument("--data-override", action="store_true",
                        help="use --data although it is not the data the run was trained on (recorded as an override)")


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
