"""Settings of the report stage: which files to write and how strict the regression gate is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from slimdeploy.errors import UserError
from slimdeploy.parsers import non_negative_float
from slimdeploy.settings_base import Settings, setting
from slimdeploy.tasks import DEFAULT_TASK

FORMATS = ("md", "html", "json", "csv", "gab")
# What each format writes (the PNG plots go beside the Markdown).
FORMAT_FILES = {"md": "report.md", "html": "report.html", "json": "report.json", "csv": "report.csv", "gab": "gab.json"}
MACHINE_PLOT = "speedup_by_machine.png"  # a merged report's (several machines)
PLOT_FILES = ("speedup.png", "latency_vs_batch.png", "accuracy_vs_weights.png", "accuracy_vs_latency.png", "time_split.png",
              MACHINE_PLOT)
# A report of several sources (machines): its views, and where it goes without --out. csv and gab
# are one benchmark's cells for CI tools, made by a report of that one source.
MERGED_FORMATS = ("md", "html", "json")
MERGED_OUT = "merged-report"


def _check_formats(value) -> str | None:
    if isinstance(value, str):  # as --format gives it
        return _refusal(parse_formats, value)
    unknown = [str(f) for f in value if f not in FORMATS]
    if unknown:
        return _unknown_formats(unknown)
    if not value:
        return f"no report format chosen; choose from {', '.join(FORMATS)}"
    return None


def _check_max_regression(value) -> str | None:
    if isinstance(value, str):  # "10%" or "0.1", as a TOML string may give it
        return _refusal(parse_fraction, value, "max_regression")
    if not (isinstance(value, (int, float)) and 0 < value < 10):
        return f"max_regression must be a fraction above 0 (0.10 = 10%), got {value!r}"
    return None


def _check_confidence(value) -> str | None:
    if not (isinstance(value, (int, float)) and 0.5 <= value < 1):
        return f"confidence must be in [0.5, 1), got {value!r}"
    return None


def _check_max_drop(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        return f"--max-drop must be a number of {DEFAULT_TASK.budget_words} in [0, 100] (0.5 = half a point), got {value!r}"
    return None


def _check_dpi(value) -> str | None:
    if not (isinstance(value, int) and 30 <= value <= 600):
        return f"dpi must be an integer in [30, 600], got {value!r}"
    return None


@dataclass(frozen=True)
class ReportSettings(Settings):
    """How `slimdeploy report` renders a run."""

    formats: tuple[str, ...] = setting(
        FORMATS, flag="--format", metavar="LIST", shown="", check=_check_formats,
        help="comma-separated views to write: md (report.md + PNG plots), html (self-contained, plots "
             "embedded), json (report.json: the answer as data), csv (report.csv: one row per cell), "
             "gab (gab.json: github-action-benchmark customSmallerIsBetter). Default: all")
    title: str | None = setting(None, flag="--title", shown="from the recipe name", help="heading of the report")
    max_regression: float = setting(
        0.10, flag="--max-regression", metavar="PCT", shown="10%%", check=_check_max_regression,
        help="slowdown that fails the gate, as 10%% or 0.1")
    confidence: float = setting(0.95, check=_check_confidence)  # the gate's bootstrap interval
    # Append the Markdown to $GITHUB_STEP_SUMMARY when set (the CLI's --no-step-summary turns it off).
    step_summary: bool = setting(True)
    dpi: int = setting(110, check=_check_dpi)  # of the PNG plots
    max_drop: float = setting(
        0.5, flag="--max-drop", parse=non_negative_float, metavar="POINTS", check=_check_max_drop,
        help=f"{DEFAULT_TASK.metric_label} budget of the decision: the fastest model named must be within POINTS "
             f"{DEFAULT_TASK.budget_words} of dense's test {DEFAULT_TASK.metric_label} in the same runtime")

    def normalized(self) -> "ReportSettings":
        """Text forms read as values (``"md,json"``, ``"10%"``); each format once, in order."""
        formats = parse_formats(self.formats) if isinstance(self.formats, str) else self.formats
        threshold = self.max_regression
        if isinstance(threshold, str):
            threshold = parse_fraction(threshold, "max_regression")
        return dataclasses.replace(self, formats=tuple(dict.fromkeys(formats)), max_regression=threshold)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "[report]") -> "ReportSettings":
        return super().from_dict(raw, source)


def _refusal(parse, *args) -> str | None:
    """The one-line message ``parse`` refuses ``args`` with, or None when it accepts them."""
    try:
        parse(*args)
    except UserError as exc:
        return str(exc)
    return None


def _unknown_formats(unknown: list[str]) -> str:
    return f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}"


def parse_formats(text: str) -> list[str]:
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not formats:
        raise UserError(f"--format needs at least one of {', '.join(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(_unknown_formats(unknown))
    return formats


def parse_fraction(text: str, option: str = "--max-regression") -> float:
    """'10%' -> 0.10 and '0.1' -> 0.1; a bare '10' is refused as ambiguous."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100.0
        else:
            value = float(raw)
            if value >= 1:
                raise UserError(f"{option} {raw} is ambiguous: write {raw}% or {value / 100:g}")
    except ValueError:
        raise UserError(f"{option} expects a percentage like 10% or a fraction like 0.1, got {raw!r}") from None
    if not 0 < value < 10:
        raise UserError(f"{option} must be above 0%, got {raw}")
    return value
