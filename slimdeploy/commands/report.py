"""`slimdeploy report`: the answer as a page with pictures, data for CI, a regression gate, and one report
of benchmarks from several machines."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimdeploy.commands._shared import print_json
from slimdeploy.errors import UserError
from slimdeploy.progress import console
from slimdeploy.report import answer, ci
from slimdeploy.report.api import make_report, write_merged_report
from slimdeploy.report.gate import FAILED, REGRESSED, check_regressions, gate_markdown
from slimdeploy.report.load import load_source
from slimdeploy.report.merge import load_machines, machine_answers
from slimdeploy.report.settings import MERGED_FORMATS, MERGED_OUT, ReportSettings, parse_formats, parse_fraction
from slimdeploy.tasks import DEFAULT_TASK

EPILOG = """\
examples:
  slimdeploy report runs/fashion_mlp                       # -> runs/fashion_mlp/report/
  slimdeploy report runs/fashion_mlp/bench.json --format md,gab --out ci-report
  slimdeploy report new.json --baseline main.json --max-regression 10%   # exit 1 on a regression

several machines, one report (bench JSONs or run directories, one per machine):
  slimdeploy report laptop/bench.json ci-x86/bench.json graviton/bench.json --out merged-report
  slimdeploy report a.json b.json --label "dev box" --label "Graviton3"   # one --label per SOURCE, in order
Each machine is named from its bench.json environment (CPU, usable cores, ISA: avx2, avx512f,
avx512_vnni, amx, neon) unless --label names it. The report gives each machine's decision, then
each comparison's speedup (interval and verdict) per machine, runtime and batch, and a plot per
machine; numbers are never averaged across machines ("not measured": a machine did not run that
row; "failed": its cell errored there). Options may come between the SOURCEs. The files must
have measured the same models (sha256 of each model's artifact per runtime; older files: names,
parameters, FLOPs), else the report is refused unless --allow-different-models.

regression rule: cells are matched on model, runtime, batch, threads, mode and settings. A cell
regresses when the bootstrap interval of old/new median latency lies entirely below
1/(1+threshold): the new median is, with 95% confidence, more than the threshold slower. A cell
that ran in the baseline but errors now also fails the gate. Exit 0: no regression; 1: at least
one; 2: bad input (unknown schema version, corrupt JSON, no cells in common).

When GITHUB_STEP_SUMMARY is set, the Markdown answer (and the gate's result) is appended to it,
long tables folded into <details>, the file kept under GitHub's 1 MiB limit.
"""


def _intermixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` (its class kept: cli's one-line errors), taking options between its SOURCEs: argparse's
    nargs="+" stops at the first option; ``parse_known_intermixed_args`` calls the plain parse twice."""

    class Intermixed(type(parser)):
        _inside = False

        def parse_known_args(self, args=None, namespace=None):
            if self._inside:
                return super().parse_known_args(args, namespace)
            self._inside = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._inside = False

    parser.__class__ = Intermixed
    return parser


def add_parser(subparsers, common):
    parser = subparsers.add_parser(
        "report",
        parents=[common],
        help="write the report (Markdown, HTML with plots, JSON, CSV, CI formats) or gate on regressions",
        description=(
            "Turn a run directory (or a bench JSON alone) into a report that says, at the top and in plain "
            "words, how much faster each pruned model is on each runtime (speedup with its 95% interval and "
            f"verdict) and what it costs in {DEFAULT_TASK.metric_label}; then tables (models, exported files, latency, "
            "comparisons, environment) and three plots: speedup vs ideal, latency vs batch size, and the "
            f"lottery-ticket {DEFAULT_TASK.metric_label} curve. Files go to RUN_DIR/report/ (or report/ beside a bench JSON). "
            "An existing report directory is regenerated only with --force, and only if it holds nothing but "
            "report files. With --baseline, compares the benchmark with an older one instead and writes "
            "report files only when --out is also given. Several SOURCEs (one per machine) make one merged report: "
            "each machine's decision, then every speedup side by side per machine, runtime and batch."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", nargs="+",
                        help="run directory, or a bench JSON file (bench.json); several (one per machine): one merged report")
    ReportSettings.add_arguments(parser, only=("formats",))
    parser.add_argument("--out", metavar="DIR", help="report directory (default: RUN_DIR/report, or report/ beside a bench JSON; "
                                                      f"with several SOURCEs, ./{MERGED_OUT})")
    parser.add_argument("--force", action="store_true", help="regenerate an existing report directory")
    ReportSettings.add_arguments(parser, only=("title", "max_drop"))
    parser.add_argument("--label", metavar="NAME", action="append",
                        help="name of the machine of each SOURCE in a merged report, repeated once per SOURCE in order "
                             "(default: from each bench.json's environment: CPU, cores, ISA)")
    parser.add_argument("--allow-different-models", action="store_true",
                        help="merge benchmarks even when their models differ (their artifacts' sha256)")
    parser.add_argument("--baseline", metavar="OLD", help="bench JSON or run directory to compare against (regression gate)")
    ReportSettings.add_arguments(parser, only=("max_regression",))
    parser.add_argument("--no-step-summary", action="store_true", help="do not append to $GITHUB_STEP_SUMMARY even when it is set")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors (and the gate's table)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout (files written, or the gate's cells)")
    return _intermixed(parser)


def run(args) -> int:
    settings = _settings(args)
    if len(args.source) > 1:
        if args.baseline:
            raise UserError(f"--baseline gates one benchmark against an older one; give one SOURCE with it, not {len(args.source)}")
        unmerged = [f for f in args.formats or () if f not in MERGED_FORMATS]
        if unmerged:
            raise UserError(f"--format {','.join(unmerged)}: a report of several sources writes {', '.join(MERGED_FORMATS)}; "
                            "make csv and gab with a report of each source alone")
        _merged_report(args, settings)
        return 0
    if args.label:
        raise UserError("--label names the machines of a merged report: give two or more SOURCEs, one --label each")
    args.source = args.source[0]
    status = 0
    if args.baseline:
        status = _gate(args, settings)
        if args.out is None:
            return status
    _report(args, settings)
    return status


def _settings(args) -> ReportSettings:
    # The options' text is read here so that their errors name the option (--max-regression),
    # the threshold first as it always was.
    if args.max_regression is not None:
        args.max_regression = parse_fraction(args.max_regression, "--max-regression")
    if args.formats is not None:
        args.formats = parse_formats(args.formats)
    settings = ReportSettings.from_args(args)
    return dataclasses.replace(settings, step_summary=False) if args.no_step_summary else settings


def _report(args, settings) -> None:
    files = make_report(args.source, settings, args.out, force=args.force)
    if args.quiet and not args.json:
        return
    inputs = load_source(args.source)
    if args.json:
        print_json({"out_dir": str(files[0].parent) if files else args.out, "files": [str(f) for f in files],
                    "in_short": answer.in_short(inputs), "answers": answer.sentences(inputs)})
        return
    print(f"In short: {answer.in_short(inputs)}")
    for sentence in answer.sentences(inputs):
        print(f"- {sentence}")
    _print_files(files, files[0].parent if files else args.out)


def _print_files(files: list[Path], out_dir) -> None:
    console.print(f"report: {len(files)} files -> {out_dir}")
    for path in files:
        console.print(f"  {Path(path).name}", highlight=False)


def _merged_report(args, settings) -> None:
    # Read (and schema-checked) once: the files are written from it, and its answers printed.
    merged = load_machines(args.source, args.label, allow_different_models=args.allow_different_models)
    files = write_merged_report(merged, settings, args.out, force=args.force)
    if args.quiet and not args.json:
        return
    machines = [machine_answers(m, settings.max_drop) for m in merged.machines]
    if args.json:
        print_json({"out_dir": str(files[0].parent), "files": [str(f) for f in files], "machines": machines,
                    "same_models": merged.compared, "differences": merged.differences})
        return
    for machine in machines:
        print(f"{machine['label']}: {' '.join(machine['decision']) or machine['in_short']}")
    print(f"Same models: compared {merged.compared}.")
    for difference in merged.differences:
        console.print(f"notice: models differ (--allow-different-models): {difference}", highlight=False)
    _print_files(files, files[0].parent)


def _gate(args, settings) -> int:
    result = check_regressions(args.source, args.baseline, settings.max_regression, settings.confidence)
    if settings.step_summary:
        ci.append_text_to_step_summary(gate_markdown(result))
    if args.json:
        print_json(result)
        return 0 if result["passed"] else 1
    out = Console()  # stdout: the gate's table is the command's output
    if not out.is_terminal:
        out = Console(width=160)  # CI logs: wide enough that cell names are not folded
    bad = [r for r in result["cells"] if r["status"] in (REGRESSED, FAILED)]
    counts = result["counts"]
    if bad:
        table = Table(title=f"Regressions beyond {settings.max_regression * 100:g}% (95% bootstrap interval)")
        for column in ("cell", "baseline p50 ms", "new p50 ms", "change", "old/new speedup (95% interval)", "status"):
            table.add_column(column, justify="right" if "ms" in column or column == "change" else "left")
        for r in bad:
            if r["status"] == REGRESSED:
                table.add_row(r["name"], f"{r['old_p50_ms']:.4g}", f"{r['new_p50_ms']:.4g}", f"{r['change'] * 100:+.1f}%",
                              f"{r['speedup']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})", "[red]regressed[/red]")
            else:
                table.add_row(r["name"], "–", "–", "–", "–", f"[red]failed[/red]: {r['reason']}")
        out.print(table)
    summary = (f"{'FAILED' if bad else 'passed'}: {counts[REGRESSED]} regressed, {counts[FAILED]} failed, "
               f"{counts['improved']} improved, {counts['unchanged']} unchanged, {counts['skipped']} skipped "
               f"of {len(result['cells'])} cells in common (threshold {settings.max_regression * 100:g}%)")
    out.print(summary, highlight=False)
    return 1 if bad else 0
