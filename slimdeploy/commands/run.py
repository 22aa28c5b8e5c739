"""`slimdeploy run`: the whole job, train (or adopt --model) -> prune -> export -> bench -> report."""

from __future__ import annotations

import sys

from slimdeploy.commands._shared import print_json
from slimdeploy.errors import UserError
from slimdeploy.pipeline import build_config, config_toml, run_pipeline
from slimdeploy.progress import console, progress_bar
from slimdeploy.report.settings import FORMAT_FILES
from slimdeploy.rundir import RunDir
from slimdeploy.train import TrainSettings


def add_parser(subparsers, common):
    parser = subparsers.add_parser(
        "run",
        parents=[common],
        help="the whole job in one command: train, prune (both modes), export, bench, report",
        description=(
            "Run every stage in one run directory (runs/NAME): train the dense model, prune it "
            "structured and unstructured, export every available target, benchmark dense vs pruned, "
            "and write the report (runs/NAME/report/report.md and report.html). Defaults are the "
            "article's workload; a config TOML can set every stage's options (see --print-config). "
            "Stages that finished are kept: --resume continues an interrupted run. With --model and --data, "
            "a trained model of your own is adopted instead of training one (the file is never changed), and "
            "its survivors are fine-tuned (it has no θ0)."
        ),
        epilog="Example: `slimdeploy run --model my_model.keras --data my_data.npz` (the run directory: runs/my_model).",
    )
    parser.add_argument("--config", help="TOML file with [train], [prune], [export], [bench], [report] tables")
    TrainSettings.add_arguments(parser, only=("model", "data"), use="run")
    parser.add_argument("--name", help="run name: the run directory is runs/NAME (default: article, quick with --quick, "
                                       "or the --model file's name)")
    parser.add_argument("--quick", action="store_true", help="a CI-sized profile: few epochs, 2 rounds, short benchmark (a few minutes)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping finished stages")
    parser.add_argument("--force", action="store_true", help="start over, replacing an existing run directory")
    parser.add_argument("--print-config", action="store_true", help="print the effective configuration as TOML and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--json", action="store_true", help="print the run record (run.json) to stdout")
    return parser


def run(args) -> int:
    if args.resume and args.force:
        raise UserError("--resume and --force contradict each other: pick one")
    config = build_config(args.config, quick=args.quick, name=args.name, model=args.model, data=args.data)
    if args.print_config:
        sys.stdout.write(config_toml(config))
        return 0
    with progress_bar(not args.quiet) as progress:
        record = run_pipeline(config, resume=args.resume, force=args.force, progress=progress)
    if args.json:
        print_json(record)
    elif not args.quiet:
        report_md = RunDir(config.run_dir).report_dir / FORMAT_FILES["md"]
        console.print(f"done: {config.run_dir} (report: {report_md})")
    return 0
