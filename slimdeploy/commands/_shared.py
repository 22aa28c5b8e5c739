"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from pathlib import Path


def _checked_number(convert, accept, expected: str):
    """An argparse type: ``convert`` the text, then ``accept`` the value, else say what was expected."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    parse.__name__ = expected.replace(" ", "_")
    return parse


positive_int = _checked_number(int, lambda value: value > 0, "a positive integer")
non_negative_int = _checked_number(int, lambda value: value >= 0, "a non-negative integer")
# NaN fails ``value >= 0`` too.
non_negative_float = _checked_number(float, lambda value: value >= 0, "a non-negative number")
positive_float = _checked_number(float, lambda value: 0 < value < float("inf"), "a positive number")


def name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def int_list(text: str) -> list[int]:
    try:
        return [positive_int(part.strip()) for part in text.split(",") if part.strip()] or _empty(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r} ({exc})") from None


def _empty(text: str):
    raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")


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
