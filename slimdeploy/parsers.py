"""Command-line value parsers (argparse ``type=``, a settings field's ``parse``): text in, value out, or one
line saying what was expected."""

from __future__ import annotations

import argparse


def _checked_number(convert, accept, expected: str):
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


def validation_size(text: str) -> int | float:
    try:
        value = int(text) if text.strip().isdigit() else float(text)
    except ValueError:
        value = None
    if value is None or not (isinstance(value, int) or 0 < value < 1):
        raise argparse.ArgumentTypeError(f"expected a count of rows (e.g. 500) or a fraction in (0, 1) (e.g. 0.1), got {text!r}")
    return value


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


def number_pair(text: str) -> list[float]:
    """``LOW,HIGH`` as two numbers (integers stay int); their order is checked by BenchSettings."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [int(part) if part.lstrip("+-").isdigit() else float(part) for part in parts]
    except ValueError:
        values = None
    if values is None or len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {text!r}")
    return values
