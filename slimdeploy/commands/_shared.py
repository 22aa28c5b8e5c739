"""Argument helpers shared by subcommands (value parsers live in ``slimdeploy.parsers``)."""

from __future__ import annotations

import json
import sys

from slimdeploy.config import OPTIMIZERS
from slimdeploy.errors import UserError
from slimdeploy.parsers import non_negative_int, positive_float, positive_int, validation_size


LONE_MODEL_DATA = "a lone model file uses Fashion-MNIST (see `train --help`) or this Fashion-MNIST directory or .npz"


def add_run_data_arguments(parser, use: str, lone_model: str = LONE_MODEL_DATA) -> None:
    """``--data`` and ``--data-override`` for stages that read a run's recorded data;
    ``lone_model`` says what ``--data`` is for a model file given instead of a run."""
    parser.add_argument("--data", help=f"data for {use}: by default a run directory's own recorded data (the file it was "
                                       f"trained on, checked by sha256); {lone_model}")
    parser.add_argument("--data-override", action="store_true",
                        help="use --data although it is not the data the run was trained on (recorded as an override)")


def add_adoption_arguments(parser) -> None:
    """What adopting a model file takes besides ``--data``: the split, and training settings
    that its saved compile config does not give (or that override it)."""
    group = parser.add_argument_group("adopting a model file (MODEL.keras or a legacy MODEL.h5)")
    group.add_argument("--validation-size", type=validation_size,
                       help="rows held out for validation: a count or a fraction in (0, 1) of the training rows "
                            "(default: min(5000, a tenth of the rows); an .npz with x_val, y_val uses those)")
    group.add_argument("--seed", type=non_negative_int,
                       help="seed of the validation split and of re-initialisation (--reset init) (default: 0)")
    group.add_argument("--scale", type=positive_float,
                       help="divide the input values by this number, as the model was trained (default: unchanged)")
    group.add_argument("--optimizer", choices=OPTIMIZERS,
                       help="retraining optimizer (default: the model's saved compile config, else sgd)")
    group.add_argument("--learning-rate", type=positive_float,
                       help="retraining learning rate (default: the model's saved compile config, else 0.01)")
    group.add_argument("--batch-size", type=positive_int, help="retraining batch size (default: 32)")
    group.add_argument("--loss", help="a Keras loss name (default: the model's saved compile config, else "
                                      "sparse_categorical_crossentropy)")


# ``add_adoption_arguments``'s options that only adoption reads (``--seed`` is checked by the caller).
ADOPTION_OPTIONS = ("validation_size", "scale", "optimizer", "learning_rate", "batch_size", "loss")


def adoption_flags(args, epochs=None) -> dict:
    """The training settings given as flags (None: not given), as ``adopt.adopt_model`` takes them."""
    return {"optimizer": args.optimizer, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
            "epochs": epochs, "loss": args.loss}


def refuse_adoption_options(args, what: str) -> None:
    """Adoption's options given where no model file is adopted: say so rather than ignore them."""
    given = [name for name in (*ADOPTION_OPTIONS, "seed", "out") if getattr(args, name, None) is not None]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UserError(f"{flags}: only when adopting a model file ({what})")


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
