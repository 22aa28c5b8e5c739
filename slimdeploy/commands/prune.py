"""`slimdeploy prune`: lottery-ticket pruning of RUN_DIR/dense into RUN_DIR/<mode>/; given a
model file (MODEL.keras or a legacy MODEL.h5), it is first adopted into RUN_DIR/dense."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rich import box
from rich.table import Table

from slimdeploy.adopt import adopt_for_pruning
from slimdeploy.commands._shared import add_run_data_arguments, print_json
from slimdeploy.dirlock import DirectoryLock
from slimdeploy.errors import UserError
from slimdeploy.models import model_format
from slimdeploy.progress import console, progress_bar
from slimdeploy.prune.lottery import prune_run, refuse_rewind_on_adopted
from slimdeploy.prune.settings import PruneSettings
from slimdeploy.records.base import ABSENT
from slimdeploy.records.lottery import LotteryRecord
from slimdeploy.records.base import present
from slimdeploy.rundir import RunDir
from slimdeploy.settings_base import show_default
from slimdeploy.tasks import task_for
from slimdeploy.train import ADOPTING, TrainSettings

# The options that adopt a model file besides --data (--epochs is the prune's own, and also theirs).
ADOPTION_OPTIONS = ("validation_size", "seed", "scale", "optimizer", "learning_rate", "batch_size", "loss")


def add_parser(subparsers, common):
    parser = subparsers.add_parser(
        "prune",
        parents=[common],
        help="lottery-ticket pruning: narrower Dense layers (structured) or weight masks (unstructured)",
        description=(
            "Prune the dense model of RUN_DIR (from `slimdeploy train`) over several rounds: each round removes the "
            "lowest-magnitude units (structured: the model is rebuilt with narrower Dense layers) or weights "
            "(unstructured: masked weights stay exactly zero), resets the survivors, retrains with the dense "
            "model's schedule and evaluates. Writes RUN_DIR/<mode>/: round_K/model.keras, ticket.keras and "
            "lottery.json. With controls (default), the final round is also trained from a fresh random init "
            "and by fine-tuning, so the record says whether the ticket beats a smaller network trained from scratch. "
            "Given a trained model file and --data instead, the model is adopted into RUN_DIR/dense first (the file "
            "itself is never changed); an adopted model has no θ0, so its survivors are fine-tuned by default."
        ),
        epilog=(
            "Examples: `slimdeploy prune my_model.keras --data my_data.npz` (adopt into runs/my_model, then prune); "
            "`slimdeploy prune runs/article` (both modes, 5 rounds of 20%); "
            "`slimdeploy prune runs/article --mode structured --target 0.1 --seeds 0,1,2`; "
            "`slimdeploy prune runs/article --mode unstructured --reset rewind:500 --resume`."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR|MODEL",
                        help="run directory holding dense/model.keras and dense/init.weights.h5, or a trained model "
                             "file (.keras, or a legacy .h5) to adopt (needs --data)")
    parser.add_argument("--out", help="with a model file: the run directory to adopt it into (default: runs/<model name>)")
    parser.add_argument("--mode", choices=("structured", "unstructured", "both"), default="both",
                        help="structured: remove hidden Dense units; unstructured: mask Dense kernel weights (default: both, one after the other)")
    PruneSettings.add_arguments(parser, only=("rounds",))
    PruneSettings.add_arguments(parser.add_mutually_exclusive_group(), only=("rate", "target"))
    PruneSettings.add_arguments(parser, only=("scope", "criterion", "threshold", "reset"))
    parser.add_argument("--controls", action=argparse.BooleanOptionalAction, default=None,
                        help=f"{PruneSettings.help_of('controls')} (default: {show_default(PruneSettings().controls)})")
    PruneSettings.add_arguments(parser, only=("seeds", "max_drop", "search_steps", "round_to", "aligned_widths", "epochs"))
    add_run_data_arguments(parser, "retraining and evaluation",
                           "required with a model file: the data it was trained on (.npz, a folder of class-named "
                           "image folders, or the Fashion-MNIST directory)")
    TrainSettings.add_arguments(parser.add_argument_group("adopting a model file (MODEL.keras or a legacy MODEL.h5)"),
                                only=ADOPTION_OPTIONS, use=ADOPTING)
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--resume", action="store_true", help="continue an interrupted prune; finished rounds are kept, not recomputed")
    state.add_argument("--force", action="store_true", help="delete an existing RUN_DIR/<mode> and start over")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    parser.add_argument("--json", action="store_true",
                        help="print lottery.json to stdout (with --mode both: an object keyed by mode)")
    return parser


def run(args) -> int:
    modes = ("structured", "unstructured") if args.mode == "both" else (args.mode,)
    controls = {} if args.controls is None else {"controls": args.controls}
    # With --mode both, --round-to shapes the structured prune's units only (unstructured removes weights).
    all_settings = [PruneSettings.from_args(args if mode == "structured" or args.mode != "both" else
                                            argparse.Namespace(**{**vars(args), "round_to": None}),
                                            base=PruneSettings(mode=mode, **controls)) for mode in modes]
    model_file = _model_file(args.run_dir)
    if model_file is None:  # adoption's options where no model file is adopted: said, not ignored
        named = (*[name for name in ADOPTION_OPTIONS if name != "seed"], "seed", "out")
        given = [name for name in named if getattr(args, name) is not None]
        if given:
            raise UserError(f"{', '.join('--' + name.replace('_', '-') for name in given)}: only when adopting a "
                            "model file (prune MODEL --data DATA, MODEL a .keras or legacy .h5 file)")
    run_dir = Path(args.out or Path("runs") / model_file.stem) if model_file else Path(args.run_dir)
    run = RunDir(run_dir)
    for settings in all_settings:  # refuse before any training starts
        if model_file is not None:
            refuse_rewind_on_adopted(settings, model_file)
        target = run.mode(settings.mode).path
        if target.exists() and not (args.resume or args.force):
            raise UserError(f"{target} already exists; pass --resume to continue it or --force to start over")
    # Each round builds a new model, which makes tf.function retrace; TensorFlow warns about it each time.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if model_file is not None and args.data_override:
        raise UserError("--data-override applies to a run directory's recorded data; when adopting, --data is the data")
    # Adopting writes RUN_DIR/dense before the prunes: one lock over both (prune_run enters it again).
    with DirectoryLock.when(model_file is not None, run_dir, stage="prune"):
        data = args.data
        if model_file is not None:
            # --data and --epochs are adoption's too (the epochs recorded for retraining).
            train = TrainSettings(**TrainSettings.changes_from_args(args))
            data = adopt_for_pruning(model_file, run_dir, all_settings, train, resume=args.resume, force=args.force)
        records = {}
        for settings in all_settings:
            with progress_bar(not args.quiet) as progress:
                records[settings.mode] = prune_run(run_dir, settings, resume=args.resume, force=args.force,
                                                   progress=progress, data=data, data_override=args.data_override)
            if not args.quiet and not args.json:
                print_summary(LotteryRecord.from_json(records[settings.mode]), run.mode(settings.mode).path)
    if args.json:
        print_json(records[modes[0]] if len(modes) == 1 else records)
    return 0


def _model_file(source: str) -> Path | None:
    path = Path(source).expanduser()
    return path if model_format(path) is not None and not path.is_dir() else None


def print_summary(record: LotteryRecord, mode_dir: Path) -> None:
    """One screen: a row per round, the reset comparison, the ticket."""
    task = task_for()  # no record names its task yet: the default (multiclass)
    several = len(record.seeds) > 1
    structured = record.mode == "structured"
    table = Table(title=f"{record.mode} pruning: rate {record.rate:.3f} per round, seed(s) {','.join(map(str, record.seeds))}",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    val, test = f"val {task.metric_short}", f"test {task.metric_short}"
    columns = ("round", "widths" if structured else "non-zero", "params", "kept", val, test,
               f"drop {task.budget_unit_short}", "s")
    for column in columns:
        table.add_column(column, justify="right", no_wrap=column in ("widths", val, test))
    for entry in record.rounds:
        size = _widths(entry.widths) if structured else f"{entry.prunable_weights - entry.zero_weights:,.0f}"
        drop, seconds = present(entry.test_drop_points), present(entry.seconds)
        table.add_row(str(entry.round), size, f"{entry.params:,.0f}", f"{entry.weights_remaining:.1%}",
                      _score(entry, "val_accuracy", several), _score(entry, "test_accuracy", several),
                      "" if drop is None else f"{drop:+.2f}", "" if seconds is None else f"{seconds:.0f}")
    console.print(table)
    resets = record.resets
    if resets:
        parts = [f"{name} {value.test_accuracy:.4f} (val {value.val_accuracy:.4f})"
                 if present(value.val_accuracy) is not None else f"{name} {value.test_accuracy:.4f}"
                 for name, value in resets.scores.items()]
        winner = f" -> winner by validation: [bold]{resets.winner}[/bold]" if resets.winner else ""
        console.print(f"final round, test {task.metric_label} by reset: {'; '.join(parts)}{winner}")
    drop = record.accuracy_drop
    if drop and present(drop.first_round_beyond) is not None:
        console.print(f"test {task.metric_label} first falls more than {task.format_points(drop.threshold_points)} below "
                      f"dense at round {drop.first_round_beyond} ({drop.weights_remaining:.1%} of the prunable weights)")
    for item in record.unprunable or []:
        console.print(f"left unpruned: {item.layer} ({item.reason})")
    for row in record.candidates or []:
        if row.kind in ("search", "aligned"):
            console.print(f"{row.name}: widths {_widths(row.widths)}, validation {row.val_accuracy:.4f} "
                          f"({'within' if row.within_budget else 'outside'} the budget)")
    ticket = record.ticket
    if ticket:
        name = ticket.candidate if ticket.candidate is not ABSENT else f"round {ticket.round}"
        console.print(f"ticket: {name} ({ticket.reason}), {ticket.weights_remaining:.1%} of the prunable weights, "
                      f"test {task.metric_label} {ticket.test_accuracy:.4f} -> {mode_dir / ticket.path}")


def _widths(widths) -> str:
    return "-".join(f"{width:.0f}" for width in widths)


def _score(entry, key: str, several: bool) -> str:
    value, std = present(getattr(entry, key)), present(getattr(entry, f"{key}_std"))
    if value is None:
        return ""
    return f"{value:.4f}±{std:.3f}" if several and std is not None else f"{value:.4f}"
