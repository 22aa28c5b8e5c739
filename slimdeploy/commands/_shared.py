"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def int_list(text: str) -> list[int]:
    try:
        return [positive_int(part.strip()) for part in text.split(",") if part.strip()] or _empty(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r} ({exc})") from None


def _empty(text: str):
    raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")


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
