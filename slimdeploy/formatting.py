"""Numbers as people read them, for the report and the lower layers' messages; "–" is a missing value."""

from __future__ import annotations


def fmt_int(value) -> str:
    return f"{round(value):,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def fmt_bytes(value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return "–"  # pragma: no cover
