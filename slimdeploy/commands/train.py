"""`slimdeploy train`: the dense baseline from a recipe."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.commands._shared import print_json
from slimdeploy.config import check_recipe_data, load_recipe
from slimdeploy.data import load_dataset
from slimdeploy.parsers import non_negative_int, positive_float, positive_int, validation_size
from slimdeploy.progress import console, progress_bar
from slimdeploy.rundir import RunDir
from slimdeploy.tasks import task_for
from slimdeploy.train import train_dense


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
    parser.add_argument("--recipe", default="fashion_mlp", help="recipe TOML path or name in models/ (default: fashion_mlp)")
    parser.add_argument("--epochs", type=positive_int, help="override the recipe's epoch count")
    parser.add_argument("--seed", type=non_negative_int, help="override the recipe's seed (data order, init, split)")
    parser.add_argument("--data", help="Fashion-MNIST directory of IDX .gz files, an .npz, or a directory of class-named "
                                       "image folders (default: search, see README)")
    parser.add_argument("--scale", type=positive_float,
                        help="divide the input values by this number (e.g. 255 for 0..255 pixels in an .npz); overrides "
                             "the recipe's [dataset] scale. Default: IDX Fashion-MNIST pixels /255, any other data unchanged")
    parser.add_argument("--validation-size", type=validation_size,
                        help="rows held out for validation: a count or a fraction in (0, 1) of the training rows; "
                             "overrides the recipe's [dataset] validation_size. Default: min(5000, a tenth of the rows); "
                             "an .npz with x_val, y_val uses those")
    parser.add_argument("--limit", type=positive_int, help="use at most N training and N test images (quick runs)")
    parser.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing RUN_DIR/dense")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    return parser


def run(args) -> int:
    recipe = load_recipe(args.recipe).with_training(epochs=args.epochs, seed=args.seed)
    check_recipe_data(recipe, args.data)
    for key in ("scale", "validation_size"):
        if getattr(args, key) is not None:
            recipe = dataclasses.replace(recipe, dataset=dataclasses.replace(recipe.dataset, **{key: getattr(args, key)}))
    out_dir = Path(args.out or Path("runs") / recipe.name)
    dense_dir = RunDir(out_dir).dense.path
    fsutil.refuse_existing(dense_dir, args.force)
    # Everything that can fail on the user's input is checked before anything is written.
    data = load_dataset(args.data, recipe.dataset.validation_size, recipe.training.seed, limit=args.limit,
                        scale=recipe.dataset.scale, input_shape=recipe.input_shape)
    # A failed training leaves nothing: train_dense's lock removes the run directory it made if
    # nothing else is in it (never one that another process made meanwhile).
    with progress_bar(not args.quiet) as progress:
        metrics = train_dense(recipe, data, out_dir, force=args.force, progress=progress)
    if args.json:
        print_json(metrics)
    elif not args.quiet:
        metric = task_for().metric_label  # no record names its task yet: the default (multiclass)
        console.print(
            f"dense model: test {metric} {metrics['test_accuracy']:.4f}, val {metric} {metrics['val_accuracy']:.4f}, "
            f"{metrics['params']:,} params, {metrics['flops']:,} FLOPs, {metrics['train_seconds']:.1f} s -> {dense_dir}"
        )
    return 0
