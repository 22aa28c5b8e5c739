"""How a prune runs: one dataclass, its defaults, and the checks that reject impossible settings."""

from __future__ import annotations

import argparse
import dataclasses
import re

from slimdeploy.errors import UserError
from slimdeploy.parsers import non_negative_float, non_negative_int, positive_int
from slimdeploy.settings_base import Settings, is_int, is_number, setting
from slimdeploy.tasks import DEFAULT_TASK

MODES = ("structured", "unstructured")
SCOPES = ("layer", "global")
CRITERIA = ("l1", "bias-threshold")
RESET_HELP = "init | rewind:K | trained | random"
# The lottery-ticket paper prunes the output layer at half the rate of the hidden layers.
OUTPUT_RATE_FACTOR = 0.5
# lottery.json's accuracy_drop without --max-drop: how far (in the task's budget points) below dense.
DEFAULT_DROP_POINTS = 0.5
_POINTS = DEFAULT_TASK.budget_unit.upper()  # --max-drop's metavar


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (0 or 1 would keep or remove everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 1, got {text} (0 or 1 would keep or remove everything)")
    return value


def multiple_list(text: str) -> tuple[int, ...]:
    """``"8,16"`` -> (8, 16); an empty string (or "none") asks for none."""
    if text.strip().lower() in ("", "none"):
        return ()
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) >= 2 for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers of at least 2 such as 8,16, or none; got {text!r}")
    return tuple(int(part) for part in parts)


def seed_list(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers such as 0,1,2, got {text!r}")
    seeds = tuple(int(part) for part in parts)
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"a seed is listed twice in {text!r}")
    return seeds


def _check(flag: str, what: str, ok, *, optional: bool = False, shown=repr):
    """A field's check: "FLAG must be WHAT, got VALUE" unless ``ok(value)`` (or None and ``optional``)."""
    def check(value) -> str | None:
        return None if (optional and value is None) or ok(value) else f"{flag} must be {what}, got {shown(value)}"
    return check


def _at_least(low: float, kind=is_int):
    return lambda value: kind(value) and value >= low


def _one_of(flag: str, allowed: tuple[str, ...]):
    return _check(flag, f"one of {', '.join(allowed)}", lambda value: value in allowed)


def _fraction(value) -> bool:
    return is_number(value) and 0 < value < 1


def _check_reset(value) -> str | None:
    try:
        parse_reset("init" if value is None else value)  # None: resolved per run (PruneSettings.for_run)
    except UserError as exc:
        return str(exc)
    return None


def _check_seeds(value) -> str | None:
    if not all(is_int(seed) and seed >= 0 for seed in value):
        return f"--seeds must be non-negative integers, got {list(value)!r}"
    if len(set(value)) != len(value):
        return f"--seeds lists a seed twice: {','.join(map(str, value))}"
    return None


@dataclasses.dataclass(frozen=True)
class PruneSettings(Settings):
    """Settings of one ``prune`` stage (echoed into ``lottery.json``). ``mode`` (structured: remove hidden
    Dense units; unstructured: mask Dense kernel weights) and ``controls`` have no generated flag: `prune
    --mode` also takes "both", ``--controls/--no-controls`` is a pair (commands/prune.py adds both)."""

    mode: str = setting("structured", check=_one_of("--mode", MODES))
    rounds: int = setting(5, flag="--rounds", parse=positive_int, help="pruning rounds",
                          check=_check("--rounds", "a positive integer", _at_least(1)))
    rate: float = setting(0.2, flag="--rate", parse=fraction,
                          check=_check("--rate", "above 0 and below 1 (it is the fraction removed per round)", _fraction),
                          help="fraction of the remaining units/weights removed each round")
    target: float | None = setting(
        None, flag="--target", parse=fraction, shown="",
        check=_check("--target", "above 0 and below 1 (the fraction of prunable weights kept)", _fraction, optional=True),
        help="final fraction of the prunable weights to keep (unstructured: non-zero Dense kernel weights; "
             "structured: Dense parameters); the per-round rate is derived")
    scope: str = setting(
        "layer", flag="--scope", choices=SCOPES, check=_one_of("--scope", SCOPES), shown="",
        help="unstructured: prune each layer at the rate and the output layer at half of it (layer, default), "
             "or rank all Dense weights together (global)")
    criterion: str = setting(
        "l1", flag="--criterion", choices=CRITERIA, check=_one_of("--criterion", CRITERIA), shown="",
        help="structured: score units by the L1 norm of their incoming weights (l1, default), or remove "
             "units whose trained |bias| is below --threshold (bias-threshold, the article's rule)")
    threshold: float = setting(0.001, flag="--threshold", parse=non_negative_float,
                               check=_check("--threshold", "a non-negative number", _at_least(0, is_number)),
                               help="bias threshold for --criterion bias-threshold")
    reset: str | None = setting(
        None, flag="--reset", metavar="RESET", check=_check_reset,
        shown="init for a trained run, trained for an adopted model",
        help="what survivors restart from: init (θ0, the paper; an adopted model: re-initialised with its own "
             "initializers, seeded), rewind:K (weights after K training steps), trained (fine-tune), random (fresh init)")
    controls: bool = setting(True, check=_check("controls", "true or false", lambda value: isinstance(value, bool)),
                             help="also train the final round from a fresh random init and by fine-tuning")
    seeds: tuple[int, ...] = setting(
        (), flag="--seeds", parse=seed_list, check=_check_seeds,
        shown="the dense run's seed; other seeds train their own dense model",
        help="repeat for these training seeds, e.g. 0,1,2, and report mean ± std")
    max_drop: float | None = setting(
        None, flag="--max-drop", parse=non_negative_float, metavar=_POINTS, shown="the final round",
        check=_check("--max-drop", f"a non-negative number of {DEFAULT_TASK.budget_words}", _at_least(0, is_number),
                     optional=True),
        help="ticket = the most-pruned candidate (a round, the final round fine-tuned, a width-search step) whose "
             f"validation {DEFAULT_TASK.metric_label} is within {_POINTS} {DEFAULT_TASK.budget_words} (e.g. 0.5) of dense")
    search_steps: int = setting(
        3, flag="--search-steps", parse=non_negative_int, metavar="N",
        check=_check("--search-steps", "a non-negative integer", _at_least(0)),
        help="structured, with --max-drop: bisection steps between the ticket's widths and the next more-pruned "
             "candidate outside the budget, each fine-tuned (0: none)")
    round_to: int | None = setting(
        None, flag="--round-to", parse=positive_int, metavar="N", shown="no rounding",
        check=_check("--round-to", "a positive integer", _at_least(1), optional=True),
        help="structured: keep a multiple of N units in every pruned layer (rounded down, at least N unless the "
             "layer is narrower)")
    aligned_widths: tuple[int, ...] = setting(
        (8, 16), flag="--aligned-widths", parse=multiple_list, metavar="N,M",
        check=_check("--aligned-widths", "distinct integers of at least 2", shown=lambda value: repr(list(value)),
                     ok=lambda value: all(is_int(n) and n >= 2 for n in value) and len(set(value)) == len(value)),
        help="structured, with --max-drop: also fine-tune the ticket's widths rounded down to multiples of these, "
             "benchmarked beside it as <mode>-rN ('none' to skip)")
    epochs: int | None = setting(None, flag="--epochs", parse=positive_int, shown="the dense model's",
                                 check=_check("--epochs", "a positive integer", _at_least(1), optional=True),
                                 help="retraining epochs per round")

    def check_together(self) -> None:
        if self.scope == "global" and self.mode == "structured":
            raise UserError("--scope global applies to --mode unstructured only (structured pruning is layer-wise)")
        if self.criterion != "l1" and self.mode == "unstructured":
            raise UserError("--criterion applies to --mode structured only (unstructured pruning ranks weights by magnitude)")
        if self.criterion == "bias-threshold" and self.target is not None:
            raise UserError("--target needs --criterion l1 (bias-threshold removes whatever falls below --threshold)")
        if self.round_to is not None and self.mode == "unstructured":
            raise UserError("--round-to applies to --mode structured only (unstructured pruning removes weights, not units)")
        if self.round_to is not None and self.criterion != "l1":
            raise UserError("--round-to needs --criterion l1 (bias-threshold keeps whatever reaches --threshold)")

    def for_run(self, adopted: bool) -> "PruneSettings":
        """These settings with the reset a run of its kind defaults to (``reset`` None)."""
        return self if self.reset is not None else dataclasses.replace(self, reset=default_reset(adopted))

    @property
    def rewind_steps(self) -> int | None:
        return None if self.reset is None else parse_reset(self.reset)[1]  # only rewind:K carries a number

    @classmethod
    def from_dict(cls, raw: dict, source: str = "prune settings") -> "PruneSettings":
        return super().from_dict(raw, source)


def default_reset(adopted: bool) -> str:
    """A trained run resets survivors to θ0; an adopted model has none and is fine-tuned."""
    return "trained" if adopted else "init"


def parse_reset(reset: str) -> tuple[str, int | None]:
    """``"rewind:500"`` -> ``("rewind", 500)``; the other resets carry no number."""
    if reset in ("init", "trained", "random"):
        return reset, None
    match = re.fullmatch(r"rewind:(\d+)", str(reset))
    if match and int(match.group(1)) > 0:
        return "rewind", int(match.group(1))
    raise UserError(f"--reset must be one of {RESET_HELP} (K a positive number of training steps), got {reset!r}")


def reset_label(reset: str) -> str:
    """The name a reset has in ``lottery.json``'s ``resets`` (fine-tuning is what 'trained' does)."""
    return {"trained": "finetune"}.get(parse_reset(reset)[0], reset)

