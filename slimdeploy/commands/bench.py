"""`slimdeploy bench`: dense vs pruned latency across runtimes, with verdicts."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from slimdeploy.bench.api import run_bench
from slimdeploy.bench.settings import OPENVINO_PRECISIONS, BenchSettings
from slimdeploy.bench.table import latency_table, problem_lines, verdict_table
from slimdeploy.commands._shared import print_json
from slimdeploy.errors import UserError, WorkError
from slimdeploy.progress import console, progress_bar
from slimdeploy.records.bench import BenchResults
from slimdeploy.runtimes.registry import builtin_names, display_name, plugin


# bench's --precision was renamed: export's --precision is the weights' precision.
PRECISION_NOTICE = "slimdeploy bench: note: --precision is now --inference-precision (OpenVINO's compute precision)"


class _OldSpelling(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(PRECISION_NOTICE, file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_parser(subparsers, common):
    builtin = builtin_names()
    parser = subparsers.add_parser(
        "bench",
        parents=[common],
        help=f"benchmark dense vs pruned models on {', '.join(display_name(name) for name in builtin)}",
        description=(
            "Measure each model on each runtime at each batch size, each runtime in its own process "
            "with its thread count set through the runtime's own options. Per cell: warm-up, then at "
            "least --min-iters calls and --min-time seconds, models interleaved in blocks so machine "
            "drift hits all alike; every raw latency is kept. Each model is compared with the baseline "
            "model: speedup (the median of the per-round ratios) with a bootstrap 95% interval, the FLOP "
            "ratio it could reach, and a verdict ('faster': speedup above 1.05x and the whole interval "
            "above 1.0). Writes bench.json "
            "(its record: slimdeploy/records/bench.py) and prints a verdict table."
        ),
        epilog=(
            "SOURCE is a run directory (RUN_DIR/exports/export.json and its Keras models) or artifact files "
            f"({', '.join(plugin(name).suffixes[0] for name in builtin)}; the model's name is the file stem). "
            "Example: slimdeploy bench runs/fashion_mlp --batch 1,64,256 --crosscheck"
        ),
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="run directory or artifact files")
    # The settings' options, with the old spelling of --inference-precision listed after it.
    flagged = [f.name for f in dataclasses.fields(BenchSettings) if f.metadata.get("flag")]
    cut = flagged.index("openvino_precision") + 1
    BenchSettings.add_arguments(parser, only=tuple(flagged[:cut]))
    parser.add_argument("--precision", dest="openvino_precision", choices=OPENVINO_PRECISIONS, action=_OldSpelling,
                        help="the former name of --inference-precision (still accepted, with a notice)")
    BenchSettings.add_arguments(parser, only=tuple(flagged[cut:]))
    parser.add_argument("--out", help="results file (default: RUN_DIR/bench.json, or ./bench.json for artifact files)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing results file")
    parser.add_argument("--resume", action="store_true",
                        help="keep the finished cells of an existing results file and measure the rest")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    parser.add_argument("--json", action="store_true", help="print the results JSON to stdout")
    return parser


def settings_from_args(args):
    """The options given; a --min-iters above the default --max-iters raises the cap with it."""
    changes = BenchSettings.changes_from_args(args)
    settings = dataclasses.replace(BenchSettings(), **changes)
    if "max_iters" not in changes and settings.max_iters and settings.max_iters < settings.min_iters:
        settings = dataclasses.replace(settings, max_iters=settings.min_iters)
    return settings.validated()


def run(args) -> int:
    if args.force and args.resume:
        raise UserError("--force and --resume contradict each other: --force starts over, --resume continues")
    settings = settings_from_args(args)
    with progress_bar(not args.quiet) as progress:
        results = run_bench(args.sources, settings, args.out, force=args.force, resume=args.resume, progress=progress)
    if args.json:
        print_json(results.to_json())
    if not args.quiet:
        for note in results.notes:
            console.print(f"note: {note}")
        if results.comparisons:
            console.print(verdict_table(results, console.width))
        else:  # one model: nothing to compare, its latencies still answer
            console.print(latency_table(results))
        for line in problem_lines(results):
            console.print(line, markup=False)
        errors, ok = sum(c.status == "error" for c in results.cells), sum(c.ok for c in results.cells)
        console.print(f"{ok} cells measured, {errors} errors, {len(results.comparisons)} comparisons, "
                      f"{results.wall_seconds:.0f} s")
    if not any(c.ok for c in results.cells):
        raise nothing_measured(results)
    return 0


def nothing_measured(results: BenchResults):
    """A runtime missing here is for the user to fix (exit 2); cells that failed are a failure of the work (exit 1)."""
    cells = results.cells
    failed = [c for c in cells if c.status == "error"]
    if not failed:
        reasons = {c.runtime: c.error or "unavailable" for c in cells if c.status == "unavailable"}
        detail = "; ".join(f"{runtime}: {reason}" for runtime, reason in reasons.items())
        return UserError(f"nothing could be measured, no requested runtime is available here ({detail})")
    first = failed[0]
    return WorkError(f"no cell was measured: {len(failed)} of {len(cells)} cells failed; first {first.id}: {first.error}")
