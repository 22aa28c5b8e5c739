"""`make_report`: a run directory (or bench JSON) to the report files; `make_merged_report`: one
report of benchmarks from several machines."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from slimdeploy import environment, fsutil
from slimdeploy._version import __version__
from slimdeploy.dirlock import DirectoryLock, writer_directory
from slimdeploy.errors import UserError
from slimdeploy.report import answer, ci, document, facts, html, markdown, merge, plots, timesplit
from slimdeploy.report.load import ReportInputs, load_source
from slimdeploy.report.settings import FORMAT_FILES, MACHINE_PLOT, MERGED_FORMATS, MERGED_OUT, PLOT_FILES, ReportSettings
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
    views = {"md": lambda: markdown.render(doc), "html": lambda: html.render(doc),
             "json": lambda: report_json(inputs, settings, doc, figures),
             "csv": lambda: ci.cells_csv(inputs.bench), "gab": lambda: ci.gab_json(inputs.bench)}
    return _publish(out, force, settings, doc, figures, {f: views[f] for f in settings.formats})


def make_merged_report(sources, settings: ReportSettings | None = None, out_dir: str | Path | None = None, *,
                       labels=None, allow_different_models: bool = False, force: bool = False) -> list[Path]:
    """One report of benchmarks from several machines (``merge``): the decision per machine, the
    speedups side by side, a plot per machine. Views: md, html and json among ``settings.formats``;
    ``out_dir`` defaults to ./merged-report, replaced only with ``force`` as make_report's."""
    settings = (settings or ReportSettings()).validated()
    _merged_formats(settings)  # before reading the sources: a wrong option costs nothing
    inputs = merge.load_machines(sources, labels, allow_different_models)
    return write_merged_report(inputs, settings, out_dir, force=force)


def write_merged_report(inputs: merge.MergedInputs, settings: ReportSettings, out_dir: str | Path | None = None, *,
                        force: bool = False) -> list[Path]:
    """make_merged_report's files from sources already read (``merge.load_machines``), so a caller
    that also prints their answers reads and validates each file once."""
    settings = settings.validated()
    formats = _merged_formats(settings)
    out = Path(out_dir) if out_dir is not None else Path(MERGED_OUT)
    _check_out_dir(out, force)
    doc, figures = build_merged(inputs, settings, formats)
    views = {"md": lambda: markdown.render(doc), "html": lambda: html.render(doc),
             "json": lambda: {**_json_header(), "kind": "merged", "title": doc.title,
                              **merge.report_json(inputs, settings.max_drop), "plots": sorted(figures),
                              "settings": settings.to_dict(), "versions": _versions()}}
    return _publish(out, force, settings, doc, figures, {f: views[f] for f in formats})


def _publish(out: Path, force: bool, settings: ReportSettings, doc, figures: dict, views: dict) -> list[Path]:
    try:
        with _writer_lock(out):
            _check_out_dir(out, force)  # again under the lock: another writer may have made it meanwhile
            written = _write_files(out, figures, views)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    if settings.step_summary:
        ci.append_step_summary(doc)
    return [out / name for name in written]


def _merged_formats(settings: ReportSettings) -> list[str]:
    formats = [f for f in settings.formats if f in MERGED_FORMATS]
    if not formats:
        raise UserError(f"--format {','.join(settings.formats)}: a report of several sources writes "
                        f"{', '.join(MERGED_FORMATS)} (csv and gab are one benchmark's: report each source alone)")
    return formats


def _add_figure(figures: dict, name: str, png: bytes | None, alt: str, caption: str) -> None:
    if png:
        figures[name] = document.Figure(name, png, alt, caption)


def build_merged(inputs: merge.MergedInputs, settings: ReportSettings, formats=MERGED_FORMATS):
    figures: dict[str, document.Figure] = {}
    if {"md", "html"} & set(formats):
        machines = [m.label for m in inputs.machines]
        _add_figure(
            figures, MACHINE_PLOT,
            plots.machine_speedup_plot(merge.plot_panels(merge.pair_rows(inputs), machines), machines, settings.dpi),
            "Grouped bar chart of speedup per machine, one panel per compared pair, a group per runtime and batch",
            "Speedup of each model over its baseline on each machine (bars, with the bootstrap interval as whiskers), "
            "grouped by runtime and batch: each machine's own measurement, never averaged. Above the line at 1, faster.")
    return merge.build_document(inputs, figures, settings.title, settings.max_drop), figures


def _write_files(out: Path, figures: dict, views: dict) -> list[str]:
    """Write each view (format -> a function making its text or JSON object), the figures beside the
    Markdown, in a directory built aside and moved into place whole."""
    written: list[str] = []
    with fsutil.atomic_dir(out, force=True) as staging:
        for fmt in FORMAT_FILES:  # one order whatever the order asked in
            if fmt not in views:
                continue
            if fmt == "md":
                for figure in figures.values():
                    fsutil.write_bytes(staging / figure.name, figure.png)
                    written.append(figure.name)
            content = views[fmt]()
            if isinstance(content, str):
                fsutil.write_text(staging / FORMAT_FILES[fmt], content)
            else:
                fsutil.write_json(staging / FORMAT_FILES[fmt], content)
            written.append(FORMAT_FILES[fmt])
        _shareable(staging)
    return written


def _writer_lock(out: Path) -> DirectoryLock:
    """The lock of the directory the report's temporary is built in (``out``'s parent, or its run
    directory), under which ``run`` removes stale temporaries; not ``out``, which is replaced whole."""
    return DirectoryLock(writer_directory(out.parent), stage="report")


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
    figures: dict[str, document.Figure] = {}
    if {"md", "html"} & set(settings.formats):  # else no view shows pictures
        _add_figures(inputs, settings, figures)
    return document.build_document(inputs, figures, settings.title, settings.max_drop), figures


def _add_figures(inputs: ReportInputs, settings: ReportSettings, figures: dict) -> None:
    task, dpi = inputs.task, settings.dpi
    _add_figure(
        figures, "accuracy_vs_latency.png",
        plots.accuracy_latency_plot(facts.accuracy_latency_panels(inputs, settings.max_drop), dpi, task),
        f"Scatter plot of test {task.metric_label} against median latency, one panel per runtime, every model and "
        "INT8 variant labelled",
        f"Test {task.metric_label} in each runtime against median latency at the largest batch measured (log scale): "
        f"up and to the left is better. The dashed line is the budget, dense's {task.metric_label} minus "
        f"{task.format_points(settings.max_drop)}; the green line joins the Pareto front, the models that no other "
        f"model beats on both speed and {task.metric_label}.")
    _add_figure(
        figures, "speedup.png",
        plots.speedup_plot([c for group in facts.vs_dense_groups(inputs).values() for c in group], dpi),
        "Bar chart of measured speedup of each pruned model over dense, per runtime and batch size, beside the ideal FLOP ratio",
        "Measured speedup over dense (bars with their 95% interval) beside the ideal speedup, the FLOP ratio "
        "(dashed outlines). Above the line at 1 the pruned model is faster.")
    _add_figure(
        figures, "latency_vs_batch.png", plots.latency_plot(inputs.cells, dpi),
        "Line chart of latency per call against batch size, one panel per runtime, dense and pruned models",
        "Median latency per call against batch size, log scales; the band reaches the 99th percentile.")
    if inputs.lotteries:
        _add_figure(
            figures, "accuracy_vs_weights.png",
            plots.lottery_plot(inputs.lotteries, facts.score(facts.BASELINE, facts.models(inputs)), dpi, task),
            f"Line chart of test {task.metric_label} against the fraction of weights remaining for each pruning round",
            f"Test {task.metric_label} of each pruning round against the weights remaining (log scale, pruning "
            "proceeds to the right): the ticket (retrained from its reset), the random re-initialisation and "
            "fine-tuning controls, and the dense model.")
    _add_figure(
        figures, document.TIME_SPLIT_PNG, plots.time_split_plot(timesplit.stacks(inputs), timesplit.OUTSIDE, dpi),
        "Stacked bar chart of time per call by op type, one panel per runtime, dense and each variant",
        "Time per call by op type from the profiled pass, stacked, relative to dense's total at the same batch "
        "(100%); hatched: time outside the profiled layers (runtime dispatch, the call itself).")


def report_json(inputs: ReportInputs, settings: ReportSettings, doc: document.Document, figures: dict) -> dict:
    """The report's conclusions as data, for scripts (the bench JSON stays the raw data)."""
    bench = inputs.bench
    return {
        **_json_header(),
        "source": str(inputs.source),
        "title": doc.title,
        "decision": {**answer.decision_lines(inputs, settings.max_drop), "max_drop": settings.max_drop,
                     "fastest_within_budget": answer.decisions(inputs, settings.max_drop),
                     "stacking_comparisons": answer.stacking_sentences(inputs),
                     "sparse_int8": bench.sparse_int8.to_json() if bench and bench.sparse_int8 else None},
        "in_short": answer.in_short(inputs),
        "answers": answer.runtime_sentences(inputs),
        "comparisons": [c.to_json() for group in facts.comparison_groups(inputs).values() for c in group],
        "models": facts.models(inputs),
        "runtime_accuracy": [{"model": m, "runtime": r, "test_accuracy": a}
                             for (m, r), a in sorted(facts.runtime_accuracy(inputs).items())],
        "plots": sorted(figures),
        "notes": inputs.notes,
        "settings": settings.to_dict(),
        "bench_environment": bench.environment.to_json() if bench else None,
        "versions": _versions(),
    }


def _json_header() -> dict:
    return {"schema_version": REPORT_SCHEMA_VERSION, "tool": f"slimdeploy {__version__}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _versions() -> dict:
    try:
        matplotlib = version("matplotlib")
    except Exception:  # pragma: no cover - matplotlib is a dependency
        matplotlib = None
    return {**environment.library_versions(), "matplotlib": matplotlib}


