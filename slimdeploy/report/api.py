"""`make_report`: one call from a run directory (or bench JSON) to the report files."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from slimdeploy import __version__, environment, fsutil
from slimdeploy.errors import UserError
from slimdeploy.report import answer, ci, document, facts, html, markdown, plots, timesplit
from slimdeploy.report.load import ReportInputs, load_source
from slimdeploy.report.settings import FORMAT_FILES, PLOT_FILES, ReportSettings
from slimdeploy.rundir import RunDir

REPORT_SCHEMA_VERSION = 1


def default_out_dir(inputs: ReportInputs) -> Path:
    """RUN_DIR/report for a run directory; report/ beside a bench JSON (laid out as in a run)."""
    return RunDir(inputs.run_dir if inputs.run_dir is not None else inputs.source.parent).report_dir


def make_report(source: str | Path, settings: ReportSettings | None = None, out_dir: str | Path | None = None, *,
                force: bool = False) -> list[Path]:
    """Write the report views chosen in ``settings.formats`` into ``out_dir``; return the paths written.

    The directory is built aside and moved into place whole, so a reader never sees half a
    report. An existing report directory is replaced only with ``force``, and never when it
    holds files a report does not write (so ``--out .`` cannot wipe a project).
    """
    settings = (settings or ReportSettings()).validated()  # a library caller's too
    inputs = load_source(source)
    out = Path(out_dir) if out_dir is not None else default_out_dir(inputs)
    _check_out_dir(out, force)
    doc, figures = build(inputs, settings)
    try:
        written = _write_views(inputs, settings, doc, figures, out)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    if settings.step_summary:
        ci.append_step_summary(doc)
    return [out / name for name in written]


def _write_views(inputs: ReportInputs, settings: ReportSettings, doc, figures: dict, out: Path) -> list[str]:
    written: list[str] = []
    with fsutil.atomic_dir(out, force=True) as staging:
        if "md" in settings.formats:
            for figure in figures.values():
                fsutil.write_bytes(staging / figure.name, figure.png)
                written.append(figure.name)
            fsutil.write_text(staging / FORMAT_FILES["md"], markdown.render(doc))
            written.append(FORMAT_FILES["md"])
        if "html" in settings.formats:
            fsutil.write_text(staging / FORMAT_FILES["html"], html.render(doc))
            written.append(FORMAT_FILES["html"])
        if "json" in settings.formats:
            fsutil.write_json(staging / FORMAT_FILES["json"], report_json(inputs, settings, doc, figures))
            written.append(FORMAT_FILES["json"])
        if "csv" in settings.formats:
            fsutil.write_text(staging / FORMAT_FILES["csv"], ci.cells_csv(inputs.bench))
            written.append(FORMAT_FILES["csv"])
        if "gab" in settings.formats:
            fsutil.write_text(staging / FORMAT_FILES["gab"], ci.gab_json(inputs.bench))
            written.append(FORMAT_FILES["gab"])
        _shareable(staging)
    return written


def _shareable(directory: Path) -> None:
    """Temporary files are private (0600); a report is meant to be read, so use the umask's defaults."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.iterdir():
        os.chmod(path, 0o666 & ~umask)


def _check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory")
    if out.is_dir():
        try:
            present = [p.name for p in out.iterdir()]
        except OSError as exc:
            raise UserError(f"cannot read output directory {out}: {exc.strerror or exc}") from exc
        if present and not force:
            raise UserError(f"report directory {out} already exists; pass --force to regenerate it")
        foreign = sorted(set(present) - set(FORMAT_FILES.values()) - set(PLOT_FILES))
        if foreign:
            raise UserError(
                f"{out} holds files a report does not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "choose another --out: --force replaces the whole directory"
            )
    # Try it: permission bits say little to root, and some file systems refuse anyway.
    probe = out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".slimdeploy-write-test-", dir=probe))
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc


def build(inputs: ReportInputs, settings: ReportSettings) -> tuple[document.Document, dict[str, document.Figure]]:
    """The document and its figures, in memory (what make_report writes)."""
    figures: dict[str, document.Figure] = {}
    if not {"md", "html"} & set(settings.formats):
        return document.build_document(inputs, figures, settings.title, settings.max_drop), figures  # no view shows pictures
    png = plots.accuracy_latency_plot(facts.accuracy_latency_panels(inputs, settings.max_drop), settings.dpi)
    if png:
        figures["accuracy_vs_latency.png"] = document.Figure(
            "accuracy_vs_latency.png", png, "Scatter plot of test accuracy against median latency, one panel per runtime, every model and INT8 variant labelled",
            f"Test accuracy in each runtime against median latency at the largest batch measured (log scale): up and to "
            f"the left is better. The dashed line is the budget, dense's accuracy minus {settings.max_drop:g} points; the "
            "green line joins the Pareto front, the models that no other model beats on both speed and accuracy.")
    comparisons = [c for group in facts.vs_dense_groups(inputs).values() for c in group]
    png = plots.speedup_plot(comparisons, settings.dpi)
    if png:
        figures["speedup.png"] = document.Figure(
            "speedup.png", png, "Bar chart of measured speedup of each pruned model over dense, per runtime and batch size, beside the ideal FLOP ratio",
            "Measured speedup over dense (bars with their 95% interval) beside the ideal speedup, the FLOP ratio "
            "(dashed outlines). Above the line at 1 the pruned model is faster.")
    png = plots.latency_plot((inputs.bench or {}).get("cells", []), settings.dpi)
    if png:
        figures["latency_vs_batch.png"] = document.Figure(
            "latency_vs_batch.png", png, "Line chart of latency per call against batch size, one panel per runtime, dense and pruned models",
            "Median latency per call against batch size, log scales; the band reaches the 99th percentile.")
    if inputs.lotteries:
        dense_acc = facts.number(facts.models(inputs).get(facts.BASELINE, {}).get("test_accuracy"))
        png = plots.lottery_plot(inputs.lotteries, dense_acc, settings.dpi)
        if png:
            figures["accuracy_vs_weights.png"] = document.Figure(
                "accuracy_vs_weights.png", png, "Line chart of test accuracy against the fraction of weights remaining for each pruning round",
                "Test accuracy of each pruning round against the weights remaining (log scale, pruning proceeds to the "
                "right): the ticket (retrained from its reset), the random re-initialisation and fine-tuning controls, and the dense model.")
    png = plots.time_split_plot(timesplit.stacks(inputs), timesplit.OUTSIDE, settings.dpi)
    if png:
        figures[document.TIME_SPLIT_PNG] = document.Figure(
            document.TIME_SPLIT_PNG, png, "Stacked bar chart of time per call by op type, one panel per runtime, dense and each variant",
            "Time per call by op type from the profiled pass, stacked, relative to dense's total at the same batch "
            "(100%); hatched: time outside the profiled layers (runtime dispatch, the call itself).")
    return document.build_document(inputs, figures, settings.title, settings.max_drop), figures


def report_json(inputs: ReportInputs, settings: ReportSettings, doc: document.Document, figures: dict) -> dict:
    """The report's conclusions as data, for scripts (the bench JSON stays the raw data)."""
    info = facts.models(inputs)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": f"slimdeploy {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(inputs.source),
        "title": doc.title,
        "decision": {**answer.decision_lines(inputs, settings.max_drop), "max_drop": settings.max_drop,
                     "fastest_within_budget": answer.decisions(inputs, settings.max_drop),
                     "stacking_comparisons": answer.stacking_sentences(inputs),
                     "sparse_int8": (inputs.bench or {}).get("sparse_int8")},
        "in_short": answer.in_short(inputs),
        "answers": answer.runtime_sentences(inputs),
        "comparisons": [c for group in facts.comparison_groups(inputs).values() for c in group],
        "models": info,
        "runtime_accuracy": [{"model": m, "runtime": r, "test_accuracy": a} for (m, r), a in sorted(facts.runtime_accuracy(inputs).items())],
        "plots": sorted(figures),
        "notes": inputs.notes,
        "settings": settings.to_dict(),
        "bench_environment": (inputs.bench or {}).get("environment"),
        "versions": {**environment.library_versions(), "matplotlib": _matplotlib_version()},
    }


def _matplotlib_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("matplotlib")
    except Exception:  # pragma: no cover - matplotlib is a dependency
        return None


