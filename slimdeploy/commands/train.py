"""`slimdeploy train`: the dense baseline from a recipe."""

from __future__ import annotations

from slimdeploy.commands._shared import print_json
from slimdeploy.progress import console, progress_bar
from slimdeploy.rundir import RunDir
from slimdeploy.tasks import task_for
from slimdeploy.train import TrainSettings, train_dense


def add_parser(subparsers, common):
    parser = subparsers.add_parser(
        "train",
        parents=[common],
        help="train the dense model from a recipe and keep its initial weights θ0",
        description=(
            "Train the dense Keras model a recipe describes (default: the article's 784-300-150-10 MLP "
            "on Fashion-MNIST) and write RUN_DIR/dense/: model.keras, init.weights.h5 (θ0), "
            "history.json and metrics.json."
        ),
    )
    TrainSettings.add_arguments(parser, only=("recipe", "epochs", "seed", "data", "scale", "validation_size", "limit"))
    parser.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing RUN_DIR/dense")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    return parser


def run(args) -> int:
    # The options' own parsers checked them; [train]'s checks are the run config's.
    recipe, data, out_dir = TrainSettings(**TrainSettings.changes_from_args(args)).prepare(args.out, force=args.force)
    # A failed training leaves nothing: train_dense's lock removes the run directory it made if
    # nothing else is in it (never one that another process made meanwhile).
    with progress_bar(not args.quiet) as progress:
        metrics = train_dense(recipe, data, out_dir, force=args.force, progress=progress)
    if args.json:
        print_json(metrics.to_json())
    elif not args.quiet:
        metric = task_for().metric_label  # no record names its task yet: the default (multiclass)
        console.print(
            f"dense model: test {metric} {metrics.test_accuracy:.4f}, val {metric} {metrics.val_accuracy:.4f}, "
            f"{metrics.params:,} params, {metrics.flops:,} FLOPs, {metrics.train_seconds:.1f} s -> "
            f"{RunDir(out_dir).dense.path}")
    return 0
