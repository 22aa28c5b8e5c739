"""How a prune runs: one dataclass, its defaults, and the checks that reject impossible settings."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from slimdeploy.config import settings_from_table
from slimdeploy.errors import UserError

MODES = ("structured", "unstructured")
SCOPES = ("layer", "global")
CRITERIA = ("l1", "bias-threshold")
RESET_HELP = "init | rewind:K | trained | random"
# The lottery-ticket paper prunes the output layer at half the rate of the hidden layers.
OUTPUT_RATE_FACTOR = 0.5
# How far below dense (in accuracy points) a round may fall before the record marks it.
DEFAULT_DROP_POINTS = 0.5


@dataclass(frozen=True)
class PruneSettings:
    """Settings of one ``prune`` stage (echoed into ``lottery.json``).

    mode:       "structured" (remove hidden Dense units) or "unstructured" (mask Dense kernel weights).
    rounds:     rounds of iterative magnitude pruning.
    rate:       fraction of the remaining prunable units/weights removed per round.
    target:     final fraction of prunable weights kept; when set, the per-round rate is derived from it.
    scope:      unstructured only: "layer" (each layer at the rate, the output layer at half) or "global".
    criterion:  structured only: "l1" (L1 norm of a unit's incoming weights) or "bias-threshold"
                (remove units whose trained |bias| is below ``threshold``; the rate is not used).
    reset:      what survivors start from before retraining: "init" (θ0), "rewind:K" (weights after
                K training steps), "trained" (fine-tuning) or "random" (a fresh initialisation).
    controls:   also train the final round from a fresh random init and by fine-tuning.
    seeds:      training seeds; empty means the dense run's own seed. Other seeds train their own dense model.
    max_drop:   pick as ticket the smallest round whose validation accuracy is within this many
                accuracy points of dense (None: the final round).
    epochs:     retraining epochs per round (None: the dense model's schedule).
    """

    mode: str = "structured"
    rounds: int = 5
    rate: float = 0.2
    target: float | None = None
    scope: str = "layer"
    criterion: str = "l1"
    threshold: float = 0.001
    reset: str = "init"
    controls: bool = True
    seeds: tuple[int, ...] = ()
    max_drop: float | None = None
    epochs: int | None = None

    def validate(self) -> "PruneSettings":
        if self.mode not in MODES:
            raise UserError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not _int(self.rounds) or self.rounds < 1:
            raise UserError(f"--rounds must be a positive integer, got {self.rounds!r}")
        if not _number(self.rate) or not 0 < self.rate < 1:
            raise UserError(f"--rate must be above 0 and below 1 (it is the fraction removed per round), got {self.rate!r}")
        if self.target is not None and (not _number(self.target) or not 0 < self.target < 1):
            raise UserError(f"--target must be above 0 and below 1 (the fraction of prunable weights kept), got {self.target!r}")
        if self.scope not in SCOPES:
            raise UserError(f"--scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.scope == "global" and self.mode == "structured":
            raise UserError("--scope global applies to --mode unstructured only (structured pruning is layer-wise)")
        if self.criterion not in CRITERIA:
            raise UserError(f"--criterion must be one of {', '.join(CRITERIA)}, got {self.criterion!r}")
        if self.criterion != "l1" and self.mode == "unstructured":
            raise UserError("--criterion applies to --mode structured only (unstructured pruning ranks weights by magnitude)")
        if self.criterion == "bias-threshold" and self.target is not None:
            raise UserError("--target needs --criterion l1 (bias-threshold removes whatever falls below --threshold)")
        if not _number(self.threshold) or self.threshold < 0:
            raise UserError(f"--threshold must be a non-negative number, got {self.threshold!r}")
        parse_reset(self.reset)
        if not isinstance(self.controls, bool):
            raise UserError(f"controls must be true or false, got {self.controls!r}")
        if not all(_int(seed) and seed >= 0 for seed in self.seeds):
            raise UserError(f"--seeds must be non-negative integers, got {list(self.seeds)!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds lists a seed twice: {','.join(map(str, self.seeds))}")
        if self.max_drop is not None and (not _number(self.max_drop) or self.max_drop < 0):
            raise UserError(f"--max-drop must be a non-negative number of accuracy points, got {self.max_drop!r}")
        if self.epochs is not None and (not _int(self.epochs) or self.epochs < 1):
            raise UserError(f"--epochs must be a positive integer, got {self.epochs!r}")
        return self

    @property
    def rewind_steps(self) -> int | None:
        kind, steps = parse_reset(self.reset)
        return steps if kind == "rewind" else None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["seeds"] = list(self.seeds)
        return data

    @classmethod
    def from_dict(cls, raw: dict, source: str = "prune settings") -> "PruneSettings":
        """Read the ``[prune]`` table of a TOML file; unknown keys are an error, not ignored."""
        return settings_from_table(cls, raw, source)


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
    kind, _ = parse_reset(reset)
    return {"trained": "finetune"}.get(kind, reset)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
