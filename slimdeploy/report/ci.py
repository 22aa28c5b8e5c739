"""Views for machines: github-action-benchmark JSON, CSV, and the GitHub job summary."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from slimdeploy.bench.cellkey import CellKey
from slimdeploy.bench.stats import stability_words
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchResults, Cell, Stats
from slimdeploy.report import facts, markdown
from slimdeploy.report.document import Document

# GitHub refuses a job summary over 1 MiB; stay a little below it.
STEP_SUMMARY_LIMIT = 1024 * 1024
STEP_SUMMARY_MARGIN = 4096


def gab_entries(bench: BenchResults | None) -> list[dict]:
    """github-action-benchmark `customSmallerIsBetter`: one entry per cell that ran, value = p50 in ms."""
    entries = []
    for cell in bench.cells if bench else []:
        if not cell.ok:
            continue
        s = cell.stats
        extra = [f"p90 {_nan(s.p90_ms):.4g} ms", f"p99 {_nan(s.p99_ms):.4g} ms",
                 f"throughput {_nan(s.throughput_per_s):.4g} images/s", f"cv {_nan(s.cv):.3f}",
                 f"samples {facts.sample_count(cell)}"]
        if cell.unstable:
            extra.append(unstable_reason(cell))
        entries.append({
            "name": CellKey.of(cell).name,  # github-action-benchmark matches runs by name
            "unit": "ms",
            "value": float(s.p50_ms),
            "range": f"± {float(s.stdev_ms or 0.0):.4g}",
            "extra": "\n".join(extra),
        })
    return entries


def _nan(value) -> float:
    return float("nan") if value is None else value


def unstable_reason(cell: Cell) -> str:
    """Why a cell is flagged: its rounds disagreed (by how much), or, in a bench.json from
    before round stability, its per-call cv."""
    if cell.stability:
        return f"unstable: interleaved rounds disagreed ({stability_words(cell.stability)})"
    return "unstable: per-call cv above 10% (older bench.json)"


def gab_json(bench: BenchResults | None) -> str:
    return json.dumps(gab_entries(bench), indent=2) + "\n"


CSV_COLUMNS = ("id", "model", "runtime", "batch", "threads", "mode", "settings", "status", "p50_ms", "p90_ms", "p99_ms",
               "mean_ms", "stdev_ms", "min_ms", "max_ms", "cv", "throughput_per_s", "samples", "unstable",
               "baseline", "speedup", "ci_low", "ci_high", "ideal_speedup", "efficiency", "verdict", "error")


def cells_csv(bench: BenchResults | None) -> str:
    """One row per cell; a pruned model's row also carries its comparison with dense."""
    # Only each model against the baseline: the stacking comparisons (INT8 vs its float model, ...)
    # share the model's key.
    comparisons = {CellKey.of(c): c for c in (bench.comparisons if bench else [])
                   if facts.present(c.question, facts.VS_BASELINE) == facts.VS_BASELINE}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in bench.cells if bench else []:
        row = {**facts.fields(cell, "id", "model", "runtime", "batch", "threads", "mode", "status", "unstable", "error"),
               "settings": json.dumps(cell.settings or {}, sort_keys=True), "samples": len(cell.samples_ms or [])}
        row.update(facts.fields(cell.stats or Stats(), *(k for k in CSV_COLUMNS if k.endswith("_ms") or k in ("cv", "throughput_per_s"))))
        comparison = comparisons.get(CellKey.of(cell))
        if comparison:
            row.update(facts.fields(comparison, "baseline", "speedup", "ci_low", "ci_high", "ideal_speedup", "efficiency",
                                    "verdict"))
        writer.writerow(row)
    return out.getvalue()


def summary_markdown(doc: Document, budget: int) -> str:
    """The report for the job summary, tables folded, within ``budget`` bytes: the largest folded
    sections are dropped until it fits; as a last resort the text is cut."""
    sections = list(doc.sections)
    while True:
        text = markdown.render(doc, images=False, fold_details=True, sections=sections)
        note = "\n*Plots and full tables are in the report artifact (report.html).*\n"
        if len((text + note).encode("utf-8")) <= budget:
            return text + note
        droppable = [s for s in sections if s.detail]
        if not droppable:
            break
        sections.remove(max(droppable, key=lambda s: len(markdown.render(doc, sections=[s], images=False))))
    cut = "\n\n*(cut to fit GitHub's 1 MiB job-summary limit)*\n"
    room = max(0, budget - len(cut.encode("utf-8")))
    return text.encode("utf-8")[:room].decode("utf-8", errors="ignore") + cut


def append_step_summary(doc: Document, path: str | os.PathLike | None = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY (or ``path``), keeping the whole file under 1 MiB."""
    return _append_within_limit(path, lambda budget: summary_markdown(doc, budget))


def append_text_to_step_summary(text: str, path: str | os.PathLike | None = None) -> Path | None:
    """Append plain Markdown (the gate's verdict) to $GITHUB_STEP_SUMMARY within the same limit."""

    def fit(budget: int) -> str:
        data = text.encode("utf-8")
        return text if len(data) <= budget else data[: budget - 64].decode("utf-8", errors="ignore") + "\n\n*(cut to fit)*\n"

    return _append_within_limit(path, fit)


def _append_within_limit(path, make_text) -> Path | None:
    """Append ``make_text(budget)`` so that the file stays under GitHub's limit; skip when no room is left."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    target = Path(target)
    try:
        used = target.stat().st_size if target.exists() else 0
    except OSError as exc:
        raise UserError(f"cannot read GITHUB_STEP_SUMMARY file {target}: {exc.strerror or exc}") from exc
    budget = STEP_SUMMARY_LIMIT - STEP_SUMMARY_MARGIN - used
    if budget < 512:
        return None
    text = make_text(budget)
    try:
        # Appending is what GitHub expects of this file: other steps' summaries are kept.
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(("\n" if used else "") + text)
    except OSError as exc:
        raise UserError(f"cannot append to GITHUB_STEP_SUMMARY file {target}: {exc.strerror or exc}") from exc
    return target
