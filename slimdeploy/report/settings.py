"""Settings of the report stage: which files to write and how strict the regression gate is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from slimdeploy.config import settings_from_table
from slimdeploy.errors import UserError

# Every format the report can write; each is a view of the same bench results.
FORMATS = ("md", "html", "json", "csv", "gab")
# What each format writes (the PNG plots go beside the Markdown).
FORMAT_FILES = {
    "md": "report.md",
    "html": "report.html",
    "json": "report.json",
    "csv": "report.csv",
    "gab": "gab.json",
}
PLOT_FILES = ("speedup.png", "latency_vs_batch.png", "accuracy_vs_weights.png")


@dataclass(frozen=True)
class ReportSettings:
    """How `slimdeploy report` renders a run.

    formats: which views to write (md, html, json, csv, gab).
    title: the report's heading; None picks one from the run.
    max_regression: the regression gate's threshold as a fraction (0.10 = 10% slower).
    confidence: the gate's bootstrap interval (0.95 = 95%).
    step_summary: append the Markdown to $GITHUB_STEP_SUMMARY when that variable is set.
    dpi: resolution of the PNG plots.
    """

    formats: tuple[str, ...] = FORMATS
    title: str | None = None
    max_regression: float = 0.10
    confidence: float = 0.95
    step_summary: bool = True
    dpi: int = 110

    def __post_init__(self):
        # TOML gives lists and strings; keep the dataclass usable straight from a config table.
        formats = tuple(parse_formats(self.formats) if isinstance(self.formats, str) else self.formats)
        if isinstance(self.max_regression, str):
            object.__setattr__(self, "max_regression", parse_fraction(self.max_regression, "max_regression"))
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise UserError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
        if not formats:
            raise UserError(f"no report format chosen; choose from {', '.join(FORMATS)}")
        object.__setattr__(self, "formats", tuple(dict.fromkeys(formats)))
        if not (isinstance(self.max_regression, (int, float)) and 0 < self.max_regression < 10):
            raise UserError(f"max_regression must be a fraction above 0 (0.10 = 10%), got {self.max_regression!r}")
        if not (isinstance(self.confidence, (int, float)) and 0.5 <= self.confidence < 1):
            raise UserError(f"confidence must be in [0.5, 1), got {self.confidence!r}")
        if not (isinstance(self.dpi, int) and 30 <= self.dpi <= 600):
            raise UserError(f"dpi must be an integer in [30, 600], got {self.dpi!r}")

    @classmethod
    def from_dict(cls, raw: dict, source: str = "[report]") -> "ReportSettings":
        """Read the settings from a TOML table; unknown keys are a mistake, not ignored."""
        return settings_from_table(cls, raw, source)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["formats"] = list(self.formats)
        return data


def parse_formats(text: str) -> list[str]:
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not formats:
        raise UserError(f"--format needs at least one of {', '.join(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
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
